"""Consistent options (issue 15): one name per meaning, deprecated spellings, one overwrite rule, plain help."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def test_help_has_no_type_tags_on_flags_or_repeatable_options(cli):
    for command in (["project"], ["data", "synth"], ["attributes"], ["plugins", "list"], []):
        result = cli(*command, "--help")
        assert result.code == 0, result.stderr
        assert "<bool>" not in result.stdout and "<list[" not in result.stdout, (command, result.stdout)
    assert "--overwrite" in cli("project", "--help").stdout  # the flags are still listed


def test_deploy_requires_to(cli, tmp_path):
    result = cli("deploy", "--models", str(tmp_path))
    assert result.code == 2 and "--to" in result.stderr and "Traceback" not in result.stderr
    assert "/models" not in cli("deploy", "--help").stdout.split("--to")[1].split("\n")[0]


def test_data_grid_refuses_to_overwrite_without_overwrite(cli, synth_faces, tmp_path):
    grid = tmp_path / "grid.png"
    args = ["data", "grid", str(synth_faces), "-o", str(grid), "-n", "4", "--size", "16", "--columns", "2"]
    assert cli(*args).code == 0
    first = np.asarray(Image.open(grid))
    assert first.shape == (2 * 18 + 2, 2 * 18 + 2, 3)  # -n 4 faces, 2 per row
    grid.write_bytes(b"mine")
    result = cli(*args)
    assert result.code == 1 and result.stderr.strip().splitlines() == [
        f"error: --out {grid}: file exists (use --overwrite to replace it)"
    ]
    assert grid.read_bytes() == b"mine"  # nothing of the user's lost
    assert cli(*args, "--overwrite").code == 0
    np.testing.assert_array_equal(np.asarray(Image.open(grid)), first)


def test_train_progress_line_fits_80_columns():
    import io

    from rich.console import Console
    from rich.progress import Progress

    from facemath_core.models.training import compact_losses, progress_columns, progress_label

    gan = {"d_loss": 1.23456, "g_loss": 12.3456, "D(x)": 0.51234, "D(G(z))": 0.49876}
    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=False)
    with Progress(*progress_columns(), console=console, auto_refresh=False) as bar:
        task = bar.add_task(progress_label("a-rather-long-run-name"), total=10_000, losses="")
        bar.update(task, completed=1234, losses=compact_losses(gan))
        bar.refresh()
    text = console.file.getvalue().splitlines()[-1]
    assert len(text) <= 80 and "…" not in text, text
    for part in ("1234/10000", "d 1.23", "g 12.35", "D(x) 0.51", "D(G(z)) 0.50", ":"):
        assert part in text, (part, text)


@pytest.mark.slow
def test_train_batch_shrinks_to_small_data_with_a_warning(cli, tmp_path):
    from facemath_core.data.synth import write_synthetic_folder

    data = tmp_path / "faces"
    write_synthetic_folder(data, 20, seed=1, size=32)  # 18 training images, 2 held out
    run = tmp_path / "run"
    result = cli(
        "train", "vae", "--data", str(data), "--out", str(run), "--steps", "2", "--image-size", "32",
        "--z-dim", "8", "--ngf", "8", "--ndf", "8", "--sample-every", "1000",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "warning: --batch-size 64: only 18 training images; using batches of 18" in result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["options"]["batch_size"] == 18 and record["data_images"] == 18 and record["steps_done"] == 2


@pytest.mark.slow
def test_train_runs_on_the_shipped_examples_with_split_all(cli, tmp_path):
    """examples/faces holds 16 faces, all in the held-out split: training refuses them by default, says how to use
    them, and `--split all` trains on every one of them."""
    examples = Path(__file__).parents[2] / "examples" / "faces"
    tiny = ["--steps", "1", "--image-size", "32", "--z-dim", "8", "--ngf", "8", "--ndf", "8", "--sample-every", "1000"]
    refused = cli("train", "vae", "--data", str(examples), "--out", str(tmp_path / "refused"), *tiny)
    assert refused.code == 1 and "Traceback" not in refused.stderr
    assert "0 images in the train split" in refused.stderr and "--split all" in refused.stderr
    assert not (tmp_path / "refused").exists()
    run = tmp_path / "run"
    result = cli("train", "vae", "--data", str(examples), "--out", str(run), "--split", "all", *tiny)
    assert result.code == 0, result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["options"]["split"] == "all" and record["data_images"] == 16 and record["steps_done"] == 1
