"""Building the plugin manager, the registry of everything the plugins provide, and the guard around plugin code.

Plugins come from three places: installed distributions with a `facemath` entry point (the built-in plugins are
registered exactly this way), and modules or files named with `--plugin` on the command line. Any plugin can be
blocked with FACEMATH_DISABLED_PLUGINS=name1,name2 (entry-point name, module name or distribution name).

Every hook is called through pluggy (`manager.hook.facemath_*`), so `tryfirst`/`trylast`, wrappers and tracing
(`facemath --trace-plugins`, or FACEMATH_TRACE_PLUGINS=1) work. Every call into plugin code goes through one guard
that turns an exception into a `PluginError` naming the component and the plugin that provides it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pluggy

from facemath_core.base.errors import FacemathError, PluginError
from facemath_core.base.version import __version__
from facemath_core.host import hookspecs
from facemath_core.host.backend import Backend
from facemath_core.host.components import CLASS_OF_KIND, HOOK_OF_KIND, KIND_OF_CLASS, RESERVED_NAMES, Component

ENTRY_POINT_GROUP = "facemath"
DISABLED_ENV = "FACEMATH_DISABLED_PLUGINS"
TRACE_ENV = "FACEMATH_TRACE_PLUGINS"
BUILTIN_PROVIDER = f"facemath {__version__}"
# The built-in plugins: entry-point name -> module. pyproject.toml registers the same table (a test checks), and
# `build_plugin_manager(builtins_only=True)` registers it directly, so tests do not depend on what else is installed.
BUILTIN_PLUGINS = {
    "builtin-losses": "facemath_plugins.losses",
    "builtin-optimizers": "facemath_plugins.optimizers",
    "builtin-masks": "facemath_plugins.masks",
    "builtin-blenders": "facemath_plugins.blenders",
    "builtin-operators": "facemath_plugins.operators",
    "builtin-inits": "facemath_plugins.inits",
    "builtin-constraints": "facemath_plugins.constraints",
    "builtin-backends": "facemath_plugins.backends",
}
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off")

# What the command line asked for (`facemath --plugin ... --trace-plugins`), for code that opens the plugin
# manager without a context to carry it (`backends.open_backend`).
_command_line: dict = {"extra": (), "trace": False}
_managers: dict[tuple, PluginManager] = {}
_warned: set[str] = set()


def configure(extra_plugins: Sequence[str] = (), trace: bool = False) -> None:
    """Record the command line's `--plugin` and `--trace-plugins` for `current_manager()`."""
    _command_line.update(extra=tuple(extra_plugins), trace=trace)


def tracing_requested() -> bool:
    return bool(_command_line["trace"]) or os.environ.get(TRACE_ENV, "").strip().lower() in TRUE_WORDS


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _warn(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


# --- the guard ------------------------------------------------------------------------------------------------


def plugin_error(component: Component, exc: BaseException, what: str = "") -> PluginError:
    """`loss 'tv' (facemath-tv-loss 1.0.0) failed: ValueError: ...`, with a hint for TensorFlow's usual traps."""
    message = one_line(exc)
    if "SymbolicTensor" in message or "Tensor-typed variable initializers" in message:
        message += " (this runs inside tf.function: use TensorFlow ops, not .numpy() or Python conditions on tensors)"
    doing = f" {what}" if what else ""
    return PluginError(f"{component.label} failed{doing}: {type(exc).__name__}: {message}")


@contextmanager
def guard(component: Component, what: str = "") -> Iterator[None]:
    """Run plugin code: an exception becomes one PluginError naming the component and its provider (the original
    stays chained as `__cause__`, for `--debug`). A FacemathError from the plugin already says what to fix."""
    try:
        yield
    except FacemathError:
        raise
    except Exception as exc:
        raise plugin_error(component, exc, what) from exc


class TracedCalls:
    """Plugin functions called while TensorFlow traces a `tf.function`: autograph rewrites exceptions raised there
    into multi-line messages about generated code, so the first failure is kept here, as it was, to be reported
    with `guard_traced`."""

    def __init__(self):
        self.failures: list[tuple[Component, BaseException]] = []

    def call(self, component: Component, *args, **kwargs):
        return self.run(component, component.function, *args, **kwargs)

    def run(self, component: Component, function: Callable, *args, **kwargs):
        """Call `function`, one of `component`'s functions."""
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            self.failures.append((component, exc))
            raise

    @contextmanager
    def guard(self, what: str = "") -> Iterator[None]:
        self.failures.clear()
        try:
            yield
        except FacemathError:
            raise
        except Exception:
            if not self.failures:
                raise
            component, original = self.failures[0]
            if isinstance(original, FacemathError):
                raise original from None
            raise plugin_error(component, original, what) from original


# --- loading --------------------------------------------------------------------------------------------------


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
            raise PluginError(f"--plugin {spec}: failed to import ({type(exc).__name__}: {exc})") from exc
        return module
    try:
        return importlib.import_module(spec)
    except ImportError as exc:
        raise FacemathError(f"--plugin {spec}: cannot import module ({exc})") from None
    except Exception as exc:
        raise PluginError(f"--plugin {spec}: failed to import ({type(exc).__name__}: {exc})") from exc


def _disabled_names() -> list[str]:
    return [n for n in (part.strip() for part in os.environ.get(DISABLED_ENV, "").split(",")) if n]


def _installed_entry_points() -> list[tuple[importlib.metadata.EntryPoint, str]]:
    """(entry point, "distribution version") for every `facemath` entry point, first occurrence of a name only
    (an editable install and a copy on PYTHONPATH can list one distribution twice)."""
    found, seen = [], set()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP and ep.name not in seen:
                seen.add(ep.name)
                found.append((ep, f"{dist.metadata['name']} {dist.version}"))
    return found


def _register(manager: pluggy.PluginManager, plugin, name: str, where: str) -> None:
    try:
        manager.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"{where}: {one_line(exc)}") from None
    except ValueError as exc:  # the same module registered under two names
        raise PluginError(f"{where}: {one_line(exc)}") from None


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, plus who provides each registered plugin ("facemath 0.1.0", "--plugin FILE")."""

    def __init__(self):
        super().__init__(ENTRY_POINT_GROUP)
        self.providers: dict[str, str] = {}


def build_plugin_manager(
    extra_plugins: Sequence[str] = (), entry_points: bool = True, builtins_only: bool = False
) -> PluginManager:
    """Hookspecs, then the installed entry points (or only the built-ins), then the `--plugin` modules, then a
    check that every implementation matches a spec; finally every implementation is wrapped in the guard."""
    manager = PluginManager()
    manager.add_hookspecs(hookspecs)
    providers = manager.providers
    disabled = _disabled_names()
    matched: set[str] = set()
    if builtins_only:
        for name, module_name in BUILTIN_PLUGINS.items():
            if name in disabled or module_name in disabled:
                matched.update({name, module_name})
                continue
            _register(manager, importlib.import_module(module_name), name, f"plugin {name}")
            providers[name] = BUILTIN_PROVIDER
    elif entry_points:
        for ep, distribution in _installed_entry_points():
            names = {ep.name, ep.module, distribution.split(" ")[0]}
            if names & set(disabled):
                matched.update(names & set(disabled))
                manager.set_blocked(ep.name)
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name} ({distribution}): failed to import {ep.value} ({type(exc).__name__}: {exc})"
                ) from exc
            _register(manager, plugin, ep.name, f"plugin {ep.name} ({distribution})")
            providers[ep.name] = distribution
        for name, module_name in BUILTIN_PLUGINS.items():
            # An install whose metadata predates an entry of this table (`pip install -e .` not rerun) would lose
            # a whole kind of built-ins; register those directly.
            if manager.get_plugin(name) is None and not manager.is_blocked(name):
                if {name, module_name} & set(disabled):
                    matched.update({name, module_name} & set(disabled))
                    continue
                _register(manager, importlib.import_module(module_name), name, f"plugin {name}")
                providers[name] = BUILTIN_PROVIDER
    for spec in extra_plugins:
        if spec in disabled:
            matched.add(spec)
            continue
        module = _load_extra(spec)
        if manager.is_registered(module):
            continue
        _register(manager, module, spec, f"--plugin {spec}")
        providers[spec] = f"--plugin {spec}"
    unknown = [name for name in disabled if name not in matched]
    if unknown and (entry_points or builtins_only):
        _warn(
            f"{DISABLED_ENV}: no plugin called {', '.join(unknown)} (block by entry-point, module or distribution "
            f"name; installed: {', '.join(sorted(providers)) or 'none'})"
        )
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {manager.get_name(exc.plugin)}: {one_line(exc)}") from None
    _guard_hookimpls(manager, providers)
    if tracing_requested():
        manager.trace.root.setwriter(sys.stderr.write)
        manager.enable_tracing()
    return manager


def current_manager() -> PluginManager:
    """The manager for this command line (its `--plugin`s), built once per set of options."""
    key = (_command_line["extra"], os.environ.get(DISABLED_ENV, ""), tracing_requested())
    if key not in _managers:
        _managers[key] = build_plugin_manager(_command_line["extra"])
    return _managers[key]


# --- every hook implementation behind the guard ---------------------------------------------------------------


def _guard_hookimpls(manager: pluggy.PluginManager, providers: dict[str, str]) -> None:
    """Wrap each implementation so that what it raises or returns wrongly is reported against its plugin.

    pluggy merges the results of all implementations into one list, which loses who returned what; wrapping the
    implementation itself keeps every call going through `manager.hook` (ordering, wrappers, tracing) while each
    component comes out tagged with its provider.
    """
    kind_of_hook = {hook: kind for kind, hook in HOOK_OF_KIND.items()}
    for hook_name in (n for n in dir(hookspecs) if n.startswith("facemath_")):
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            if impl.hookwrapper or impl.wrapper:
                continue
            provider = providers.get(impl.plugin_name, f"plugin {impl.plugin_name}")
            named = provider in (f"--plugin {impl.plugin_name}", f"plugin {impl.plugin_name}")
            where = provider if named else f"plugin {impl.plugin_name} ({provider})"
            impl.function = _guarded_impl(impl.function, hook_name, where, provider, kind_of_hook.get(hook_name))


def _guarded_impl(function: Callable, hook_name: str, where: str, provider: str, kind: str | None) -> Callable:
    @functools.wraps(function)
    def call(*args, **kwargs):
        try:
            result = function(*args, **kwargs)
        except FacemathError:
            raise
        except Exception as exc:
            raise PluginError(f"{where}: {hook_name}() failed: {type(exc).__name__}: {one_line(exc)}") from exc
        if result is None:
            return result
        if kind is None:
            return _backend(result, where) if hook_name == "facemath_open_backend" else result
        return [replace(c, provider=provider) for c in _components(result, hook_name, where, kind)]

    return call


def _backend(result, where: str):

    if not isinstance(result, Backend):
        raise PluginError(
            f"{where}: facemath_open_backend() returned {type(result).__name__}, expected a "
            f"facemath_core.Backend (or None for a target that is not its own)"
        )
    return result


def _components(result, hook_name: str, where: str, kind: str) -> list[Component]:
    expected = CLASS_OF_KIND[kind].__name__
    if isinstance(result, Component) or not isinstance(result, list | tuple):
        shown = f"{type(result).__name__} {getattr(result, 'name', '')!r}" if isinstance(result, Component) else ""
        raise PluginError(
            f"{where}: {hook_name}() returned {shown or type(result).__name__}, expected a list of {expected} "
            f"(return [{expected}(...)])"
        )
    for component in result:
        if KIND_OF_CLASS.get(type(component)) != kind:
            name = getattr(component, "name", component)
            raise PluginError(
                f"{where}: {hook_name}() returned {type(component).__name__} {name!r}, expected a {kind} "
                f"component ({expected})"
            )
    return list(result)


def call_hook(manager: pluggy.PluginManager, hook_name: str, **kwargs):
    """`manager.hook.<hook_name>(**kwargs)`. Implementations are guarded one by one; what still escapes comes from
    a hook wrapper, so the error names the plugins that wrap this hook."""
    hook = getattr(manager.hook, hook_name)
    try:
        return hook(**kwargs)
    except FacemathError:
        raise
    except Exception as exc:
        wrappers = [i.plugin_name for i in hook.get_hookimpls() if i.wrapper or i.hookwrapper] or ["none"]
        raise PluginError(
            f"{hook_name}() failed in a hook wrapper (wrapping plugins: {', '.join(wrappers)}): "
            f"{type(exc).__name__}: {one_line(exc)}"
        ) from exc


# --- the registry ---------------------------------------------------------------------------------------------


class Registry:
    """Every component of every plugin, by kind and name; duplicates and reserved names are errors naming the
    providers."""

    def __init__(self, manager: PluginManager):
        self.manager = manager
        self._by_kind: dict[str, dict[str, Component]] = {kind: {} for kind in HOOK_OF_KIND}
        for kind, hook_name in HOOK_OF_KIND.items():
            for provided in call_hook(manager, hook_name):
                # A hook wrapper may add components the per-implementation guard never saw: check them again.
                for component in _components(provided, hook_name, f"a {hook_name} hook wrapper", kind):
                    self._add(kind, component)

    def _add(self, kind: str, component: Component) -> None:
        if component.name in RESERVED_NAMES.get(kind, ()):
            raise PluginError(
                f"{component.label}: the name {component.name!r} is reserved "
                f"(reserved {kind} names: {', '.join(sorted(RESERVED_NAMES[kind]))}); rename it"
            )
        existing = self._by_kind[kind].get(component.name)
        if existing is not None:
            raise PluginError(
                f"two plugins provide the {kind} {component.name!r}: {existing.provider} and {component.provider}; "
                f"uninstall or block one with {DISABLED_ENV}"
            )
        self._by_kind[kind][component.name] = component

    def all(self, kind: str) -> list[Component]:
        return sorted(self._by_kind[kind].values(), key=lambda c: c.name)

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def all_names(self) -> list[str]:
        return sorted({name for by_name in self._by_kind.values() for name in by_name})

    def find(self, name: str) -> list[Component]:
        """Every component called `name`, of any kind (what `--param NAME.KEY=...` can mean)."""
        return [by_name[name] for by_name in self._by_kind.values() if name in by_name]

    def get(self, kind: str, name: str, option: str | None = None):
        """The component called `name`, or an error listing the known names of that kind."""
        try:
            return self._by_kind[kind][name]
        except KeyError:
            where = f"{option} {name}" if option else f"{kind} {name!r}"
            known = ", ".join(self.names(kind)) or "none installed"
            raise FacemathError(f"{where}: unknown {kind}; known: {known}") from None


def load_registry(extra_plugins: Sequence[str] = (), builtins_only: bool = False) -> Registry:
    """The registry of the installed plugins plus `extra_plugins`; `builtins_only` leaves out everything installed
    but facemath's own (tests use it to be independent of the environment)."""
    return Registry(build_plugin_manager(extra_plugins, builtins_only=builtins_only))


# --- parameters -----------------------------------------------------------------------------------------------


def coerce_param(component: Component, key: str, value, option: str = "--param"):
    """A `--param` value typed by the parameter's default: bool (true/false/1/0/yes/no/on/off), int, float, or
    text. Values already of the right type (from presets) pass unchanged."""
    default = component.defaults[key]
    where = f"{option} {component.name}.{key}={value}"
    if not isinstance(value, str) or default is None:
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    if isinstance(default, bool):
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise FacemathError(f"{where}: {key} of {component.label} is true or false (or 1/0, yes/no)")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise FacemathError(f"{where}: {key} of {component.label} is a whole number") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise FacemathError(f"{where}: {key} of {component.label} is a number") from None
    return value


def check_params(component: Component, params: dict, option: str = "--param") -> dict:
    """The component's defaults updated by `params`, typed like the defaults; an unknown key is an error that lists
    the known ones."""
    unknown = sorted(set(params) - set(component.defaults))
    if unknown:
        known = ", ".join(f"{k}={v}" for k, v in component.defaults.items()) or "none"
        raise FacemathError(
            f"{option} {component.name}.{unknown[0]}: {component.label} has no parameter {unknown[0]!r} "
            f"(parameters: {known})"
        )
    return {**component.defaults, **{k: coerce_param(component, k, v, option) for k, v in params.items()}}
