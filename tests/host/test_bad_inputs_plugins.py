"""The error contract around plugin code in a run (docs/errors.md, issue 12): a broken `--plugin` is one `error:`
line naming it, and nothing is kept. tests/host/test_plugins.py has every broken-plugin case of the host itself."""

from __future__ import annotations

from ..support import snapshot


def test_a_plugin_failing_inside_a_run_leaves_no_partial_folder(cli, ws, generated_faces, tiny_export):
    """A loss term that raises is caught when it is checked before the first step (issue 12): one `error:` line
    naming the plugin, exit 1, and nothing is kept (tests/host/test_plugins.py covers a failure inside the run)."""
    plugin = ws / "raising.py"
    plugin.write_text(
        "from facemath_core import hookimpl\n"
        "from facemath_core.host.components import LossTerm\n\n"
        "def raising(target, generated, mask, disc_logits=None):\n"
        "    raise ValueError('loss plugin bug')\n\n"
        "@hookimpl\n"
        "def facemath_loss_terms():\n"
        "    return [LossTerm('raising', 'Raises.', raising)]\n"
    )
    before = snapshot(ws)
    args = [
        "--plugin",
        plugin,
        "project",
        generated_faces,
        "--models",
        tiny_export,
        "--steps",
        "3",
        "--out",
        ws / "out",
    ]
    result = cli(*args, "--loss-plugin", "raising=1")
    assert result.code == 1 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: loss 'raising' (--plugin {plugin}) failed on a check batch: ValueError: loss plugin bug"]
    assert snapshot(ws) == before
