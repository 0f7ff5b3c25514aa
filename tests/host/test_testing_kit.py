"""facemath_core.testing, the test kit for plugin authors: `check_component` raises exactly what a run prints,
`tiny_models` are real exports, `backend_round_trip` finds a wrong backend, and the `Kit` runs real commands."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from facemath_core import PluginError
from facemath_core.base import signatures as S
from facemath_core.host.backend import Backend
from facemath_core.serving.backends.embedded import EmbeddedBackend
from facemath_core.testing import (
    CommandFailed,
    Kit,
    backend_round_trip,
    check_component,
    registry,
    run,
    tiny_faces,
    tiny_models,
)

BROKEN = """
    import tensorflow as tf
    from facemath_core import LossTerm, Operator, Param, hookimpl

    def wide(target, generated, mask, disc_logits):
        return tf.reduce_sum(generated, axis=[1, 2])  # (B, 3): one value per channel

    def shrink(v, factor=0.5):
        return v * factor

    @hookimpl
    def facemath_loss_terms():
        return [LossTerm("wide", "One value per channel.", wide)]

    @hookimpl
    def facemath_operators():
        return [Operator("shrink", "v * factor.", shrink, {"factor": Param(0.5, gt=0, le=1)}, arity=1)]
"""


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "kit_plugin.py"
    path.write_text(textwrap.dedent(BROKEN))
    return path


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return tiny_faces(tmp_path_factory.mktemp("kit") / "faces", 4)


def test_check_component_raises_exactly_what_a_run_prints(plugin, kit_models, faces, tmp_path):
    """The same PluginError, word for word: the kit runs the run's own checks."""
    images = sorted((faces / "img_align_celeba").glob("*.png"))[:1]
    result = run("project", *images, "--models", kit_models, "-l", "wide", "--steps", 1, "-o", tmp_path / "out",
                 plugins=[plugin])  # fmt: skip
    assert result.code == 1
    wide = registry(plugin).get("loss", "wide")
    with pytest.raises(PluginError) as info:
        check_component(wide, models=kit_models)
    assert str(info.value) == result.error
    assert result.error == (
        f"loss 'wide' (--plugin {plugin}) returned shape (2, 3) for a batch of 2, expected a float tensor of shape "
        f"(2,): one value per image"
    )


def test_check_component_checks_params_through_the_schema(plugin):
    shrink = registry(plugin).get("operator", "shrink")
    check_component(shrink, {"factor": "0.25"})
    with pytest.raises(Exception, match=r"factor of operator 'shrink' .* must be a number > 0 and <= 1"):
        check_component(shrink, {"factor": "2"})


@pytest.mark.slow
def test_every_builtin_passes_its_checks_on_the_tiny_models(kit_models):
    for component in registry().components():
        if component.name == "file":
            continue  # refuses inputs without mask files, with its own message
        check_component(component, models=kit_models)
        check_component(component)  # generic inputs: an initialiser that needs models is not run


@pytest.mark.slow
def test_tiny_models_are_real_exports(kit_models, tmp_path):
    backend = EmbeddedBackend(kit_models)
    for model in (*S.MODEL_NAMES, S.PROJECTOR):
        assert backend.version(model) == 1
    assert backend.metadata(S.GENERATOR)["z_dim"] == 8 and backend.metadata(S.GENERATOR)["image_size"] == 32
    z = np.random.default_rng(0).uniform(-1, 1, (3, 8)).astype(np.float32)
    images = backend.generate(z)
    assert images.shape == (3, 32, 32, 3) and np.abs(images).max() <= 1
    assert backend.judge(images).shape == (3, len(backend.metadata(S.ORACLE)["attribute_names"]))
    info = run("info", "--models", kit_models)
    assert info.code == 0 and all(name in info.stdout for name in S.MODEL_NAMES)
    # Seeded: a second build with the same seed is the same generator; the folder is a cache.
    again = tiny_models(tmp_path / "again")
    np.testing.assert_array_equal(EmbeddedBackend(again).generate(z), images)
    stamp = (again / "generator" / "1" / "saved_model.pb").stat().st_mtime_ns
    tiny_models(again)
    assert (again / "generator" / "1" / "saved_model.pb").stat().st_mtime_ns == stamp


class Shifted(EmbeddedBackend):
    """A backend whose generator is off by 0.01: the round trip must catch it."""

    def generate(self, z, model=S.GENERATOR):
        return super().generate(z, model) + 0.01


class Remote(EmbeddedBackend):
    """The embedded models behind the base class's remote path: differentiable calls through `call` and the
    models' vjp signatures, as a server backend gets them."""

    differentiable_decoder = Backend.differentiable_decoder
    differentiable_discriminator = Backend.differentiable_discriminator
    differentiable_encoder = Backend.differentiable_encoder


@pytest.mark.slow
def test_backend_round_trip(kit_models):
    same = backend_round_trip(EmbeddedBackend(kit_models), kit_models)
    assert set(same) >= {"generate", "decoder_vjp", "discriminator_grad", "judge", "differentiable_decoder gradient"}
    assert max(same.values()) == 0.0
    # The default (remote) differentiable decoder agrees with TensorFlow's own gradient through the model.
    remote = backend_round_trip(Remote(kit_models), kit_models)
    assert remote["differentiable_decoder gradient"] < 1e-5
    with pytest.raises(AssertionError, match=r"generate differs from the embedded backend by 0.01"):
        backend_round_trip(Shifted(kit_models), kit_models)


@pytest.mark.slow
def test_the_kit_runs_commands_with_the_plugin(plugin, kit_models, faces, tmp_path):
    kit = Kit(kit_models, faces, tmp_path, [plugin])
    latents = kit.project(steps=2)
    assert latents.names == ["000001.png", "000002.png"] and np.isfinite(latents.z).all()
    recorded = {c["kind"]: c for c in latents.config["components"]}
    assert recorded["optimizer"]["provider"].startswith("facemath ") and recorded["optimizer"]["name"] == "adam"
    result = kit.math("shrink(000003)", "--param", "shrink.factor=0.25")
    from facemath_core.latent.latents import load_latents

    projected = load_latents(kit.latents())
    np.testing.assert_allclose(result.z[0], 0.25 * projected.z[projected.names.index("000003.png")], rtol=1e-6)
    assert result.config["operators"] == [
        {
            "kind": "operator",
            "name": "shrink",
            "params": {"factor": 0.25},
            "provider": f"--plugin {plugin}",
            "plugin": str(plugin),
            "distribution": None,
            "version": None,
        }
    ]
    with pytest.raises(CommandFailed, match=r"loss 'wide' \(--plugin .*\) returned shape \(2, 3\)"):
        kit.project("-l", "wide")
