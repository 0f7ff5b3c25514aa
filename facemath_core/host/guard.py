"""The guard around plugin code: whatever plugin code raises becomes one `PluginError` naming the component and
the plugin that provides it (distribution and version, or the `--plugin` path), at load, check and run time.

Three shapes of call need it: a plain call (`guard`), calls made while TensorFlow traces a `tf.function`
(`TracedCalls`: autograph rewrites exceptions raised there, so the first failure is kept as it was), and an object a
plugin returned whose methods the core calls later (`guarded_object`, e.g. an optimizer's `apply_gradients`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from facemath_core.base.errors import FacemathError, PluginError

if TYPE_CHECKING:
    from facemath_core.host.components import Component


def one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split())


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
    by `guard`."""

    def __init__(self):
        self.failures: list[tuple[Component, BaseException]] = []

    def call(self, component: Component, *args, **kwargs):
        return self.run(component, component.function, *args, **kwargs)

    def run(self, component: Component, function: Callable, *args, **kwargs):
        """Call `function`, one of `component`'s functions (or a method of an object it returned)."""
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


class guarded_object:  # noqa: N801 (used like a function: guarded_object(component, thing, methods))
    """`thing` (an object a plugin returned, such as an optimizer) with the named methods guarded: what they raise
    is reported against `component` (through `calls` when given, for methods called while tracing). Every other
    attribute is `thing`'s own."""

    def __init__(self, component: Component, thing: Any, methods: tuple[str, ...], calls: TracedCalls | None = None):
        object.__setattr__(self, "_parts", (component, thing, frozenset(methods), calls))

    @property
    def wrapped(self) -> Any:
        return self._parts[1]

    def __getattr__(self, name: str):
        component, thing, methods, calls = self._parts
        attribute = getattr(thing, name)
        if name not in methods or not callable(attribute):
            return attribute

        def method(*args, **kwargs):
            if calls is not None:
                return calls.run(component, attribute, *args, **kwargs)
            with guard(component, f"in {name}()"):
                return attribute(*args, **kwargs)

        return method

    def __setattr__(self, name: str, value) -> None:
        setattr(self._parts[1], name, value)
