"""Faces in photos: found by a face-detector plugin, aligned to the landmark template of the data a model was
trained on, cropped as its training images were, and pasted back into the photo after an edit.

A face is aligned by the similarity transform (rotation, uniform scale, translation) that takes its five detected
landmarks (eyes, nose, mouth corners) closest to the template's in the least-squares sense: scikit-image's
`SimilarityTransform` (Umeyama's method), the step Amos' dcgan-completion ran with OpenFace's `align-dlib.py`
before projecting. The template is the model's own (`landmarks` in its metadata: the mean landmarks of its
training faces, in the pixels of its input) or CelebA's standard aligned positions (`--template celeba`).

Coordinates are pixels with x to the right and y down, the centre of the top left pixel at (0, 0), as scikit-image
uses them; a transform is a 3x3 matrix taking photo pixels to crop pixels.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facemath_core.base.drawing import font, line_height
from facemath_core.base.errors import FacemathError
from facemath_core.base.text import plural
from facemath_core.data.folders import PARTITION_FILE, RECIPE_FILE, read_label_lines, read_recipe
from facemath_core.data.images import CELEBA_ALIGNED_SIZE, CELEBA_CROP, from_unit, list_images, read_image, to_unit
from facemath_core.data.synth import DEFAULT_FREQUENCIES, landmark_template, parse_correlations
from facemath_core.host.components import DetectedFace
from facemath_core.host.contracts import blend, detect
from facemath_core.host.manager import check_params

LANDMARK_NAMES = DetectedFace.LANDMARKS
DEFAULT_MIN_FACE = 20  # pixels: MTCNN's own default smallest face
DEFAULT_MAX_FACES = 10
# Detection runs on a copy whose longer side is at most this (the landmarks are scaled back): a 12-megapixel phone
# photo would otherwise spend seconds in the detector's finest pyramid levels looking for 20-pixel faces.
DETECT_MAX_SIDE = 1600
# Below this scale (crop pixels per photo pixel) the photo is first shrunk with a Lanczos filter, so that the
# bilinear warp never skips pixels (no aliasing when a 600-pixel face becomes 64).
_SHRINK_BELOW = 0.5

LANDMARKS_FILE = "list_landmarks_align_celeba.txt"
# CelebA's aligned images (178x218) put the five landmarks at these positions (lefteye, righteye, nose, leftmouth,
# rightmouth: x y each), as the mean positions of list_landmarks_align_celeba.txt, rounded to whole pixels, are
# listed in public face-alignment code: podgorskiy/ALAE, align_faces.py ("69 111 108 111 88 136 72 152 105 152").
CELEBA_LANDMARKS = ((69.0, 111.0), (108.0, 111.0), (88.0, 136.0), (72.0, 152.0), (105.0, 152.0))
CELEBA_SOURCE = (
    "CelebA's standard aligned landmarks in its 178x218 images (69 111 108 111 88 136 72 152 105 152, the means of "
    "list_landmarks_align_celeba.txt as podgorskiy/ALAE align_faces.py lists them), cropped as facemath loads "
    "CelebA (the central 108x108)"
)


# --- templates ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """Where the five landmarks sit in a model's input: `points` (5, 2) in the pixels of a `size` x `size` image."""

    points: np.ndarray
    size: int
    source: str

    def at(self, size: int) -> Template:
        """The same framing in a size x size crop (pixel centres scale about the image's centre)."""
        if size == self.size:
            return self
        scale = size / self.size
        return Template((self.points + 0.5) * scale - 0.5, size, self.source)

    def record(self) -> dict:
        """As a model's metadata and faces.json hold it."""
        return {
            "names": list(LANDMARK_NAMES),
            "template": [[round(float(x), 3), round(float(y), 3)] for x, y in self.points],
            "image_size": int(self.size),
            "source": self.source,
        }

    @classmethod
    def from_record(cls, record: dict, where: str) -> Template:
        try:
            points = np.asarray(record["template"], np.float64)
            size = int(record["image_size"])
        except (KeyError, TypeError, ValueError):
            raise FacemathError(f"{where}: its landmarks record is not a template") from None
        if points.shape != (5, 2) or not np.isfinite(points).all() or size < 1:
            raise FacemathError(f"{where}: its landmark template should be 5 finite (x, y) points")
        return cls(points, size, str(record.get("source", "")))


def crop_window(width: int, height: int) -> tuple[int, int, int]:
    """(left, top, side) of the square `images.crop_and_resize(..., crop='auto')` keeps of a width x height image:
    CelebA's central 108x108 of its 178x218 aligned images, the largest central square otherwise."""
    side = min(CELEBA_CROP, width, height) if (width, height) == CELEBA_ALIGNED_SIZE else min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def _into_crop(points: np.ndarray, left: float, top: float, side: float, size: int) -> np.ndarray:
    """Points of an image into the size x size resize of its square (left, top, side), as PIL's resize maps pixel
    centres: u -> (u - left + 0.5) * size / side - 0.5."""
    return (points - [left, top] + 0.5) * (size / side) - 0.5


def celeba_template(size: int) -> Template:
    """CelebA's standard positions, cropped and resized as facemath loads CelebA."""
    left, top, side = crop_window(*CELEBA_ALIGNED_SIZE)
    return Template(_into_crop(np.array(CELEBA_LANDMARKS), left, top, side, size), size, CELEBA_SOURCE)


def template_for_folder(folder: str | os.PathLike, size: int) -> Template | None:
    """The template of a training folder, for the models trained on it: a folder `facemath data synth` made gives
    the mean of the landmarks its renderer drew on its training faces; a CelebA-format folder with
    list_landmarks_align_celeba.txt the mean of its training rows, cropped as the loader crops; None otherwise."""
    folder = Path(folder)
    recipe = read_recipe(folder)
    if recipe is not None and recipe.get("command") == "facemath data synth":
        count, held_out = int(recipe["count"]), int(recipe.get("held_out_percent", 10))
        train = count - (count * held_out) // 100
        freq = {**recipe.get("freq", {})}
        correlations = parse_correlations([f"{k}={v}" for k, v in recipe.get("correlate", {}).items()])
        frequencies = {**DEFAULT_FREQUENCIES, **freq}
        rendered = int(recipe.get("size", size))
        points = landmark_template(max(train, 1), int(recipe["seed"]), rendered, frequencies, correlations)
        source = (
            f"the mean of the landmarks facemath's renderer drew on the {train:,} training faces of "
            f"`facemath data synth --count {count} --seed {recipe['seed']}` ({RECIPE_FILE})"
        )
        return Template(points, rendered, source).at(size)
    path = folder / LANDMARKS_FILE
    if not path.is_file():
        return None
    rows, values = read_landmarks(path)
    keep = _train_rows(folder, rows)
    mean = values[keep].mean(axis=0).reshape(5, 2)
    images = list_images(folder / "img_align_celeba") if (folder / "img_align_celeba").is_dir() else []
    width, height = CELEBA_ALIGNED_SIZE
    if images:
        with Image.open(images[0]) as first:
            width, height = first.size
    left, top, side = crop_window(width, height)
    source = f"the mean of {LANDMARKS_FILE} over its {int(keep.sum()):,} training rows, cropped as the loader crops"
    return Template(_into_crop(mean, left, top, side, size), size, source)


def read_landmarks(path: Path) -> tuple[list[str], np.ndarray]:
    """CelebA's landmark file: a count, a header of ten names, then a file name and ten numbers (five x, y) per
    row; every problem names the file and line."""
    lines = [line for line in read_label_lines(path) if line.strip()]
    if len(lines) < 2:
        raise FacemathError(f"{path}: expected a count, a header and one row per image")
    rows, values = [], []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        try:
            numbers = [float(v) for v in fields[1:]]
        except ValueError:
            raise FacemathError(f"{path}:{number}: the landmarks are not numbers") from None
        if len(numbers) != 10 or not np.isfinite(numbers).all():
            raise FacemathError(f"{path}:{number}: expected a file name and 10 numbers (five x, y landmarks)")
        rows.append(fields[0])
        values.append(numbers)
    if not rows:
        raise FacemathError(f"{path}: no landmark rows")
    return rows, np.asarray(values, np.float64)


@functools.lru_cache(maxsize=8)
def training_template(folder: str | os.PathLike, size: int) -> Template | None:
    """`template_for_folder` for an export: None when the training folder is gone (exported on another machine);
    computed once per folder and size (every model of a run shares it)."""
    return template_for_folder(folder, size) if Path(folder).is_dir() else None


def _train_rows(folder: Path, rows: list[str]) -> np.ndarray:
    partition = folder / PARTITION_FILE
    if not partition.is_file():
        return np.ones(len(rows), bool)
    split = {}
    for line in read_label_lines(partition):
        parts = line.split()
        if len(parts) == 2:
            split[parts[0]] = parts[1]
    keep = np.array([split.get(row, "0") == "0" for row in rows])
    return keep if keep.any() else np.ones(len(rows), bool)


def model_template(metadata: dict, model: str, size: int | None = None) -> Template | None:
    """The template a model's metadata records (None for a model exported without one), at `size`."""
    record = metadata.get("landmarks")
    if not isinstance(record, dict):
        return None
    template = Template.from_record(record, f"the {model} model's metadata")
    return template.at(size or template.size)


# --- alignment ----------------------------------------------------------------------------------------------------


def similarity(landmarks: np.ndarray, template: Template) -> np.ndarray:
    """The 3x3 similarity transform taking the photo's landmarks closest to the template's (least squares over the
    five points, scikit-image's SimilarityTransform)."""
    from skimage.transform import SimilarityTransform  # scikit-image loads scipy.ndimage: deferred until a face

    src, dst = np.asarray(landmarks, np.float64), np.asarray(template.points, np.float64)
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        transform = SimilarityTransform.from_estimate(src, dst)
        ok = bool(transform)
    else:
        transform = SimilarityTransform()
        ok = transform.estimate(src, dst)
    matrix = np.asarray(getattr(transform, "params", np.eye(3)), np.float64)
    if not ok or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:2, :2])) < 1e-12:
        raise FacemathError("the detected landmarks are degenerate (all in one place): no alignment exists")
    return matrix


def scale_of(matrix: np.ndarray) -> float:
    """Crop pixels per photo pixel."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))


def warp(photo: np.ndarray, matrix: np.ndarray, size: int) -> tuple[np.ndarray, bool]:
    """The size x size crop of `photo` (uint8 RGB) under `matrix` (photo -> crop), and whether it reaches past the
    photo's border (that part is filled in by reflecting the photo, as a `reflect` padding)."""
    from skimage.transform import AffineTransform
    from skimage.transform import warp as sk_warp  # deferred with scikit-image

    inverse = np.linalg.inv(matrix)
    corners = np.array([[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [-0.5, size - 0.5, 1], [size - 0.5, size - 0.5, 1]])
    spots = (inverse @ corners.T).T[:, :2]
    margin = 2.0 / min(scale_of(matrix), 1.0) + 2.0
    x0, y0 = np.floor(spots.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(spots.max(axis=0) + margin).astype(int) + 1
    height, width = photo.shape[:2]
    pads = (max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width))
    padded = any(p > 0 for pair in pads for p in pair)
    inner = photo[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)]
    if inner.size == 0:  # the face lies wholly outside the photo: nothing to reflect
        raise FacemathError("the face's crop lies outside the photo")
    region = np.pad(inner, (*pads, (0, 0)), mode="reflect") if padded else inner
    # region pixel (u, v) is photo pixel (u + x0, v + y0)
    to_photo = np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1]])
    scale = scale_of(matrix)
    if scale < _SHRINK_BELOW:
        factor = 2.0 * scale
        new_w, new_h = max(1, round(region.shape[1] * factor)), max(1, round(region.shape[0] * factor))
        fx, fy = new_w / region.shape[1], new_h / region.shape[0]
        region = np.asarray(Image.fromarray(region).resize((new_w, new_h), Image.Resampling.LANCZOS))
        # resized pixel i sits at region coordinate (i + 0.5) / f - 0.5
        to_photo = to_photo @ np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
    crop_to_region = np.linalg.inv(matrix @ to_photo)
    out = sk_warp(
        region.astype(np.float64),
        AffineTransform(matrix=crop_to_region),
        output_shape=(size, size),
        order=1,
        mode="edge",
        preserve_range=True,
    )
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), padded


@dataclass
class AlignedFace:
    """One face of a photo, aligned: its crop, where it came from and how."""

    photo: str  # the photo's path as given
    name: str  # the crop's name: PHOTO_1.png, PHOTO_2.png, ... (largest face first)
    index: int  # 1 for the largest face of its photo
    face: DetectedFace
    matrix: np.ndarray  # (3, 3) photo pixels -> crop pixels
    crop: np.ndarray  # (size, size, 3) uint8
    padded: bool
    photo_size: tuple[int, int] = (0, 0)  # (width, height), upright

    def record(self) -> dict:
        return {
            "photo": self.photo,
            "name": self.name,
            "face": self.index,
            **self.face.record(),
            "transform": [[float(v) for v in row] for row in self.matrix],  # exact: a resume warps again
            "size": int(self.crop.shape[0]),
            "padded": bool(self.padded),
            "photo_size": list(self.photo_size),
        }


@dataclass
class Aligner:
    """Detect and align faces the same way for every command: a detector component of the registry (with its
    parameters), a template, and the face limits. `note(line)` gets one line for each thing worth saying (faces
    left out by --max-faces, a crop padded at the border, a photo shrunk for detection)."""

    registry: object
    template: Template
    detector: str = "mtcnn"
    params: list[str] | dict | None = None
    min_face: int = DEFAULT_MIN_FACE
    max_faces: int = DEFAULT_MAX_FACES
    note: Callable[[str], None] = lambda line: None
    component: object = field(init=False)
    detector_params: dict = field(init=False)

    def __post_init__(self):
        if self.min_face < 1:
            raise FacemathError(f"--min-face {self.min_face}: must be at least 1 pixel")
        if self.max_faces < 1:
            raise FacemathError(f"--max-faces {self.max_faces}: must be at least 1")
        self.component = self.registry.get("detector", self.detector, option="--detector")
        if isinstance(self.params, dict):
            values = self.params
        else:
            values = self.registry.params_for("detector", self.params, used=[self.detector]).get(self.detector, {})
        self.detector_params = check_params(self.component, values)

    @property
    def size(self) -> int:
        return self.template.size

    def describe(self) -> dict:
        """What latents.npz and faces.json record of how the faces were found and aligned."""
        return {
            "detector": self.component.record(self.detector_params),
            "template": self.template.record(),
            "min_face": self.min_face,
            "max_faces": self.max_faces,
        }

    def faces(self, photo: np.ndarray, name: str) -> list[DetectedFace]:
        """The faces of one photo, largest first, at most max_faces, none under min_face; no face is an error."""
        height, width = photo.shape[:2]
        shrink = min(1.0, DETECT_MAX_SIDE / max(height, width))
        small = photo
        if shrink < 1.0:
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            small = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS))
            self.note(f"{name}: {width}x{height} searched for faces at {size[0]}x{size[1]}")
        wanted = min(self.min_face, DEFAULT_MIN_FACE)  # smaller faces too, to say why they were left out
        probe = max(12, round(wanted * shrink))
        found = detect(self.component, self.detector_params, small, probe, name)
        if shrink < 1.0:
            found = [_scaled(face, shrink) for face in found]
        found.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        kept = [f for f in found if f.size >= self.min_face]
        if not kept:
            if found:
                raise FacemathError(
                    f"no face of at least {self.min_face} px in {name} (detector {self.detector}): "
                    f"{plural(len(found), 'smaller face')} found, the largest {found[0].size:.0f} px; lower --min-face"
                )
            raise FacemathError(f"no face found in {name} (detector {self.detector}, min face {self.min_face} px)")
        if len(kept) > self.max_faces:
            self.note(
                f"{name}: {len(kept)} faces found, aligned the largest {self.max_faces} (--max-faces {self.max_faces})"
            )
            kept = kept[: self.max_faces]
        return kept

    def align(self, photo: np.ndarray, path: str, name: str) -> list[AlignedFace]:
        """Every face of one upright photo, aligned; `name` is the photo's display name (file name)."""
        stem = Path(name).stem
        aligned = []
        for k, face in enumerate(self.faces(photo, name), start=1):
            matrix = similarity(np.asarray(face.landmarks), self.template)
            crop, padded = warp(photo, matrix, self.size)
            crop_name = f"{stem}_{k}.png"
            if padded:
                self.note(f"{crop_name}: the face's crop reaches past the photo's border; filled in by reflection")
            height, width = photo.shape[:2]
            aligned.append(AlignedFace(path, crop_name, k, face, matrix, crop, padded, (width, height)))
        return aligned

    def align_files(self, paths: Sequence[str | os.PathLike], names: Sequence[str] | None = None) -> list[AlignedFace]:
        """Every face of every photo, photo by photo; photos that cannot be used (unreadable, no face) are all
        named in one error (one photo: its own line)."""
        names = [Path(p).name for p in paths] if names is None else list(names)
        faces, problems, notes = [], [], []
        say, self.note = self.note, notes.append  # the notes wait: a failed command says only what failed
        try:
            for path, name in zip(paths, names, strict=True):
                try:
                    faces += self.align(read_image(path), str(path), name)
                except FacemathError as exc:
                    problems.append(str(exc))
        finally:
            self.note = say
        if not problems:
            for line in notes:
                say(line)
        if len(problems) == 1 and len(paths) == 1:
            raise FacemathError(problems[0])
        if problems:
            listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise FacemathError(f"{len(problems)} of {len(paths)} photos could not be aligned: {listed}")
        return faces


def _scaled(face: DetectedFace, shrink: float) -> DetectedFace:
    """A face found on the shrunk copy, in the photo's pixels (pixel centres: u -> (u + 0.5) / s - 0.5)."""

    def back(v):
        return (v + 0.5) / shrink - 0.5

    box = tuple(back(v) for v in face.box)
    landmarks = tuple((back(x), back(y)) for x, y in face.landmarks)
    return DetectedFace(box, landmarks, face.score)


def rewarp(record: dict, size: int | None = None) -> np.ndarray:
    """The crop a faces.json / latents record describes, made again from its photo and transform (what `--resume`
    of an aligned projection reads instead of detecting again)."""
    matrix = np.asarray(record["transform"], np.float64)
    photo = read_image(record["photo"])
    crop, _ = warp(photo, matrix, int(size or record["size"]))
    return crop


# --- pasting edited faces back ------------------------------------------------------------------------------------


def face_region(template: Template) -> np.ndarray:
    """(size, size) float: 1 on the face in the crop (an ellipse around the five landmarks: 2.2 eye distances wide,
    2.9 high, centred on their mean), 0 elsewhere. What an edit pastes back."""
    points = template.points
    centre = points.mean(axis=0)
    eyes = float(np.linalg.norm(points[1] - points[0]))
    rx, ry = 1.1 * eyes, 1.45 * eyes
    grid = np.arange(template.size, dtype=np.float64)
    gx, gy = np.meshgrid(grid, grid)
    return ((((gx - centre[0]) / rx) ** 2 + ((gy - centre[1]) / ry) ** 2) <= 1.0).astype(np.float64)


def paste(
    photo: np.ndarray,
    pieces: Sequence[tuple[AlignedFace, np.ndarray]],
    template: Template,
    blender,
    blend_params: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """The photo with each edited crop warped back by the inverse of its face's transform and blended in with the
    blender plugin over the face region; returns (image, changed), `changed` (H, W) bool marking every pixel that
    may differ from the photo. Every other pixel is the photo's, bit for bit."""
    from skimage.transform import AffineTransform
    from skimage.transform import warp as sk_warp  # deferred with scikit-image

    out = photo.copy()
    changed = np.zeros(photo.shape[:2], bool)
    height, width = photo.shape[:2]
    region = face_region(template.at(pieces[0][1].shape[0])) if pieces else None
    for face, edited in pieces:
        size = edited.shape[0]
        inverse = np.linalg.inv(face.matrix)
        corners = np.array([[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [-0.5, size - 0.5, 1], [size - 0.5, size - 0.5, 1]])
        spots = (inverse @ corners.T).T[:, :2]
        x0, y0 = np.maximum(np.floor(spots.min(axis=0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(spots.max(axis=0)).astype(int) + 2, [width, height])
        if x1 <= x0 or y1 <= y0:
            continue
        # photo pixel (col + x0, row + y0) -> crop pixel: the face's transform after the offset
        box_to_crop = AffineTransform(matrix=face.matrix @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1]]))
        shape = (y1 - y0, x1 - x0)
        generated = sk_warp(
            edited.astype(np.float64), box_to_crop, output_shape=shape, order=1, mode="edge", preserve_range=True
        )
        inside = sk_warp(region, box_to_crop, output_shape=shape, order=1, mode="constant", cval=0.0)
        keep = np.clip(1.0 - inside, 0.0, 1.0)  # the blenders' mask: 1 on the photo's own pixels
        target = out[y0:y1, x0:x1]
        blended = blend(
            blender,
            blend_params,
            to_unit(target),
            to_unit(generated.astype(np.float32)),
            keep.astype(np.float32),
            face.name,
        )
        moved = keep < 1.0
        out[y0:y1, x0:x1] = np.where(moved[..., None], from_unit(blended), target)
        changed[y0:y1, x0:x1] |= moved
    return out, changed


def count_line(faces: Sequence[AlignedFace]) -> str:
    """How many faces from how many photos, e.g. '3 faces from 2 photos'."""
    photos = len({f.photo for f in faces})
    return f"{plural(len(faces), 'face')} from {plural(photos, 'photo')}"


# --- the contact sheet of an alignment ----------------------------------------------------------------------------

_BOX = (255, 200, 0)  # amber boxes: visible on skin, hair and sky alike
_POINT = (255, 0, 80)
SHEET_PHOTO_HEIGHT = 256
SHEET_CROP = 128


def alignment_sheet(photos: Sequence[tuple[str, np.ndarray]], faces: Sequence[AlignedFace]) -> np.ndarray:
    """One row per photo: the photo (scaled to SHEET_PHOTO_HEIGHT) with each face's box, number and five landmarks
    drawn, then its aligned crops (enlarged to SHEET_CROP, nearest neighbour) captioned with their names."""
    rows = []
    caption = line_height()
    for path, photo in photos:
        mine = [f for f in faces if f.photo == path]
        scale = SHEET_PHOTO_HEIGHT / photo.shape[0]
        width = max(1, round(photo.shape[1] * scale))
        picture = Image.fromarray(photo).resize((width, SHEET_PHOTO_HEIGHT), Image.Resampling.LANCZOS)
        draw = ImageDraw.Draw(picture)
        for face in mine:
            x0, y0, x1, y1 = ((v + 0.5) * scale - 0.5 for v in face.face.box)
            draw.rectangle((x0, y0, x1, y1), outline=_BOX, width=2)
            draw.text((x0 + 3, y0 + 2), str(face.index), fill=_BOX, font=font())
            for x, y in face.face.landmarks:
                cx, cy = (x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5
                draw.ellipse((cx - 2.5, cy - 2.5, cx + 2.5, cy + 2.5), fill=_POINT)
        tiles = [picture]
        for face in mine:
            tile = Image.new("RGB", (SHEET_CROP, SHEET_CROP + caption), (255, 255, 255))
            tile.paste(Image.fromarray(face.crop).resize((SHEET_CROP, SHEET_CROP), Image.Resampling.NEAREST))
            label = face.name + ("  (padded)" if face.padded else "")
            ImageDraw.Draw(tile).text((2, SHEET_CROP + 2), label, fill=(0, 0, 0), font=font())
            tiles.append(tile)
        height = max(t.height for t in tiles)
        row = Image.new("RGB", (sum(t.width for t in tiles) + 4 * len(tiles), height), (255, 255, 255))
        x = 0
        for tile in tiles:
            row.paste(tile, (x, 0))
            x += tile.width + 4
        rows.append(row)
    width = max(r.width for r in rows)
    sheet = Image.new("RGB", (width, sum(r.height + 4 for r in rows)), (255, 255, 255))
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + 4
    return np.asarray(sheet)
