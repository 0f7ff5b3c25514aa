"""latents.npz from the VAE encoder, rendering latents back, interpolation: with tiny exported models."""

import numpy as np
import pytest
from PIL import Image

from facemath_core.base.drawing import line_height
from facemath_core.base.errors import FacemathError
from facemath_core.cli.latents import strip_headers
from facemath_core.latent.latents import Latents, find, load_latents, save_latents


@pytest.fixture(scope="module")
def encoded(cli, tiny_export, tmp_path_factory):
    from pathlib import Path

    faces = Path(__file__).parents[2] / "examples" / "faces"
    out = tmp_path_factory.mktemp("enc") / "enc"
    result = cli(
        "encode",
        str(faces / "000001.png"),
        str(faces / "000002.png"),
        str(faces / "000003.png"),
        "--models",
        str(tiny_export),
        "--out",
        str(out),
    )
    assert result.code == 0, result.stderr
    return out


def test_encode_writes_latents_like_projection(encoded, tiny_export):
    latents = load_latents(encoded / "latents.npz")
    assert latents.names == ["000001.png", "000002.png", "000003.png"]
    assert latents.family == "vae" and latents.model == "vae_decoder" and latents.source == "encoder"
    assert latents.z.shape == (3, 8) and latents.models == {"vae_encoder": 1, "vae_decoder": 1}
    from facemath_core.data.images import to_unit
    from facemath_core.projection.run import load_inputs
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    backend = EmbeddedBackend(tiny_export)
    images = load_inputs([str(p) for p in latents.config["inputs"]], 32).images
    np.testing.assert_allclose(latents.z, backend.encode(images)[0], atol=1e-5)
    assert sorted(p.name for p in (encoded / "reconstructions").iterdir()) == latents.names
    assert to_unit(np.asarray(Image.open(encoded / "reconstructions" / "000001.png"))).shape == (32, 32, 3)
    sheet = np.asarray(Image.open(encoded / "contact_sheet.png").convert("RGB"))
    row = line_height() + 130  # a caption (name, PSNR), then the 32 px faces at 4x
    assert sheet.shape == (line_height() + 3 * row + 2, 2 + 2 * 130, 3)
    assert (sheet[: line_height()] < 100).any()  # "original", "reconstruction"
    assert all((sheet[line_height() + r * row + 2 : line_height() + r * row + row - 130] < 100).any() for r in range(3))


def test_render_uses_the_model_that_made_the_latents(cli, encoded, tiny_export, tmp_path):
    result = cli(
        "render",
        str(encoded / "latents.npz"),
        "--names",
        "000002,000003.png",
        "--models",
        str(tiny_export),
        "--out",
        str(tmp_path / "r"),
    )
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["000002.png", "000003.png"]
    # Same pixels as the encoder's reconstructions: both decode z with vae_decoder.
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "r" / "000002.png")),
        np.asarray(Image.open(encoded / "reconstructions" / "000002.png")),
    )


def test_render_refuses_latents_of_another_size(cli, tiny_export, tmp_path):
    latents = Latents(["a.png"], np.zeros((1, 5), np.float32), "gan", "generator", 1, "projection")
    save_latents(tmp_path / "l.npz", latents)
    result = cli("render", str(tmp_path / "l.npz"), "--models", str(tiny_export), "--out", str(tmp_path / "r"))
    assert result.code == 1 and "latents of 5 dimensions, but the generator model takes 8" in result.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_interpolation_strip_and_gif(cli, encoded, tiny_export, tmp_path, method):
    png = tmp_path / "walk.png"
    result = cli(
        "interpolate",
        "000001",
        "000002",
        "000003",
        "--latents",
        str(encoded / "latents.npz"),
        "--frames",
        "4",
        "--method",
        method,
        "--models",
        str(tiny_export),
        "--out",
        str(png),
    )
    assert result.code == 0, result.stderr
    assert "(7 frames" in result.stdout  # 4 + 4 frames, the shared middle face once
    strip = np.asarray(Image.open(png).convert("RGB"))
    assert strip.shape == (line_height() + 2 + 128 + 2, 7 * 130 + 2, 3)  # 32 px faces at 4x under a header row
    named = [(strip[: line_height(), 2 + i * 130 : 130 + i * 130] < 100).any() for i in range(7)]
    assert all(named)  # the three faces' names over frames 0, 3 and 6, t= over the others
    assert strip_headers(["000001", "000002.png", "000003"], 4) == [
        "000001",
        "t=0.33",
        "t=0.67",
        "000002",
        "t=0.33",
        "t=0.67",
        "000003",
    ]
    gif = tmp_path / "walk.gif"
    assert (
        cli(
            "interpolate",
            "000001",
            "000002",
            "--latents",
            str(encoded / "latents.npz"),
            "--models",
            str(tiny_export),
            "--out",
            str(gif),
            "--method",
            method,
        ).code
        == 0
    )
    animation = Image.open(gif)
    assert animation.is_animated and 2 <= animation.n_frames <= 8  # Pillow merges identical frames


def test_interpolation_ends_at_the_anchors(encoded, tiny_export):
    from facemath_core.host.manager import load_registry

    latents = load_latents(encoded / "latents.npz")
    slerp = load_registry(builtins_only=True).get("operator", "slerp").function
    np.testing.assert_allclose(slerp(latents.z[0], latents.z[1], 0.0), latents.z[0], atol=1e-6)
    np.testing.assert_allclose(slerp(latents.z[0], latents.z[1], 1.0), latents.z[1], atol=1e-6)
    halfway = slerp(latents.z[0], latents.z[1], 0.5)
    norms = np.linalg.norm(latents.z[:2], axis=1)
    assert np.linalg.norm(halfway) >= min(norms) - 1e-6  # no shrinking towards the origin, unlike lerp


def test_names_and_bad_input(cli, encoded, tiny_export, tmp_path):
    latents = load_latents(encoded / "latents.npz")
    assert find(latents, "000002") == 1 and find(latents, "000002.png") == 1
    with pytest.raises(FacemathError, match="no latent named '00002'; did you mean"):
        find(latents, "00002")
    base = ["interpolate", "--latents", str(encoded / "latents.npz"), "--models", str(tiny_export)]
    one = cli(*base, "000001")
    assert one.code == 2 and "at least two latent names" in one.stderr
    bad = cli(*base, "000001", "000002", "--method", "zigzag", "--out", str(tmp_path / "x.png"))
    assert bad.code == 1 and "--method zigzag: unknown operator; known:" in bad.stderr
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    junk = cli("render", str(tmp_path / "junk.npz"), "--models", str(tiny_export), "--out", str(tmp_path / "r"))
    assert junk.code == 1 and "junk.npz: not a latents file" in junk.stderr
