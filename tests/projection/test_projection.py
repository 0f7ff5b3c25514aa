"""Projection and completion with tiny exported models: the loop, its options, resume, failures, the CLI."""

import json
import textwrap
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from facemath_core.base.errors import FacemathError
from facemath_core.data.images import from_unit
from facemath_core.host.manager import load_registry
from facemath_core.latent.latents import load_latents
from facemath_core.projection.projector import (
    LossSpec,
    ProjectionConfig,
    Projector,
    parse_loss_options,
    parse_params,
)
from facemath_core.projection.run import FolderSink, ProjectionRun, load_inputs, load_resume, resumed_config
from facemath_core.serving.backends.embedded import EmbeddedBackend


@pytest.fixture(scope="module")
def backend(tiny_export):
    return EmbeddedBackend(tiny_export)


@pytest.fixture(scope="module")
def faces(backend, tmp_path_factory):
    """Six images the tiny generator can make exactly, from known z."""
    folder = tmp_path_factory.mktemp("faces")
    z = np.random.default_rng(42).uniform(-0.8, 0.8, (6, 8)).astype(np.float32)
    images = backend.generate(z)
    for i, image in enumerate(images):
        Image.fromarray(from_unit(image)).save(folder / f"face{i}.png")
    return folder, z


def config(**changes):
    return replace(ProjectionConfig(steps=150, batch_size=8, patience=1000), **changes)


def to_folder(backend, registry, config, out, inputs, **options):
    """What `facemath project` runs: a projection run into a result folder; its latents."""
    resuming = options.pop("resuming", False)
    sink = FolderSink(out, resuming=resuming)
    return ProjectionRun(backend, registry, config).run(inputs, sink, **options).latents


def test_projection_recovers_generated_images(backend, faces):
    folder, _ = faces
    inputs = load_inputs([str(folder)], 32)
    projector = Projector(backend, load_registry(builtins_only=True), config(restarts=1))
    z0 = projector.initial_z(inputs.images, np.random.default_rng(0))
    before = np.abs(backend.generate(z0) - inputs.images).mean()
    result = projector.project(inputs.images, np.ones((6, 32, 32), np.float32), z0)
    after = np.abs(backend.generate(result.z) - inputs.images).mean()
    assert after < 0.35 * before
    assert np.all(np.abs(result.z) <= 1.0)  # clip keeps z in the prior's box
    assert result.steps == 150 and not result.failed


@pytest.mark.parametrize("constraint", ["clip", "stochastic", "tanh", "none"])
def test_constraints(backend, faces, constraint):
    folder, _ = faces
    inputs = load_inputs([str(folder)], 32)
    projector = Projector(
        backend,
        load_registry(builtins_only=True),
        config(constraint=constraint, steps=5, optimizer="sgd", optimizer_params={"lr": 1000.0}),
    )
    z0 = projector.initial_z(inputs.images, np.random.default_rng(0))
    result = projector.project(inputs.images, np.ones((6, 32, 32), np.float32), z0)
    if constraint != "none":
        assert np.abs(result.z).max() <= 1.0 + 1e-6
        assert (
            np.abs(result.state["variable"] if constraint != "tanh" else np.tanh(result.state["variable"])).max() <= 1
        )
    else:  # a large learning rate leaves the box when nothing holds z in it
        assert np.abs(result.state["variable"]).max() > 1.0


def test_stops_when_no_image_improves(backend, faces):
    folder, _ = faces
    inputs = load_inputs([str(folder)], 32)
    projector = Projector(backend, load_registry(builtins_only=True), config(steps=5000, patience=20, tolerance=0.5))
    z0 = projector.initial_z(inputs.images, np.random.default_rng(0))
    assert projector.project(inputs.images, np.ones((6, 32, 32), np.float32), z0).steps < 200


@pytest.mark.slow
def test_restarts_and_encoder_init(backend, faces, tmp_path):
    folder, _ = faces
    registry = load_registry(builtins_only=True)
    inputs = load_inputs([str(folder)], 32)
    one = to_folder(backend, registry, config(steps=40), tmp_path / "one", inputs, warn=lambda _: None)
    four = to_folder(backend, registry, config(steps=40, restarts=4), tmp_path / "four", inputs, warn=lambda _: None)
    assert four.losses["total"].mean() <= one.losses["total"].mean()
    encoded = to_folder(backend, registry, config(steps=5, init="encoder"), tmp_path / "enc", inputs, warn=print)
    assert encoded.models["gan_encoder"] == 1 and encoded.z.shape == (6, 8)


def test_perceptual_term_uses_the_discriminator(backend, faces, tmp_path):
    folder, _ = faces
    registry = load_registry(builtins_only=True)
    losses = parse_loss_options(["perceptual"], ProjectionConfig().losses, registry)
    assert [(s.name, s.weight) for s in losses] == [("contextual", 1.0), ("perceptual", 0.1)]
    latents = to_folder(
        backend, registry, config(losses=losses, steps=10), tmp_path / "p", load_inputs([str(folder)], 32)
    )
    assert set(latents.losses) == {"total", "contextual", "perceptual"}
    assert latents.models == {"generator": 1, "discriminator": 1}
    np.testing.assert_allclose(
        latents.losses["total"], latents.losses["contextual"] + 0.1 * latents.losses["perceptual"], rtol=1e-4
    )


def test_loss_option_parsing():
    registry = load_registry(builtins_only=True)
    base = ProjectionConfig().losses
    assert [
        (s.name, s.weight) for s in parse_loss_options(["perceptual=0.5", "contextual=0", "l2=2"], base, registry)
    ] == [("perceptual", 0.5), ("l2", 2.0)]
    with pytest.raises(FacemathError, match="--loss-plugin percept: unknown loss; known: contextual"):
        parse_loss_options(["percept"], base, registry)
    with pytest.raises(FacemathError, match="--loss-plugin perceptual=lots: weight 'lots' is not a number"):
        parse_loss_options(["perceptual=lots"], base, registry)
    with pytest.raises(FacemathError, match="every loss term has weight 0"):
        parse_loss_options(["contextual=0"], base, registry)
    # Text until apply_params types it by the parameter's default (tests/host/test_plugins.py).
    assert parse_params(["center.scale=0.3", "perceptual.form=saturating"]) == {
        "center": {"scale": "0.3"},
        "perceptual": {"form": "saturating"},
    }
    with pytest.raises(FacemathError, match="--param scale: expected NAME.KEY=VALUE"):
        parse_params(["scale"])


NAN_PLUGIN = """
    import tensorflow as tf
    from facemath_core import hookimpl
    from facemath_core.host.components import LossTerm

    def explode_first(target, generated, mask, disc_logits=None):
        value = tf.reduce_sum(tf.abs(generated - target), axis=[1, 2, 3])
        first = tf.equal(tf.range(tf.shape(value)[0]), 0)
        return tf.where(first, value * float("nan"), value)

    @hookimpl
    def facemath_loss_terms():
        return [LossTerm("explode-first", "NaN for the first image.", explode_first)]
"""


def test_nan_stops_that_image_only(backend, faces, tmp_path):
    folder, _ = faces
    plugin = tmp_path / "nan_plugin.py"
    plugin.write_text(textwrap.dedent(NAN_PLUGIN))
    registry = load_registry([str(plugin)], builtins_only=True)
    warnings = []
    cfg = config(steps=20, losses=(LossSpec("explode-first", 1.0),))
    latents = to_folder(backend, registry, cfg, tmp_path / "out", load_inputs([str(folder)], 32), warn=warnings.append)
    assert latents.failed.tolist() == [True] + [False] * 5
    assert len(warnings) == 1 and "face0.png: the loss became NaN or infinite at step 0" in warnings[0]
    assert np.all(np.isfinite(latents.z))
    assert np.all(np.isfinite(latents.losses["total"][1:]))


@pytest.mark.slow
def test_resume_continues_exactly(backend, faces, tmp_path):
    folder, _ = faces
    registry = load_registry(builtins_only=True)
    inputs = load_inputs([str(folder)], 32)
    straight = to_folder(backend, registry, config(steps=40), tmp_path / "straight", inputs)
    to_folder(backend, registry, config(steps=20), tmp_path / "split", inputs)
    _, arrays = load_resume(tmp_path / "split")
    resumed = to_folder(
        backend, registry, resumed_config(arrays, 40), tmp_path / "split", inputs, resume_from=arrays, resuming=True
    )
    np.testing.assert_allclose(resumed.z, straight.z, atol=1e-6)
    history = (tmp_path / "split" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in history] == list(range(1, 41))


def test_result_folder(backend, faces, tmp_path):
    folder, _ = faces
    out = tmp_path / "out"
    cfg = config(steps=5, mask="center")
    latents = to_folder(backend, load_registry(builtins_only=True), cfg, out, load_inputs([str(folder)], 32))
    assert sorted(p.name for p in out.iterdir()) == [
        "completions",
        "contact_sheet.png",
        "history.jsonl",
        "latents.npz",
        "reconstructions",
        "resume.npz",
    ]
    assert sorted(p.name for p in (out / "completions").iterdir()) == [f"face{i}.png" for i in range(6)]
    assert Image.open(out / "contact_sheet.png").size == (4 * 130 + 2, 19 + 6 * (19 + 130) + 2)  # 32 px tiles at 4x
    loaded = load_latents(out / "latents.npz")
    assert loaded.names == latents.names and loaded.family == "gan" and loaded.model == "generator"
    np.testing.assert_array_equal(loaded.z, latents.z)
    assert loaded.config["mask"] == "center" and loaded.config["steps"] == 5
    with np.load(out / "latents.npz", allow_pickle=False) as data:  # no pickles anywhere
        assert "z" in data.files
    assert not (tmp_path / "out.partial").exists()
    with pytest.raises(FacemathError, match="already exists"):
        to_folder(backend, load_registry(builtins_only=True), cfg, out, load_inputs([str(folder)], 32))


@pytest.mark.slow
def test_cli_project_and_errors(cli, tiny_export, faces, tmp_path):
    folder, _ = faces
    out = tmp_path / "cli"
    args = ["project", str(folder), "--models", str(tiny_export), "--steps", "3", "--out", str(out)]
    result = cli(*args, "--loss-plugin", "perceptual")
    assert result.code == 0, result.stderr
    assert "projected 6 images" in result.stdout and (out / "latents.npz").exists()

    def one_line(result, *fragments):
        assert result.code == 1, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip() and "warning" not in line]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        for fragment in fragments:
            assert fragment in lines[0], lines[0]

    one_line(cli(*args), "already exists")
    args[-1] = str(tmp_path / "cli2")
    one_line(cli(*args, "--loss-plugin", "perceptul"), "--loss-plugin perceptul: unknown loss; known:")
    one_line(cli(*args, "--loss-plugin", "perceptual=x"), "weight 'x' is not a number")
    one_line(cli(*args, "--mask", "file", "--param", f"file.dir={tmp_path}"), "mask file", "does not exist")
    one_line(cli(*args, "--preset", "nobody2020"), "--preset nobody2020: unknown preset")
    one_line(cli(*args, "--optimizer", "lbfgs"), "--optimizer lbfgs: unknown optimizer")
    assert not (tmp_path / "cli2").exists()


@pytest.mark.slow
def test_cli_resizes_with_a_warning_or_refuses(cli, tiny_export, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(np.full((50, 40, 3), 128, np.uint8)).save(big / "big.png")
    base = ["project", str(big), "--models", str(tiny_export), "--steps", "2"]
    result = cli(*base, "--out", str(tmp_path / "a"))
    assert result.code == 0 and "big.png: resized to 32x32" in result.stderr
    refused = cli(*base, "--out", str(tmp_path / "b"), "--no-resize")
    assert refused.code == 1 and "big.png: 40x50 is not the model's 32x32" in refused.stderr


@pytest.mark.parametrize("mask", ["center", "left", "right", "top", "bottom", "random", "grid", "lowres"])
@pytest.mark.parametrize("blend", ["overlay", "poisson"])
def test_complete_with_every_mask_and_blender(backend, faces, tmp_path, mask, blend):
    folder, _ = faces
    registry = load_registry(builtins_only=True)
    losses = (LossSpec("contextual", 1.0), LossSpec("lowres", 1.0)) if mask == "lowres" else ProjectionConfig().losses
    out = tmp_path / "out"
    to_folder(
        backend, registry, config(steps=3, mask=mask, blend=blend, losses=losses), out, load_inputs([str(folder)], 32)
    )
    completed = np.asarray(Image.open(out / "completions" / "face0.png"))
    original = np.asarray(Image.open(folder / "face0.png"))
    from facemath_core.projection.run import build_masks

    known = build_masks(registry, config(mask=mask), ["face0.png"], 32)[0] > 0.5
    # Both blenders keep every known pixel exactly (up to 8-bit rounding); lowres knows no exact pixel.
    assert known.any() == (mask != "lowres")
    if known.any():
        assert np.abs(completed[known].astype(int) - original[known].astype(int)).max() <= 1


def test_one_traced_step_per_batch_shape(backend, faces):
    """Batches of one shape share one traced step function, and every batch still starts afresh: the same batch
    twice gives the same result (Adam's moments, the finished rows and the noise are reset), and a batch of
    another shape gets its own trace."""
    folder, _ = faces
    inputs = load_inputs([str(folder)], 32)
    projector = Projector(backend, load_registry(builtins_only=True), config(steps=20, constraint="stochastic"))
    masks = np.ones((6, 32, 32), np.float32)
    z0 = projector.initial_z(inputs.images, np.random.default_rng(0))
    first = projector.project(inputs.images, masks, z0)
    second = projector.project(inputs.images, masks, z0)
    projector.project(inputs.images[:3], masks[:3], z0[:3])
    np.testing.assert_array_equal(first.z, second.z)
    np.testing.assert_array_equal(first.state["optimizer"][-1], second.state["optimizer"][-1])
    assert [loop.advance.experimental_get_tracing_count() for loop in projector._loops.values()] == [1, 1]
