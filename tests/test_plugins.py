"""The plugin host: hookspecs, documentation, registration, validation."""

import inspect
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from facemath_core import hookspecs
from facemath_core.errors import FacemathError
from facemath_core.plugins import build_plugin_manager, load_registry

from .conftest import run_cli

HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("facemath_"))
DOCS = Path(__file__).parent.parent / "docs" / "plugins.md"


def signature_of(name: str) -> str:
    function = getattr(hookspecs, name)
    parameters = ", ".join(str(p) for p in inspect.signature(function).parameters.values())
    return f"{name}({parameters}) -> {inspect.signature(function).return_annotation}"


def test_there_are_hooks_for_every_kind():
    assert HOOKS == [
        "facemath_blenders",
        "facemath_loss_terms",
        "facemath_masks",
        "facemath_operators",
        "facemath_optimizers",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(hook):
    assert f"### `{signature_of(hook)}`" in DOCS.read_text()


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docstring_and_a_test(hook):
    assert getattr(hookspecs, hook).__doc__.strip()
    assert f"test_hook_{hook}" in globals(), f"write test_hook_{hook} in {__file__}"


def test_every_documented_hook_exists():
    documented = re.findall(r"^### `(facemath_\w+)\(", DOCS.read_text(), re.M)
    assert sorted(documented) == HOOKS


def test_builtins_register_through_the_entry_point_group():
    manager = build_plugin_manager()
    names = {name for name, _ in manager.list_name_plugin()}
    assert {"builtin-losses", "builtin-optimizers", "builtin-masks", "builtin-blenders", "builtin-operators"} <= names
    assert {dist.project_name for _, dist in manager.list_plugin_distinfo()} >= {"facemath"}


def test_hook_facemath_loss_terms():
    import tensorflow as tf

    registry = load_registry()
    assert registry.names("loss") == ["contextual", "l2", "lowres", "perceptual", "weighted-contextual"]
    target = tf.zeros((2, 8, 8, 3))
    generated = tf.concat([tf.zeros((1, 8, 8, 3)), tf.ones((1, 8, 8, 3))], 0)
    mask = tf.ones((2, 8, 8, 1))
    value = registry.get("loss", "contextual").function(target, generated, mask, None)
    np.testing.assert_allclose(value.numpy(), [0.0, 8 * 8 * 3])
    assert registry.get("loss", "perceptual").needs_discriminator


def test_hook_facemath_optimizers():
    registry = load_registry()
    assert registry.names("optimizer") == ["adam", "momentum", "sgd"]
    optimizer = registry.get("optimizer", "adam").function(**{"lr": 0.5})
    assert float(optimizer.learning_rate) == 0.5


def test_hook_facemath_operators():
    registry = load_registry()
    assert {"lerp", "slerp", "project_out"} <= set(registry.names("operator"))
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(registry.get("operator", "lerp").function(a, b, 0.5), [0.5, 0.5])
    np.testing.assert_allclose(registry.get("operator", "slerp").function(a, b, 0.5), [2**-0.5, 2**-0.5], atol=1e-6)
    np.testing.assert_allclose(registry.get("operator", "project_out").function(np.array([1.0, 1.0]), a), [0, 1])


def test_hook_facemath_masks():
    registry = load_registry()
    assert registry.names("mask") == sorted(
        ["full", "center", "left", "right", "top", "bottom", "random", "grid", "lowres", "file"]
    )
    mask = registry.get("mask", "center").function((8, 8), np.random.default_rng(0), "x.png")
    assert mask.sum() == 64 - 16 and mask[4, 4] == 0 and mask[0, 0] == 1


def test_hook_facemath_blenders():
    registry = load_registry()
    assert registry.names("blender") == ["overlay", "poisson"]
    target, generated = np.zeros((4, 4, 3)), np.ones((4, 4, 3))
    mask = np.zeros((4, 4))
    mask[:, :2] = 1
    out = registry.get("blender", "overlay").function(target, generated, mask)
    assert out[:, :2].max() == 0 and out[:, 2:].min() == 1


def _write_plugin(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


MASK_PLUGIN = """
    import numpy as np
    from facemath_core import hookimpl
    from facemath_core.components import Mask

    @hookimpl
    def facemath_masks():
        return [Mask("{name}", "A test mask.", lambda shape, rng, image_name: np.ones(shape, np.float32))]
"""


def test_a_plugin_file_from_the_command_line(tmp_path):
    plugin = _write_plugin(tmp_path / "extra.py", MASK_PLUGIN.format(name="everything"))
    registry = load_registry([str(plugin)])
    assert "everything" in registry.names("mask")
    result = run_cli("--plugin", str(plugin), "plugins", "--kind", "mask")
    assert result.returncode == 0, result.stderr
    assert "everything" in result.stdout and "--plugin" in result.stdout


def test_two_plugins_with_one_name_is_an_error_naming_both(tmp_path):
    first = _write_plugin(tmp_path / "first.py", MASK_PLUGIN.format(name="center"))
    with pytest.raises(FacemathError, match=r"two plugins provide the mask 'center': .*facemath 0\.1\.0.*first\.py"):
        load_registry([str(first)])


def test_disabled_plugins_are_blocked(monkeypatch):
    monkeypatch.setenv("FACEMATH_DISABLED_PLUGINS", "builtin-masks, builtin-blenders")
    registry = load_registry()
    assert registry.names("mask") == [] and registry.names("blender") == []
    assert registry.names("loss")


def test_unknown_names_list_the_known_ones():
    with pytest.raises(FacemathError, match="--mask centre: unknown mask; known: bottom, center, file"):
        load_registry().get("mask", "centre", option="--mask")


def test_bad_plugins_are_clear_errors(tmp_path):
    with pytest.raises(FacemathError, match="--plugin no_such_module_xyz: cannot import"):
        load_registry(["no_such_module_xyz"])
    with pytest.raises(FacemathError, match="--plugin .*missing.py: no such file"):
        load_registry([str(tmp_path / "missing.py")])
    broken = _write_plugin(tmp_path / "broken.py", "raise RuntimeError('boom')\n")
    with pytest.raises(FacemathError, match="broken.py: failed to import .RuntimeError: boom"):
        load_registry([str(broken)])
    wrong = _write_plugin(
        tmp_path / "wrong.py",
        """
        from facemath_core import hookimpl
        @hookimpl
        def facemath_masks(extra):
            return []
    """,
    )
    with pytest.raises(FacemathError, match="wrong.py"):
        load_registry([str(wrong)])
    typo = _write_plugin(
        tmp_path / "typo.py",
        """
        from facemath_core import hookimpl
        @hookimpl
        def facemath_maskz():
            return []
    """,
    )
    with pytest.raises(FacemathError, match="unknown hook 'facemath_maskz'"):
        load_registry([str(typo)])
    kind = _write_plugin(
        tmp_path / "kind.py",
        """
        from facemath_core import hookimpl
        from facemath_core.components import Blender
        @hookimpl
        def facemath_masks():
            return [Blender("b", "h", lambda t, g, m: t)]
    """,
    )
    with pytest.raises(FacemathError, match="returned Blender 'b', expected a mask component"):
        load_registry([str(kind)])


def test_plugins_command_lists_every_kind():
    result = run_cli("plugins")
    assert result.returncode == 0, result.stderr
    for word in (
        "loss",
        "optimizer",
        "operator",
        "mask",
        "blender",
        "weighted-contextual",
        "poisson",
        "slerp",
        "facemath 0.1.0",
    ):
        assert word in result.stdout
    assert sys.executable
