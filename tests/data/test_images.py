import numpy as np
import pytest
from PIL import Image

from facemath_core.base.errors import FacemathError
from facemath_core.data.images import (
    BadImagesError,
    crop_and_resize,
    from_unit,
    image_grid,
    load_images,
    read_image,
    to_unit,
)


def test_greyscale_becomes_rgb(tmp_path):
    Image.fromarray(np.full((8, 8), 77, np.uint8), "L").save(tmp_path / "g.png")
    rgb = read_image(tmp_path / "g.png")
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert (rgb == 77).all()


def test_palette_becomes_rgb(tmp_path):
    Image.fromarray(np.full((8, 8, 3), (10, 200, 30), np.uint8)).quantize(4).save(tmp_path / "p.png")
    rgb = read_image(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_allclose(rgb[0, 0], (10, 200, 30), atol=3)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # top half opaque red, bottom transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb = read_image(tmp_path / "a.png")
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[3, 0]) == (255, 255, 255)


def test_16_bit_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(tmp_path / "16.png")
    rgb = read_image(tmp_path / "16.png")
    assert abs(int(rgb[0, 0, 0]) - 128) <= 1


def test_cmyk_becomes_rgb(tmp_path):
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    rgb = read_image(tmp_path / "c.jpg")
    assert rgb.shape == (4, 4, 3)
    assert rgb[0, 0, 0] > 200 and rgb[0, 0, 1] < 60  # red


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.png", b"", "empty file"),
        ("text.png", b"this is not an image at all", "not an image"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(FacemathError, match=f"{name}: {reason}"):
        read_image(tmp_path / name)


def test_truncated_file_names_the_file(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(FacemathError, match="t.png: truncated"):
        read_image(tmp_path / "t.png")


def test_decompression_bomb_is_refused(tmp_path):
    Image.new("1", (10_000, 10_000)).save(tmp_path / "bomb.png")  # 100 Mpx in a few kB
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    with pytest.raises(FacemathError, match="bomb.png: .*pixel limit"):
        read_image(tmp_path / "bomb.png")


def test_missing_file(tmp_path):
    with pytest.raises(FacemathError, match="nope.png: no such file"):
        read_image(tmp_path / "nope.png")


def test_folder_scan_reports_every_bad_file(tmp_path):
    good = np.zeros((8, 8, 3), np.uint8)
    Image.fromarray(good).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "c.png").write_bytes(b"junk")
    Image.fromarray(good).save(tmp_path / "d.png")
    with pytest.raises(BadImagesError) as info:
        load_images(sorted(tmp_path.iterdir()), 8)
    assert len(info.value.problems) == 2
    assert "b.png" in str(info.value) and "c.png" in str(info.value)
    assert str(info.value).startswith("2 of 4 images could not be read")


def test_celeba_crop_takes_the_central_108_pixels():
    image = np.zeros((218, 178, 3), np.uint8)
    top, left = (218 - 108) // 2, (178 - 108) // 2
    image[top : top + 108, left : left + 108] = 200  # only the central crop is bright
    out = crop_and_resize(image, 64)
    assert out.shape == (64, 64, 3)
    assert out.min() == 200


def test_square_crop_and_resize():
    image = np.zeros((50, 100, 3), np.uint8)
    image[:, 25:75] = 255
    out = crop_and_resize(image, 32)
    assert out.shape == (32, 32, 3) and out.min() >= 250
    with pytest.raises(FacemathError, match="--crop 'x'"):
        crop_and_resize(image, 32, "x")


def test_unit_range_round_trip():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    unit = to_unit(images)
    assert unit.min() == -1.0 and unit.max() == 1.0
    np.testing.assert_array_equal(from_unit(unit), images)


def test_grid_layout():
    images = np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(5)])
    grid = image_grid(images, columns=2, pad=1)
    assert grid.shape == (3 * 5 + 1, 2 * 5 + 1, 3)
    assert grid[1, 1, 0] == 0 and grid[1, 6, 0] == 1 and grid[11, 1, 0] == 4
