"""`facemath plugins`: the parameter schema in the table and in --json, NAMES, and `--check`, every contract of
the installed components run as a projection runs them."""

from __future__ import annotations

import json
import textwrap

import pytest

from facemath_core.base.version import __version__
from facemath_core.testing import check_component, registry, run

WIDE = """
    import tensorflow as tf
    from facemath_core import LossTerm, hookimpl

    def wide(target, generated, mask, disc_logits):
        return tf.reduce_sum(generated, axis=[1, 2])

    @hookimpl
    def facemath_loss_terms():
        return [LossTerm("wide", "One value per channel.", wide)]
"""


def test_the_table_shows_each_parameters_schema():
    result = run("plugins", "--kind", "optimizer")
    assert result.code == 0, result.stderr
    adam = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["adam"])
    assert "lr=0.01 (> 0): Learning rate." in adam and "beta_1=0.9 (>= 0, < 1): Decay of the first moment." in adam
    perceptual = next(line for line in run("plugins", "--kind", "loss").stdout.splitlines() if "perceptual" in line)
    assert (
        "form=nonsaturating (one of nonsaturating, saturating): -log D(G(z)) (Amos) or log(1 - D(G(z)))" in perceptual
    )


def test_json_gives_the_schema_and_the_version():
    items = json.loads(run("plugins", "--json").stdout)
    perceptual = next(item for item in items if item["name"] == "perceptual")
    assert perceptual["params"] == {"form": "nonsaturating"}
    assert perceptual["schema"]["form"]["choices"] == ["nonsaturating", "saturating"]
    assert perceptual["provider"] == f"facemath {__version__}" and perceptual["version"] == __version__


def test_names_pick_components_plugins_or_distributions():
    by_plugin = json.loads(run("plugins", "builtin-masks", "--json").stdout)
    assert {item["kind"] for item in by_plugin} == {"mask"} and len(by_plugin) == 10
    by_name = json.loads(run("plugins", "slerp", "adam", "--json").stdout)
    assert sorted(item["name"] for item in by_name) == ["adam", "slerp"]


@pytest.mark.slow
def test_check_runs_every_contract_of_the_builtins(kit_models):
    result = run("plugins", "--check", "--json", "--models", kit_models)
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == len(registry().components())
    failed = [row for row in rows if row["result"] != "ok"]
    assert [(row["name"], row["result"]) for row in failed] == [("file", "skipped")]  # no mask files here
    assert failed[0]["message"].startswith("refused the check inputs: mask file masks/check.png")
    assert all(row["version"] == __version__ for row in rows)


def test_check_reports_a_broken_component_as_a_run_would(kit_models, tmp_path):
    plugin = tmp_path / "wide.py"
    plugin.write_text(textwrap.dedent(WIDE))
    result = run("--plugin", plugin, "plugins", "wide", "--check", "--models", kit_models)
    assert result.code == 1
    assert result.error == "1 component failed a contract (listed above)"
    row = next(line for line in result.stdout.splitlines() if " wide " in f" {line} ")
    assert "failed" in row
    rows = json.loads(run("--plugin", plugin, "plugins", "wide", "--check", "--json", "--models", kit_models).stdout)
    try:
        check_component(registry(plugin).get("loss", "wide"), models=kit_models)
    except Exception as exc:  # the PluginError a run raises, word for word
        assert rows == [
            {
                "kind": "loss",
                "name": "wide",
                "provider": f"--plugin {plugin}",
                "version": None,
                "result": "failed",
                "message": str(exc),
                "seconds": rows[0]["seconds"],
            }
        ]
    else:
        raise AssertionError("check_component passed a broken term")
