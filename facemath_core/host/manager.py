"""Building the plugin manager and the registry of everything the plugins provide.

Plugins come from three places: installed distributions with a `facemath` entry point (the built-in plugins are
registered exactly this way), loaded with pluggy's own `load_setuptools_entrypoints`, and modules or files named
with `--plugin` on the command line. Any plugin can be blocked with FACEMATH_DISABLED_PLUGINS=name1,name2
(entry-point name, module name, distribution name or `--plugin` spec), through pluggy's `set_blocked`.

A plugin that cannot be loaded (its import fails, a hook does not match its spec, a hook raises or returns the
wrong thing, a component breaks a static contract or takes a name already taken) does not stop the others: it is
recorded as a `LoadFailure`. `facemath plugins` lists the failures beside what loaded; every other command stops
at the first one, with one line that names the entry point and how to disable it.

Every hook is called through pluggy (`manager.hook.facemath_*`), so `tryfirst`/`trylast`, wrappers and tracing
(`facemath --trace-plugins`, or FACEMATH_TRACE_PLUGINS=1) work. Each plugin is registered behind the guard
(`GuardedPlugin`: its hook functions wrapped, the module itself untouched), so whatever a hook raises or returns
wrongly is reported against its plugin, and every component comes out tagged with its provider.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pluggy

from facemath_core.base.errors import FacemathError, PluginError
from facemath_core.base.version import __version__
from facemath_core.host import hookspecs
from facemath_core.host.backend import Backend
from facemath_core.host.components import (
    CLASS_OF_KIND,
    HOOK_OF_KIND,
    KIND_OF_CLASS,
    RESERVED_NAMES,
    Component,
    Provider,
)
from facemath_core.host.contracts import check_static
from facemath_core.host.guard import TracedCalls, guard, one_line, plugin_error  # noqa: F401 (re-exported)
from facemath_core.host.schema import (  # noqa: F401 (coerce_param, FALSE_WORDS: re-exported)
    FALSE_WORDS,
    TRUE_WORDS,
    check_params,
    coerce_param,
    parse_param_options,
)

ENTRY_POINT_GROUP = "facemath"
DISABLED_ENV = "FACEMATH_DISABLED_PLUGINS"
TRACE_ENV = "FACEMATH_TRACE_PLUGINS"
BUILTIN_DISTRIBUTION = "facemath"
BUILTIN_PROVIDER = f"{BUILTIN_DISTRIBUTION} {__version__}"
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
    "builtin-detectors": "facemath_plugins.detectors",
    "builtin-samplers": "facemath_plugins.samplers",
}
BACKEND_HOOK = "facemath_open_backend"

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


def _warn(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


# --- what could not be loaded ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadFailure:
    """A plugin (or one of its components) that could not be loaded, and why."""

    plugin: str  # the registered name: entry-point name or `--plugin` spec (what FACEMATH_DISABLED_PLUGINS takes)
    provider: str  # "distribution version" or "--plugin SPEC"
    error: str  # one line
    target: str = ""  # the entry point's module (or module:attribute)
    distribution: str | None = None
    version: str | None = None
    hint: str = ""  # how to get rid of it; default: disable the plugin
    standalone: bool = False  # the error already names the component and its provider

    @property
    def where(self) -> str:
        """`plugin tv-loss (facemath-tv-loss 1.0.0)`, `--plugin my_loss.py`."""
        if self.provider.startswith("--plugin") or not self.plugin:
            return self.provider or "a hook wrapper"
        return f"plugin {self.plugin} ({self.provider})"

    def message(self) -> str:
        """One line: where, what, and what to do about it."""
        text = self.error if self.standalone else f"{self.where}: {self.error}"
        if self.hint:
            return f"{text}; {self.hint}"
        if self.distribution is None:
            return text
        uninstall = "" if self.distribution == BUILTIN_DISTRIBUTION else f" (or uninstall {self.distribution})"
        return f"{text}; disable it with {DISABLED_ENV}={self.plugin}{uninstall}"

    def describe(self) -> dict:
        """As `facemath plugins --json` lists it."""
        return {
            "kind": "not-loaded",
            "name": self.plugin,
            "target": self.target,
            "provider": self.provider,
            "distribution": self.distribution,
            "version": self.version,
            "error": self.error,
            "message": self.message(),
        }


def _failure(
    provider: Provider | str, error: str, hint: str = "", target: str = "", standalone: bool = False
) -> LoadFailure:
    plugin, distribution = getattr(provider, "plugin", ""), getattr(provider, "distribution", None)
    version = getattr(provider, "version", None)
    return LoadFailure(plugin, str(provider), error, target, distribution, version, hint, standalone)


# --- the manager ----------------------------------------------------------------------------------------------


class PluginManager(pluggy.PluginManager):
    """pluggy's manager for the `facemath` hooks: every plugin is registered behind the guard (`GuardedPlugin`),
    with who provides it (`providers`: "facemath 0.1.0", "--plugin FILE") and what could not be loaded
    (`failures`)."""

    def __init__(self):
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        self.providers: dict[str, Provider] = {}
        self.failures: list[LoadFailure] = []

    def register(self, plugin, name: str | None = None) -> str | None:
        """pluggy's `register`, of the plugin behind the guard. The same module twice is refused as pluggy
        refuses the same object twice."""
        name = name or self.get_canonical_name(plugin)
        for registered_name, registered in self.list_name_plugin():
            if getattr(registered, "wrapped", registered) is plugin:
                raise ValueError(f"Plugin already registered under a different name: {name} (as {registered_name})")
        return super().register(GuardedPlugin(self, plugin, name), name)

    def provider_of(self, name: str) -> Provider:
        """Who provides the plugin registered as `name`."""
        return self.providers.get(name) or Provider(f"plugin {name}", plugin=name)

    def plugin_of(self, name: str):
        """The module (or object) registered as `name`, without its guard; None when there is none."""
        plugin = self.get_plugin(name)
        return getattr(plugin, "wrapped", plugin)

    def raise_failures(self) -> None:
        """The first load failure as one PluginError, for every command but `facemath plugins`."""
        if not self.failures:
            return
        more = len(self.failures) - 1
        tail = f" ({more} more problem{'s' * (more != 1)}: see `facemath plugins`)" if more else ""
        raise PluginError(self.failures[0].message() + tail)


class GuardedPlugin:
    """A plugin as facemath registers it with pluggy: an object whose hook functions are the plugin's own, each
    wrapped in the guard (hook wrappers are left as they are: they see every plugin's results). pluggy registers
    any object with marked functions; this one keeps the module untouched and pluggy's `HookImpl` as pluggy made
    it."""

    def __init__(self, manager: PluginManager, plugin, name: str):
        self.wrapped = plugin
        self.__doc__ = getattr(plugin, "__doc__", None)
        kind_of_hook = {hook: kind for kind, hook in HOOK_OF_KIND.items()}
        self._hooks: list[str] = []
        for attribute in dir(plugin):
            if attribute.startswith("_"):
                continue
            options = manager.parse_hookimpl_opts(plugin, attribute)
            if options is None:
                continue
            function = getattr(plugin, attribute)
            hook_name = options.get("specname") or attribute
            if options.get("wrapper") or options.get("hookwrapper"):
                guarded = function
            elif hook_name in kind_of_hook:
                guarded = _guarded_components(function, manager, name, hook_name, kind_of_hook[hook_name])
            elif hook_name == BACKEND_HOOK:
                guarded = _guarded_backend(function, manager, name)
            else:
                guarded = function  # not a facemath hook: check_pending reports it
            setattr(self, attribute, guarded)
            self._hooks.append(attribute)

    def __dir__(self) -> list[str]:
        """Only the hook functions: pluggy's `register` looks at every name `dir` gives."""
        return list(self._hooks)

    def __repr__(self) -> str:
        return f"<guarded {self.wrapped!r}>"


def _where(provider: Provider) -> str:
    plugin = provider.plugin
    named = str(provider) in (f"--plugin {plugin}", f"plugin {plugin}")
    return str(provider) if named else f"plugin {plugin} ({provider})"


def _guarded_components(function: Callable, manager: PluginManager, name: str, hook_name: str, kind: str):
    """The hook returning this kind's components: a failure is recorded against the plugin (and the plugin gives
    nothing), each component comes out tagged with its provider."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        provider = manager.provider_of(name)
        try:
            result = function(*args, **kwargs)
            components = _components(result, hook_name, _where(provider), kind)
        except PluginError as exc:
            manager.failures.append(_failure(provider, str(exc).removeprefix(f"{_where(provider)}: ")))
            return None
        except Exception as exc:
            manager.failures.append(_failure(provider, f"{hook_name}() failed: {type(exc).__name__}: {one_line(exc)}"))
            return None
        return [replace(c, provider=provider) for c in components]

    return call


def _guarded_backend(function: Callable, manager: PluginManager, name: str):
    """The backend hook, called when a command opens its models: a failure stops the command, naming the plugin."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        where = _where(manager.provider_of(name))
        try:
            result = function(*args, **kwargs)
        except FacemathError:
            raise
        except Exception as exc:
            raise PluginError(f"{where}: {BACKEND_HOOK}() failed: {type(exc).__name__}: {one_line(exc)}") from exc
        if result is not None and not isinstance(result, Backend):
            raise PluginError(
                f"{where}: {BACKEND_HOOK}() returned {type(result).__name__}, expected a facemath_core.Backend (or "
                f"None for a target that is not its own)"
            )
        return result

    return call


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


# --- loading --------------------------------------------------------------------------------------------------


def _disabled_names() -> list[str]:
    return [n for n in (part.strip() for part in os.environ.get(DISABLED_ENV, "").split(",")) if n]


def _installed_entry_points() -> list[tuple[importlib.metadata.EntryPoint, str]]:
    """(entry point, "distribution version") for every `facemath` entry point, first occurrence of a name only
    (an editable install and a copy on PYTHONPATH can list one distribution twice), in the order pluggy's
    `load_setuptools_entrypoints` meets them."""
    found, seen = [], set()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP and ep.name not in seen:
                seen.add(ep.name)
                found.append((ep, f"{dist.metadata['name']} {dist.version}"))
    return found


def _entry_point_provider(ep: importlib.metadata.EntryPoint, distribution: str) -> Provider:
    dist, _, version = distribution.partition(" ")
    return Provider(distribution, plugin=ep.name, distribution=dist, version=version or None)


def _builtin_provider(name: str) -> Provider:
    return Provider(BUILTIN_PROVIDER, plugin=name, distribution=BUILTIN_DISTRIBUTION, version=__version__)


def _register(manager: PluginManager, plugin, name: str, target: str = "") -> bool:
    """Register one plugin; a plugin pluggy refuses is recorded, not raised."""
    try:
        manager.register(plugin, name=name)
        return True
    except (pluggy.PluginValidationError, ValueError) as exc:
        manager.failures.append(_failure(manager.provider_of(name), one_line(exc), target=target))
        return False


def _load_entry_points(manager: PluginManager, disabled: set[str], matched: set[str]) -> None:
    """pluggy's `load_setuptools_entrypoints`, once for all of them, after `set_blocked` for the disabled ones. An
    entry point that fails to import (or that pluggy refuses) is recorded and blocked, and loading goes on with the
    rest: the failed one is the first, in pluggy's order, that is neither registered nor blocked. The entry points
    are listed here only when needed (blocking by module or distribution name, a failure): pluggy's own pass is
    the only one otherwise."""
    for name in disabled:
        manager.set_blocked(name)  # an entry-point name; module and distribution names are matched below
    entry_points = _installed_entry_points() if disabled else None
    for ep, distribution in entry_points or []:
        names = {ep.name, ep.module, distribution.split(" ")[0]}
        if names & disabled:
            matched.update(names & disabled)
            manager.set_blocked(ep.name)
    for _ in range(1000):  # one more pass per failed entry point
        try:
            manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            break
        except Exception as exc:
            entry_points = entry_points or _installed_entry_points()
            pending = [
                (ep, d) for ep, d in entry_points if not manager.has_plugin(ep.name) and not manager.is_blocked(ep.name)
            ]
            if not pending:
                raise
            ep, distribution = pending[0]
            refused = isinstance(exc, ValueError) and str(exc).startswith("Plugin ")  # by pluggy's register
            if isinstance(exc, pluggy.PluginValidationError) or refused:
                error = one_line(exc)
            else:
                error = f"failed to import {ep.value} ({type(exc).__name__}: {one_line(exc)})"
            manager.providers[ep.name] = _entry_point_provider(ep, distribution)
            manager.failures.append(_failure(manager.providers[ep.name], error, target=ep.value))
            manager.set_blocked(ep.name)
    # Who provides each plugin, as pluggy recorded it while loading.
    names = {id(getattr(p, "wrapped", p)): n for n, p in manager.list_name_plugin()}
    read: dict[int, tuple[str, str]] = {}  # reading a distribution's METADATA is the slow part: once each
    for plugin, dist in manager.list_plugin_distinfo():
        name = names.get(id(plugin))
        if name is None:
            continue
        key = id(getattr(dist, "_dist", dist))
        if key not in read:
            metadata = dist.metadata
            read[key] = (metadata["name"], metadata["version"])
        project, version = read[key]
        manager.providers[name] = Provider(f"{project} {version}", name, project, version)


def _extra_key(spec: str) -> tuple[str, str]:
    """What makes two `--plugin` options the same plugin: the resolved file, or the module name."""
    path = Path(spec)
    if spec.endswith(".py") or path.exists():
        return ("file", str(path.resolve()))
    return ("module", spec)


def _load_extra(manager: PluginManager, spec: str):
    """Import a one-off plugin named on the command line: a module path (pkg.mod) or a .py file. A name that does
    not exist is an error of the command line; a module that raises while importing is the plugin's failure."""
    path = Path(spec)
    provider = manager.providers[spec]
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
            sys.modules.pop(module_name, None)
            manager.failures.append(_failure(provider, f"failed to import ({type(exc).__name__}: {one_line(exc)})"))
            return None
        return module
    try:
        return importlib.import_module(spec)
    except ImportError as exc:
        if getattr(exc, "name", None) and spec.startswith(exc.name):
            raise FacemathError(f"--plugin {spec}: cannot import module ({exc})") from None
        manager.failures.append(_failure(provider, f"failed to import ({type(exc).__name__}: {one_line(exc)})"))
    except Exception as exc:
        manager.failures.append(_failure(provider, f"failed to import ({type(exc).__name__}: {one_line(exc)})"))
    return None


def build_plugin_manager(
    extra_plugins: Sequence[str] = (), entry_points: bool = True, builtins_only: bool = False
) -> PluginManager:
    """Hookspecs, then the installed entry points (or only the built-ins), then the `--plugin` modules (each file
    or module once, however it is named), then pluggy's check that every implementation matches a spec. What
    cannot be loaded is in `manager.failures`."""
    manager = PluginManager()
    disabled = set(_disabled_names())
    matched: set[str] = set()
    if entry_points and not builtins_only:
        _load_entry_points(manager, disabled, matched)
    if entry_points or builtins_only:
        for name, module_name in BUILTIN_PLUGINS.items():
            # builtins_only: the table itself. Otherwise an install whose metadata predates an entry of the table
            # (`pip install -e .` not rerun) would lose a whole kind of built-ins; register those directly.
            if manager.is_blocked(name) and {name, module_name} & disabled:
                matched.update({name, module_name} & disabled)
            if manager.has_plugin(name) or manager.is_blocked(name):
                continue
            if {name, module_name} & disabled:
                matched.update({name, module_name} & disabled)
                continue
            manager.providers[name] = _builtin_provider(name)
            _register(manager, importlib.import_module(module_name), name, module_name)
    seen: set[tuple[str, str]] = set()
    for spec in extra_plugins:
        key = _extra_key(spec)
        if key in seen:
            continue  # the same file twice, or by two paths: loaded once
        seen.add(key)
        if spec in disabled:
            matched.add(spec)
            continue
        manager.providers[spec] = Provider(f"--plugin {spec}", plugin=spec)
        module = _load_extra(manager, spec)
        if module is None or any(getattr(p, "wrapped", p) is module for _, p in manager.list_name_plugin()):
            continue  # failed (recorded), or a module already registered through its entry point
        _register(manager, module, spec)
    unknown = sorted(disabled - matched)
    if unknown and (entry_points or builtins_only):
        _warn(
            f"{DISABLED_ENV}: no plugin called {', '.join(unknown)} (block by entry-point, module or distribution "
            f"name; installed: {', '.join(sorted(manager.providers)) or 'none'})"
        )
    _check_pending(manager)
    if tracing_requested():
        manager.trace.root.setwriter(sys.stderr.write)
        manager.enable_tracing()
    return manager


def _check_pending(manager: PluginManager) -> None:
    """pluggy's `check_pending`: an implementation of no known hook (a misspelt name) is that plugin's failure."""
    for _ in range(len(manager.get_plugins()) + 1):
        try:
            manager.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = manager.get_name(exc.plugin)
            manager.failures.append(_failure(manager.provider_of(name), one_line(exc)))
            manager.unregister(name=name)


def current_manager() -> PluginManager:
    """The manager for this command line (its `--plugin`s), built once per set of options; a plugin that could
    not be loaded stops the command here."""
    key = (_command_line["extra"], os.environ.get(DISABLED_ENV, ""), tracing_requested())
    if key not in _managers:
        _managers[key] = build_plugin_manager(_command_line["extra"])
    _managers[key].raise_failures()
    return _managers[key]


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


def _blockable(provider: Provider | str) -> str:
    """How a duplicate's provider is named so that the user knows what to block."""
    plugin = getattr(provider, "plugin", "")
    if getattr(provider, "distribution", None):
        return f"{provider} (entry point {plugin})"
    return str(provider)


class Registry:
    """Every component of every plugin, by kind and name. A component that breaks a static contract, takes a
    reserved name or a name another plugin already provides is left out and recorded as a failure; `strict` (every
    command but `facemath plugins`) raises the first failure as one line."""

    def __init__(self, manager: PluginManager, strict: bool = True):
        self.manager = manager
        self._by_kind: dict[str, dict[str, Component]] = {kind: {} for kind in HOOK_OF_KIND}
        for kind, hook_name in HOOK_OF_KIND.items():
            try:
                provided = call_hook(manager, hook_name)
            except PluginError as exc:
                manager.failures.append(LoadFailure("", "", str(exc), standalone=True))
                continue
            for result in provided:
                try:
                    # A hook wrapper may add components the per-plugin guard never saw: check them again.
                    components = _components(result, hook_name, f"a {hook_name} hook wrapper", kind)
                except PluginError as exc:
                    manager.failures.append(LoadFailure("", "", str(exc), standalone=True))
                    continue
                for component in components:
                    self._add(kind, component)
        if strict:
            manager.raise_failures()

    @property
    def failures(self) -> list[LoadFailure]:
        return self.manager.failures

    def _add(self, kind: str, component: Component) -> None:
        provider = component.provider
        if component.name in RESERVED_NAMES.get(kind, ()):
            reserved = ", ".join(sorted(RESERVED_NAMES[kind]))
            error = f"{component.label}: the name {component.name!r} is reserved (reserved {kind} names: {reserved})"
            self.manager.failures.append(_failure(provider, error, hint="rename it", standalone=True))
            return
        try:
            check_static(component)
        except PluginError as exc:
            self.manager.failures.append(_failure(provider, str(exc), standalone=True))
            return
        existing = self._by_kind[kind].get(component.name)
        if existing is not None:
            names = [getattr(p, "plugin", "") or str(p) for p in (existing.provider, provider)]
            blocks = " or ".join(f"{DISABLED_ENV}={name}" for name in names)
            error = (
                f"two plugins provide the {kind} {component.name!r}: {_blockable(existing.provider)} and "
                f"{_blockable(provider)}"
            )
            hint = f"uninstall or block one with {blocks}"
            self.manager.failures.append(_failure(provider, error, hint=hint, standalone=True))
            return
        self._by_kind[kind][component.name] = component

    def all(self, kind: str) -> list[Component]:
        return sorted(self._by_kind[kind].values(), key=lambda c: c.name)

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def all_names(self) -> list[str]:
        return sorted({name for by_name in self._by_kind.values() for name in by_name})

    def components(self) -> list[Component]:
        """Every component, kind by kind."""
        return [c for kind in self._by_kind for c in self.all(kind)]

    def find(self, name: str) -> list[Component]:
        """Every component called `name`, of any kind (what `--param NAME.KEY=...` can mean)."""
        return [by_name[name] for by_name in self._by_kind.values() if name in by_name]

    def params_for(
        self, kind: str, values: Sequence[str] | None, option: str = "--param", used: Sequence[str] | None = None
    ) -> dict[str, dict]:
        """`--param NAME.KEY=VALUE` options for the components of one kind (the operators of `facemath math`):
        {NAME: all its parameters, typed and checked by its schema}. NAME must be a component of this kind, and one
        of `used` when given; every error names the option, before any work."""
        out = {}
        for name, given in parse_param_options(list(values or []), option).items():
            shown = f"{option} {name}.{next(iter(given))}={next(iter(given.values()))}"
            component = self._by_kind[kind].get(name)
            if component is None:
                elsewhere = self.find(name)
                if elsewhere:
                    label = elsewhere[0].label
                    raise FacemathError(f"{shown}: {label} is not a {kind}; this command takes {kind} parameters")
                close = difflib.get_close_matches(name, self.names(kind), n=1)
                hint = f"; did you mean {close[0]}?" if close else f" (known: {', '.join(self.names(kind)) or 'none'})"
                raise FacemathError(f"{shown}: no {kind} called {name!r}{hint}")
            if used is not None and name not in used:
                raise FacemathError(f"{shown}: {component.label} is not used here (this uses {', '.join(used)})")
            out[name] = check_params(component, given, option)
        return out

    def get(self, kind: str, name: str, option: str | None = None):
        """The component called `name`, or an error listing the known names of that kind."""
        try:
            return self._by_kind[kind][name]
        except KeyError:
            where = f"{option} {name}" if option else f"{kind} {name!r}"
            known = ", ".join(self.names(kind)) or "none installed"
            raise FacemathError(f"{where}: unknown {kind}; known: {known}") from None


def load_registry(extra_plugins: Sequence[str] = (), builtins_only: bool = False, strict: bool = True) -> Registry:
    """The registry of the installed plugins plus `extra_plugins`; `builtins_only` leaves out everything installed
    but facemath's own (tests use it to be independent of the environment). Not `strict`: what could not be
    loaded is in `registry.failures` instead of raised."""
    return Registry(build_plugin_manager(extra_plugins, builtins_only=builtins_only), strict=strict)
