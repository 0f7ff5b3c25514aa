"""Sampled completions (issue 31): `facemath complete --sampler hmc --samples N` on the tiny models, the energy the
sampler sees, and the command's bad inputs. The sampler itself is tested on known distributions in
tests/plugins/test_hmc.py."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facemath_core.data.images import from_unit, to_unit
from facemath_core.host.manager import load_registry
from facemath_core.latent.latents import load_latents, read_npz
from facemath_core.projection.projector import Projector
from facemath_core.projection.sampling import SAMPLER_PRESETS, numpy_energy, sampling_config
from facemath_core.projection.settings import projection_config
from facemath_core.serving.backends.embedded import EmbeddedBackend
from facemath_core.serving.backends.tfserving import TFServingBackend
from facemath_core.serving.model_config import entries_for_folder
from facemath_core.serving.standin import build_server
from tests.support import fails_cleanly, run_in_process, write_generated_faces

SAMPLES = 3
# Steps large enough for the tiny generator's samples to move visibly in a few proposals (the defaults are Amos').
HMC = ["--param", "hmc.eps=0.05", "--param", "hmc.L=5", "--param", "hmc.burn_in=2"]


@pytest.fixture(scope="module")
def backend(tiny_export):
    return EmbeddedBackend(tiny_export)


@pytest.fixture(scope="module")
def faces(backend, tmp_path_factory):
    """Three faces the tiny generator made, as PNG files."""
    return write_generated_faces(backend, tmp_path_factory.mktemp("sampling_faces"), 3, seed=11)


@pytest.fixture(scope="module")
def sampled(tiny_export, faces, tmp_path_factory):
    """One `complete --sampler hmc` run: (its folder, the command's result)."""
    out = tmp_path_factory.mktemp("sampled") / "completions"
    args = ["complete", str(faces), "--models", str(tiny_export), "--steps", "10", "--mask", "center"]
    result = run_in_process(*args, "--sampler", "hmc", "--samples", str(SAMPLES), *HMC, "-o", str(out))
    assert result.code == 0, result.stderr
    return out, result


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_complete_with_a_sampler_writes_every_sample(sampled, faces):
    out, result = sampled
    names = [f"face{i}.png" for i in range(3)]
    arrays = read_npz(out / "latents.npz")
    latents = load_latents(out / "latents.npz")  # still a latents file every tool reads: z is the optimised z
    assert latents.names == names and latents.z.shape == (3, 8)
    z = arrays["sample_z"]
    assert z.shape == (3, SAMPLES, 8) and np.abs(z).max() <= 1.0  # the uniform prior's box
    acceptance = arrays["sample_acceptance"]
    assert acceptance.shape == (3,) and ((acceptance >= 0) & (acceptance <= 1)).all()
    assert '"sampler": "hmc"' in str(arrays["sampler"]) and '"eps": 0.05' in str(arrays["sampler"])
    for name, rate in zip(names, acceptance, strict=True):
        assert f"  sampled {name}: {SAMPLES} samples, acceptance rate {rate:.2f}" in result.stdout
    flat = load_latents(out / "samples.npz")  # the flat layout math and render read
    assert flat.names == [f"face{i}_sample_{k:03d}.png" for i in range(3) for k in range(1, SAMPLES + 1)]
    np.testing.assert_array_equal(flat.z, z.reshape(3 * SAMPLES, 8))
    assert flat.source == "sampling" and flat.model == latents.model
    assert (out / "samples_sheet.png").is_file() and (out / "contact_sheet.png").is_file()


def test_samples_keep_every_known_pixel_and_differ_in_the_hole(sampled, faces):
    """Every sample keeps the input's known pixels exactly (the overlay blend, as the single completion does), the
    samples of a face differ inside the hole, and a face's samples moved from its optimised z."""
    out, _ = sampled
    arrays = read_npz(out / "latents.npz")
    for i in range(3):
        original = read_png(faces / f"face{i}.png")
        known = np.ones(original.shape[:2], bool)
        quarter = original.shape[0] // 4  # the center mask: the middle half is unknown
        known[quarter:-quarter, quarter:-quarter] = False
        samples = [read_png(out / "completions" / f"face{i}" / f"sample_{k:03d}.png") for k in range(1, SAMPLES + 1)]
        for sample in samples:
            np.testing.assert_array_equal(sample[known], original[known])
        hole = np.stack([s[~known] for s in samples]).astype(int)
        assert np.abs(hole - hole[0]).max() > 0, f"face{i}: every sample has the same hole"
        if arrays["sample_acceptance"][i] > 0:
            assert not np.allclose(arrays["sample_z"][i], arrays["z"][i]), f"face{i}: never left its optimised z"


def test_the_hole_of_a_sample_is_the_generator_at_its_z(sampled, cli, tiny_export, tmp_path):
    """`render` of samples.npz (an independent path: z -> the generator) gives each sample's hole."""
    out, _ = sampled
    result = cli(
        "render", out / "samples.npz", "--models", tiny_export, "--names", "face1_sample_002", "-o", tmp_path / "r"
    )
    assert result.code == 0, result.stderr
    rendered = read_png(tmp_path / "r" / "face1_sample_002.png")
    sample = read_png(out / "completions" / "face1" / "sample_002.png")
    np.testing.assert_array_equal(sample[10:22, 10:22], rendered[10:22, 10:22])  # inside the 32x32 center hole


def test_the_sampler_sees_the_projection_loss_and_its_gradient(backend):
    """`numpy_energy` (the compiled function the sampler calls) gives each image's weighted total, the projection's
    objective, and its gradient as an eager GradientTape of `Projector.energy` computes it. (That gradient is the
    objective's own: tests/projection/test_loop.py checks it by central differences at the optimum; at a random z
    the L1 term's and the leaky ReLUs' kinks make finite differences useless as a reference.)"""
    import tensorflow as tf

    registry = load_registry(builtins_only=True)
    config = projection_config(registry, loss_plugins=["perceptual"], init="uniform", steps=5, mask="center")
    projector = Projector(backend, registry, config)
    rng = np.random.default_rng(0)
    targets = to_unit(from_unit(backend.generate(rng.uniform(-0.5, 0.5, (2, 8)).astype(np.float32))))
    masks = np.ones((2, 32, 32), np.float32)
    masks[:, 8:24, 8:24] = 0
    z = rng.uniform(-0.5, 0.5, (2, 8))
    energy = projector.energy(targets, masks)
    u, gradient = numpy_energy(energy)(z)
    assert u.dtype == gradient.dtype == np.float64 and gradient.shape == (2, 8)
    variable = tf.constant(z, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(variable)
        values, total = energy.values(variable)
    np.testing.assert_allclose(u, total.numpy(), rtol=1e-6)
    np.testing.assert_allclose(u, values["contextual"].numpy() + 0.1 * values["perceptual"].numpy(), rtol=1e-5)
    np.testing.assert_allclose(gradient, tape.gradient(total, variable).numpy(), rtol=1e-4, atol=1e-4)


def test_the_sampler_takes_its_own_params_and_amos_preset():
    """`--param hmc.KEY=V` goes to the sampler and the rest to the projection; `--preset amos2016` gives Amos'
    `--hmcBeta 0.2 --hmcEps 0.001 --hmcL 100` (dcgan-completion's complete.py), which a --param still overrides."""
    registry = load_registry(builtins_only=True)
    config, rest = sampling_config(registry, "hmc", 4, ["hmc.eps=0.01", "center.scale=0.3", "hmc.L=7"])
    assert rest == ["center.scale=0.3"] and config.samples == 4
    assert config.params == {"beta": 0.2, "eps": 0.01, "L": 7, "burn_in": 10, "thin": 1}
    preset, _ = sampling_config(registry, "hmc", 2, ["hmc.beta=1"], preset="amos2016")
    assert (preset.params["beta"], preset.params["eps"], preset.params["L"]) == (1.0, 0.001, 100)
    assert SAMPLER_PRESETS["amos2016"]["hmc"] == {"beta": 0.2, "eps": 0.001, "L": 100}


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["complete", "--sampler", "hmc", "--samples", "0"], 1, "--samples 0: must be at least 1"),
        (["complete", "--sampler", "nuts", "--samples", "2"], 1, "--sampler nuts: unknown sampler; known: hmc"),
        (["project", "--sampler", "hmc"], 1, "only `facemath complete` samples"),
        (["complete", "--samples", "3"], 1, "--samples 3: needs --sampler"),
        (["complete", "--sampler", "hmc", "--param", "hmc.eps=-1"], 1, "eps of sampler 'hmc'"),
        (["complete", "--sampler", "hmc", "--param", "hmc.bogus=1"], 1, "has no parameter 'bogus'"),
        (["complete", "--sampler", "hmc", "--shard", "1/2"], 1, "not with --shard"),
        (["complete", "--sampler", "hmc", "--resume", "elsewhere"], 1, "not with --resume"),
        (["complete", "--sampler", "hmc", "--samples", "two"], 2, "--samples"),
    ],
)
def test_bad_sampling_options_are_one_line(cli, tiny_export, faces, tmp_path, args, code, fragment):
    command, *rest = args
    full = [command, str(faces), "--models", str(tiny_export), "--steps", "2", *rest, "-o", str(tmp_path / "out")]
    fails_cleanly(cli, tmp_path, full, code, fragment)


@pytest.fixture(scope="module")
def server(tiny_export):
    """The tiny export, projector model included, on a stand-in TF Serving server on loopback."""
    stand_in, port, _ = build_server(entries_for_folder(tiny_export), "127.0.0.1", 0)
    yield f"127.0.0.1:{port}"
    stand_in.stop(0)


def test_the_sampler_energy_through_tf_serving_is_the_embedded_one(backend, server):
    """Through TF Serving, U and dU/dz come from the projector model in one request per evaluation, and agree
    with the embedded backend's autodiff at the same z to float32 accuracy."""
    registry = load_registry(builtins_only=True)
    config = projection_config(registry, loss_plugins=["perceptual"], init="uniform", steps=5, mask="center")
    rng = np.random.default_rng(1)
    targets = to_unit(from_unit(backend.generate(rng.uniform(-0.5, 0.5, (3, 8)).astype(np.float32))))
    masks = np.ones((3, 32, 32), np.float32)
    masks[:, 8:24, 8:24] = 0
    z = rng.uniform(-0.9, 0.9, (3, 8))
    local = numpy_energy(Projector(backend, registry, config).energy(targets, masks))(z)
    with TFServingBackend(server) as remote_backend:
        projector = Projector(remote_backend, registry, config)
        assert projector.fused is not None  # the projector model's one request, not three
        remote = numpy_energy(projector.energy(targets, masks))(z)
    np.testing.assert_allclose(remote[0], local[0], rtol=1e-5)
    np.testing.assert_allclose(remote[1], local[1], rtol=1e-3, atol=1e-3 * np.abs(local[1]).max())


def test_complete_with_a_sampler_through_tf_serving(cli, server, faces, tmp_path):
    out = tmp_path / "served"
    args = ["complete", str(faces / "face0.png"), "--server", server, "--steps", "5", "--sampler", "hmc"]
    result = cli(*args, "--samples", "2", *HMC, "-o", str(out))
    assert result.code == 0, result.stderr
    assert "sampled face0.png: 2 samples, acceptance rate" in result.stdout
    assert read_npz(out / "latents.npz")["sample_z"].shape == (1, 2, 8)
    original = read_png(faces / "face0.png")
    for k in (1, 2):
        sample = read_png(out / "completions" / "face0" / f"sample_00{k}.png")
        np.testing.assert_array_equal(sample[:8], original[:8])  # the known band above the center hole
