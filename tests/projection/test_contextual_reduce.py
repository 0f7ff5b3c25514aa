"""`--param contextual.reduce=mean` reaches the loss: the contextual term `complete` records is the mean of
|G(z) - x| over the known pixel values, measured on the PNGs it wrote (issue 31, the lambda knob)."""

import numpy as np
import pytest
from PIL import Image

from facemath_core.latent.latents import load_latents

QUANTUM = 1 / 255  # a PNG moves a value in [-1, 1] by at most half of 2/255


def _from_png(path):
    return np.asarray(Image.open(path).convert("RGB"), np.float64) / 127.5 - 1


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_the_reduce_option_reaches_the_contextual_loss(cli, tiny_export, train_faces, tmp_path, reduce):
    images = sorted(train_faces.glob("**/*.png"))[:3]
    out = tmp_path / reduce
    params = [] if reduce == "sum" else ["--param", "contextual.reduce=mean"]  # sum: the default, no option
    result = cli("complete", *map(str, images), "--models", str(tiny_export), "--steps", "2", "-o", str(out), *params)
    assert result.code == 0, result.stderr
    latents = load_latents(out / "latents.npz")
    recorded = latents.losses["contextual"]
    targets = np.stack([_from_png(p) for p in images])
    recon = np.stack([_from_png(out / "reconstructions" / p.name) for p in images])
    assert recon.shape == targets.shape
    s = targets.shape[1]  # the default center mask: the middle half of each side is unknown
    known = np.ones(targets.shape, bool)
    known[:, s // 4 : s - s // 4, s // 4 : s - s // 4] = False
    distance = np.abs(recon - targets)
    if reduce == "mean":
        expected = np.array([d[k].mean() for d, k in zip(distance, known, strict=True)])
        np.testing.assert_allclose(recorded, expected, atol=QUANTUM)
        assert np.all(recorded < 2)  # a mean of |a - b| on [-1, 1]; the sum is thousands
    else:
        count = known[0].sum()
        assert count == 3 * (s * s - (s // 2) ** 2)
        expected = np.array([d[k].sum() for d, k in zip(distance, known, strict=True)])
        np.testing.assert_allclose(recorded, expected, atol=QUANTUM * count)


def test_an_unknown_reduction_is_one_line_naming_the_parameter(cli, tiny_export, train_faces, tmp_path):
    image = str(sorted(train_faces.glob("**/*.png"))[0])
    out = tmp_path / "out"
    args = ("complete", image, "--models", str(tiny_export), "--steps", "1", "-o", str(out))
    result = cli(*args, "--param", "contextual.reduce=median")
    assert result.code == 1
    assert "--param contextual.reduce=median: reduce of loss 'contextual'" in result.stderr
    assert "must be one of sum, mean" in result.stderr
    assert not out.exists()
