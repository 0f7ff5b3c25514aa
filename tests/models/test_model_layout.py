"""The model folder layout (one rule for versions, one metadata reader) and the model-source resolution rule."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facemath_core.base.errors import FacemathError
from facemath_core.models.layout import describe_models, existing_versions, model_names, read_metadata
from facemath_core.models.source import ENV_VAR, installed_models, resolve_models

from ..support import run_facemath

ROOT = Path(__file__).parents[2]


def _version(folder: Path, pb: bool = True) -> Path:
    folder.mkdir(parents=True)
    if pb:
        (folder / "saved_model.pb").write_bytes(b"")
    return folder


def test_a_version_is_a_positive_numeric_folder_holding_saved_model_pb(tmp_path):
    model = tmp_path / "generator"
    _version(model / "1")
    _version(model / "10")
    _version(model / "3", pb=False)  # half-written: not a version
    _version(model / "0")  # TF Serving versions start at 1
    _version(model / "v2")
    (model / "7").write_text("a file, not a folder")
    assert existing_versions(model) == [1, 10]
    assert existing_versions(tmp_path / "missing") == []
    _version(tmp_path / "empty" / "2", pb=False)
    assert model_names(tmp_path) == ["generator"]


def test_metadata_errors_are_one_line_naming_the_file(tmp_path):
    version = _version(tmp_path / "generator" / "1")
    with pytest.raises(FacemathError, match="not a facemath export"):
        read_metadata(version)
    path = version / "assets.extra" / "facemath_metadata.json"
    path.parent.mkdir()
    for text, fragment in (('{"z_dim": 8,', "bad metadata JSON"), ("[1, 2]", "an object expected"), ("\udcff", "")):
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        with pytest.raises(FacemathError) as info:
            read_metadata(version)
        assert str(path) in str(info.value) and fragment in str(info.value) and "\n" not in str(info.value)
    path.write_text(json.dumps({"z_dim": 8, "training": {"run": "/runs/gan", "steps": 60}}))
    assert read_metadata(version)["z_dim"] == 8
    (info,) = describe_models(tmp_path)
    # An export made before model cards recorded the run's path on its machine: info names the run instead.
    assert (info.name, info.versions, info.run) == ("generator", (1,), "run gan, 60 steps")
    assert info.card == ("trained   run gan, 60 steps",)


@pytest.mark.slow
def test_the_reading_side_does_not_import_the_writing_side():
    code = (
        "import sys, facemath_core.serving.backends.embedded, facemath_core.models.layout, facemath_core.models.source;"
        "heavy = ('facemath_core.models.export', 'facemath_core.models.training', 'tensorflow');"
        "bad = [m for m in heavy if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_resolution_rule_models_then_env_then_local_folder_then_installed(tmp_path, monkeypatch):
    given, env, local = tmp_path / "given", tmp_path / "env", tmp_path / "cwd" / "exported_models"
    for folder in (given, env, local):
        folder.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv(ENV_VAR, str(env))
    assert resolve_models(given).path == given
    assert resolve_models(None).path == env
    monkeypatch.delenv(ENV_VAR)
    assert resolve_models(None).path == Path("exported_models")
    monkeypatch.chdir(tmp_path)
    installed = resolve_models(None)
    assert installed.path == installed_models() and (installed.path / "generator").is_dir()
    assert installed.origin == "the default models installed with facemath"
    with pytest.raises(FacemathError, match=r"^--models .*nowhere: no such folder$"):
        resolve_models(tmp_path / "nowhere")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FacemathError, match=rf"^{ENV_VAR}=.*nowhere: no such folder$"):
        resolve_models(None)


def test_info_lists_the_source_and_every_model_from_any_folder(cli, tiny_export, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    shown = cli("info", "--models", tiny_export)
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1] == f"models: {tiny_export.resolve()} (from --models)"
    on_disk = sorted(p.name for p in tiny_export.iterdir() if (p / "1" / "saved_model.pb").exists())
    cards: dict[str, list[str]] = {}  # each model's line, then its model card indented under it
    for line in lines[2:]:
        if line.startswith("      "):
            cards[list(cards)[-1]].append(line.strip())
        else:
            cards[line.split()[0]] = []
            assert line.endswith("  version 1"), line
    assert list(cards) == on_disk
    for name, card in cards.items():
        if name == "projector":
            assert card[0] == "built     from discriminator version 1 + generator version 1 (no training of its own)"
        else:  # the card's data and command name the folders, never a path (models/cards.py)
            # conftest's train_faces is write_synthetic_folder(out, 160, seed=5, size=32): its recipe, then the split
            data = "data      facemath data synth --count 160 --seed 5 --size 32 --out faces; train split, 144 images; "
            assert card[0].startswith(data) and "/" not in card[0], card
            assert card[1].startswith("command   facemath train ") and " --data faces --out " in card[1], card
    # From a folder without exported_models/, the installed defaults are in effect.
    default = cli("info")
    assert "(from the default models installed with facemath)" in default.stdout, default.stderr


def test_corrupt_saved_model_and_bad_metadata_are_one_line_errors(cli, tiny_export, tmp_path):
    for damage in ("saved_model", "metadata"):
        models = tmp_path / damage
        shutil.copytree(tiny_export, models)
        version = models / "vae_decoder" / "1"
        if damage == "saved_model":
            (version / "saved_model.pb").write_bytes(b"\x08\x01garbage" * 7)
        else:
            (version / "assets.extra" / "facemath_metadata.json").write_text('{"z_dim": ')
        out = tmp_path / f"out_{damage}"
        face = ROOT / "examples" / "faces" / "000001.png"
        result = cli("encode", str(face), "--models", str(models), "--out", str(out))
        lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
        assert result.code == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        expected = "corrupt SavedModel" if damage == "saved_model" else "bad metadata JSON"
        assert lines[0].startswith("error: ") and str(version) in lines[0] and expected in lines[0], lines
        assert not out.exists()


def test_every_package_folder_is_in_the_wheel_list():
    """pyproject lists packages one by one; a subpackage left out would be missing from the wheel only."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("facemath", "facemath_core")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert folders <= listed, folders - listed
    assert config["package-dir"] == {"facemath_plugins": "plugins", "facemath_models": "exported_models"}


def test_the_package_data_globs_cover_every_file_of_the_shipped_models():
    import tomllib

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    models = ROOT / "exported_models"
    files = {p for p in models.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.parts)}
    packaged = {p for pattern in globs["facemath_models"] for p in models.glob(pattern) if p.is_file()}
    assert files and files == packaged, sorted(map(str, files ^ packaged))


@pytest.mark.slow
def test_version_and_module_entry_points():
    from facemath_core import __version__

    for module in ("facemath", "facemath_core"):
        result = run_facemath("--version", module=module)
        assert result.code == 0 and result.stdout.strip() == f"facemath {__version__}", result.stderr


def test_export_into_a_folder_with_versions_says_what_it_added(cli, tiny_runs, tmp_path):
    models = tmp_path / "models"
    first = cli("export", str(tiny_runs["oracle"]), "--to", str(models))
    assert first.code == 0 and "beside" not in first.stdout, first.stderr
    second = cli("export", str(tiny_runs["oracle"]), "--to", str(models))
    assert second.code == 0, second.stderr
    assert second.stdout.strip() == f"wrote {models / 'attribute_oracle' / '2'} (added beside version 1)"
    assert existing_versions(models / "attribute_oracle") == [1, 2]
    assert read_metadata(models / "attribute_oracle" / "2")["training"]["run"] == tiny_runs["oracle"].name  # no path
