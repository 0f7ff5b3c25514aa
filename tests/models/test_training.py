"""Training runs with tiny networks: the run folder, resume, Ctrl-C, repeatability, the oracle's report."""

import json

import numpy as np
import pytest
from PIL import Image

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.models.architectures import ArchConfig
from facemath_core.models.runs import TrainingInterrupted, TrainOptions
from facemath_core.models.training import train
from facemath_core.serving.backends.embedded import EmbeddedBackend

from ..support import TINY, run_facemath


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


def test_oracle_reports_held_out_accuracy_per_attribute(tiny_runs, tiny_export, train_faces):
    """The recorded accuracy is the exported oracle's on the held-out faces (partition file: not 0), scored against
    the label file read here: logit > 0 is a 1, a label 1 is a 1."""
    record = json.loads((tiny_runs["oracle"] / "run.json").read_text())
    accuracy = record["held_out_accuracy"]
    lines = (train_faces / "list_attr_celeba.txt").read_text().splitlines()
    names, rows = lines[1].split(), {line.split()[0]: line.split()[1:] for line in lines[2:]}
    partition = [line.split() for line in (train_faces / "list_eval_partition.txt").read_text().splitlines()]
    held_out = [name for name, part in partition if part != "0"]
    assert record["held_out_images"] == len(held_out) == 16 and list(accuracy) == names
    pixels = [np.asarray(Image.open(train_faces / "img_align_celeba" / name).convert("RGB")) for name in held_out]
    images = (np.stack(pixels).astype(np.float32) / 127.5 - 1.0).astype(np.float32)
    logits = EmbeddedBackend(tiny_export).call(S.ORACLE, S.DEFAULT, {S.IMAGES: images})[S.ATTRIBUTE_LOGITS]
    labels = np.array([[value == "1" for value in rows[name]] for name in held_out])
    expected = ((logits > 0) == labels).mean(axis=0)
    np.testing.assert_allclose([accuracy[name] for name in names], expected, atol=1e-9)


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(train_faces, tmp_path):
    run = tmp_path / "run"
    options = TrainOptions(steps=2, batch_size=16, sample_every=100, checkpoint_every=100)
    train("vae", str(train_faces), run, ArchConfig(**TINY), options)
    record = train("vae", "", run, ArchConfig(), TrainOptions(steps=4), resume=True)
    assert record["steps_done"] == 4
    assert (run / "checkpoints" / "ckpt-4.index").exists()
    with pytest.raises(FacemathError, match="a run already exists there"):
        train("vae", str(train_faces), run, ArchConfig(**TINY), options)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_can_resume(train_faces, tmp_path, monkeypatch):
    from facemath_core.models import training

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


@pytest.mark.slow
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


def _checkpoint_tensors(run_dir):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
    tensors = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "save_counter" not in k}
    return {k: v for k, v in tensors.items() if np.asarray(v).dtype.kind in "fiu"}  # not the object graph


@pytest.mark.parametrize("kind", ["gan", "oracle"])  # the oracle also has Dropout, with its own noise
@pytest.mark.slow
def test_resume_gives_the_weights_of_an_uninterrupted_run(kind, train_faces, tmp_path, monkeypatch):
    """Interrupted at step 5 of 12 and resumed from the CLI without --steps or --data: the run finishes its recorded
    12 steps on its recorded data, and every weight, optimizer slot and noise state equals the uninterrupted run's.
    12 steps of 16 from 144 training faces cross an epoch, so the reshuffled second epoch is compared as well."""
    from facemath_core.models import training

    options = TrainOptions(steps=12, batch_size=16, seed=4, sample_every=100, checkpoint_every=100)
    train(kind, str(train_faces), tmp_path / "straight", ArchConfig(**TINY), options)

    original = training._RunCallback.on_batch_end

    def interrupt_at_step_5(self, batch, logs=None):
        original(self, batch, logs)
        if self.step == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(training._RunCallback, "on_batch_end", interrupt_at_step_5)
    resumed = tmp_path / "resumed"
    with pytest.raises(TrainingInterrupted):
        train(kind, str(train_faces), resumed, ArchConfig(**TINY), options)
    result = run_facemath("train", kind, "--resume", str(resumed))
    assert result.code == 0, result.stderr
    record = json.loads((resumed / "run.json").read_text())
    assert record["steps_done"] == 12 and record["options"]["steps"] == 12
    assert record["data"] == str(train_faces.resolve())
    straight, after_resume = _checkpoint_tensors(tmp_path / "straight"), _checkpoint_tensors(resumed)
    assert straight.keys() == after_resume.keys()
    assert any("seed_generator" in k for k in straight) and any("optimizer" in k for k in straight)
    for key in straight:
        np.testing.assert_allclose(after_resume[key], straight[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("kind", ["gan", "vae", "oracle"])
def test_the_seed_sets_the_training_noise(train_faces, kind):
    """The same weights and the same batch give the same step under one seed, and a different step under another:
    the noise a train step draws (z, the VAE's epsilon, the oracle's augmentation) comes from --seed."""
    import keras

    from facemath_core.data.folders import load_folder_images, open_faces
    from facemath_core.data.images import to_unit
    from facemath_core.models.training import build_model

    faces = open_faces(train_faces)
    images = to_unit(load_folder_images(faces, 32)[:16])
    labels = (faces.attributes[:16] > 0).astype(np.float32)
    cfg = ArchConfig(**TINY, attribute_names=tuple(faces.attribute_names))
    models = []
    for seed in (1, 1, 2):
        keras.utils.set_random_seed(0)  # the same initial weights (and Dropout seeds) for all three
        models.append(build_model(kind, cfg, TrainOptions(seed=seed)))
    batch = (images, labels) if kind == "oracle" else images
    after = []
    for model in models:
        model.train_step(batch)
        after.append(np.concatenate([w.ravel() for n in model.networks().values() for w in n.get_weights()]))
    np.testing.assert_array_equal(after[0], after[1])
    assert np.abs(after[0] - after[2]).max() > 1e-6


@pytest.mark.slow
def test_training_from_tfrecord_shards_is_training_from_the_folder(train_faces, tmp_path):
    """`--data SHARDS` (from `facemath data pack`) gives the very run `--data FOLDER` gives: same weights, same
    held-out accuracy (the oracle reads its held-out split from the shards too)."""
    from facemath_core.data.tfrecords import pack_folder

    pack_folder(train_faces, tmp_path / "shards", shard_size=50)
    options = TrainOptions(steps=3, batch_size=16, sample_every=100, checkpoint_every=100)
    runs = {}
    for name, data in (("folder", train_faces), ("shards", tmp_path / "shards")):
        # Each run in a folder of its own: not the shard folder it reads (a non-empty folder that is not a run).
        runs[name] = train("oracle", str(data), tmp_path / f"run_{name}", ArchConfig(**TINY), options)
    assert runs["shards"]["held_out_accuracy"] == runs["folder"]["held_out_accuracy"]
    assert runs["shards"]["data_images"] == runs["folder"]["data_images"] == 144
    folder, shards = _checkpoint_tensors(tmp_path / "run_folder"), _checkpoint_tensors(tmp_path / "run_shards")
    assert folder.keys() == shards.keys()
    for key in folder:
        np.testing.assert_array_equal(shards[key], folder[key], err_msg=key)


@pytest.mark.slow
def test_latent_recon_trains_q_with_the_generator(cli, train_faces, tmp_path):
    """`train gan --latent-recon W` (InfoGAN's term with every z dimension a code): Q is trained and checkpointed
    with G, the generator's steps differ from the Radford recipe's from the same seed, and a run resumes Q exactly
    like every other weight; W = 0 leaves no Q in the run."""

    options = TrainOptions(steps=6, batch_size=16, seed=3, sample_every=100, checkpoint_every=3)
    plain = train("gan", str(train_faces), tmp_path / "plain", ArchConfig(**TINY), options)
    recon_options = TrainOptions(**{**options.__dict__, "latent_recon": 10.0})
    recon = train("gan", str(train_faces), tmp_path / "recon", ArchConfig(**TINY), recon_options)
    assert "z_recon" in recon["final_metrics"] and "z_recon" not in plain["final_metrics"]
    # U(-1, 1) has variance 1/3: a Q that had learnt nothing predicting 0 would score about that.
    assert 0.0 < recon["final_metrics"]["z_recon"] < 1.0
    plain_tensors, recon_tensors = _checkpoint_tensors(tmp_path / "plain"), _checkpoint_tensors(tmp_path / "recon")
    assert not any(key.startswith("q/") for key in plain_tensors)
    q_keys = [key for key in recon_tensors if key.startswith("q/")]
    g_slots = [[key for key in tensors if key.startswith("g_optimizer/")] for tensors in (plain_tensors, recon_tensors)]
    assert q_keys and len(g_slots[1]) > len(g_slots[0])  # G's optimizer also steps Q's weights
    generator = [k for k in plain_tensors if k.startswith("generator/")]
    assert generator and any(not np.allclose(plain_tensors[k], recon_tensors[k]) for k in generator)
    # Resume from the step-3 checkpoint on the CLI: the same weights (Q's included) as the uninterrupted run.
    resumed = tmp_path / "resumed"
    train("gan", str(train_faces), resumed, ArchConfig(**TINY), TrainOptions(**{**recon_options.__dict__, "steps": 3}))
    assert cli("train", "gan", "--resume", str(resumed), "--steps", "6").code == 0
    after = _checkpoint_tensors(resumed)
    assert after.keys() == recon_tensors.keys()
    for key in q_keys + generator:
        np.testing.assert_allclose(after[key], recon_tensors[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_latent_recon_must_be_a_finite_weight(cli, train_faces, tmp_path, value):

    result = cli("train", "gan", "--data", str(train_faces), "--out", str(tmp_path / "r"), "--latent-recon", value)
    assert result.code == 2 and "--latent-recon" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()
