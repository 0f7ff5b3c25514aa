"""The parameter schema of a component: per parameter its default, type, choices, range and help.

A plugin declares a parameter either by its plain default (`defaults={"window": 7}`: an int, any value) or with a
`Param` that says more (`defaults={"form": Param("nonsaturating", choices=("nonsaturating", "saturating"))}`). The
component keeps both views: `component.defaults` maps each key to its default value (what the function receives),
`component.schema` each key to its `Param`. Every value a component is given, from `--param` text, a preset or a
studio form, goes through `check_params`, which types it, refuses what the schema refuses and names the parameter,
before any work. `Param.describe()` is the schema as plain JSON data: what `facemath plugins --json` prints and what
a form builds its controls from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from facemath_core.base.errors import FacemathError

if TYPE_CHECKING:
    from facemath_core.host.components import Component

TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# The value types `--param` can type from text; a default of another type (a list, say) is passed as it is and
# cannot be set from the command line.
TYPES: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}
TYPE_NAMES = {kind: name for name, kind in TYPES.items()}
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


@dataclass(frozen=True)
class Param:
    """A declared parameter: `Param(default, help=..., choices=..., ge/gt/le/lt=..., type=...)`.

    `type` is one of bool, int, float, str; by default the default's type (str when the default is None, which
    then means "no value": the text is optional). `choices` lists every value allowed; `ge`, `gt`, `le` and `lt`
    bound a number (>=, >, <=, <). `help` is one line shown by `facemath plugins` and beside a studio control.
    """

    default: Any = None
    help: str = ""
    choices: tuple | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    type: type | None = field(default=None)

    def __post_init__(self):
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.type is None:
            inferred = str if self.default is None else type(self.default)
            object.__setattr__(self, "type", inferred if inferred in TYPE_NAMES else None)

    @property
    def type_name(self) -> str:
        """bool, int, float, str, or "any" for a default --param cannot type."""
        return TYPE_NAMES.get(self.type, "any")

    def bounds(self) -> list[str]:
        return [f"{sign} {getattr(self, key):g}" for key, sign in _BOUNDS if getattr(self, key) is not None]

    def constraint(self) -> str:
        """What the parameter accepts, in words: 'one of a, b', '> 0 and < 1', 'a whole number' ..."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        noun = {"bool": "true or false (or 1/0, yes/no)", "int": "a whole number", "float": "a number"}
        words = noun.get(self.type_name, "text" if self.type is str else "a value")
        bounds = self.bounds()
        return f"{words} {' and '.join(bounds)}" if bounds else words

    def describe(self) -> dict[str, Any]:
        """The schema as plain data (JSON): default, type, choices, bounds, help; absent keys are not declared."""
        out: dict[str, Any] = {"default": _plain(self.default), "type": self.type_name}
        if self.choices is not None:
            out["choices"] = [_plain(c) for c in self.choices]
        for key, _ in _BOUNDS:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.help:
            out["help"] = self.help
        return out

    def problem(self, value) -> str | None:
        """Why `value` (already typed) is not allowed, or None."""
        if self.type is float and isinstance(value, float) and not math.isfinite(value):
            return "a finite number"
        if self.choices is not None and value not in self.choices:
            return self.constraint()
        if self.bounds() and _number(value):
            for key, _ in _BOUNDS:
                bound = getattr(self, key)
                if bound is None:
                    continue
                ok = {"ge": value >= bound, "gt": value > bound, "le": value <= bound, "lt": value < bound}[key]
                if not ok:
                    return self.constraint()
        return None

    def typed(self, value):
        """A value of this parameter's type from text (`--param`) or a JSON value (a preset, the studio); raises
        ValueError (with the words of `constraint`) when it cannot be one. None stays None for an optional text."""
        if value is None and (self.default is None or self.type is None):
            return None
        if self.type is None:
            return value
        text = value.strip() if isinstance(value, str) else None
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if text is not None and text.lower() in TRUE_WORDS + FALSE_WORDS:
                return text.lower() in TRUE_WORDS
        elif self.type is int:
            if _number(value) and float(value).is_integer():
                return int(value)
            if text is not None:
                try:
                    return int(text)
                except ValueError:
                    pass
        elif self.type is float:
            if _number(value):
                return float(value)
            if text is not None:
                try:
                    return float(text)
                except ValueError:
                    pass
        elif self.type is str:
            if isinstance(value, str):
                return value
        raise ValueError(self.constraint())


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


class Defaults(Mapping):
    """A component's parameters: a read-only mapping of each key to its default value (what the function gets),
    with the declared `Param` of each in `.schema`. Built from a plain dict whose values are defaults or `Param`s."""

    def __init__(self, declared: Mapping[str, Any] | None = None):
        declared = declared or {}
        if isinstance(declared, Defaults):
            schema = dict(declared.schema)
        else:
            schema = {key: value if isinstance(value, Param) else Param(value) for key, value in declared.items()}
        self.schema: Mapping[str, Param] = MappingProxyType(schema)
        self._values = {key: param.default for key, param in schema.items()}

    def __getitem__(self, key: str):
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return repr(self._values)


# --- values for a component -----------------------------------------------------------------------------------


def coerce_param(component: Component, key: str, value, option: str = "--param", shown: str | None = None):
    """One value for parameter `key`, typed and checked against its schema; an error names the option (`shown`:
    how the command line gave it, e.g. `--lr 0`), the parameter and the component (with its provider and
    version)."""
    param = component.schema[key]
    where = shown or f"{option} {component.name}.{key}={value}"
    try:
        typed = param.typed(value)
    except ValueError as exc:
        raise FacemathError(f"{where}: {key} of {component.label} is {exc}") from None
    if typed is None:
        return None
    problem = param.problem(typed)
    if problem:
        raise FacemathError(f"{where}: {key} of {component.label} must be {problem}")
    return typed


def check_params(component: Component, params: Mapping, option: str = "--param") -> dict:
    """The component's defaults updated by `params`, each typed and checked by the schema; an unknown key is an
    error that lists the known ones."""
    unknown = sorted(set(params) - set(component.defaults))
    if unknown:
        known = ", ".join(f"{k}={v}" for k, v in component.defaults.items()) or "none"
        raise FacemathError(
            f"{option} {component.name}.{unknown[0]}: {component.label} has no parameter {unknown[0]!r} "
            f"(parameters: {known})"
        )
    return {**component.defaults, **{k: coerce_param(component, k, v, option) for k, v in params.items()}}


def parse_param_options(values: list[str] | None, option: str = "--param") -> dict[str, dict[str, str]]:
    """`--param NAME.KEY=VALUE` options -> {NAME: {KEY: 'VALUE'}} (text: `check_params` types it)."""
    out: dict[str, dict[str, str]] = {}
    for value in values or []:
        target, sep, raw = value.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not name or not key:
            raise FacemathError(f"{option} {value}: expected NAME.KEY=VALUE, e.g. slerp.eps=1e-6")
        out.setdefault(name, {})[key] = raw
    return out


def schema_problems(component: Component) -> list[str]:
    """What is wrong with a component's declared parameters (checked at registration): keys that are not names, a
    default its own schema refuses, choices of the wrong type."""
    problems = []
    for key, param in component.schema.items():
        if not isinstance(key, str) or not key.isidentifier():
            problems.append(f"parameter name {key!r} is not a Python identifier")
            continue
        if param.type is None:
            continue  # a default --param cannot type: passed as it is
        for value in param.choices or ():
            try:
                if param.typed(value) != value:
                    raise ValueError
            except ValueError:
                problems.append(f"choice {value!r} of {key} is not a {param.type_name}")
        if param.default is None:
            continue
        try:
            default = param.typed(param.default)
        except ValueError:
            problems.append(f"default {param.default!r} of {key} is not a {param.type_name}")
            continue
        problem = param.problem(default)
        if problem:
            problems.append(f"default {param.default!r} of {key} is not {problem}")
    return problems
