"""Training runs with tiny networks: the run folder, resume, Ctrl-C, repeatability, the oracle's report."""

import json

import numpy as np
import pytest

from facemath_core.architectures import ArchConfig
from facemath_core.errors import FacemathError
from facemath_core.training import TrainingInterrupted, TrainOptions, train

from .conftest import TINY


def test_a_run_folder_has_everything(tiny_runs):
    gan = tiny_runs["gan"]
    record = json.loads((gan / "run.json").read_text())
    assert record["kind"] == "gan" and record["steps_done"] == 60
    assert record["arch"]["z_dim"] == 8 and record["data_images"] == 144
    assert sorted(p.name for p in (gan / "samples").iterdir()) == ["step_000030.png", "step_000060.png"]
    assert sorted(p.name for p in (gan / "checkpoints").glob("*.index")) == ["ckpt-30.index", "ckpt-60.index"]
    assert list((gan / "logs").iterdir())
    assert set(record["final_metrics"]) == {"d_loss", "g_loss", "D(x)", "D(G(z))"}
    assert all(np.isfinite(v) for v in record["final_metrics"].values())


def test_oracle_reports_held_out_accuracy_per_attribute(tiny_runs):
    record = json.loads((tiny_runs["oracle"] / "run.json").read_text())
    accuracy = record["held_out_accuracy"]
    assert "Smiling" in accuracy and len(accuracy) == 11
    assert record["held_out_images"] == 16
    assert all(0.0 <= a <= 1.0 for a in accuracy.values())


def test_resume_continues_from_the_checkpoint(train_faces, tmp_path):
    run = tmp_path / "run"
    options = TrainOptions(steps=2, batch_size=16, sample_every=100, checkpoint_every=100)
    train("vae", str(train_faces), run, ArchConfig(**TINY), options)
    record = train("vae", "", run, ArchConfig(), TrainOptions(steps=4), resume=True)
    assert record["steps_done"] == 4
    assert (run / "checkpoints" / "ckpt-4.index").exists()
    with pytest.raises(FacemathError, match="a run already exists there"):
        train("vae", str(train_faces), run, ArchConfig(**TINY), options)


def test_ctrl_c_saves_a_checkpoint_and_can_resume(train_faces, tmp_path, monkeypatch):
    from facemath_core import training

    original = training._RunCallback.on_batch_end

    def interrupt_at_step_2(self, batch, logs=None):
        original(self, batch, logs)
        if self.step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(training._RunCallback, "on_batch_end", interrupt_at_step_2)
    run = tmp_path / "run"
    options = TrainOptions(steps=10, batch_size=16, sample_every=100, checkpoint_every=100)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 2; checkpoint saved"):
        train("gan", str(train_faces), run, ArchConfig(**TINY), options)
    assert (run / "checkpoints" / "ckpt-2.index").exists()
    assert json.loads((run / "run.json").read_text())["steps_done"] == 2
    monkeypatch.setattr(training._RunCallback, "on_batch_end", original)
    assert train("gan", "", run, ArchConfig(), TrainOptions(steps=3), resume=True)["steps_done"] == 3


def test_same_seed_same_run(train_faces, tmp_path):
    import tensorflow as tf

    weights = []
    for name in ("a", "b"):
        train(
            "gan",
            str(train_faces),
            tmp_path / name,
            ArchConfig(**TINY),
            TrainOptions(steps=2, batch_size=16, seed=9, sample_every=100, checkpoint_every=100),
        )
        reader = tf.train.load_checkpoint(str(tmp_path / name / "checkpoints"))
        weights.append({k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "generator" in k})
    assert weights[0].keys() == weights[1].keys() and weights[0]
    for key in weights[0]:
        np.testing.assert_allclose(weights[0][key], weights[1][key], atol=1e-5, err_msg=key)


def test_oracle_needs_attributes(tmp_path):
    from PIL import Image

    for i in range(90):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(FacemathError, match="the oracle needs attributes"):
        train("oracle", str(tmp_path), tmp_path / "run", ArchConfig(**TINY), TrainOptions(steps=1))
