"""The projector export composes facemath's own loss terms (signatures.PROJECTOR_TERMS), whatever else is installed:
an installed third-party plugin that fails to load stops every command that loads the installed plugins, but must
not stop (or change) an export."""

from __future__ import annotations

import shutil

import pytest

from facemath_core.base import signatures as S
from facemath_core.base.errors import PluginError
from facemath_core.host.manager import load_registry
from facemath_core.models.layout import read_metadata
from facemath_core.models.projector_export import export_projector

from ..host.distributions import Site


@pytest.fixture
def installed(tmp_path, monkeypatch):
    site = Site(tmp_path / "site", monkeypatch)
    yield site
    site.forget()


@pytest.mark.slow
def test_a_broken_installed_plugin_does_not_stop_a_projector_export(installed, tiny_export, tmp_path):
    installed.install(
        "facemath-broken", "2.0.1", {"broken_plugin": "import no_such_module_xyz\n"}, {"broken": "broken_plugin"}
    )
    with pytest.raises(PluginError, match="facemath-broken 2.0.1"):
        load_registry()  # what the export used before: the installed plugins, strictly
    models = tmp_path / "models"
    shutil.copytree(tiny_export, models, ignore=shutil.ignore_patterns("projector"))
    folder = export_projector(models)
    metadata = read_metadata(folder)
    assert [row["term"] for row in metadata["loss_terms"]] == [term for _, term, _ in S.PROJECTOR_TERMS]
    assert {S.STEP, S.STEP_PIXELS, S.STEP_PIXELS_UNMASKED} <= set(metadata["signatures"])
