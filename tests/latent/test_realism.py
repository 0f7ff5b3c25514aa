"""Realism as a Frechet distance in the shipped attribute oracle's penultimate-layer features: real held-out faces
against themselves, against other real faces, against blurred copies; and a served oracle without the features
signature refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.base.metrics import frechet_distance
from facemath_core.data.images import to_unit
from facemath_core.data.pipeline import load_split
from facemath_core.data.synth import write_synthetic_folder
from facemath_core.latent.quality import frechet_realism, oracle_features
from facemath_core.serving.backends.embedded import EmbeddedBackend

SHIPPED = Path(__file__).resolve().parents[2] / "exported_models"

pytestmark = pytest.mark.slow  # 800 faces rendered at 64x64 and judged by the shipped oracle


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """800 synthetic faces at the shipped models' 64x64, rendered with a seed the models never trained on: two
    independent sets of 400 from one distribution."""
    folder = tmp_path_factory.mktemp("realism") / "faces"
    write_synthetic_folder(folder, 800, seed=11, size=64)
    return to_unit(load_split(str(folder), 64, "all").images)


@pytest.fixture(scope="module")
def backend():
    with EmbeddedBackend(SHIPPED) as backend:
        yield backend


def _blurred(images, sigma):
    return np.stack([gaussian_filter(image, sigma=(sigma, sigma, 0)) for image in images]).astype(np.float32)


def test_the_features_are_the_oracles_penultimate_layer(backend, faces):
    """128 values per face (the global average pool), and the logits are the last layer applied to them (the
    dense layer's kernel and bias read from the SavedModel; Dropout is the identity at inference)."""
    import tensorflow as tf

    features = oracle_features(backend, faces[:16])
    assert features.shape == (16, 128)
    loaded = tf.saved_model.load(str(SHIPPED / S.ORACLE / str(backend.version(S.ORACLE))))
    weights = {v.name.split(":")[0]: v.numpy() for v in loaded.signatures[S.DEFAULT].variables}
    logits = features @ weights["attribute_logits/kernel"] + weights["attribute_logits/bias"]
    np.testing.assert_allclose(logits, backend.judge(faces[:16]), rtol=1e-4, atol=1e-4)


def test_identical_sets_score_zero_and_real_faces_score_near_it(backend, faces):
    assert abs(frechet_realism(backend, faces[:400], faces[:400])) < 1e-9
    between_halves = frechet_realism(backend, faces[:400], faces[400:])
    assert 0 < between_halves < 5.0  # measured 1.35


def test_blurred_faces_score_worse_the_more_they_are_blurred(backend, faces):
    """A Gaussian blur of sigma 0.5, 1 and 2 pixels (scipy.ndimage, per channel) of the second 400 faces, against
    the first 400: the distance grows with the blur, and even the lightest blur scores worse than the originals
    (measured: 1.35 unblurred; 7.1, 35.8, 57.9 blurred)."""
    real = oracle_features(backend, faces[:400])
    scores = [frechet_distance(real, oracle_features(backend, faces[400:]))]
    for sigma in (0.5, 1.0, 2.0):
        scores.append(frechet_distance(real, oracle_features(backend, _blurred(faces[400:], sigma))))
    assert scores == sorted(scores) and scores[1] > 2 * scores[0], scores


def test_the_distance_between_real_sets_falls_as_they_grow(backend, faces):
    """Two independent real sets of N faces: the estimate's bias shrinks like 1/N (measured 11.8, 5.2, 2.9, 1.35 at
    N = 50, 100, 200, 400): it falls at every doubling and by more than 5x over the range."""
    a, b = oracle_features(backend, faces[:400]), oracle_features(backend, faces[400:])
    scores = [frechet_distance(a[:n], b[:n]) for n in (50, 100, 200, 400)]
    assert all(later < earlier for earlier, later in zip(scores, scores[1:], strict=False)), scores
    assert scores[-1] < scores[0] / 5, scores


def test_an_oracle_without_the_features_signature_is_one_line(faces):
    with EmbeddedBackend(SHIPPED, versions={S.ORACLE: 1}) as backend:  # version 1 predates the signature
        with pytest.raises(FacemathError, match="attribute_oracle version 1 has no features signature"):
            oracle_features(backend, faces[:4])
