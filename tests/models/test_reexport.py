"""`export.reexport`: an export written again with today's signatures, its weights read from itself; and the shipped
attribute_oracle/2, which is attribute_oracle/1 re-exported with the `features` signature."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.models.export import reexport
from facemath_core.models.layout import load_saved_model, read_metadata

SHIPPED = Path(__file__).resolve().parents[2] / "exported_models"


def _variables(version_dir):
    loaded = load_saved_model(version_dir)
    return {v.name: v.numpy() for fn in loaded.signatures.values() for v in fn.variables}


def test_the_shipped_oracle_2_is_oracle_1_with_the_features_signature():
    one, two = SHIPPED / S.ORACLE / "1", SHIPPED / S.ORACLE / "2"
    old, new = _variables(one), _variables(two)
    assert old.keys() == new.keys() and len(old) == 22
    for name in old:
        np.testing.assert_array_equal(new[name], old[name], err_msg=name)
    meta_one, meta_two = read_metadata(one), read_metadata(two)
    assert S.FEATURES not in meta_one["signatures"] and S.FEATURES in meta_two["signatures"]
    assert meta_two["card"]["training"] == meta_one["card"]["training"]  # the same run, step and command
    assert "re-exported" in meta_two["card"]["note"]
    images = np.random.default_rng(0).uniform(-1, 1, (4, 64, 64, 3)).astype(np.float32)
    logits = [load_saved_model(v).signatures[S.DEFAULT](images=images)[S.ATTRIBUTE_LOGITS].numpy() for v in (one, two)]
    np.testing.assert_array_equal(logits[0], logits[1])


def test_reexport_adds_a_version_with_the_same_weights(tiny_export, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(tiny_export / S.VAEGAN_DISCRIMINATOR, base / S.VAEGAN_DISCRIMINATOR)
    written = reexport(base / S.VAEGAN_DISCRIMINATOR / "1", base, note="a test")
    assert written == base / S.VAEGAN_DISCRIMINATOR / "2"
    images = np.random.default_rng(1).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    answers = [
        load_saved_model(v).signatures[S.FEATURES](images=images)[S.FEATURES].numpy()
        for v in (base / S.VAEGAN_DISCRIMINATOR / "1", written)
    ]
    np.testing.assert_array_equal(answers[0], answers[1])
    assert read_metadata(written)["card"]["note"].endswith("a test")
    with pytest.raises(FacemathError, match="already exists"):
        reexport(base / S.VAEGAN_DISCRIMINATOR / "1", base, version=2)


def test_reexport_refuses_an_export_missing_a_weight(tiny_export, tmp_path, monkeypatch):
    from facemath_core.models import export

    base = tmp_path / "models"
    shutil.copytree(tiny_export / S.ORACLE, base / S.ORACLE)
    loader = export.load_saved_model

    class Partial:  # the export's signatures with one variable fewer
        def __init__(self, loaded):
            self.signatures = {"only": type("F", (), {"variables": loaded.signatures[S.DEFAULT].variables[1:]})()}
            self._keep = loaded

    monkeypatch.setattr(export, "load_saved_model", lambda path: Partial(loader(path)))
    with pytest.raises(FacemathError, match="has no weights for conv0/kernel"):
        reexport(base / S.ORACLE / "1", base)
    assert sorted(p.name for p in (base / S.ORACLE).iterdir()) == ["1"]
