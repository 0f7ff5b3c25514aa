"""Flagged projections (projection.flags) and the labelled figures that show them (base.drawing)."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from facemath_core.base.drawing import FLAG, labelled_grid, line_height, outline
from facemath_core.data.images import from_unit
from facemath_core.host.manager import load_registry
from facemath_core.latent.latents import Latents, load_latents, save_latents
from facemath_core.projection.flags import LOSS_Z, flag_outliers, reasons, robust_z
from facemath_core.projection.projector import ProjectionConfig
from facemath_core.projection.run import FolderSink, ProjectionRun, load_inputs
from facemath_core.serving.backends.embedded import EmbeddedBackend


def test_robust_z_known_answer():
    # median 3, absolute deviations 2 1 0 1 97 -> MAD 1; M = 0.6745 (x - 3) / 1 (Iglewicz and Hoaglin 1993)
    z = robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    np.testing.assert_allclose(z, [-1.349, -0.6745, 0.0, 0.6745, 65.4265], atol=1e-4)


def test_robust_z_mad_zero_uses_mean_absolute_deviation():
    # median 5, MAD 0; mean absolute deviation (0+0+0+5)/4 = 1.25; M = 0.7979 * 5 / 1.25 = 3.1916
    z = robust_z(np.array([5.0, 5.0, 5.0, 10.0]))
    np.testing.assert_allclose(z, [0, 0, 0, 3.1916], atol=1e-4)
    assert np.all(robust_z(np.array([2.0, 2.0, 2.0])) == 0)


def test_too_few_faces_flag_nothing():
    assert np.isnan(robust_z(np.array([1.0, 1000.0]))).all()
    assert not flag_outliers(np.array([1.0, 1000.0]), np.array([30.0, 5.0])).any()


def test_the_issue_run_is_flagged():
    # The run of the issue: one face at loss 2479 against losses around 1070.
    losses = np.array([1030, 1050, 1062, 1070, 1075, 1088, 1110, 2479.0])
    psnr = np.array([21.0, 20.5, 20.8, 21.2, 20.9, 21.1, 20.7, 20.6])
    assert flag_outliers(losses, psnr).tolist() == [False] * 7 + [True]
    assert "loss z" in reasons(losses, psnr)[-1]
    # A low PSNR alone flags too; a high PSNR (better than the others) does not.
    psnr_low = psnr.copy()
    psnr_low[2] = 9.0
    assert flag_outliers(losses[:7], psnr_low[:7]).tolist() == [False, False, True, False, False, False, False]
    psnr_high = psnr.copy()
    psnr_high[2] = 40.0
    assert not flag_outliers(losses[:7], psnr_high[:7]).any()
    # A failed (NaN) face is not part of the sample and is not flagged.
    failed = np.zeros(8, bool)
    failed[0] = True
    assert not flag_outliers(np.r_[np.nan, losses[1:7], 1100.0], psnr, failed).any()


def test_flagged_field_round_trip_and_old_files(tmp_path):
    latents = Latents(["a.png", "b.png"], np.zeros((2, 3), np.float32), "gan", "generator", 1, "projection")
    latents.flagged = np.array([False, True])
    save_latents(tmp_path / "new.npz", latents)
    assert load_latents(tmp_path / "new.npz").flagged.tolist() == [False, True]
    with np.load(tmp_path / "new.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "flagged"}
    np.savez(tmp_path / "old.npz", **arrays)  # written before flags existed
    assert load_latents(tmp_path / "old.npz").flagged is None
    np.savez(tmp_path / "bad.npz", **arrays, flagged=np.array([1, 0]))
    with pytest.raises(Exception, match="field 'flagged' should be 2 true/false values"):
        load_latents(tmp_path / "bad.npz")


def test_labelled_grid_draws_headers_captions_and_flags():
    tiles = np.full((4, 32, 32, 3), 128, np.uint8)
    plain = labelled_grid(tiles, 2, scale=1)
    assert plain.shape == (2 + 2 * 34, 2 + 2 * 34, 3)
    drawn = labelled_grid(tiles, 2, headers=["original", "reconstruction"], captions=["a", "b"], flagged=[False, True])
    # 32 px tiles are drawn at 4x (128 px) so the text beside them is legible.
    assert drawn.shape == (line_height() + 2 * (line_height() + 130) + 2, 2 + 2 * 130, 3)
    header = drawn[: line_height()]
    assert (header < 100).any()  # dark text in the header row
    second_row = drawn[line_height() + line_height() + 130 :]
    red = (second_row[..., 0] > 150) & (second_row[..., 1] < 60) & (second_row[..., 2] < 60)
    assert red.sum() > 100  # the flagged row's frame and caption are red
    first_row = drawn[line_height() : line_height() + line_height() + 130]
    assert not ((first_row[..., 0] > 150) & (first_row[..., 1] < 60)).any()


def test_outline_marks_the_mask_border():
    tile = np.zeros((8, 8, 3), np.uint8)
    mask = np.ones((8, 8))
    mask[2:6, 2:6] = 0
    painted = outline(tile, mask, colour=(255, 0, 0))
    border = painted[..., 0] == 255
    expected = np.zeros((8, 8), bool)
    expected[1:7, 1:7] = True
    expected[2:6, 2:6] = False  # the ring of kept pixels around the hole
    assert (border == expected).all()


@pytest.fixture(scope="module")
def backend(tiny_export):
    return EmbeddedBackend(tiny_export)


@pytest.fixture(scope="module")
def with_noise(backend, tmp_path_factory):
    """Six faces the generator made from known z, and one of random noise (no generator makes that)."""
    folder = tmp_path_factory.mktemp("flags") / "faces"
    folder.mkdir()
    z = np.random.default_rng(42).uniform(-0.8, 0.8, (6, 8)).astype(np.float32)
    for i, image in enumerate(backend.generate(z)):
        Image.fromarray(from_unit(image)).save(folder / f"face{i}.png")
    noise = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "noise.png")
    return folder


def test_a_face_the_generator_cannot_make_is_flagged(backend, with_noise, tmp_path):
    """Only the noise is flagged, in latents.npz and on the contact sheet."""
    folder = with_noise
    config = replace(ProjectionConfig(steps=60, batch_size=8, patience=1000), mask="center")
    run = ProjectionRun(backend, load_registry(builtins_only=True), config)
    latents = run.run(load_inputs([str(folder)], 32), FolderSink(tmp_path / "out")).latents
    noise_row = latents.names.index("noise.png")
    assert latents.flagged.tolist() == [i == noise_row for i in range(7)]
    assert robust_z(latents.losses["total"])[noise_row] > LOSS_Z
    loaded = load_latents(tmp_path / "out" / "latents.npz")
    assert loaded.flagged.tolist() == latents.flagged.tolist()
    np.testing.assert_allclose(loaded.psnr, latents.psnr, rtol=1e-6)
    sheet = np.asarray(Image.open(tmp_path / "out" / "contact_sheet.png").convert("RGB"))
    row_height = line_height() + 130
    assert sheet.shape == (line_height() + 7 * row_height + 2, 4 * 130 + 2, 3)
    assert (sheet[: line_height()] < 100).any()  # the column headers
    for row in range(7):
        band = sheet[line_height() + row * row_height : line_height() + (row + 1) * row_height]
        red = (band[..., 0] == FLAG[0]) & (band[..., 1] == FLAG[1]) & (band[..., 2] == FLAG[2])
        assert red.any() == (row == noise_row), row


def test_project_lists_the_flagged_faces(cli, tiny_export, with_noise, tmp_path):
    out = tmp_path / "out"
    result = cli("project", str(with_noise), "--models", str(tiny_export), "--steps", "60", "--out", str(out))
    assert result.code == 0, result.stderr
    assert "1 flagged as possible failed projections" in result.stdout
    assert "  flagged noise.png: loss " in result.stdout and "face0.png" not in result.stdout
    assert load_latents(out / "latents.npz").flagged.sum() == 1
