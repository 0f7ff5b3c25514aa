"""The error contract of `facemath data` (docs/errors.md): bad, odd and unreadable image files for `data info`, and
bad numbers for `data grid` and `data synth`. Each case: the exit code, one `error:` line, no traceback, nothing
created or changed (support.fails_cleanly)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ..support import BAD_IMAGES, fails_cleanly, good_png

# --- images ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_images_are_named_in_one_line(cli, ws, name):
    payload, fragment = BAD_IMAGES[name]
    folder = ws / "faces"
    folder.mkdir()
    (folder / "good.png").write_bytes(good_png())
    (folder / name).write_bytes(payload)
    line = fails_cleanly(cli, ws, ["data", "info", folder], 1, "1 of 2 images could not be read", name, fragment)
    assert "good.png" not in line


def test_a_folder_named_like_an_image_and_a_link_loop(cli, ws):
    folder = ws / "faces"
    folder.mkdir()
    (folder / "sub.png").mkdir()
    (folder / "loop.png").symlink_to(folder / "loop.png")
    fails_cleanly(cli, ws, ["data", "info", folder], 1, "2 of 2 images", "sub.png", "loop.png")
    fails_cleanly(cli, ws, ["data", "info", ws / "missing"], 1, "no such folder")


def test_odd_image_modes_are_read_not_refused(cli, ws):
    """Not bad inputs: 16-bit, 1-bit, palette with transparency, CMYK, grey+alpha and animated files decode."""
    folder = ws / "faces"
    folder.mkdir()
    gradient = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(gradient).save(folder / "grey16.png")
    Image.new("1", (32, 32), 1).save(folder / "bits.png")
    palette = Image.new("P", (32, 32), 0)
    palette.info["transparency"] = 0
    palette.save(folder / "palette.png", transparency=0)
    Image.new("CMYK", (32, 32), (0, 255, 0, 0)).save(folder / "cmyk.jpg")
    Image.new("LA", (32, 32), (10, 128)).save(folder / "la.png")
    frames = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    result = cli("data", "info", folder)
    assert result.code == 0 and "all 6 images decode" in result.stdout, result.stderr

    from facemath_core.data.images import read_image

    assert read_image(folder / "grey16.png")[31, 31].tolist() == [255, 255, 255]  # 65535 is white, not clipped
    assert read_image(folder / "cmyk.jpg").shape == (32, 32, 3)
    assert read_image(folder / "palette.png")[0, 0].tolist() == [255, 255, 255]  # transparent shows as white


# --- numbers -----------------------------------------------------------------------------------------------


def test_bad_numbers_in_data_grid_and_synth(cli, ws, synth_faces):
    for option in ("--columns", "--size", "--count"):
        fails_cleanly(cli, ws, ["data", "grid", synth_faces, "--out", ws / "g.png", option, "0"], 1, f"{option} 0")
    fails_cleanly(
        cli, ws, ["data", "grid", synth_faces, "--out", ws / "g.png", "--count", "100000", "--size", "512"], 1
    )
    for extra, fragment in ((["--count", "0"], "--count 0"), (["--size", "0"], "--size 0")):
        fails_cleanly(cli, ws, ["data", "synth", "--out", ws / "s", *extra], 1, fragment)
    fails_cleanly(cli, ws, ["data", "synth", "--out", ws / "s", "--count", "x"], 2, "--count")
