"""The template's tests: its components keep their contracts, give known answers, and work in real runs.

Run them after `pip install -e .` (the plugin is then found through its entry point, as users get it): `pytest`.
"""

import facemath_plugin_template as plugin
import numpy as np
import pytest

from facemath_core import LossTerm, PluginError
from facemath_core.testing import check_component, registry

COMPONENTS = [*plugin.facemath_loss_terms(), *plugin.facemath_operators(), *plugin.facemath_masks()]
PROVIDER = "facemath-plugin-template 0.1.0"


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.name)
def test_every_component_keeps_its_contract(component):
    """The checks a projection runs before its first step: signature, shapes, finiteness, a gradient."""
    check_component(component)


def test_a_broken_component_is_one_line_naming_it():
    broken = LossTerm("broken", "Returns one value per pixel.", lambda target, generated, mask, disc_logits: generated)
    with pytest.raises(PluginError, match=r"loss 'broken' \(provider unknown\) returned shape \(2, 32, 32, 3\)"):
        check_component(broken)


def test_the_components_are_registered_with_this_distribution():
    installed = registry(installed=True)  # as the command line loads plugins: through the entry point
    for component in COMPONENTS:
        found = installed.get(component.kind, component.name)
        assert found.provider == PROVIDER and found.provider.version == "0.1.0"


def test_edges_known_answers():
    """A flat image against a vertical step of height 2: 2 per row crossing the step, on 3 channels."""
    import tensorflow as tf

    target = np.zeros((1, 4, 4, 3), np.float32)
    generated = target.copy()
    generated[:, :, 2:, :] = 2.0
    mask = np.ones((1, 4, 4, 1), np.float32)
    l1 = plugin.edges(tf.constant(target), tf.constant(generated), tf.constant(mask))
    l2 = plugin.edges(tf.constant(target), tf.constant(generated), tf.constant(mask), norm="l2")
    np.testing.assert_allclose(l1.numpy(), [4 * 3 * 2.0])
    np.testing.assert_allclose(l2.numpy(), [4 * 3 * 4.0])
    hidden = mask.copy()
    hidden[:, :, 2, :] = 0.0  # the step's right side unknown: no difference crosses it
    np.testing.assert_allclose(plugin.edges(tf.constant(target), tf.constant(generated), tf.constant(hidden)), [0.0])


def test_the_loss_term_in_a_projection(facemath):
    latents = facemath.project("--loss-plugin", "edges=0.1", "--param", "edges.norm=l2")
    assert set(latents.losses) == {"total", "contextual", "edges"}
    assert np.isfinite(latents.losses["edges"]).all() and (latents.losses["edges"] > 0).all()
    recorded = {c["name"]: c for c in latents.config["components"]}
    assert recorded["edges"]["provider"] == PROVIDER and recorded["edges"]["params"] == {"norm": "l2"}


def test_the_operator_in_an_expression(facemath):
    """towards(a, b) with amount 0.25 is a + 0.25 (b - a), computed from the latents it was given."""
    from facemath_core.latent.latents import load_latents

    result = facemath.math("towards(000001, 000002)", "--param", "towards.amount=0.25")
    faces = load_latents(facemath.latents())
    a, b = (faces.z[faces.names.index(name)] for name in ("000001.png", "000002.png"))
    np.testing.assert_allclose(result.z[0], a + 0.25 * (b - a), rtol=1e-6)


def test_the_mask_in_a_completion(facemath):
    out = facemath.complete("--mask", "stripes", "--param", "stripes.width=8")
    assert sorted(p.name for p in (out / "completions").iterdir()) == ["000001.png", "000002.png"]


def test_a_bad_parameter_is_refused_before_any_work(facemath):
    out = facemath.workdir / "refused"
    args = ["towards(000001, 000002)", "--latents", facemath.latents(), "--models", facemath.models, "-o", out]
    result = facemath.run("math", *args, "--param", "towards.amount=2")
    assert result.code == 1 and not out.exists()
    assert result.error == (
        f"--param towards.amount=2: amount of operator 'towards' ({PROVIDER}) must be a number >= 0 and <= 1"
    )
