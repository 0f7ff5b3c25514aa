"""Built-in face detector: MTCNN (Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks"), from the `mtcnn` package on PyPI. It runs on TensorFlow and its three networks' weights
come inside its wheel: nothing is downloaded.

MTCNN finds faces at every scale of an image pyramid and gives each a box, a confidence and five landmarks (the
eyes, the nose tip and the mouth corners), the five points facemath aligns faces on.
"""

from __future__ import annotations

import threading

import numpy as np

from facemath_core import DetectedFace, FaceDetector, FacemathError, Param, hookimpl

_MODEL = None
_LOCK = threading.RLock()  # one MTCNN per process; the studio's threads share it


def _mtcnn():
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            try:
                from mtcnn import MTCNN  # imports TensorFlow: deferred until the first photo
            except ImportError as exc:
                raise FacemathError(
                    f"detector mtcnn: the mtcnn package is not installed ({exc}); pip install mtcnn"
                ) from None
            _MODEL = MTCNN(device="CPU:0")
        return _MODEL


def mtcnn(image, min_face, threshold=0.8, scale_factor=0.709):
    """Faces in an RGB uint8 image, largest first, with MTCNN's float landmarks (its JSON output rounds them to
    whole pixels; the numpy output keeps them)."""
    image = np.ascontiguousarray(image)
    with _LOCK:  # MTCNN's stages hold no state between calls, but its Keras models are not documented thread-safe
        rows = _mtcnn().detect_faces(
            image,
            box_format="xyxy",
            output_type="numpy",
            min_face_size=max(int(min_face), 12),
            threshold_onet=float(threshold),
            scale_factor=float(scale_factor),
        )
    rows = np.asarray(rows, np.float64).reshape(-1, 16)
    faces = []
    # Columns: image index, x0, y0, x1, y1, confidence, the five x's, the five y's (eye left, eye right, nose,
    # mouth left, mouth right: left and right as seen in the image).
    for row in rows:
        landmarks = tuple(zip(row[6:11].tolist(), row[11:16].tolist(), strict=True))
        faces.append(DetectedFace(tuple(row[1:5].tolist()), landmarks, float(row[5])))
    return sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


@hookimpl
def facemath_face_detectors():
    return [
        FaceDetector(
            "mtcnn",
            "MTCNN (Zhang et al. 2016): boxes, five landmarks and a confidence; weights inside the mtcnn wheel.",
            mtcnn,
            defaults={
                "threshold": Param(0.8, ge=0.0, le=1.0, help="confidence a face needs in MTCNN's last stage"),
                "scale_factor": Param(0.709, gt=0.0, lt=1.0, help="the image pyramid's step from scale to scale"),
            },
        )
    ]
