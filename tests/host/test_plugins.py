"""The plugin host: hookspecs and their documentation, registration through pluggy, the guard and the contracts
around plugin code, typed parameters, and every broken-plugin case of issue 12 reported as one line.

Every registry here is built from facemath's own plugins (`builtins_only=True`) or from plugin files written by the
test, so that whatever else is installed in the environment cannot change the results.
"""

import inspect
import json
import re
import textwrap
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facemath_core.base.errors import FacemathError, PluginError
from facemath_core.base.version import __version__
from facemath_core.host import hookspecs
from facemath_core.host.components import HOOK_OF_KIND, RESERVED_NAMES, Blender, LossTerm, Mask
from facemath_core.host.manager import BUILTIN_PLUGINS, build_plugin_manager, load_registry
from facemath_core.projection.projector import ProjectionConfig, apply_params

from ..support import blocking, run_facemath

# Who provides the built-ins, as `facemath plugins` and every error about them name it: this checkout's version.
OURS = f"facemath {__version__}"
OURS_RE = re.escape(OURS)

ROOT = Path(__file__).parents[2]
HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("facemath_"))
DOCS = ROOT / "docs" / "plugins.md"
FACE = ROOT / "examples" / "faces" / "000001.png"


def builtins():
    return load_registry(builtins_only=True)


def signature_of(name: str) -> str:
    function = getattr(hookspecs, name)
    parameters = ", ".join(f"{p.name}: {p.annotation}" for p in inspect.signature(function).parameters.values())
    return f"{name}({parameters}) -> {inspect.signature(function).return_annotation}"


def write_plugin(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def one_error_line(code: int, err: str) -> str:
    """The contract of every bad input: exit 1, exactly one `error:` line on stderr, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert code == 1, err
    assert "Traceback" not in err, err
    assert len(errors) == 1, err
    return errors[0]


# --- hookspecs and documentation ------------------------------------------------------------------------------


def test_there_are_hooks_for_every_kind():
    assert HOOKS == sorted([*HOOK_OF_KIND.values(), "facemath_open_backend"])


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


def _doc_section(hook: str) -> str:
    text = DOCS.read_text()
    start = text.index(f"### `{hook}(")
    end = text.find("\n### ", start + 1)
    return text[start : end if end > 0 else None]


@pytest.mark.parametrize("kind", sorted(HOOK_OF_KIND))
def test_every_builtin_is_documented_with_its_parameters_and_defaults(kind):
    """The docs list each built-in with its parameters as `name(key=default, ...)`: parameters are API too."""
    section = _doc_section(HOOK_OF_KIND[kind])
    for component in builtins().all(kind):
        params = ", ".join(f"{k}={v}" for k, v in component.defaults.items())
        shown = f"`{component.name}({params})`" if params else f"`{component.name}`"
        assert shown in section, f"docs/plugins.md, {HOOK_OF_KIND[kind]}: list {shown}"


@pytest.mark.parametrize("kind", sorted(HOOK_OF_KIND))
def test_every_component_class_is_documented_with_its_fields(kind):
    """`LossTerm(name, help, function, defaults={}, ...)` in the docs matches the dataclass."""
    from dataclasses import MISSING, fields

    from facemath_core.host.components import CLASS_OF_KIND

    cls = CLASS_OF_KIND[kind]
    shown = []
    for f in fields(cls):
        if f.name == "provider":
            continue
        if f.default is not MISSING:
            shown.append(f"{f.name}={f.default!r}".replace("'", ""))
        elif f.default_factory is not MISSING:
            shown.append(f"{f.name}={f.default_factory()!r}")
        else:
            shown.append(f.name)
    assert f"`{cls.__name__}({', '.join(shown)})`" in _doc_section(HOOK_OF_KIND[kind])


CONTRACT_PHRASES = {
    "facemath_loss_terms": ["`tf.function`", "`.numpy()` fails", "`print` runs once", "shape `(B,)`"],
    "facemath_optimizers": ["once per batch", "`apply_gradients`"],
    "facemath_operators": ["arity", "keyword arguments"],
    "facemath_masks": ["values in [0, 1]"],
    "facemath_blenders": ["finite", "`--param NAME.KEY=VALUE`"],
    "facemath_initializers": ["`(N, z_dim)`", "`needs_models`"],
    "facemath_constraints": ["`to_z(", "`from_z(", "(same shape)"],
    "facemath_open_backend": ["`firstresult`", "`trylast`"],
    "facemath_face_detectors": ["`(x0, y0, x1, y1)`", "five `(x, y)` points", "upright", "empty when"],
    "facemath_samplers": ["`(U, dU/dz)`", "`(N, samples, D)`", "inside the box", "in [0, 1]"],
}


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_documents_its_contract(hook):
    """Each contract `facemath_core.host.contracts` checks is stated in the hook's section of the docs."""
    section = " ".join(_doc_section(hook).split())
    for phrase in CONTRACT_PHRASES[hook]:
        assert phrase in section, f"docs/plugins.md, {hook}: say {phrase}"


def test_builtins_register_through_the_entry_point_group():
    """pyproject.toml registers exactly BUILTIN_PLUGINS, and the installed entry points carry them."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["facemath"]
    assert table == BUILTIN_PLUGINS
    from facemath_core.host.manager import _installed_entry_points

    installed = {ep.name: (ep.value, dist) for ep, dist in _installed_entry_points()}
    stale = sorted(set(BUILTIN_PLUGINS) - set(installed))
    assert not stale, f"the installed metadata lacks {stale}: rerun pip install -e . --no-deps --no-build-isolation"
    assert {name: installed[name] for name in BUILTIN_PLUGINS} == {
        name: (module, OURS) for name, module in BUILTIN_PLUGINS.items()
    }
    manager = build_plugin_manager()
    assert set(BUILTIN_PLUGINS) <= {name for name, _ in manager.list_name_plugin()}
    assert {manager.providers[name] for name in BUILTIN_PLUGINS} == {OURS}


def test_an_install_with_stale_entry_points_still_has_every_builtin(monkeypatch):
    """Metadata written before the init, constraint and backend hooks existed (pip install -e . not rerun)."""
    import facemath_core.host.manager as plugins

    old = [(ep, dist) for ep, dist in plugins._installed_entry_points() if ep.name in list(BUILTIN_PLUGINS)[:5]]
    monkeypatch.setattr(plugins, "_installed_entry_points", lambda: old)
    registry = load_registry()
    assert {"encoder", "normal", "uniform"} <= set(registry.names("init")) and registry.names("constraint")
    assert registry.manager.providers["builtin-backends"] == OURS
    monkeypatch.setenv("FACEMATH_DISABLED_PLUGINS", blocking("builtin-inits"))
    assert not {"encoder", "normal", "uniform"} & set(load_registry().names("init"))


def test_builtins_only_is_independent_of_what_is_installed(tmp_path):
    extra = write_plugin(tmp_path / "extra.py", MASK_PLUGIN.format(name="everything"))
    assert "everything" not in builtins().names("mask")
    assert "everything" in load_registry([str(extra)], builtins_only=True).names("mask")


# --- one test per hook ----------------------------------------------------------------------------------------


def test_hook_facemath_loss_terms():
    import tensorflow as tf

    registry = builtins()
    assert registry.names("loss") == ["contextual", "in-domain", "l2", "lowres", "perceptual", "weighted-contextual"]
    target = tf.zeros((2, 8, 8, 3))
    generated = tf.concat([tf.zeros((1, 8, 8, 3)), tf.ones((1, 8, 8, 3))], 0)
    mask = tf.ones((2, 8, 8, 1))
    value = registry.get("loss", "contextual").function(target, generated, mask, None)
    np.testing.assert_allclose(value.numpy(), [0.0, 8 * 8 * 3])
    assert registry.get("loss", "perceptual").needs_discriminator
    assert registry.get("loss", "perceptual").provider == OURS
    # in-domain: ||z - E(G(z))||^2 per row, checked against numpy.
    z, encoded = np.array([[0.5, -0.5, 0.0], [1.0, 1.0, 1.0]]), np.array([[0.0, 0.0, 0.0], [1.0, 0.0, -1.0]])
    in_domain = registry.get("loss", "in-domain")
    assert in_domain.needs_encoder and not in_domain.needs_discriminator
    value = in_domain.function(target, generated, mask, None, z=tf.constant(z), encoded=tf.constant(encoded))
    np.testing.assert_allclose(value.numpy(), ((z - encoded) ** 2).sum(axis=1))


def test_hook_facemath_optimizers():
    registry = builtins()
    assert registry.names("optimizer") == ["adam", "momentum", "sgd"]
    optimizer = registry.get("optimizer", "adam").function(**{"lr": 0.5})
    assert float(optimizer.learning_rate) == 0.5


def test_hook_facemath_operators():
    registry = builtins()
    assert registry.names("operator") == ["lerp", "project_out", "slerp"]
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(registry.get("operator", "lerp").function(a, b, 0.5), [0.5, 0.5])
    np.testing.assert_allclose(registry.get("operator", "slerp").function(a, b, 0.5), [2**-0.5, 2**-0.5], atol=1e-6)
    np.testing.assert_allclose(registry.get("operator", "project_out").function(np.array([1.0, 1.0]), a), [0, 1])


def test_hook_facemath_masks():
    registry = builtins()
    assert registry.names("mask") == sorted(
        ["full", "center", "left", "right", "top", "bottom", "random", "grid", "lowres", "file"]
    )
    mask = registry.get("mask", "center").function((8, 8), np.random.default_rng(0), "x.png")
    assert mask.sum() == 64 - 16 and mask[4, 4] == 0 and mask[0, 0] == 1


def test_hook_facemath_blenders():
    registry = builtins()
    assert registry.names("blender") == ["feather", "overlay", "poisson"]
    target, generated = np.zeros((4, 4, 3)), np.ones((4, 4, 3))
    mask = np.zeros((4, 4))
    mask[:, :2] = 1
    out = registry.get("blender", "overlay").function(target, generated, mask)
    assert out[:, :2].max() == 0 and out[:, 2:].min() == 1
    # feather: G(z)'s weight is the distance into the hole over the radius (known pixels exact, deep pixels G(z))
    target, generated, mask = np.zeros((1, 12, 3)), np.ones((1, 12, 3)), np.ones((1, 12))
    mask[0, 4:] = 0
    out = registry.get("blender", "feather").function(target, generated, mask, radius=4.0)
    np.testing.assert_allclose(out[0, :, 0], [0, 0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1, 1, 1])


def test_hook_facemath_face_detectors():
    """MTCNN on scikit-image's astronaut (a real photo nobody here made, one face): one face, its five landmarks in
    a face's order (eyes above the nose above the mouth, left of right) inside its box, and a confident score."""
    from skimage import data

    registry = builtins()
    assert registry.names("detector") == ["mtcnn"]
    (face,) = registry.get("detector", "mtcnn").function(data.astronaut(), 20)
    (ex0, ey0), (ex1, ey1), (nx, ny), (mx0, my0), (mx1, my1) = face.landmarks
    assert ex0 < nx < ex1 and mx0 < nx < mx1  # left to right as seen
    assert max(ey0, ey1) < ny < min(my0, my1)  # top to bottom
    x0, y0, x1, y1 = face.box
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in face.landmarks)
    assert 80 <= face.size <= 130 and face.score > 0.99  # her face is about a fifth of the 512-pixel photo
    assert registry.get("detector", "mtcnn").function(np.full((64, 64, 3), 128, np.uint8), 20) == []


def test_hook_facemath_initializers():
    registry = builtins()
    assert registry.names("init") == ["encoder", "normal", "uniform"]
    targets = np.zeros((500, 2, 2, 3), np.float32)
    uniform = registry.get("init", "uniform").function(targets, 4, 1.0, np.random.default_rng(0), None)
    assert uniform.shape == (500, 4) and uniform.min() >= -1 and uniform.max() <= 1
    assert abs(uniform.mean()) < 0.05 and abs(uniform.var() - 1 / 3) < 0.02  # U(-1, 1): mean 0, variance 1/3
    normal = registry.get("init", "normal").function(targets, 4, 3.0, np.random.default_rng(0), None)
    assert abs(normal.std() - 1.0) < 0.05 and np.abs(normal).max() <= 3.0
    encoder = registry.get("init", "encoder")
    assert encoder.needs_encoder  # the core hands it the encoder of the model projected onto
    encode = lambda images: np.full((len(images), 4), 0.5, np.float32)  # noqa: E731
    np.testing.assert_array_equal(
        encoder.function(targets[:3], 4, 0.25, None, None, encode=encode), np.full((3, 4), 0.25)
    )


def test_hook_facemath_constraints():
    import tensorflow as tf

    registry = builtins()
    assert registry.names("constraint") == ["clip", "none", "stochastic", "tanh"]
    v = tf.constant([[-3.0, -0.5, 0.5, 3.0]])
    generator = tf.random.Generator.from_seed(0)
    np.testing.assert_array_equal(registry.get("constraint", "clip").function(v, 1.0, generator), [[-1, -0.5, 0.5, 1]])
    redrawn = registry.get("constraint", "stochastic").function(v, 1.0, generator).numpy()
    assert np.all(np.abs(redrawn) <= 1) and redrawn[0, 1] == -0.5 and redrawn[0, 2] == 0.5
    tanh = registry.get("constraint", "tanh")
    z = np.array([[-0.9, 0.0, 0.9]], np.float32)
    np.testing.assert_allclose(tanh.to_z(tf.constant(tanh.from_z(z, 3.0)), 3.0), z, atol=1e-5)  # a round trip
    np.testing.assert_array_equal(registry.get("constraint", "none").function(v, 1.0, generator), v)


def test_hook_facemath_samplers():
    """One proposal of `hmc` (L = 1) by hand: z1 = z0 + eps (p - eps/2 beta dU/dz0), p1 = p - eps/2 beta (dU/dz0 +
    dU/dz1), accepted when log u < H(z0, p) - H(z1, p1), with the same seeded draws (p first, then u)."""
    registry = builtins()
    assert registry.names("sampler") == ["hmc"]

    def energy(z):
        return 0.5 * np.sum(z * z, axis=1) + z[:, 0], z + np.array([1.0, 0.0])

    z0 = np.array([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.0]])
    beta, eps = 2.0, 1.2
    z, acceptance = registry.get("sampler", "hmc").function(
        energy, z0, None, np.random.default_rng(1), 1, beta=beta, eps=eps, L=1, burn_in=0
    )
    draws = np.random.default_rng(1)
    p = draws.standard_normal((3, 2))
    u0, g0 = energy(z0)
    z1 = z0 + eps * (p - eps / 2 * beta * g0)
    u1, g1 = energy(z1)
    p1 = p - eps / 2 * beta * (g0 + g1)
    accept = np.log(draws.uniform(size=3)) < (beta * u0 + (p * p).sum(1) / 2) - (beta * u1 + (p1 * p1).sum(1) / 2)
    assert 0 < accept.sum() < 3  # both outcomes occur in this draw
    np.testing.assert_allclose(z[:, 0], np.where(accept[:, None], z1, z0))
    np.testing.assert_array_equal(acceptance, accept.astype(float))


BACKEND_PLUGIN = """
    from facemath_core import hookimpl
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    class LocalBackend(EmbeddedBackend):
        name = "local"

        def describe(self):
            return "local:// " + super().describe()

    @hookimpl(tryfirst=True)
    def facemath_open_backend(models, server, options):
        if server and server.startswith("local://"):
            return LocalBackend(server[len("local://"):])
"""


def test_hook_facemath_open_backend(cli, tmp_path, tiny_export):
    from facemath_core.host.manager import configure
    from facemath_core.serving.backends import open_backend
    from facemath_core.serving.backends.embedded import EmbeddedBackend
    from facemath_core.serving.backends.tfserving import TFServingBackend

    plugin = write_plugin(tmp_path / "local_backend.py", BACKEND_PLUGIN)
    try:
        configure([str(plugin)])
        local = open_backend("unused", f"local://{tiny_export}")
        assert type(local).__name__ == "LocalBackend" and local.metadata("generator")["z_dim"] == 8
        assert type(open_backend(str(tiny_export))) is EmbeddedBackend  # no --server: the built-in embedded one
        assert isinstance(open_backend(str(tiny_export), "localhost:1", timeout=0.1), TFServingBackend)
    finally:
        configure([])
    # From the command line: a projection through the plugin's backend.
    out = tmp_path / "out"
    code, _, err = cli(
        "--plugin", plugin, "project", FACE, "--server", f"local://{tiny_export}", "--steps", 1, "-o", out
    )
    assert code == 0, err
    from facemath_core.latent.latents import load_latents

    assert load_latents(out / "latents.npz").config["backend"].startswith("local:// embedded models in")


def test_a_backend_hook_returning_something_else_names_the_plugin(tmp_path):
    from facemath_core.host.manager import configure
    from facemath_core.serving.backends import open_backend

    plugin = write_plugin(
        tmp_path / "wrong_backend.py",
        """
        from facemath_core import hookimpl

        @hookimpl(tryfirst=True)
        def facemath_open_backend(models, server, options):
            return "grpc://somewhere"
        """,
    )
    try:
        configure([str(plugin)])
        with pytest.raises(PluginError, match=r"wrong_backend.py.*returned str, expected a facemath_core.Backend"):
            open_backend("exported_models")
    finally:
        configure([])


# --- pluggy's machinery ---------------------------------------------------------------------------------------


def test_hook_wrappers_and_ordering_work(tmp_path):
    """A wrapper sees (and may change) every plugin's results: pluggy calls the hooks, not facemath."""
    plugin = write_plugin(
        tmp_path / "wrapper.py",
        """
        from facemath_core import hookimpl

        @hookimpl(wrapper=True)
        def facemath_masks():
            results = yield
            return [[m for m in masks if m.name != "grid"] for masks in results]
        """,
    )
    registry = load_registry([str(plugin)], builtins_only=True)
    assert "grid" not in registry.names("mask") and "center" in registry.names("mask")


def test_a_failing_hook_wrapper_is_named(tmp_path):
    plugin = write_plugin(
        tmp_path / "bad_wrapper.py",
        """
        from facemath_core import hookimpl

        @hookimpl(wrapper=True)
        def facemath_blenders():
            results = yield
            return results[0].name  # a list has no name
        """,
    )
    with pytest.raises(
        PluginError,
        match=r"facemath_blenders\(\) failed in a hook wrapper \(wrapping plugins: .*bad_wrapper.py\): AttributeError",
    ):
        load_registry([str(plugin)], builtins_only=True)


@pytest.mark.parametrize("how", ["--trace-plugins", "FACEMATH_TRACE_PLUGINS=1"])
@pytest.mark.slow
def test_tracing_shows_every_hook_call(how):
    args, env = (["--trace-plugins"], {}) if how.startswith("--") else ([], {"FACEMATH_TRACE_PLUGINS": "1"})
    result = run_facemath(*args, "plugins", "--kind", "mask", env=env)
    assert result.code == 0, result.stderr
    for hook in HOOK_OF_KIND.values():
        assert f"{hook} [hook]" in result.stderr and f"finish {hook} -->" in result.stderr
    assert f"Mask('center', {OURS})" in result.stderr
    assert run_facemath("plugins", "--kind", "mask").stderr == ""


# --- registration ---------------------------------------------------------------------------------------------


MASK_PLUGIN = """
    import numpy as np
    from facemath_core import hookimpl
    from facemath_core.host.components import Mask

    @hookimpl
    def facemath_masks():
        return [Mask("{name}", "A test mask.", lambda shape, rng, image_name: np.ones(shape, np.float32))]
"""


def test_a_plugin_file_from_the_command_line(cli, tmp_path):
    plugin = write_plugin(tmp_path / "extra.py", MASK_PLUGIN.format(name="everything"))
    registry = load_registry([str(plugin)], builtins_only=True)
    assert registry.get("mask", "everything").provider == f"--plugin {plugin}"
    result = cli("--plugin", str(plugin), "plugins", "--kind", "mask")
    assert result.code == 0, result.stderr
    assert "everything" in result.stdout and f"--plugin {plugin}" in result.stdout


def test_two_plugins_with_one_name_is_an_error_naming_both(tmp_path):
    first = write_plugin(tmp_path / "first.py", MASK_PLUGIN.format(name="center"))
    with pytest.raises(FacemathError, match=r"two plugins provide the mask 'center': .*(facemath 0\.1\.0|first\.py)"):
        load_registry([str(first)], builtins_only=True)
    with pytest.raises(FacemathError, match=r"facemath 0\.1\.0") as info:
        load_registry([str(first)], builtins_only=True)
    assert "first.py" in str(info.value)


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, names in RESERVED_NAMES.items() for n in sorted(names)])
def test_reserved_names_are_rejected_at_registration(tmp_path, kind, name):
    from facemath_core.latent.arithmetic import BUILTIN_FUNCTIONS

    assert RESERVED_NAMES["operator"] == set(BUILTIN_FUNCTIONS)  # the expression language's own functions
    body = {
        "operator": f'Operator("{name}", "h", lambda a: a)',
        "loss": f'LossTerm("{name}", "h", lambda t, g, m, d: g)',
    }[kind]
    hook = HOOK_OF_KIND[kind]
    plugin = write_plugin(
        tmp_path / "reserved.py",
        f"""
        from facemath_core import hookimpl
        from facemath_core.host.components import LossTerm, Operator

        @hookimpl
        def {hook}():
            return [{body}]
        """,
    )
    with pytest.raises(
        PluginError, match=rf"{kind} '{name}' \(--plugin .*reserved.py\): the name '{name}' is reserved"
    ):
        load_registry([str(plugin)], builtins_only=True)


def test_disabled_plugins_are_blocked_by_entry_point_or_module_name(monkeypatch, capsys):
    monkeypatch.setenv("FACEMATH_DISABLED_PLUGINS", blocking("builtin-masks", " facemath_plugins.blenders"))
    for registry in (load_registry(), builtins()):
        own = {kind: [c.name for c in registry.all(kind) if c.provider == OURS] for kind in HOOK_OF_KIND}
        assert own["mask"] == [] and own["blender"] == [] and own["loss"]
    assert capsys.readouterr().err == ""


def test_unknown_disabled_names_are_warned_about(monkeypatch):
    result = run_facemath("plugins", "--kind", "mask", env={"FACEMATH_DISABLED_PLUGINS": blocking("builtin-maskz")})
    assert result.code == 0
    assert "warning: FACEMATH_DISABLED_PLUGINS: no plugin called builtin-maskz" in result.stderr
    assert "center" in result.stdout  # nothing was blocked


def test_unknown_names_list_the_known_ones():
    with pytest.raises(FacemathError, match="--mask centre: unknown mask; known: bottom, center, file"):
        builtins().get("mask", "centre", option="--mask")


def test_bad_plugins_are_clear_errors(tmp_path):
    with pytest.raises(FacemathError, match="--plugin no_such_module_xyz: cannot import"):
        load_registry(["no_such_module_xyz"])
    with pytest.raises(FacemathError, match="--plugin .*missing.py: no such file"):
        load_registry([str(tmp_path / "missing.py")])
    broken = write_plugin(tmp_path / "broken.py", "raise RuntimeError('boom')\n")
    with pytest.raises(FacemathError, match="broken.py: failed to import .RuntimeError: boom"):
        load_registry([str(broken)])
    wrong = write_plugin(
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
    typo = write_plugin(
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
    kind = write_plugin(
        tmp_path / "kind.py",
        """
        from facemath_core import hookimpl
        from facemath_core.host.components import Blender
        @hookimpl
        def facemath_masks():
            return [Blender("b", "h", lambda t, g, m: t)]
        """,
    )
    with pytest.raises(FacemathError, match=r"kind.py.*returned Blender 'b', expected a mask component"):
        load_registry([str(kind)])


# --- parameters -----------------------------------------------------------------------------------------------


OPTIONS_PLUGIN = """
    import numpy as np
    from facemath_core import hookimpl
    from facemath_core.host.components import Blender, Optimizer

    def sgd(lr=0.01, nesterov=False, momentum=0.0):
        import keras
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum, nesterov=nesterov)

    def feather(target, generated, mask, sigma=2.0):
        from scipy.ndimage import gaussian_filter
        soft = gaussian_filter(np.asarray(mask, np.float64), sigma)[..., None]
        return soft * target + (1 - soft) * generated

    @hookimpl
    def facemath_optimizers():
        return [Optimizer("nesterov-sgd", "SGD with options.", sgd, {"lr": 0.01, "nesterov": False, "momentum": 0.0})]

    @hookimpl
    def facemath_blenders():
        return [Blender("gaussian-edge", "Soft-edged overlay.", feather, {"sigma": 2.0})]
"""


@pytest.fixture()
def options_registry(tmp_path):
    return load_registry([str(write_plugin(tmp_path / "options.py", OPTIONS_PLUGIN))], builtins_only=True)


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("No", False)]
)
def test_bool_params_are_typed_by_the_default(options_registry, value, expected):
    config = ProjectionConfig(optimizer="nesterov-sgd")
    typed = apply_params(config, [f"nesterov-sgd.nesterov={value}"], options_registry)
    assert typed.optimizer_params == {"nesterov": expected}
    optimizer = options_registry.get("optimizer", "nesterov-sgd").function(**typed.optimizer_params)
    assert optimizer.nesterov is expected


def test_params_are_typed_by_their_defaults(options_registry):
    config = ProjectionConfig(optimizer="nesterov-sgd", mask="grid", blend="gaussian-edge")
    config = replace(config, losses=(*config.losses, replace(config.losses[0], name="perceptual")))
    typed = apply_params(
        config,
        ["nesterov-sgd.momentum=0", "grid.step=3", "gaussian-edge.sigma=6", "perceptual.form=saturating"],
        options_registry,
        lr=0.5,
    )
    assert typed.optimizer_params == {"momentum": 0.0, "lr": 0.5}
    assert type(typed.optimizer_params["momentum"]) is float  # 0 -> 0.0: the default is a float
    assert typed.mask_params == {"step": 3} and type(typed.mask_params["step"]) is int
    assert typed.blend_params == {"sigma": 6.0}
    assert typed.losses[1].params == {"form": "saturating"}


@pytest.mark.parametrize(
    ("config", "params", "message"),
    [
        (dict(mask="center"), ["center.scale=abc"], r"--param center.scale=abc: scale of mask 'center' .* number"),
        (dict(), ["adam.lr=abc"], r"--param adam.lr=abc: lr of optimizer 'adam' .* is a number"),
        (dict(mask="grid"), ["grid.step=2.5"], r"--param grid.step=2.5: step of mask 'grid' .* whole number"),
        (dict(optimizer="nesterov-sgd"), ["nesterov-sgd.nesterov=maybe"], r"nesterov of optimizer .* true or false"),
        (dict(), ["perceptul.form=x"], r"--param perceptul.form=x: no component called 'perceptul'"),
        (dict(), ["center.scale=0.3"], r"--param center.scale=0.3: mask 'center' .* is not used in this run"),
        (dict(blend="gaussian-edge"), ["gaussian-edge.bogus=1"], r"edge.bogus: blender 'gaussian-edge' .* 'bogus'"),
        (dict(), ["nameonly=1"], r"--param nameonly=1: expected NAME.KEY=VALUE"),
    ],
)
def test_param_errors_name_the_parameter(options_registry, config, params, message):
    with pytest.raises(FacemathError, match=message):
        apply_params(ProjectionConfig(**config), params, options_registry)


def test_lr_is_the_optimizers_lr_parameter(options_registry, tmp_path):
    assert apply_params(ProjectionConfig(optimizer="sgd"), [], options_registry, lr=0.5).optimizer_params == {"lr": 0.5}
    fixed = write_plugin(
        tmp_path / "nolr.py",
        """
        from facemath_core import hookimpl
        from facemath_core.host.components import Optimizer

        @hookimpl
        def facemath_optimizers():
            return [Optimizer("fixed", "A fixed rate.", lambda: None)]
        """,
    )
    registry = load_registry([str(fixed)], builtins_only=True)
    with pytest.raises(FacemathError, match=r"--lr 0.1: optimizer 'fixed' \(--plugin .*\) has no parameter 'lr'"):
        apply_params(ProjectionConfig(optimizer="fixed"), [], registry, lr=0.1)


# --- operators ------------------------------------------------------------------------------------------------


def test_operator_defaults_are_passed_as_keywords(tmp_path):
    from facemath_core.latent.arithmetic import Evaluator, LatentSpace
    from facemath_core.latent.latents import Latents

    plugin = write_plugin(
        tmp_path / "ops.py",
        """
        from facemath_core import hookimpl
        from facemath_core.host.components import Operator

        @hookimpl
        def facemath_operators():
            return [Operator("shrink", "v * factor", lambda v, factor: v * factor, {"factor": 0.25}, arity=1)]
        """,
    )
    registry = load_registry([str(plugin)], builtins_only=True)
    operators = {n: registry.get("operator", n) for n in registry.names("operator")}
    z = np.array([[4.0, 8.0]], np.float32)
    latents = Latents(names=["a.png"], z=z, family="gan", model="generator", model_version=1, source="projection")
    evaluator = Evaluator(LatentSpace(latents), operators)
    np.testing.assert_allclose(evaluator.latent("shrink(a)").z, [1.0, 2.0])


# --- broken plugins, from the command line --------------------------------------------------------------------

LOSS = """
    import numpy as np
    import tensorflow as tf
    from facemath_core import hookimpl
    from facemath_core.host.components import {cls}

    {body}

    @hookimpl
    def {hook}():
        return {returned}
"""


def broken(tmp_path: Path, cls: str, hook: str, body: str, returned: str) -> Path:
    source = LOSS.format(
        cls=cls, body=textwrap.indent(textwrap.dedent(body), "    ").strip(), hook=hook, returned=returned
    )
    return write_plugin(tmp_path / "broken_plugin.py", source)


def loss_plugin(tmp_path, body):
    return broken(tmp_path, "LossTerm", "facemath_loss_terms", body, '[LossTerm("bad", "A broken term.", bad)]')


BROKEN_CASES = {
    "loss wrong shape": (
        lambda p: loss_plugin(p, "def bad(target, generated, mask, disc_logits):\n    return generated[:, 0, 0, :]"),
        ["--loss-plugin", "bad"],
        r"loss 'bad' \(--plugin .*broken_plugin.py\) returned shape \(2, 3\) for a batch of 2, expected a float "
        r"tensor of shape \(2,\): one value per image",
    ),
    "loss raises": (
        lambda p: loss_plugin(p, "def bad(target, generated, mask, disc_logits):\n    raise RuntimeError('boom')"),
        ["--loss-plugin", "bad"],
        r"loss 'bad' \(--plugin .*broken_plugin.py\) failed on a check batch: RuntimeError: boom$",
    ),
    "loss wrong signature": (
        lambda p: loss_plugin(p, "def bad(target, generated):\n    return tf.reduce_sum(generated, [1, 2, 3])"),
        ["--loss-plugin", "bad"],
        r"loss 'bad' \(--plugin .*\): bad\(target, generated\) cannot be called as "
        r"function\(target, generated, mask, disc_logits, \*\*params\)",
    ),
    "loss NaN": (
        lambda p: loss_plugin(
            p, "def bad(target, generated, mask, disc_logits):\n    return tf.reduce_sum(generated, [1, 2, 3]) * np.nan"
        ),
        ["--loss-plugin", "bad"],
        r"loss 'bad' \(--plugin .*\) returned NaN for every image of a check batch",
    ),
    "loss calls .numpy()": (
        lambda p: loss_plugin(
            p,
            "def bad(target, generated, mask, disc_logits):\n    return tf.constant(generated.numpy().sum((1, 2, 3)))",
        ),
        ["--loss-plugin", "bad"],
        r"loss 'bad' \(--plugin .*\) failed on a check batch: AttributeError: .*numpy.* \(this runs inside "
        r"tf.function: use TensorFlow ops",
    ),
    "loss without a gradient": (
        lambda p: loss_plugin(
            p, "def bad(target, generated, mask, disc_logits):\n    return tf.reduce_sum(target, [1, 2, 3])"
        ),
        ["--loss-plugin", "bad"],
        r"loss 'bad' \(--plugin .*\) has no gradient with respect to generated",
    ),
    "blender NaN": (
        lambda p: broken(
            p,
            "Blender",
            "facemath_blenders",
            "def bad(target, generated, mask):\n    return target * np.nan",
            '[Blender("bad", "A broken blender.", bad)]',
        ),
        ["--blend", "bad", "--mask", "center"],
        r"blender 'bad' \(--plugin .*\) returned NaN for a check image",
    ),
    "optimizer returns a string": (
        lambda p: broken(
            p,
            "Optimizer",
            "facemath_optimizers",
            "def bad(lr=0.1):\n    return 'adam'",
            '[Optimizer("bad", "A broken optimizer.", bad, {"lr": 0.1})]',
        ),
        ["--optimizer", "bad"],
        r"optimizer 'bad' \(--plugin .*\) returned str 'adam', expected a Keras optimizer",
    ),
    "mask raises": (
        lambda p: broken(
            p,
            "Mask",
            "facemath_masks",
            "def bad(shape, rng, image_name):\n    raise KeyError(image_name)",
            '[Mask("bad", "A broken mask.", bad)]',
        ),
        ["--mask", "bad"],
        r"mask 'bad' \(--plugin .*\) failed for 000001.png: KeyError: '000001.png'$",
    ),
    "mask out of range": (
        lambda p: broken(
            p,
            "Mask",
            "facemath_masks",
            "def bad(shape, rng, image_name):\n    return np.full(shape, 255.0)",
            '[Mask("bad", "A broken mask.", bad)]',
        ),
        ["--mask", "bad"],
        r"mask 'bad' \(--plugin .*\) returned values outside \[0, 1\] for 000001.png \(min 255, max 255\)",
    ),
    "hook returns one component": (
        lambda p: broken(
            p,
            "Mask",
            "facemath_masks",
            "def bad(shape, rng, image_name):\n    return np.ones(shape)",
            'Mask("bad", "Not in a list.", bad)',
        ),
        [],
        r"^--plugin \S*broken_plugin.py: facemath_masks\(\) returned Mask 'bad', expected a list of Mask "
        r"\(return \[Mask\(...\)\]\)",
    ),
    "hook raises": (
        lambda p: broken(p, "Mask", "facemath_masks", "x = 1", "1 / 0"),
        [],
        r"^--plugin \S*broken_plugin.py: facemath_masks\(\) failed: ZeroDivisionError: division by zero",
    ),
    "initialiser wrong shape": (
        lambda p: broken(
            p,
            "Initializer",
            "facemath_initializers",
            "def bad(targets, z_dim, bound, rng, backend):\n    return np.zeros((1, 3))",
            '[Initializer("bad", "A broken start.", bad)]',
        ),
        ["--init", "bad"],
        r"init 'bad' \(--plugin .*\) returned shape \(1, 3\), expected \(1, 8\)",
    ),
    "constraint wrong shape": (
        lambda p: broken(
            p,
            "Constraint",
            "facemath_constraints",
            "def bad(variable, bound, generator):\n    return tf.reduce_sum(variable)",
            '[Constraint("bad", "A broken constraint.", bad)]',
        ),
        ["--constraint", "bad"],
        r"constraint 'bad' \(--plugin .*\) returned .* of shape \(\) .*, expected a float tensor of shape \(2, 8\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CASES))
def test_a_broken_plugin_is_one_line_naming_it(cli, case, tiny_export, tmp_path):
    make, args, message = BROKEN_CASES[case]
    plugin = make(tmp_path)
    out = tmp_path / "out"
    code, _, err = cli("--plugin", plugin, "complete", FACE, "--models", tiny_export, "--steps", 2, "-o", out, *args)
    line = one_error_line(code, err)
    assert re.search(message, line.removeprefix("error: ")), line
    assert not out.exists() and not out.with_name("out.partial").exists()  # nothing half-written


def test_a_term_failing_inside_the_run_leaves_nothing_behind(cli, tiny_export, tmp_path):
    """Passes the check batch (2 images), fails on the real one (3 images): still one line, no `.partial`."""
    plugin = loss_plugin(
        tmp_path,
        """
        def bad(target, generated, mask, disc_logits):
            if generated.shape[0] != 2:
                raise ValueError(f"cannot handle {generated.shape[0]} images")
            return tf.reduce_sum(tf.abs(generated - target), [1, 2, 3])
        """,
    )
    faces = [ROOT / "examples" / "faces" / f"00000{i}.png" for i in (1, 2, 3)]
    out = tmp_path / "out"
    code, _, err = cli(
        "--plugin", plugin, "project", *faces, "--models", tiny_export, "-l", "bad", "--steps", 2, "-o", out
    )
    line = one_error_line(code, err)
    assert "loss 'bad' (--plugin" in line and "failed in a projection step: ValueError: cannot handle 3 images" in line
    assert not out.exists() and not out.with_name("out.partial").exists()


def test_a_term_that_is_nan_for_some_images_is_named_in_the_warning(cli, tiny_export, tmp_path):
    plugin = loss_plugin(
        tmp_path,
        """
        def bad(target, generated, mask, disc_logits):
            value = tf.reduce_sum(tf.abs(generated - target), axis=[1, 2, 3])
            return tf.where(tf.range(tf.shape(value)[0]) == 0, value * np.nan, value)
        """,
    )
    faces = [ROOT / "examples" / "faces" / f"00000{i}.png" for i in (1, 2)]
    code, _, err = cli(
        "--plugin", plugin, "project", *faces, "--models", tiny_export, "-l", "bad", "--steps", 2,
        "-o", tmp_path / "out",
    )  # fmt: skip
    assert code == 0, err
    # One line even though stderr is not a terminal, naming the term's plugin.
    warning = next(line for line in err.splitlines() if "the loss became NaN" in line)
    assert (
        f"000001.png: the loss became NaN or infinite at step 0 (not finite: loss 'bad' (--plugin {plugin}) = nan)"
        in warning
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "perceptul.form=saturating"], r"no component called 'perceptul'; did you mean perceptual\?"),
        (
            ["-l", "perceptual", "--param", "perceptual.form=bogus"],
            rf"--param perceptual.form=bogus: form of loss 'perceptual' \({OURS_RE}\) must be one of "
            r"nonsaturating, saturating$",
        ),
        (
            ["--mask", "grid", "--param", "grid.step=0"],
            rf"--param grid.step=0: step of mask 'grid' \({OURS_RE}\) must be a whole number >= 1$",
        ),
        (["--mask", "center", "--param", "center.scale=abc"], r"--param center.scale=abc: scale of mask 'center'"),
        (["--param", "adam.lr=abc"], rf"--param adam.lr=abc: lr of optimizer 'adam' \({OURS_RE}\) is a number"),
        (["--model", "vae", "-l", "perceptual"], rf"loss 'perceptual' \({OURS_RE}\) needs the GAN discriminator"),
    ],
)
def test_bad_params_from_the_command_line(cli, tiny_export, tmp_path, args, message):
    out = tmp_path / "out"
    code, _, err = cli("complete", FACE, "--models", tiny_export, "--steps", 1, "-o", out, *args)
    assert re.search(message, one_error_line(code, err)), err
    assert not out.exists()


@pytest.mark.slow
def test_blender_params_reach_the_blender(cli, tiny_export, tmp_path):
    from PIL import Image

    plugin = write_plugin(tmp_path / "options.py", OPTIONS_PLUGIN)
    images = {}
    for sigma in ("0.5", "6"):
        out = tmp_path / f"sigma{sigma}"
        code, _, err = cli(
            "--plugin", plugin, "complete", FACE, "--models", tiny_export, "--steps", 1, "--blend", "gaussian-edge",
            "--param", f"gaussian-edge.sigma={sigma}", "-o", out,
        )  # fmt: skip
        assert code == 0, err
        images[sigma] = np.asarray(Image.open(out / "completions" / "000001.png"), np.float64)
    assert np.abs(images["0.5"] - images["6"]).mean() > 1.0  # a wider feather blends differently


@pytest.fixture(scope="module")
def projected(cli, tiny_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("projected") / "p"
    faces = [str(ROOT / "examples" / "faces" / f"00000{i}.png") for i in (1, 2)]
    result = cli("project", *faces, "--models", str(tiny_export), "--steps", "1", "-o", str(out))
    assert result.code == 0, result.stderr
    return out / "latents.npz"


NEGATE = """
    from facemath_core import hookimpl
    from facemath_core.host.components import Operator

    @hookimpl
    def facemath_operators():
        return [Operator("negate", "-v", lambda v: -v, arity=1)]
"""


@pytest.mark.slow
def test_an_operator_of_the_wrong_arity_is_refused_where_it_is_used(cli, projected, tiny_export, tmp_path):
    plugin = write_plugin(tmp_path / "negate.py", NEGATE)
    code, _, err = cli(
        "--plugin", plugin, "interpolate", "000001", "000002", "--latents", projected, "--method", "negate",
        "--models", tiny_export, "-o", tmp_path / "x.png",
    )  # fmt: skip
    line = one_error_line(code, err)
    assert re.search(r"--method negate: operator 'negate' \(--plugin .*negate.py\) takes 1 argument; this needs", line)
    assert not (tmp_path / "x.png").exists()


def test_an_operator_called_mean_is_refused_at_registration(cli, tmp_path):
    plugin = write_plugin(tmp_path / "mean.py", NEGATE.replace('"negate"', '"mean"'))
    code, _, err = cli("--plugin", plugin, "plugins")
    assert "operator 'mean' (--plugin" in one_error_line(code, err) and "is reserved" in err


# --- `facemath plugins` ---------------------------------------------------------------------------------------


def test_plugins_command_lists_every_kind_and_field(cli):
    code, stdout, err = cli("plugins", env={"COLUMNS": "80"})
    assert code == 0, err
    for word in ("loss", "optimizer", "operator", "mask", "blender", "init", "constraint", "backend", "poisson"):
        assert word in stdout
    perceptual = next(line for line in stdout.splitlines() if line.split()[:1] == ["perceptual"])
    # Not a terminal: nothing truncated or wrapped at 80 columns, every field on the component's line.
    for field in ("-log D(G(z)) or log(1 - D(G(z))).", "form=nonsaturating", "weight 0.1", "needs the discriminator"):
        assert field in perceptual, perceptual
    assert OURS in perceptual
    slerp = next(line for line in stdout.splitlines() if line.split()[:1] == ["slerp"])
    assert "3 arguments" in slerp


def test_plugins_json(cli, tmp_path):
    plugin = write_plugin(tmp_path / "extra.py", MASK_PLUGIN.format(name="everything"))
    result = cli("--plugin", str(plugin), "plugins", "--json")
    assert result.code == 0, result.stderr
    listed = {(item["kind"], item["name"]): item for item in json.loads(result.stdout)}
    registry = load_registry([str(plugin)])
    for kind in HOOK_OF_KIND:
        for component in registry.all(kind):
            assert listed[(kind, component.name)] == component.describe()
    assert listed[("loss", "perceptual")]["default_weight"] == 0.1
    assert listed[("loss", "perceptual")]["needs_discriminator"] is True
    assert listed[("loss", "weighted-contextual")]["params"] == {"window": 7}
    assert listed[("operator", "lerp")]["arity"] == 3
    assert listed[("mask", "everything")]["provider"] == f"--plugin {plugin}"
    assert listed[("backend", "builtin-backends")]["order"] == "trylast"


def test_component_names_must_be_usable_on_the_command_line():
    for bad in ("", "two words", "a=b", "a,b", "dotted.name"):
        with pytest.raises(ValueError, match="component name"):
            Mask(bad, "h", lambda shape, rng, image_name: None)
    with pytest.raises(ValueError, match="not callable"):
        LossTerm("x", "h", "not a function")
    assert Blender("b", "h", lambda t, g, m: t).label == "blender 'b' (provider unknown)"


def test_interpolate_runs_the_operator_per_t_and_blames_a_bad_result():
    """contracts.interpolate, used by `facemath interpolate` and the studio's scrubber: lerp's known answer
    a + t (b - a) at each t, and a non-finite or misshapen latent is the plugin's error, naming it."""
    from facemath_core.base.errors import PluginError
    from facemath_core.host.components import Operator
    from facemath_core.host.contracts import interpolate

    a, b = np.array([0.0, 2.0], np.float32), np.array([1.0, -2.0], np.float32)
    lerp = Operator("line", "a + t (b - a)", lambda a, b, t: a + t * (b - a), arity=3)
    np.testing.assert_allclose(interpolate(lerp, a, b, [0.0, 0.25, 1.0]), [[0, 2], [0.25, 1], [1, -2]])
    for bad in (lambda a, b, t: a * np.nan, lambda a, b, t: a[:1]):
        with pytest.raises(PluginError, match=r"operator 'bad' .* expected a finite latent of shape \(2,\)"):
            interpolate(Operator("bad", "broken", bad, arity=3), a, b, [0.5])
