"""The house keeps its plan: the import-linter contracts hold, docs/architecture.md draws the same layers as the
contracts, the library never imports the package root, and a function-local import of facemath's own code says why
it is deferred."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LIBRARY = ROOT / "facemath_core"


def _contract(contract_id: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["id"] == contract_id)


def test_the_import_contracts_hold():
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert command, "lint-imports is missing: it comes with the test extra (import-linter)"
    result = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout, result.stdout[-2000:]


def test_the_architecture_page_draws_the_layers_of_the_contract():
    page = (ROOT / "docs" / "architecture.md").read_text()
    block = page.split("<!-- layers:", 1)[1].split("```", 2)[1]
    drawn = [re.split(r"\s{2,}", line.strip())[0] for line in block.strip().splitlines()]
    assert drawn == _contract("layers")["layers"]
    packages = {p.name for p in LIBRARY.iterdir() if (p / "__init__.py").is_file()}
    named = {part.strip() for layer in drawn for part in layer.split("|")}
    assert packages == named, packages ^ named


def test_every_module_has_a_docstring_and_a_row_in_the_architecture_page():
    """The module table names every module of every layer under its package, and each module says its job."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    listed: dict[str, set[str]] = {}
    package = None
    for line in page.split("## Modules", 1)[1].split("##", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[1] or set(cells[0]) <= {"-"} and cells[0]:
            continue
        if cells[0].startswith("`"):
            package = cells[0].strip("`/")
        if package:
            listed.setdefault(package, set()).update(re.findall(r"`([a-z_]+)/?`", cells[1]))
    missing, undocumented = [], []
    for path in sorted(LIBRARY.rglob("*.py")):
        if ast.get_docstring(ast.parse(path.read_text())) is None:
            undocumented.append(str(path.relative_to(ROOT)))
        parts = path.relative_to(LIBRARY).parts
        if len(parts) < 2 or path.name == "__init__.py" and len(parts) == 2:
            continue
        name = parts[1] if len(parts) > 2 else path.stem  # a sub-package (serving/backends/) is one row
        if name not in listed.get(parts[0], set()):
            missing.append(f"{parts[0]}/{name}")
    assert not missing, f"not in docs/architecture.md's module table: {missing}"
    assert not undocumented, f"no module docstring: {undocumented}"


def _library_modules():
    for path in sorted(LIBRARY.rglob("*.py")):
        if path.parent == LIBRARY:
            continue  # the root package and its deprecated re-exports
        yield path, ast.parse(path.read_text())


def test_the_library_never_imports_the_package_root():
    """The root re-exports the plugin API from the layers; a layer importing the root would be a cycle."""
    offenders = []
    for path, tree in _library_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "facemath_core" and not node.level:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            elif isinstance(node, ast.Import) and any(a.name == "facemath_core" for a in node.names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_function_local_imports_of_facemath_say_why_they_are_deferred():
    """Imports of facemath's own modules sit at the top of the module, except where they defer a heavy or optional
    dependency; those say so in a comment on the line."""
    unexplained = []
    for path, tree in _library_modules():
        lines = path.read_text().splitlines()
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("facemath"):
                    text = " ".join(lines[node.lineno - 2 : node.end_lineno])
                    if "#" not in text:
                        unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not unexplained, unexplained


@pytest.mark.parametrize("old", ["facemath_core.components", "facemath_core.backends", "facemath_core.errors"])
def test_the_old_plugin_import_paths_still_work_and_say_they_are_deprecated(old):
    code = (
        "import warnings; warnings.simplefilter('error');\n"
        f"try:\n    import {old}\nexcept DeprecationWarning as w:\n    print('deprecated:', w)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and "deprecated: " + old in result.stdout, result.stdout + result.stderr
    ok = subprocess.run([sys.executable, "-W", "ignore", "-c", f"import {old}"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
