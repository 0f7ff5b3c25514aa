"""Loading plugins: pluggy's own entry-point loading and blocking, a broken plugin that does not stop the others,
`facemath plugins` as the diagnosis tool (a "could not load" section, exit 1), one line for every other command,
and a `--plugin` named twice loaded once (issue 30)."""

from __future__ import annotations

import importlib
import json
import textwrap

import pytest

from facemath_core.host.manager import BUILTIN_PLUGINS, build_plugin_manager, load_registry
from facemath_core.testing import run

from .distributions import Site

GOOD = """
    import numpy as np
    from facemath_core import Mask, hookimpl

    @hookimpl
    def facemath_masks():
        return [Mask("solid", "Every pixel known.", lambda shape, rng, image_name: np.ones(shape, np.float32))]
"""


@pytest.fixture
def installed(tmp_path, monkeypatch):
    site = Site(tmp_path / "site", monkeypatch)
    yield site
    site.forget()


def broken_beside_good(site: Site) -> None:
    site.install(
        "facemath-broken", "2.0.1", {"broken_plugin": "import no_such_module_xyz\n"}, {"broken": "broken_plugin"}
    )
    site.install("facemath-solid", "1.4", {"solid_plugin": GOOD}, {"solid": "solid_plugin"})


def test_plugins_lists_what_loaded_and_what_could_not(installed):
    broken_beside_good(installed)
    result = run("plugins", "--kind", "mask")
    assert result.code == 1
    solid = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["solid"])
    assert "facemath-solid 1.4" in solid  # the other plugin loaded
    assert "center" in result.stdout  # and the built-ins
    section = result.stdout.split("could not load", 1)[1]
    row = next(line for line in section.splitlines() if line.split()[:1] == ["broken"])
    for part in (
        "facemath-broken 2.0.1",
        "failed to import broken_plugin (ModuleNotFoundError: No module named 'no_such_module_xyz')",
        "disable it with FACEMATH_DISABLED_PLUGINS=broken",
    ):
        assert part in row, row
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "error: plugin broken (facemath-broken 2.0.1): failed to import broken_plugin (ModuleNotFoundError: No "
        "module named 'no_such_module_xyz'); disable it with FACEMATH_DISABLED_PLUGINS=broken (or uninstall "
        "facemath-broken)"
    ]


def test_plugins_json_lists_what_could_not_be_loaded(installed):
    broken_beside_good(installed)
    result = run("plugins", "--json")
    assert result.code == 1
    items = json.loads(result.stdout)
    failed = [item for item in items if item["kind"] == "not-loaded"]
    assert failed == [
        {
            "kind": "not-loaded",
            "name": "broken",
            "target": "broken_plugin",
            "provider": "facemath-broken 2.0.1",
            "distribution": "facemath-broken",
            "version": "2.0.1",
            "error": "failed to import broken_plugin (ModuleNotFoundError: No module named 'no_such_module_xyz')",
            "message": "plugin broken (facemath-broken 2.0.1): failed to import broken_plugin (ModuleNotFoundError: "
            "No module named 'no_such_module_xyz'); disable it with FACEMATH_DISABLED_PLUGINS=broken (or uninstall "
            "facemath-broken)",
        }
    ]
    solid = next(item for item in items if item["name"] == "solid")
    assert solid["provider"] == "facemath-solid 1.4" and solid["version"] == "1.4"


def test_other_commands_stop_with_one_line_and_disabling_the_plugin_lets_them_run(installed, tmp_path):
    broken_beside_good(installed)
    failed = run("project", tmp_path / "face.png", "-o", tmp_path / "out")  # plugins load before anything else
    assert failed.code == 1 and failed.error.startswith("plugin broken (facemath-broken 2.0.1): failed to import")
    assert failed.error.endswith("disable it with FACEMATH_DISABLED_PLUGINS=broken (or uninstall facemath-broken)")
    listed = run("plugins", "--kind", "mask", env={"FACEMATH_DISABLED_PLUGINS": "broken"})
    assert listed.code == 0, listed.stderr
    assert "solid" in listed.stdout and "could not load" not in listed.stdout
    # Blocked by its distribution name too, through pluggy's set_blocked.
    listed = run("plugins", "--kind", "mask", env={"FACEMATH_DISABLED_PLUGINS": "facemath-broken"})
    assert listed.code == 0 and listed.stderr == ""


def test_entry_points_load_through_pluggy(installed, monkeypatch):
    """pluggy's `load_setuptools_entrypoints` registered them (it records each plugin's distribution), and a
    blocked name is pluggy's `is_blocked`."""
    installed.install("facemath-solid", "1.4", {"solid_plugin": GOOD}, {"solid": "solid_plugin"})
    manager = build_plugin_manager()
    loaded = {dist.project_name for _, dist in manager.list_plugin_distinfo()}
    assert {"facemath", "facemath-solid"} <= loaded
    assert manager.provider_of("solid").record() == {
        "plugin": "solid",
        "distribution": "facemath-solid",
        "version": "1.4",
    }
    monkeypatch.setenv("FACEMATH_DISABLED_PLUGINS", "solid_plugin")  # by module name
    blocked = build_plugin_manager()
    assert blocked.is_blocked("solid") and blocked.get_plugin("solid") is None


def test_plugins_are_registered_behind_the_guard_without_changing_them():
    """Each plugin is registered as a guarded object holding its hook functions: pluggy's HookImpl is as pluggy
    made it, and the module's own functions are untouched."""
    manager = build_plugin_manager(builtins_only=True)
    module = importlib.import_module(BUILTIN_PLUGINS["builtin-masks"])
    (impl,) = [i for i in manager.hook.facemath_masks.get_hookimpls() if i.plugin_name == "builtin-masks"]
    assert impl.plugin.wrapped is module and manager.plugin_of("builtin-masks") is module
    assert impl.function.__wrapped__ is module.facemath_masks and not hasattr(module.facemath_masks, "__wrapped__")
    assert all(c.provider.plugin == "builtin-masks" for c in impl.function())


def test_a_hook_that_raises_loses_only_its_own_plugin(tmp_path):
    broken = tmp_path / "raising.py"
    broken.write_text(
        textwrap.dedent(
            """
            from facemath_core import hookimpl

            @hookimpl
            def facemath_masks():
                raise RuntimeError("no masks today")
            """
        )
    )
    registry = load_registry([str(broken)], builtins_only=True, strict=False)
    assert "center" in registry.names("mask")  # the built-ins are all there
    (failure,) = registry.failures
    assert failure.message() == f"--plugin {broken}: facemath_masks() failed: RuntimeError: no masks today"


def test_a_duplicate_keeps_the_first_and_names_the_entry_points_to_block(installed):
    installed.install(
        "facemath-dupe",
        "2.0",
        {"dupe_plugin": GOOD.replace('"solid"', '"center"')},
        {"dupe": "dupe_plugin"},
    )
    registry = load_registry(strict=False)
    assert registry.get("mask", "center").provider.distribution == "facemath"
    (failure,) = registry.failures
    assert failure.plugin == "dupe" and "(entry point builtin-masks) and facemath-dupe 2.0 (entry point dupe)" in (
        failure.message()
    )
    assert failure.message().endswith("FACEMATH_DISABLED_PLUGINS=builtin-masks or FACEMATH_DISABLED_PLUGINS=dupe")


def test_the_same_plugin_file_twice_or_by_two_paths_is_loaded_once(tmp_path, monkeypatch):
    """Issue 30: `--plugin` the same file twice exited 1 "Plugin name already registered"."""
    plugin = tmp_path / "solid.py"
    plugin.write_text(textwrap.dedent(GOOD))
    monkeypatch.chdir(tmp_path)
    for specs in (
        [str(plugin), str(plugin)],
        [str(plugin), "solid.py", f"./{plugin.name}", f"../{tmp_path.name}/solid.py"],
    ):
        registry = load_registry(specs, builtins_only=True)
        assert registry.get("mask", "solid").provider == f"--plugin {plugin}"
    args = [a for spec in (str(plugin), "./solid.py") for a in ("--plugin", spec)]
    result = run(*args, "plugins", "--kind", "mask", "--json")
    assert result.code == 0, result.stderr
    assert [item["name"] for item in json.loads(result.stdout)].count("solid") == 1


def test_a_module_named_with_plugin_and_installed_is_loaded_once():
    registry = load_registry(["facemath_plugins.masks"])
    assert registry.get("mask", "center").provider.plugin == "builtin-masks"


def test_registry_params_for_one_kind():
    registry = load_registry(builtins_only=True)
    assert registry.params_for("operator", []) == {}
    with pytest.raises(Exception, match=r"--param slerpp.eps=1: no operator called 'slerpp'; did you mean slerp\?"):
        registry.params_for("operator", ["slerpp.eps=1"])
    with pytest.raises(Exception, match=r"--param adam.lr=1: optimizer 'adam' .* is not a operator"):
        registry.params_for("operator", ["adam.lr=1"])
    with pytest.raises(Exception, match=r"--param lerp.t=1: operator 'lerp' .* is not used here \(this uses slerp\)"):
        registry.params_for("operator", ["lerp.t=1"], used=["slerp"])
