"""Building the plugin manager and the registry of everything the plugins provide.

Plugins come from three places: installed distributions with a `facemath` entry point (the built-in plugins are
registered exactly this way), and modules or files named with `--plugin` on the command line. Any plugin can be
blocked by name with FACEMATH_DISABLED_PLUGINS=name1,name2.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pluggy

from facemath_core import hookspecs
from facemath_core.components import HOOK_OF_KIND, KIND_OF_CLASS, Component
from facemath_core.errors import FacemathError

ENTRY_POINT_GROUP = "facemath"
DISABLED_ENV = "FACEMATH_DISABLED_PLUGINS"


@dataclass(frozen=True)
class Provided:
    """A component together with where it came from."""

    component: Component
    plugin: str  # the plugin's registered name (entry-point name, module name or file path)
    distribution: str  # "facemath 0.1.0", "my-plugin 1.2", or "--plugin FILE" for one-off plugins


def _load_extra(spec: str):
    """Import a one-off plugin named on the command line: a module path (pkg.mod) or a .py file."""
    path = Path(spec)
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise FacemathError(f"--plugin {spec}: no such file")
        module_name = f"facemath_extra_{abs(hash(str(path.resolve())))}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            raise FacemathError(f"--plugin {spec}: failed to import ({type(exc).__name__}: {exc})") from None
        return module
    try:
        return importlib.import_module(spec)
    except ImportError as exc:
        raise FacemathError(f"--plugin {spec}: cannot import module ({exc})") from None


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def build_plugin_manager(extra_plugins: Sequence[str] = (), entry_points: bool = True) -> pluggy.PluginManager:
    """Hookspecs, then installed entry points, then the `--plugin` modules, then a check that every
    implementation matches a spec."""
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    for name in filter(None, (n.strip() for n in os.environ.get(DISABLED_ENV, "").split(","))):
        manager.set_blocked(name)
    if entry_points:
        try:
            manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:
            raise FacemathError(
                f"a plugin installed under the '{ENTRY_POINT_GROUP}' entry point failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from None
    for spec in extra_plugins:
        if manager.is_blocked(spec):
            continue
        module = _load_extra(spec)
        if manager.is_registered(module):
            continue
        try:
            manager.register(module, name=spec)
        except pluggy.PluginValidationError as exc:
            raise FacemathError(f"--plugin {spec}: {_first_line(exc)}") from None
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise FacemathError(
            f"plugin {exc.plugin.__name__ if hasattr(exc.plugin, '__name__') else exc.plugin}: {_first_line(exc)}"
        ) from None
    return manager


class Registry:
    """Every component of every plugin, by kind and name; duplicates are an error naming both providers."""

    def __init__(self, manager: pluggy.PluginManager):
        self.manager = manager
        distributions = {
            plugin: f"{dist.project_name} {dist.version}" for plugin, dist in manager.list_plugin_distinfo()
        }
        self._by_kind: dict[str, dict[str, Provided]] = {kind: {} for kind in HOOK_OF_KIND}
        for kind, hook_name in HOOK_OF_KIND.items():
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                distribution = distributions.get(impl.plugin, f"--plugin {impl.plugin_name}")
                try:
                    provided = impl.function() or []
                except Exception as exc:
                    raise FacemathError(
                        f"plugin {impl.plugin_name} ({distribution}): {hook_name}() failed: {type(exc).__name__}: {exc}"
                    ) from None
                for component in provided:
                    self._add(kind, Provided(component, impl.plugin_name, distribution), hook_name)

    def _add(self, kind: str, provided: Provided, hook_name: str) -> None:
        component = provided.component
        if KIND_OF_CLASS.get(type(component)) != kind:
            raise FacemathError(
                f"plugin {provided.plugin} ({provided.distribution}): {hook_name}() returned "
                f"{type(component).__name__} {getattr(component, 'name', component)!r}, expected a {kind} component"
            )
        existing = self._by_kind[kind].get(component.name)
        if existing is not None:
            raise FacemathError(
                f"two plugins provide the {kind} {component.name!r}: {existing.plugin} ({existing.distribution}) "
                f"and {provided.plugin} ({provided.distribution}); uninstall or block one with {DISABLED_ENV}"
            )
        self._by_kind[kind][component.name] = provided

    def all(self, kind: str) -> list[Provided]:
        return sorted(self._by_kind[kind].values(), key=lambda p: p.component.name)

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def get(self, kind: str, name: str, option: str | None = None):
        """The component called `name`, or an error listing the known names of that kind."""
        try:
            return self._by_kind[kind][name].component
        except KeyError:
            where = f"{option} {name}" if option else f"{kind} {name!r}"
            known = ", ".join(self.names(kind)) or "none installed"
            raise FacemathError(f"{where}: unknown {kind}; known: {known}") from None


def load_registry(extra_plugins: Sequence[str] = ()) -> Registry:
    return Registry(build_plugin_manager(extra_plugins))
