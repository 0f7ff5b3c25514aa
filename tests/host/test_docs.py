"""docs/plugins.md and the code agree: each hookspec's docstring opens its hook's section word for word, every
method of the Backend interface is in the backend table, the test kit's API and how to add a kind are documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from facemath_core import testing
from facemath_core.host import hookspecs
from facemath_core.host.backend import Backend
from facemath_core.host.components import CLASS_OF_KIND, COMPONENT_CLASSES, HOOK_OF_KIND, KIND_OF_CLASS

DOCS = Path(__file__).parents[2] / "docs" / "plugins.md"
HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("facemath_"))


def words(text: str) -> str:
    return " ".join(text.split())


def section(hook: str) -> str:
    text = DOCS.read_text()
    start = text.index(f"### `{hook}(")
    end = text.find("\n### ", start + 1)
    return text[start : end if end > 0 else None]


@pytest.mark.parametrize("hook", HOOKS)
def test_each_hookspec_docstring_opens_its_section(hook):
    body = section(hook).split("\n", 1)[1]
    first = body.strip().split("\n\n", 1)[0]
    assert words(first) == words(inspect.getdoc(getattr(hookspecs, hook)))


def test_every_backend_method_is_in_the_backend_table():
    table = section("facemath_open_backend").split("#### Writing a backend", 1)[1]
    public = [name for name, _ in inspect.getmembers(Backend, inspect.isfunction) if not name.startswith("_")]
    missing = [name for name in public if f"`{name}" not in table and name != "plugin_scheme"]
    assert not missing, f"docs/plugins.md, Writing a backend: document {missing}"
    for required in ("call", "metadata", "version"):
        assert re.search(rf"\| `{required}\(.*\| required \|", table), required


def test_the_test_kit_is_documented():
    page = DOCS.read_text().split("## Testing your plugin", 1)[1].split("\n## ", 1)[0]
    for name in testing.__all__:
        if name not in ("PluginError", "Result", "tiny_config"):
            assert f"`{name}" in page, f"docs/plugins.md, Testing your plugin: document {name}"
    for fixture in ("facemath", "facemath_models", "facemath_faces", "facemath_latents", "facemath_plugins"):
        assert f"`{fixture}`" in page


def test_a_kind_is_declared_in_one_place():
    """The kind tables follow from the component classes, and the docs say where a new kind goes."""
    assert KIND_OF_CLASS == {cls: cls.kind for cls in COMPONENT_CLASSES}
    assert HOOK_OF_KIND == {cls.kind: cls.hook for cls in COMPONENT_CLASSES}
    assert set(CLASS_OF_KIND.values()) == set(COMPONENT_CLASSES)
    assert all(hasattr(hookspecs, cls.hook) for cls in COMPONENT_CLASSES)
    page = DOCS.read_text().split("## Adding a kind of component", 1)[1].split("\n## ", 1)[0]
    for needed in ("COMPONENT_CLASSES", "`kind`", "`hook`", "`call`", "`positional`", "hookspecs.py", "RUNTIME_CHECKS"):
        assert needed in page
