"""The GAN encoder (issue 14): trained for one exported generator, exported as gan_encoder, served by both
backends, the start of `--init encoder` and the E of the in-domain loss; refused for another generator version."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.data.images import from_unit
from facemath_core.host.manager import load_registry
from facemath_core.latent.latents import load_latents
from facemath_core.models.export import export_run, read_metadata, restore_run_models
from facemath_core.projection.projector import LossSpec, ProjectionConfig, Projector
from facemath_core.serving.backends.embedded import EmbeddedBackend
from facemath_core.serving.backends.tfserving import TFServingBackend
from facemath_core.serving.model_config import entries_for_folder
from facemath_core.serving.standin import build_server

from ..support import train_tiny_encoder


@pytest.fixture(scope="module")
def backend(tiny_export):
    return EmbeddedBackend(tiny_export)


@pytest.fixture(scope="module")
def standin(tiny_export):
    server, port, _ = build_server(entries_for_folder(tiny_export), "127.0.0.1", 0)
    backend = TFServingBackend(f"127.0.0.1:{port}")
    yield backend
    backend.close()
    server.stop(0)


@pytest.fixture(scope="module")
def faces(backend, tmp_path_factory):
    """Four images the tiny generator makes, as PNG files."""
    folder = tmp_path_factory.mktemp("enc_faces")
    images = backend.generate(np.random.default_rng(7).uniform(-0.8, 0.8, (4, 8)).astype(np.float32))
    for i, image in enumerate(images):
        Image.fromarray(from_unit(image)).save(folder / f"face{i}.png")
    return folder


def _images(n=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 32, 32, 3)).astype(np.float32)


def test_the_run_records_the_generator_it_inverts_and_export_names_it(tiny_runs, tiny_export):
    record = json.loads((tiny_runs["encoder"] / "run.json").read_text())
    assert record["kind"] == "encoder"
    assert record["options"]["generator"] == str((tiny_export / "generator" / "1").resolve())
    # The architecture is the generator's (z size and image size), not the command line's defaults.
    generator = read_metadata(tiny_export / "generator" / "1")
    assert (record["arch"]["z_dim"], record["arch"]["image_size"]) == (generator["z_dim"], generator["image_size"])
    metadata = read_metadata(tiny_export / "gan_encoder" / "1")
    assert metadata["generator"] == {"name": "generator", "version": 1}
    assert metadata["model"] == "gan_encoder" and metadata["z_dim"] == 8


def test_the_recorded_held_out_psnr_is_what_the_exported_models_give(tiny_runs, train_faces, backend):
    """G(E(x)) on the folder's held-out faces (CelebA's partition file: every face not in partition 0), recomputed
    through the exported SavedModels with PSNR's definition (peak-to-peak 2 on [-1, 1]), is what training recorded."""
    record = json.loads((tiny_runs["encoder"] / "run.json").read_text())
    partition = [line.split() for line in (train_faces / "list_eval_partition.txt").read_text().splitlines()]
    held_out = [name for name, part in partition if part != "0"]
    pixels = [np.asarray(Image.open(train_faces / "img_align_celeba" / name).convert("RGB")) for name in held_out]
    images = np.stack(pixels).astype(np.float64) / 127.5 - 1.0
    recon = backend.generate(backend.encode_z(images.astype(np.float32))).astype(np.float64)
    expected = np.mean(10.0 * np.log10(4.0 / ((recon - images) ** 2).mean(axis=(1, 2, 3))))
    assert record["held_out_images"] == len(held_out) > 0
    assert record["held_out_psnr"] == pytest.approx(expected, abs=0.01)


@pytest.mark.slow
def test_training_lowers_both_losses(tiny_runs, tiny_export, tmp_path):
    """A longer run than the fixture's: E(G(z)) comes closer to z, G(E(x)) to x (on generated faces: the tiny
    generator makes little else), and real faces do not get worse; measured on fresh z and faces with numpy."""
    from facemath_core.data.images import to_unit
    from facemath_core.data.pipeline import load_split

    generator = EmbeddedBackend(tiny_export)
    z = np.random.default_rng(11).uniform(-1, 1, (64, 8)).astype(np.float32)
    generated = generator.generate(z)
    data = json.loads((tiny_runs["gan"] / "run.json").read_text())["data"]
    real = to_unit(load_split(data, 32, "all").images[:64])

    def errors(run):
        encoder = restore_run_models(run)[2][S.GAN_ENCODER]
        encoded = encoder(generated, training=False).numpy()
        latent = np.mean((encoded - z) ** 2)
        pixel = np.mean((generator.generate(encoded) - generated) ** 2)
        real_pixel = np.mean((generator.generate(encoder(real, training=False).numpy()) - real) ** 2)
        return latent, pixel, real_pixel

    before = errors(train_tiny_encoder(tmp_path / "one", tiny_export / "generator", tiny_runs, steps=1))
    after = errors(train_tiny_encoder(tmp_path / "many", tiny_export / "generator", tiny_runs, steps=100))
    assert after[0] < 0.5 * before[0] and after[1] < 0.5 * before[1] and after[2] <= before[2], (before, after)


def test_z_lies_in_the_generator_box_on_both_backends(backend, standin):
    images = _images(5) * 3.0  # far outside the data's range: the squashing still keeps z in U(-1, 1)'s box
    local, remote = backend.encode_z(images), standin.encode_z(images)
    assert local.shape == (5, 8) and np.abs(local).max() <= 1.0
    np.testing.assert_allclose(remote, local, rtol=1e-5, atol=1e-6)


def test_vjp_matches_autodiff_of_the_in_process_encoder(tiny_runs, tiny_export, backend):
    import tensorflow as tf

    encoder = restore_run_models(tiny_runs["encoder"])[2][S.GAN_ENCODER]
    images = tf.constant(_images(3, seed=1))
    cotangent = np.random.default_rng(2).normal(size=(3, 8)).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(images)
        z = encoder(images, training=False)
    expected = tape.gradient(z, images, output_gradients=cotangent).numpy()
    served = backend.call(S.GAN_ENCODER, S.VJP, {S.IMAGES: images.numpy(), S.Z_COTANGENT: cotangent})
    np.testing.assert_allclose(served[S.Z], z.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served[S.IMAGES_GRAD], expected, rtol=1e-4, atol=1e-6)


def test_init_encoder_from_the_cli_starts_at_the_gan_encoders_z(cli, tiny_export, faces, backend, tmp_path):
    """One step: the best z is the starting z (the loss belongs to the z before the update), i.e. E(x)."""
    out = tmp_path / "proj"
    result = cli(
        "project", str(faces), "--models", str(tiny_export), "--init", "encoder", "--steps", "1", "--out", str(out)
    )
    assert result.code == 0, result.stderr
    latents = load_latents(out / "latents.npz")
    images = np.stack([np.asarray(Image.open(faces / name), np.float32) / 127.5 - 1.0 for name in latents.names])
    np.testing.assert_allclose(latents.z, backend.encode_z(images), atol=1e-5)
    assert latents.models[S.GAN_ENCODER] == 1


def test_init_encoder_for_the_vae_uses_the_vae_encoder(cli, tiny_export, faces, backend, tmp_path):
    out = tmp_path / "vae"
    result = cli(
        "project",
        str(faces),
        "--models",
        str(tiny_export),
        "--model",
        "vae",
        "--init",
        "encoder",
        "--steps",
        "1",
        "--out",
        str(out),
    )
    assert result.code == 0, result.stderr
    latents = load_latents(out / "latents.npz")
    images = np.stack([np.asarray(Image.open(faces / name), np.float32) / 127.5 - 1.0 for name in latents.names])
    np.testing.assert_allclose(latents.z, np.clip(backend.encode(images)[0], -1, 1), atol=1e-5)
    assert S.VAE_ENCODER in latents.models and S.GAN_ENCODER not in latents.models


@pytest.fixture(scope="module")
def newer_generator(tiny_export, tiny_runs, tmp_path_factory):
    """The tiny models with a generator version 2 the encoder (trained for version 1) does not invert."""
    base = tmp_path_factory.mktemp("newer")
    for name in (*S.MODEL_NAMES, *S.COMPOSITE_NAMES):
        shutil.copytree(tiny_export / name, base / name)
    export_run(tiny_runs["gan"], base, version=2)
    return base


@pytest.mark.slow
def test_an_encoder_for_another_generator_version_is_refused(cli, newer_generator, faces, tmp_path):
    out = tmp_path / "refused"
    for option in (["--init", "encoder"], ["--loss-plugin", "in-domain"]):
        result = cli(
            "project", str(faces), "--models", str(newer_generator), *option, "--steps", "1", "--out", str(out)
        )
        assert result.code == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "gan_encoder version 1" in lines[0] and "generator version 1" in lines[0]
        assert "generator version 2" in lines[0] and option[1] in lines[0]
        assert not out.exists()
    # Pinned to the version it was trained for, it is accepted.
    pinned = cli(
        "project",
        str(faces),
        "--models",
        str(newer_generator),
        "--model-version",
        "1",
        "--init",
        "encoder",
        "--steps",
        "1",
        "--out",
        str(out),
    )
    assert pinned.code == 0, pinned.stderr


def test_train_encoder_cli_errors_are_one_line(cli, tmp_path, tiny_runs, tiny_export):
    data = json.loads((tiny_runs["gan"] / "run.json").read_text())["data"]
    generator = str(tiny_export / "generator")
    cases = [
        ("encoder", [], 2, "--generator"),
        ("gan", ["--generator", generator], 2, "--generator"),
        ("encoder", ["--generator", str(tmp_path)], 1, "no exported model"),
        ("encoder", ["--generator", generator, "--model-version", "7"], 1, "has no such version"),
        ("encoder", ["--generator", str(tiny_export / "vae_decoder")], 1, "not an exported GAN generator"),
    ]
    for kind, args, code, words in cases:
        out = tmp_path / "run"
        result = cli("train", kind, "--data", data, "--out", str(out), "--steps", "2", *args)
        assert result.code == code, (args, result.stderr)
        assert words in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert not out.exists()


def _in_domain_run(backend, tiny_export, steps=5):
    config = replace(
        ProjectionConfig(steps=steps, patience=1000),
        losses=(LossSpec("l2", 1.0), LossSpec("in-domain", 2.0)),
    )
    local = EmbeddedBackend(tiny_export)
    targets = local.generate(np.random.default_rng(3).uniform(-1, 1, (4, 8)).astype(np.float32))
    projector = Projector(backend, load_registry(builtins_only=True), config)
    z0 = projector.initial_z(targets, np.random.default_rng(0))
    return targets, projector.project(targets, np.ones((4, 32, 32), np.float32), z0)


@pytest.mark.slow
def test_in_domain_loss_value_is_the_encoders_round_trip_error(tiny_export, backend):
    """At the best z the term equals ||z - E(G(z))||^2 computed here with numpy from the served models."""
    targets, result = _in_domain_run(backend, tiny_export)
    encoded = backend.encode_z(backend.generate(result.z))
    np.testing.assert_allclose(result.terms["in-domain"], ((result.z - encoded) ** 2).sum(axis=1), rtol=1e-4)
    l2 = ((backend.generate(result.z) - targets) ** 2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(result.total, result.terms["l2"] + 2.0 * result.terms["in-domain"], rtol=1e-5)
    np.testing.assert_allclose(result.terms["l2"], l2, rtol=1e-4)


@pytest.mark.slow
def test_in_domain_through_the_standin_matches_embedded(tiny_export, backend, standin):
    """Over a server the gradient through E comes from the gan_encoder's vjp signature: same z as autodiff."""
    _, local = _in_domain_run(backend, tiny_export, steps=10)
    _, remote = _in_domain_run(standin, tiny_export, steps=10)
    np.testing.assert_allclose(remote.state["variable"], local.state["variable"], atol=1e-4)
    np.testing.assert_allclose(remote.terms["in-domain"], local.terms["in-domain"], rtol=1e-4, atol=1e-5)


def test_in_domain_needs_an_encoder(tiny_export, tmp_path):
    base = tmp_path / "models"
    for name in (S.GENERATOR, S.DISCRIMINATOR):
        shutil.copytree(tiny_export / name, base / name)
    backend = EmbeddedBackend(base)
    config = replace(ProjectionConfig(steps=1), losses=(LossSpec("l2", 1.0), LossSpec("in-domain", 1.0)))
    with pytest.raises(FacemathError, match="no gan_encoder model"):
        Projector(backend, load_registry(builtins_only=True), config)


@pytest.fixture(scope="module")
def recon_gan(tiny_runs, tmp_path_factory):
    """A tiny GAN trained with --latent-recon (so its run has a Q), exported to a base of its own."""
    from facemath_core.models.architectures import ArchConfig
    from facemath_core.models.runs import TrainOptions
    from facemath_core.models.training import train

    from ..support import TINY

    root = tmp_path_factory.mktemp("recon")
    data = json.loads((tiny_runs["gan"] / "run.json").read_text())["data"]
    options = TrainOptions(steps=6, batch_size=16, sample_every=6, checkpoint_every=6, latent_recon=10.0)
    train("gan", data, root / "gan", ArchConfig(**TINY), options)
    export_run(root / "gan", root / "exported")
    return root / "gan", root / "exported" / "generator", data


def _trained_weights(run_dir, optimizer):
    """The weights `optimizer` trains, in its order, read from a run's checkpoint independently of facemath. (A
    checkpoint files each trainable weight under the first path to it: the optimizer's list, not the network.)"""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
    prefix = f"{optimizer}/_trainable_variables/"
    found = {
        int(key[len(prefix) :].split("/")[0]): reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if key.startswith(prefix)
    }
    return [found[i] for i in sorted(found)]


@pytest.mark.slow
def test_warm_start_begins_at_the_gan_runs_q(recon_gan, tmp_path):
    """`train encoder --warm-start RUN`: E's weights start as the GAN run's Q (compared in the two checkpoints
    after one step at learning rate 0, which moves no weight); E takes Q's width whatever --ndf says."""
    from facemath_core.models.architectures import ArchConfig
    from facemath_core.models.runs import TrainOptions
    from facemath_core.models.training import train

    from ..support import TINY

    gan_run, generator, data = recon_gan
    options = TrainOptions(
        steps=1,
        batch_size=16,
        lr=0.0,
        sample_every=1,
        checkpoint_every=1,
        generator=str(generator),
        warm_start=str(gan_run),
    )
    record = train("encoder", data, tmp_path / "enc", ArchConfig(**{**TINY, "ndf": 16}), options)
    assert record["arch"]["ndf"] == TINY["ndf"]
    encoder = _trained_weights(tmp_path / "enc", "optimizer")
    # G's optimizer steps G's weights, then Q's (gan.DCGAN._g_variables): Q's are the last ones.
    q = _trained_weights(gan_run, "g_optimizer")[-len(encoder) :]
    assert len(encoder) == 10 and [w.shape for w in encoder] == [w.shape for w in q]
    for mine, theirs in zip(encoder, q, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    # Without the warm start the same step begins elsewhere (Keras's own initialisation).
    train("encoder", data, tmp_path / "cold", ArchConfig(**TINY), replace(options, warm_start=""))
    cold = _trained_weights(tmp_path / "cold", "optimizer")
    assert any(not np.array_equal(mine, theirs) for mine, theirs in zip(cold, q, strict=True))


@pytest.mark.slow
def test_warm_start_errors_are_one_line(cli, recon_gan, tiny_runs, tmp_path):
    gan_run, generator, data = recon_gan
    other_z = tmp_path / "other_z"  # the run of a Q for 16-d z; the generator inverted has 8
    other_z.mkdir()
    record = json.loads((gan_run / "run.json").read_text())
    (other_z / "run.json").write_text(json.dumps({**record, "arch": {**record["arch"], "z_dim": 16}}))
    cases = [
        ("gan", [], 2, "--warm-start"),  # only the encoder starts from a Q
        ("encoder", ["--generator", str(generator), "--warm-start", str(tmp_path)], 1, "not a training run"),
        # A GAN run without the term has no Q.
        ("encoder", ["--generator", str(generator), "--warm-start", str(tiny_runs["gan"])], 1, "--latent-recon"),
        ("encoder", ["--generator", str(generator), "--warm-start", str(other_z)], 1, "z_dim 16"),
    ]
    for kind, args, code, words in cases:
        out = tmp_path / "run"
        start = [] if kind == "encoder" else ["--warm-start", str(gan_run)]
        result = cli("train", kind, "--data", data, "--out", str(out), "--steps", "1", *start, *args)
        assert result.code == code, (args, result.stderr)
        assert words in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.count("\n") <= 2 and not out.exists(), result.stderr
