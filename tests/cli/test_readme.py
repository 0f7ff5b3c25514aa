"""The README's promises: CI runs its test command verbatim, and every command it shows exists."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_two_quickstart_commands():
    commands = quickstart_commands()
    assert len(commands) == 2
    assert "pip install -e ." in commands[0] and "facemath " in commands[0]
    assert "[test]" in commands[1] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    assert quickstart_commands()[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_readme_command_is_a_real_command():
    from typer.main import get_command

    from facemath_core.cli import app

    cli = get_command(app)
    for name in re.findall(r"`facemath (\w[\w-]*)", (ROOT / "README.md").read_text()):
        assert name in cli.commands, name


def test_the_code_passes_ruff():
    """The project's lint settings (pyproject.toml) hold for every file."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff")
    if ruff is None:
        import pytest

        pytest.skip("ruff is not installed (it comes with the test extra)")
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_local_links_in_the_docs_point_at_files_that_exist():
    """README and docs/ link to figures, reports and each other; a renamed file must not leave a dead link."""
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor on the same page
            if not (page.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
