"""Honest summaries: what `project`/`complete` print is measured on what they wrote (issue 15)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facemath_core.base.drawing import line_height
from facemath_core.base.metrics import known_psnr, psnr
from facemath_core.latent.latents import load_latents


def test_known_psnr_counts_only_the_known_pixels():
    a = np.zeros((1, 4, 4, 3))
    b = a.copy()
    b[0, :2] = 0.2  # error 0.1 on the [0, 1] scale in the top half only
    top_known = np.zeros((1, 4, 4))
    top_known[0, :2] = 1
    np.testing.assert_allclose(known_psnr(a, b, top_known), [20.0])  # 10 log10(1 / 0.01)
    assert known_psnr(a, b, 1 - top_known)[0] >= 119  # the hole's error does not count
    np.testing.assert_allclose(known_psnr(a, b, np.ones((1, 4, 4))), psnr(a, b))  # all known: plain PSNR


def _numbers(pattern, text):
    match = re.search(pattern, text)
    assert match, text
    return [float(g) for g in match.groups()]


@pytest.mark.parametrize("command", ["project", "complete"])
def test_summary_reports_psnr_loss_and_failures_of_what_was_written(cli, command, tiny_export, train_faces, tmp_path):
    images = sorted(train_faces.glob("**/*.png"))[:5]
    out = tmp_path / command
    result = cli(command, *map(str, images), "--models", str(tiny_export), "--steps", "3", "-o", str(out))
    assert result.code == 0, result.stderr
    verb = "completed" if command == "complete" else "projected"
    assert f"{verb} 5 images into {out}" in result.stdout
    mean, worst = _numbers(r"PSNR of the known pixels mean ([\d.]+) dB, worst ([\d.]+) dB", result.stdout)
    # Independently: the PNGs written against the inputs (uint8 rounding moves PSNR by well under 0.3 dB).
    targets = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float64) / 127.5 - 1 for p in images])
    recon = np.stack([np.asarray(Image.open(out / "reconstructions" / p.name), np.float64) / 127.5 - 1 for p in images])
    if command == "complete":  # the default center mask: the middle half is unknown
        s = targets.shape[1]
        masks = np.ones(targets.shape[:3])
        masks[:, s // 4 : s - s // 4, s // 4 : s - s // 4] = 0
        expected = known_psnr(targets, recon, masks)
    else:
        expected = psnr(targets, recon)
    assert abs(mean - expected.mean()) < 0.3 and abs(worst - expected.min()) < 0.3, (mean, worst, expected)
    total = load_latents(out / "latents.npz").losses["total"]
    loss_mean, loss_worst = _numbers(r"final loss mean ([\d.e+]+), worst ([\d.e+]+) \(weighted sum", result.stdout)
    assert loss_mean == pytest.approx(total.mean(), rel=1e-3) and loss_worst == pytest.approx(total.max(), rel=1e-3)
    assert "0 of 5 failed" in result.stdout
    documented = (Path(__file__).parents[2] / "docs" / "outputs.md").read_text()
    for entry in out.iterdir():  # docs/outputs.md names every file the command wrote
        assert f"`{entry.name}" in documented, entry.name


@pytest.fixture(scope="module")
def encoded(cli, tiny_export, train_faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("summaries") / "enc"
    result = cli("encode", str(train_faces), "--models", str(tiny_export), "--out", str(out))
    assert result.code == 0, result.stderr
    return out / "latents.npz"


def test_attributes_states_n_and_refuses_statistics_from_too_few_faces(cli, encoded, tiny_export, tmp_path):
    from facemath_core.latent.quality import MIN_AUC_FACES

    args = ["attributes", "--latents", str(encoded), "--models", str(tiny_export)]
    result = cli(*args, "--held-out", "0.02", "-o", str(tmp_path / "few"))  # 3 of 160 held out
    assert result.code == 0, result.stderr
    assert "160 faces: 157 fitted, 3 held out and scored" in result.stdout
    scores = json.loads((tmp_path / "few" / "attributes.json").read_text())["scores"]
    assert scores and all(s["positives"] + s["negatives"] == 3 and not s["auc_measured"] for s in scores)
    assert "AUC 0.000" not in result.stdout and result.stdout.count("n/a (too few)") == len(scores)
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning: AUC not reported")]
    assert len(warning) == 1 and f"fewer than {MIN_AUC_FACES}" in warning[0]
    assert all(s["attribute"] in warning[0] for s in scores)

    result = cli(*args, "-o", str(tmp_path / "enough"))  # 48 held out: rare attributes may still be short
    assert result.code == 0, result.stderr
    scores = json.loads((tmp_path / "enough" / "attributes.json").read_text())["scores"]
    short = [s["attribute"] for s in scores if min(s["positives"], s["negatives"]) < MIN_AUC_FACES]
    assert len(short) < len(scores)
    warned = [line for line in result.stderr.splitlines() if "AUC not reported for " in line]
    named = warned[0].split("AUC not reported for ", 1)[1].split(":")[0].split(", ") if warned else []
    assert named == short


def strip(frames):
    """An interpolation strip's size: 32 px faces drawn at 4x (facemath_core.base.drawing) under a header row."""
    return (2 + frames * 130, line_height() + 2 + 130)


def j_diagram(n):
    """A J-diagram's size: n x n faces at 4x, a header row (A, B) and a caption over the last row (C)."""
    return (2 + n * 130, 2 + n * 130 + 2 * line_height())


def test_interpolate_frames_and_analogy_size_with_deprecated_steps(cli, encoded, tiny_export, tmp_path):
    common = ["--latents", str(encoded), "--models", str(tiny_export)]
    walk, j = tmp_path / "walk.png", tmp_path / "j.png"
    result = cli("interpolate", "000001", "000002", *common, "--frames", "3", "-o", str(walk))
    assert result.code == 0 and "deprecated" not in result.stderr, result.stderr
    assert Image.open(walk).size == strip(3)
    refused = cli("interpolate", "000001", "000002", *common, "-n", "4", "-o", str(walk))
    assert refused.code == 1 and "file exists (use --overwrite" in refused.stderr
    assert Image.open(walk).size == strip(3)  # untouched
    old = cli("interpolate", "000001", "000002", *common, "--steps", "4", "-o", str(walk), "--overwrite")
    assert old.code == 0 and Image.open(walk).size == strip(4)
    notes = [line for line in old.stderr.splitlines() if "deprecated" in line]
    assert notes == ["note: --steps is deprecated here and will be removed in the next release; use --frames"]

    result = cli("analogy", "000001", "000002", "000003", *common, "--size", "3", "-o", str(j))
    assert result.code == 0 and Image.open(j).size == j_diagram(3)
    assert cli("analogy", "000001", "000002", "000003", *common, "-o", str(j)).code == 1
    old = cli("analogy", "000001", "000002", "000003", *common, "--steps", "2", "-o", str(j), "--overwrite")
    assert old.code == 0 and Image.open(j).size == j_diagram(2)
    assert "--steps is deprecated here" in old.stderr and "use --size" in old.stderr
