"""Option groups (cli/options.py): a dataclass of options spread into a command line by `with_option_groups`.

Checked through click's own parser (typer builds a click command from the spread signature), so the test does not
go through the code it checks on the way back: what click accepts and passes is the independent side.
"""

from pathlib import Path
from typing import Annotated

import typer
from typer.testing import CliRunner

from facemath_core.cli.options import ModelSource, option_group, with_option_groups


@option_group
class Pair:
    size: Annotated[int, typer.Option(min=1, help="A size.")] = 3
    name: Annotated[str, typer.Option("--name", help="A name.")] = "a"


def _app(received):
    app = typer.Typer()

    @app.command("one")
    @with_option_groups
    def one(path: Annotated[Path, typer.Argument()], pair: Pair = Pair(), source: ModelSource = ModelSource()):
        received.append((path, pair, source))

    @app.command("two")
    @with_option_groups
    def two(pair: Pair = Pair(size=7, name="b")):
        received.append(pair)

    return app


def test_a_group_becomes_options_and_comes_back_as_one_dataclass():
    received = []
    result = CliRunner().invoke(
        _app(received), ["one", "x.png", "--size", "5", "--server", "h:1", "--server", "h:2", "--timeout", "2"]
    )
    assert result.exit_code == 0, result.output
    path, pair, source = received[0]
    assert path == Path("x.png") and pair == Pair(size=5, name="a")
    assert source == ModelSource(server=["h:1", "h:2"], timeout=2.0)  # the other seven at their defaults


def test_the_default_instance_sets_the_defaults_and_the_field_options_still_validate():
    received = []
    app = _app(received)
    assert CliRunner().invoke(app, ["two"]).exit_code == 0
    assert received == [Pair(size=7, name="b")]
    refused = CliRunner().invoke(app, ["two", "--size", "0"])  # min=1 on the field's option
    assert refused.exit_code == 2 and "--size" in refused.output


def test_complete_is_project_with_other_mask_and_out_defaults():
    from typer.main import get_command

    from facemath_core.cli import app

    commands = get_command(app).commands
    project = {p.name: p for p in commands["project"].params}
    complete = {p.name: p for p in commands["complete"].params}
    assert project.keys() == complete.keys()
    differ = {name for name in project if project[name].default != complete[name].default}
    assert differ == {"mask", "out"}
    assert (complete["mask"].default, complete["out"].default) == ("center", Path("completions"))
    for command in ("project", "info", "math", "encode", "compare"):
        names = {p.name for p in commands[command].params}
        assert set(ModelSource.__dataclass_fields__) <= names, command
