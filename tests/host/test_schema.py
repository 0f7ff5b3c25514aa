"""The parameter schema (host/schema.py): `Param` typing and checking with known answers, the `Defaults` mapping
that keeps plugins written against plain defaults working, and what registration refuses statically."""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import replace

import pytest

from facemath_core import LossTerm, Mask, Operator, Param, PluginError
from facemath_core.base.errors import FacemathError
from facemath_core.host.contracts import check_static
from facemath_core.host.schema import check_params, parse_param_options, schema_problems
from facemath_core.testing import registry


@pytest.mark.parametrize(
    ("param", "given", "typed"),
    [
        (Param(True), "yes", True),
        (Param(True), "OFF", False),
        (Param(False), True, True),
        (Param(3), " 7 ", 7),
        (Param(3), 4.0, 4),  # a JSON number that is whole (a preset, a form)
        (Param(0.5), "1e-3", 0.001),
        (Param(0.5), 2, 2.0),
        (Param("a"), "b c", "b c"),
        (Param(None), "text", "text"),
        (Param(None), None, None),
        (Param(1, type=float), "0.25", 0.25),
    ],
)
def test_values_are_typed_by_the_declared_type(param, given, typed):
    value = param.typed(given)
    assert value == typed and type(value) is type(typed)


@pytest.mark.parametrize(
    ("param", "given", "words"),
    [
        (Param(True), "maybe", "true or false (or 1/0, yes/no)"),
        (Param(3), "2.5", "a whole number"),
        (Param(3), True, "a whole number"),  # a JSON true is not 1
        (Param(3, ge=1), "x", "a whole number >= 1"),
        (Param(0.5), "abc", "a number"),
        (Param("a"), 3, "text"),
    ],
)
def test_a_value_of_the_wrong_type_says_what_is_expected(param, given, words):
    with pytest.raises(ValueError) as info:
        param.typed(given)
    assert str(info.value) == words


@pytest.mark.parametrize(
    ("param", "allowed", "refused"),
    [
        (Param(0.5, ge=0, le=1), [0.0, 0.5, 1.0], [-1e-9, 1.000001]),  # inclusive ends
        (Param(0.5, gt=0, lt=1), [1e-9, 0.999999], [0.0, 1.0]),  # exclusive ends
        (Param("a", choices=("a", "b")), ["a", "b"], ["c", "A"]),
        (Param(1.0), [1e300, -3.0], [math.nan, math.inf, -math.inf]),  # a float must be finite
    ],
)
def test_choices_and_ranges(param, allowed, refused):
    assert [param.problem(v) for v in allowed] == [None] * len(allowed)
    assert all(param.problem(v) for v in refused)


def test_the_schema_is_plain_json_data():
    param = Param(0.9, ge=0, lt=1, help="Decay.")
    assert json.loads(json.dumps(param.describe())) == {
        "default": 0.9,
        "type": "float",
        "ge": 0,
        "lt": 1,
        "help": "Decay.",
    }
    assert Param("x", choices=("x", "y")).describe() == {"default": "x", "type": "str", "choices": ["x", "y"]}
    assert Param([1, 2]).describe() == {"default": [1, 2], "type": "any"}  # a default --param cannot type


def test_defaults_stay_a_plain_mapping_of_default_values():
    """Plugins and the core read `defaults[key]` as the value; declared Params keep their schema, also through
    `dataclasses.replace` (how the manager tags a component with its provider)."""
    mask = Mask("m", "h", lambda shape, rng, image_name, k=2, s="a": None, {"k": Param(2, ge=1), "s": "a"})
    assert dict(mask.defaults) == {"k": 2, "s": "a"} and mask.defaults == {"k": 2, "s": "a"}
    assert mask.schema["k"].ge == 1 and mask.schema["s"] == Param("a")
    tagged = replace(mask, provider="someone 1.0")
    assert tagged.schema["k"].ge == 1 and tagged.defaults == {"k": 2, "s": "a"}
    described = tagged.describe()
    assert described["params"] == {"k": 2, "s": "a"}
    assert described["schema"] == {"k": {"default": 2, "type": "int", "ge": 1}, "s": {"default": "a", "type": "str"}}


def test_check_params_types_and_checks_every_value_and_keeps_the_rest():
    term = LossTerm("t", "h", lambda t, g, m, d, w=7, f="a": g, {"w": Param(7, ge=1), "f": Param("a", choices="ab")})
    assert check_params(term, {"w": "3"}) == {"w": 3, "f": "a"}
    with pytest.raises(
        FacemathError, match=r"^--param t.w=0: w of loss 't' \(provider unknown\) must be a whole number >= 1$"
    ):
        check_params(term, {"w": "0"})
    with pytest.raises(FacemathError, match=r"^--param t.f=c: f of loss 't' .* must be one of a, b$"):
        check_params(term, {"f": "c"})
    with pytest.raises(
        FacemathError, match=r"^--param t.x: loss 't' .* has no parameter 'x' \(parameters: w=7, f=a\)$"
    ):
        check_params(term, {"x": "1"})


def test_param_options_are_parsed_into_names_and_keys():
    assert parse_param_options(["a.b=1", "a.c=x=y", "d.e="]) == {"a": {"b": "1", "c": "x=y"}, "d": {"e": ""}}
    for bad in ("ab=1", "a.b", ".b=1", "a.=1"):
        with pytest.raises(FacemathError, match="expected NAME.KEY=VALUE"):
            parse_param_options([bad])


@pytest.mark.parametrize(
    ("defaults", "problem"),
    [
        ({"k": Param(0, ge=1)}, "default 0 of k is not a whole number >= 1"),
        ({"f": Param("c", choices=("a", "b"))}, "default 'c' of f is not one of a, b"),
        ({"f": Param("a", choices=("a", 2))}, "choice 2 of f is not a str"),
        ({"k": Param("x", type=int)}, "default 'x' of k is not a int"),
    ],
)
def test_a_schema_that_contradicts_itself_is_a_problem(defaults, problem):
    term = LossTerm("t", "h", lambda t, g, m, d, **kw: g, defaults)
    assert schema_problems(term) == [problem]
    with pytest.raises(PluginError, match=f"^loss 't' \\(provider unknown\\): {problem}$"):
        check_static(term)


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (
            LossTerm("t", "h", lambda target, generated: generated),
            r"<lambda>\(target, generated\) cannot be called as function\(target, generated, mask, disc_logits, "
            r"\*\*params\) \(too many positional arguments\)",
        ),
        (
            LossTerm("t", "h", lambda t, g, m, d: g, {"scale": 1.0}),
            r"got an unexpected keyword argument 'scale'",
        ),
        (LossTerm("t", "h", lambda t, g, m, d: g, default_weight=-1.0), r"default_weight -1.0 is not a finite number"),
        (LossTerm("t", "h", lambda t, g, m, d: g, needs_encoder=True), r"unexpected keyword argument 'z'"),
        (Operator("o", "h", lambda a: a, arity=2), r"cannot be called as function\(2 arguments, \*\*params\)"),
        (Operator("o", "h", lambda a: a, arity=-1), r"arity -1 is not a whole number >= 0"),
        (Operator("o", "h", lambda *a: a[0], {"k": 1}), r"cannot be called as function\(\*args, \*\*params\)"),
        (Mask("m", "h", lambda shape, rng: None), r"cannot be called as function\(shape, rng, image_name"),
    ],
)
def test_registration_refuses_what_can_be_refused_statically(component, message):
    with pytest.raises(PluginError, match=message):
        check_static(component)


def test_a_statically_broken_component_is_refused_when_loaded(tmp_path):
    plugin = tmp_path / "static.py"
    plugin.write_text(
        textwrap.dedent(
            """
            from facemath_core import LossTerm, hookimpl

            def bad(target, generated, mask, disc_logits):
                return generated

            @hookimpl
            def facemath_loss_terms():
                return [LossTerm("bad", "Takes no scale.", bad, {"scale": 1.0})]
            """
        )
    )
    with pytest.raises(PluginError) as info:
        registry(plugin)
    assert str(info.value) == (
        f"loss 'bad' (--plugin {plugin}): bad(target, generated, mask, disc_logits) cannot be called as "
        f"function(target, generated, mask, disc_logits, **params) (got an unexpected keyword argument 'scale')"
    )


def test_the_builtins_declare_their_parameters():
    builtins = registry()
    assert builtins.get("loss", "perceptual").schema["form"].choices == ("nonsaturating", "saturating")
    assert builtins.get("optimizer", "adam").schema["lr"].gt == 0
    assert builtins.get("optimizer", "adam").schema["beta_1"].describe()["lt"] == 1
    assert builtins.get("mask", "center").schema["scale"].lt == 0.5
    assert all(schema_problems(c) == [] for c in builtins.components())
