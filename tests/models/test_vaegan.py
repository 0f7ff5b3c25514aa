"""The VAE-GAN (Larsen et al. 2016): its losses against the paper's formulas, each network updated by its own loss,
exact resume, every strategy, its exports and their signatures, both backends and the stand-in, and `--model
vaegan` through the commands (project, complete, encode, render, math, analogy, attributes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facemath_core.base import signatures as S
from facemath_core.latent.latents import load_latents
from facemath_core.models.architectures import ArchConfig, vaegan_feature_block
from facemath_core.models.distribute import loopback_cluster
from facemath_core.models.runs import TrainingInterrupted, TrainOptions
from facemath_core.models.training import build_model, train

from ..support import TINY, facemath_process, fails_cleanly, run_facemath

TINY_ARGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
TOLERANCE = 1e-4  # one device against replicas: float rounding of the all-reduce (as tests/models/test_distribute.py)
# Optimizer slots (`_same_run`'s ||a - b|| / ||a|| per optimizer) of one device against replicas, at step 2: measured
# 5.0e-6 (e_optimizer), 7.9e-7 (g_optimizer), 7.2e-7 (d_optimizer) on 2 CPU cores, mirrored and multi-worker alike;
# a wrongly scaled gradient would be off by 0.5 or more.
SLOT_TOLERANCE = 1e-2
# Later on, the two runs' trajectories part, and the slots with them, while the weights stay equal to 1e-6. Measured
# on 2 CPU cores, one device against 2 replicas (mirrored and multi-worker agree to 1e-6, and a multi-worker resume
# is bit for bit the uninterrupted multi-worker run): the gradients agree to 1e-6 up to step 3, when the states differ
# by 6e-8 at most; at step 4 one input of Dis_l's LeakyReLU is -3.0e-8 from one state and +1.3e-7 from the other,
# its slope goes from 0.2 to 1, and the gradients jump apart by 6.5e-4 (decoder) and 5.6e-4 (discriminator) (step 4
# computed on one device from the 2 replicas' step-3 state gives the 2 replicas' gradients, to 1e-6). Every step after
# that compounds it: the encoder's slots differ by 2.0e-5, 3.9e-3, 4.1e-2, 7.1e-2, 0.13 at steps 4, 5, 6, 8, 12, the
# decoder's by 3.8e-4 .. 1.8e-2, the discriminator's by 2.9e-4 .. 8e-3. One device against itself with every weight
# times 1 + 1e-6 N(0, 1) gives the same (encoder 7.7e-2 at step 6), as does one device with only synchronized
# BatchNorm's E[x^2] - E[x]^2 variance (first jump at step 9). Adam moves each weight by about lr (2e-4) a step
# whatever the gradient, so the weights stay within 2.1e-6 at step 6. Past step 2 the slots are held only to what
# still tells a wrong gradient scale (0.5 or more) from this drift.
DRIFTED_SLOT_TOLERANCE = 0.25


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


# --- the losses ----------------------------------------------------------------------------------------------------


def test_losses_are_the_papers():
    """L_llike^Dis_l is the Gaussian negative log-likelihood N(Dis_l(x) | Dis_l(x~), I) without its constant; the
    discriminator's loss is -L_GAN = -[log D(x) + log(1 - D(x_p)) + log(1 - D(x~))]; the decoder's GAN term is the
    non-saturating -log D(x~) - log D(x_p): each computed here with numpy from its formula."""
    from facemath_core.models.vaegan import decoder_gan_loss, dis_l_likelihood, discriminator_loss

    rng = np.random.default_rng(0)
    real, recon = rng.normal(size=(5, 40)).astype(np.float32), rng.normal(size=(5, 40)).astype(np.float32)
    gaussian_nll = -np.mean(
        [np.sum(-0.5 * (r - m) ** 2 - 0.5 * np.log(2 * np.pi)) for r, m in zip(real, recon, strict=True)]
    )
    constant = 40 * 0.5 * np.log(2 * np.pi)
    assert float(dis_l_likelihood(real, recon)) == pytest.approx(gaussian_nll - constant, rel=1e-5)

    r, t, p = (rng.normal(scale=3, size=7).astype(np.float32) for _ in range(3))
    l_gan = np.mean(_log_sigmoid(r)) + np.mean(_log_sigmoid(-p)) + np.mean(_log_sigmoid(-t))  # log(1-s(x)) = ls(-x)
    assert float(discriminator_loss(r, t, p)) == pytest.approx(-l_gan, rel=1e-5)
    assert float(decoder_gan_loss(t, p)) == pytest.approx(-np.mean(_log_sigmoid(t)) - np.mean(_log_sigmoid(p)), 1e-5)


def test_dis_l_is_the_discriminators_last_8x8_block():
    from facemath_core.models.architectures import build_vaegan_discriminator

    for size, channels in ((32, 8 * 2), (64, 8 * 4), (128, 8 * 8)):
        cfg = ArchConfig(image_size=size, ngf=8, ndf=8, z_dim=4)
        out = build_vaegan_discriminator(cfg)(np.zeros((2, size, size, 3), np.float32), training=False)
        assert out[S.LOGITS].shape == (2,) and out[S.FEATURES].shape == (2, 8 * 8 * channels)
        assert vaegan_feature_block(cfg) == cfg.n_up - 2


def test_each_network_descends_its_own_loss(train_faces):
    """One train step with plain SGD (lr 1: each weight moves by minus its gradient), against gradients taken
    here, each from its own forward pass and its own loss written from the paper: the encoder's KL + L_llike, the
    decoder's gamma L_llike + GAN term, the discriminator's -L_GAN. The encoder gets no GAN signal, the
    discriminator no L_llike, and gamma weighs only the decoder's."""
    import keras
    import tensorflow as tf

    from facemath_core.data.folders import load_folder_images, open_faces
    from facemath_core.data.images import to_unit

    images = tf.constant(to_unit(load_folder_images(open_faces(train_faces), 32)[:8]))
    cfg = ArchConfig(**{**TINY, "z_distribution": "normal"})
    keras.utils.set_random_seed(0)
    model = build_model("vaegan", cfg, TrainOptions(gamma=0.37, beta=1.0))
    model.compile(*(keras.optimizers.SGD(learning_rate=1.0) for _ in range(3)))
    rng = np.random.default_rng(1)
    noise = [tf.constant(rng.normal(size=(8, 8)).astype(np.float32)) for _ in range(2)]  # epsilon, then z_p
    draws = iter(noise)
    model._normal = lambda shape: next(draws)
    nets = model.networks()
    before = {name: [w.numpy() for w in net.weights] for name, net in nets.items()}

    def forward():
        mean, log_var = nets["encoder"](images, training=True)
        z = mean + tf.exp(0.5 * log_var) * noise[0]
        decoded = nets["decoder"](tf.concat([z, noise[1]], 0), training=True)
        out = nets["discriminator"](tf.concat([images, decoded], 0), training=True)
        logits, features = tf.split(out[S.LOGITS], 3), tf.split(out[S.FEATURES], 3)
        kl = tf.reduce_mean(0.5 * tf.reduce_sum(tf.square(mean) + tf.exp(log_var) - 1.0 - log_var, 1))
        llike = tf.reduce_mean(0.5 * tf.reduce_sum(tf.square(features[0] - features[1]), 1))
        real, recon, prior = logits
        l_gan = sum(tf.reduce_mean(x) for x in (tf.math.log_sigmoid(real), tf.math.log_sigmoid(-recon)))
        l_gan += tf.reduce_mean(tf.math.log_sigmoid(-prior))
        fool = -tf.reduce_mean(tf.math.log_sigmoid(recon)) - tf.reduce_mean(tf.math.log_sigmoid(prior))
        return {"encoder": kl + llike, "decoder": 0.37 * llike + fool, "discriminator": -l_gan}

    expected = {}
    for name, net in nets.items():
        with tf.GradientTape() as tape:
            loss = forward()[name]
        expected[name] = dict(
            zip([v.path for v in net.trainable_variables], tape.gradient(loss, net.trainable_variables), strict=True)
        )
    for name, net in nets.items():  # the reference passes moved BatchNorm's statistics: back to the start
        for weight, value in zip(net.weights, before[name], strict=True):
            weight.assign(value)
    model.train_step(images)
    for name, net in nets.items():
        for weight, start in zip(net.weights, before[name], strict=True):
            if weight.path in expected[name]:
                np.testing.assert_allclose(
                    start - weight.numpy(),
                    expected[name][weight.path].numpy(),
                    rtol=1e-4,
                    atol=1e-6,
                    err_msg=weight.path,
                )
        assert any(np.abs(g.numpy()).max() > 1e-4 for g in expected[name].values())


def test_the_seed_sets_the_training_noise(train_faces):
    import keras

    from facemath_core.data.folders import load_folder_images, open_faces
    from facemath_core.data.images import to_unit

    images = to_unit(load_folder_images(open_faces(train_faces), 32)[:16])
    after = []
    for seed in (1, 1, 2):
        keras.utils.set_random_seed(0)
        model = build_model("vaegan", ArchConfig(**TINY), TrainOptions(seed=seed))
        model.train_step(images)
        after.append(np.concatenate([w.ravel() for n in model.networks().values() for w in n.get_weights()]))
    np.testing.assert_array_equal(after[0], after[1])
    assert np.abs(after[0] - after[2]).max() > 1e-6


# --- training runs -------------------------------------------------------------------------------------------------


def test_a_run_records_its_prior_losses_and_held_out_psnr(tiny_runs):
    record = json.loads((tiny_runs["vaegan"] / "run.json").read_text())
    assert record["kind"] == "vaegan" and record["arch"]["z_distribution"] == "normal"  # the VAE's prior
    assert record["options"]["gamma"] == TrainOptions().gamma
    assert {"kl", "llike", "g_loss", "d_loss", "D(x)", "D(x~)", "D(x_p)", "pixel"} == set(record["final_metrics"])
    assert record["held_out_images"] == 16 and 5 < record["held_out_psnr"] < 40
    assert (tiny_runs["vaegan"] / "samples" / "step_000020.png").is_file()


def _checkpoint(run_dir, step=None):
    import tensorflow as tf

    path = str(run_dir / "checkpoints") if step is None else str(run_dir / "checkpoints" / f"ckpt-{step}")
    reader = tf.train.load_checkpoint(path)
    names = [k for k in reader.get_variable_to_shape_map() if "save_counter" not in k and "OBJECT_GRAPH" not in k]
    return {k: reader.get_tensor(k) for k in names}


def _same_run(a, b, step=None, tolerance=0.0, slot_tolerance=0.0):
    """The largest difference in a weight or BatchNorm statistic (absolute), and the relative difference of each
    optimizer's slots taken together (||a - b|| / ||a|| over all its slot tensors); step counters and
    seed-generator states must be equal. Adam's second moments hold squared gradients of a loss in the thousands
    (L_llike), so their rounding is only small relative to their size; and Adam's first steps move every weight by
    about lr whatever the gradient's scale, so a gradient scaled wrongly on some replicas would leave the weights
    equal and show up in the slots only, as a relative difference of 0.5 or more. Taken together, not tensor by
    tensor: the biases before a BatchNorm have a true gradient of zero, so their slots hold rounding noise whose
    own relative difference says nothing."""
    ta, tb = _checkpoint(a, step), _checkpoint(b, step)
    assert ta.keys() == tb.keys()
    for network in ("encoder", "decoder", "discriminator", "e_optimizer", "g_optimizer", "d_optimizer"):
        assert any(k.startswith(network + "/") for k in ta), network
    weights = 0.0
    squares: dict[str, list[float]] = {}  # optimizer -> [sum of squared differences, sum of squares]
    for key in ta:
        if ta[key].dtype.kind != "f":
            np.testing.assert_array_equal(ta[key], tb[key], err_msg=key)
            continue
        a, b = ta[key].astype(np.float64), tb[key].astype(np.float64)
        network = key.split("/")[0]
        if "optimizer" in network:
            sums = squares.setdefault(network, [0.0, 0.0])
            sums[0] += float(np.sum((a - b) ** 2))
            sums[1] += float(np.sum(a**2))
        else:
            weights = max(weights, float(np.max(np.abs(a - b))))
    slots = max(np.sqrt(d / max(n, 1e-300)) for d, n in squares.values())
    assert weights <= tolerance and slots <= slot_tolerance, (weights, slots)
    return weights, slots


@pytest.mark.slow
def test_resume_gives_the_weights_of_an_uninterrupted_run(train_faces, tmp_path, monkeypatch):
    """Interrupted at step 5 of 12 (across an epoch of 144 faces in batches of 16) and resumed from the CLI: every
    weight, optimizer slot and noise state is the uninterrupted run's."""
    from facemath_core.models import training

    options = TrainOptions(steps=12, batch_size=16, seed=4, sample_every=100, checkpoint_every=100)
    train("vaegan", str(train_faces), tmp_path / "straight", ArchConfig(**TINY), options)
    original = training._RunCallback.on_batch_end

    def interrupt_at_step_5(self, batch, logs=None):
        original(self, batch, logs)
        if self.step == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(training._RunCallback, "on_batch_end", interrupt_at_step_5)
    with pytest.raises(TrainingInterrupted):
        train("vaegan", str(train_faces), tmp_path / "resumed", ArchConfig(**TINY), options)
    result = run_facemath("train", "vaegan", "--resume", str(tmp_path / "resumed"))
    assert result.code == 0, result.stderr
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["steps_done"] == 12
    _same_run(tmp_path / "straight", tmp_path / "resumed", tolerance=1e-6, slot_tolerance=1e-5)


def _train(*args, env=None):
    common = ["--batch-size", "16", "--sample-every", "100", "--checkpoint-every", "2", *TINY_ARGS]
    return run_facemath("train", "vaegan", *args, *common, env=env)


@pytest.mark.slow
def test_two_mirrored_cpu_replicas_train_as_one_device(train_faces, tmp_path):
    """4 steps on one device and on 2 logical CPUs (synchronized BatchNorm, per-replica noise rows, averaged
    gradients of the three networks): the same losses and weights, to float rounding."""
    one, mirrored = tmp_path / "one", tmp_path / "mirrored"
    for run, extra in ((one, []), (mirrored, ["--strategy", "mirrored", "--cpu-replicas", "2"])):
        result = _train("--data", str(train_faces), "--out", str(run), "--steps", "4", *extra)
        assert result.code == 0, result.stderr
    records = [json.loads((run / "run.json").read_text()) for run in (one, mirrored)]
    assert records[1]["placement"]["replicas"] == 2
    gaps = {k: abs(records[1]["final_metrics"][k] - v) for k, v in records[0]["final_metrics"].items()}
    # The losses in relative terms: L_llike is in the thousands.
    assert max(g / max(1.0, abs(records[0]["final_metrics"][k])) for k, g in gaps.items()) < TOLERANCE, gaps
    _, early = _same_run(one, mirrored, 2, TOLERANCE, SLOT_TOLERANCE)  # before the trajectories can part
    weights, slots = _same_run(one, mirrored, 4, TOLERANCE, DRIFTED_SLOT_TOLERANCE)
    print(f"one vs mirrored: weights differ by {weights:.1e}, optimizer slots by {early:.1e} (step 2), {slots:.1e}")


@pytest.mark.slow
def test_two_workers_train_checkpoint_and_resume(train_faces, tmp_path):
    """Two multi-worker processes train 4 steps, then resume to 6: the run equals 6 uninterrupted multi-worker steps
    (weights and optimizer slots, as the one-device resume test), and 6 steps on one device (all of it at step 2;
    the weights, and the slots to DRIFTED_SLOT_TOLERANCE, at step 6)."""
    run, straight, one = tmp_path / "multi", tmp_path / "straight", tmp_path / "one"
    common = ["--strategy", "multi-worker", "--batch-size", "16", "--sample-every", "100", "--checkpoint-every", "2"]

    def workers(args):
        cluster = loopback_cluster(2)
        procs = [
            facemath_process(
                "train",
                "vaegan",
                *args,
                env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
            )
            for i in range(2)
        ]
        try:
            for proc in procs:
                _, stderr = proc.communicate(timeout=240)
                assert proc.returncode == 0, stderr
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()

    workers(["--data", str(train_faces), "--out", str(run), "--steps", "4", *common, *TINY_ARGS])
    workers(["--resume", str(run), "--steps", "6", *common])
    assert json.loads((run / "run.json").read_text())["placement"]["replicas"] == 2
    # The resume, against the same strategy uninterrupted (measured: bit for bit equal at steps 2, 4 and 6).
    workers(["--data", str(train_faces), "--out", str(straight), "--steps", "6", *common, *TINY_ARGS])
    _same_run(straight, run, 6, tolerance=1e-6, slot_tolerance=1e-5)
    # The strategy, against one device.
    result = _train("--data", str(train_faces), "--out", str(one), "--steps", "6")
    assert result.code == 0, result.stderr
    _, early = _same_run(one, run, 2, TOLERANCE, SLOT_TOLERANCE)  # before the trajectories can part
    weights, slots = _same_run(one, run, 6, TOLERANCE, DRIFTED_SLOT_TOLERANCE)
    print(f"one vs 2 workers: weights differ by {weights:.1e}, optimizer slots by {early:.1e} (step 2), {slots:.1e}")


# --- the exports, served -------------------------------------------------------------------------------------------


def test_exports_carry_the_runs_card_and_prior(tiny_export):
    from facemath_core.models.layout import read_metadata

    for name in (S.VAEGAN_ENCODER, S.VAEGAN_DECODER, S.VAEGAN_DISCRIMINATOR):
        metadata = read_metadata(tiny_export / name / "1")
        assert metadata["family"] == "vaegan" and metadata["z_distribution"] == "normal"
        assert metadata["card"]["training"]["command"].startswith("facemath train vaegan --data faces --out vaegan")
        assert sorted(metadata["signatures"]) == sorted(S.SIGNATURES[name])


def test_features_signature_is_dis_l_of_the_trained_discriminator(tiny_runs, tiny_export):
    """The served `features` are Dis_l of the run's discriminator (restored from its checkpoint), in inference
    mode, through the TF1 loader and a Session as tensorflow_model_server runs it; `grad` is d logit / d image."""
    import tensorflow as tf

    from facemath_core.models.export import restore_run_models
    from facemath_core.serving.session_model import SessionModel

    network = restore_run_models(tiny_runs["vaegan"])[2][S.VAEGAN_DISCRIMINATOR]
    images = np.random.default_rng(2).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    session = SessionModel(tiny_export / S.VAEGAN_DISCRIMINATOR / "1")
    try:
        served = session.run(S.FEATURES, {S.IMAGES: images})[S.FEATURES]
        grad = session.run(S.GRAD, {S.IMAGES: images})
    finally:
        session.close()
    expected = network(images, training=False)
    assert served.shape == (3, 8 * 8 * 16)
    np.testing.assert_allclose(served, expected[S.FEATURES].numpy(), rtol=1e-4, atol=1e-5)
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = network(x, training=False)[S.LOGITS]
    np.testing.assert_allclose(grad[S.IMAGES_GRAD], tape.gradient(logits, x).numpy(), rtol=1e-4, atol=1e-6)


def test_both_backends_and_the_stand_in_serve_the_vaegan(tiny_export):
    from facemath_core.serving.backends.embedded import EmbeddedBackend
    from facemath_core.serving.backends.tfserving import TFServingBackend
    from facemath_core.serving.model_config import entries_for_folder
    from facemath_core.serving.standin import build_server

    rng = np.random.default_rng(3)
    images = rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    z = rng.normal(size=(4, 8)).astype(np.float32)
    server, port, _ = build_server(entries_for_folder(tiny_export), "127.0.0.1", 0)
    answers = []
    try:
        for backend in (EmbeddedBackend(tiny_export), TFServingBackend(f"127.0.0.1:{port}")):
            with backend:
                answers.append(
                    {
                        "z": backend.encode_z(images, S.VAEGAN_DECODER),
                        "mean": backend.encode(images, S.VAEGAN_ENCODER)[0],
                        "images": backend.generate(z, S.VAEGAN_DECODER),
                        "logits": backend.discriminate(images, S.VAEGAN_DISCRIMINATOR),
                        "features": backend.batched(S.VAEGAN_DISCRIMINATOR, S.FEATURES, {S.IMAGES: images})[S.FEATURES],
                    }
                )
    finally:
        server.stop(0)
    embedded, served = answers
    np.testing.assert_array_equal(embedded["z"], embedded["mean"])  # the encoder's mean is its z
    for key in embedded:
        np.testing.assert_allclose(served[key], embedded[key], rtol=1e-5, atol=1e-6, err_msg=key)


# --- the commands with --model vaegan ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vaegan_encodings(cli, tiny_export, train_faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("vaegan") / "enc"
    result = cli("encode", str(train_faces), "--model", "vaegan", "--models", str(tiny_export), "--out", str(out))
    assert result.code == 0, result.stderr
    assert "with vaegan_encoder version 1" in result.stdout
    return out / "latents.npz"


def test_encode_writes_vaegan_latents_that_render_back(cli, vaegan_encodings, tiny_export, train_faces, tmp_path):
    from facemath_core.data.folders import load_folder_images, open_faces
    from facemath_core.data.images import to_unit
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    latents = load_latents(vaegan_encodings)
    assert (latents.family, latents.model, latents.source) == ("vaegan", S.VAEGAN_DECODER, "encoder")
    assert set(latents.models) == {S.VAEGAN_ENCODER, S.VAEGAN_DECODER} and latents.z.shape == (160, 8)
    with EmbeddedBackend(tiny_export) as backend:
        mean, _ = backend.encode(to_unit(load_folder_images(open_faces(train_faces), 32)), S.VAEGAN_ENCODER)
    np.testing.assert_allclose(latents.z, mean, rtol=1e-5, atol=1e-6)
    result = cli(
        "render",
        str(vaegan_encodings),
        "--names",
        latents.names[0],
        "--models",
        str(tiny_export),
        "--out",
        str(tmp_path / "r"),
    )
    assert result.code == 0, result.stderr and "vaegan latents" in result.stdout


def test_math_analogy_and_attributes_take_vaegan_latents(cli, vaegan_encodings, tiny_export, tmp_path):
    models = ["--latents", str(vaegan_encodings), "--models", str(tiny_export)]
    result = cli("math", "mean(Smiling & ~Male) - mean(~Smiling & ~Male)", *models, "--out", str(tmp_path / "m"))
    assert result.code == 0, result.stderr
    saved = load_latents(tmp_path / "m" / "latents.npz")
    assert (saved.family, saved.model) == ("vaegan", S.VAEGAN_DECODER)
    result = cli(
        "analogy", "000001", "000002", "mean(Smiling & Male)", "--size", "3", *models, "--out", str(tmp_path / "a.png")
    )
    assert result.code == 0, result.stderr
    result = cli("attributes", *models, "--out", str(tmp_path / "at"))
    assert result.code == 0, result.stderr
    assert json.loads((tmp_path / "at" / "attributes.json").read_text())["scores"]


@pytest.mark.parametrize("command", ["project", "complete"])
def test_project_and_complete_through_the_vaegan_decoder(cli, command, generated_faces, tiny_export, tmp_path):
    """Projection onto the VAE-GAN's decoder, started at its own encoder's mean (the default init), with the
    perceptual term judged by the VAE-GAN's own discriminator."""
    out = tmp_path / command
    result = cli(
        command, str(generated_faces), "--model", "vaegan", "--models", str(tiny_export), "--steps", "5",
        "--loss-plugin", "perceptual=0.1", "--batch-size", "6", "--out", str(out),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "E(x) of vaegan_encoder version 1" in result.stdout + result.stderr
    latents = load_latents(out / "latents.npz")
    assert (latents.family, latents.model) == ("vaegan", S.VAEGAN_DECODER)
    assert set(latents.models) >= {S.VAEGAN_DECODER, S.VAEGAN_ENCODER, S.VAEGAN_DISCRIMINATOR}
    assert latents.z.shape == (6, 8)


# --- bad inputs: one line, nothing written ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["train", "vaegan", "--gamma", "nan"], 2, "--gamma"),
        (["train", "vaegan", "--gamma", "-1"], 2, "--gamma"),
        (["encode", "{faces}", "--model", "gan"], 2, "--model"),
    ],
)
def test_bad_vaegan_options_are_one_line(cli, ws, train_faces, args, code, fragment):
    args = [a.replace("{faces}", str(train_faces)) for a in args]
    if args[0] == "train":
        args += ["--data", str(train_faces), "--out", str(ws / "run"), "--steps", "1"]
    else:
        args += ["--out", str(ws / "enc")]
    fails_cleanly(cli, ws, args, code, fragment)


def test_a_model_folder_without_the_vaegan_is_one_line(cli, ws, tiny_export, generated_faces):
    import shutil

    models = ws / "models"
    for name in (S.GENERATOR, S.DISCRIMINATOR, S.GAN_ENCODER):
        shutil.copytree(tiny_export / name, models / name)
    for command in (
        ["project", str(generated_faces), "--model", "vaegan"],
        ["encode", str(generated_faces), "--model", "vaegan"],
    ):
        fails_cleanly(cli, ws, [*command, "--models", str(models), "--out", str(ws / "out")], 1, "no vaegan_")
