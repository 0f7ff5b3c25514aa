"""Model cards (facemath_core/models/cards.py): what a new export says about how to reproduce it, with no path of the
machine it was made on; rewriting an export's metadata without touching its weights; `facemath info` showing it."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.models.cards import rewrite_metadata
from facemath_core.models.layout import read_metadata

ROOT = Path(__file__).parents[2]

# An absolute path of a build machine, as the issue lists them: anything starting with / or a drive letter, or
# holding one of the usual home and scratch folders.
MACHINE_PATH = re.compile(r"^(/|[A-Za-z]:[\\/])|/root/|/home/|/tmp/|/work/")


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def embedded_metadata(version_dir: Path) -> list[dict]:
    """Every facemath metadata JSON constant inside saved_model.pb (the `metadata` signature's, and for the
    projector its components'), read from the protobuf."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    found = []
    for graph in saved.meta_graphs:
        nodes = [*graph.graph_def.node] + [n for f in graph.graph_def.library.function for n in f.node_def]
        for node in nodes:
            if node.op == "Const":
                for value in node.attr["value"].tensor.string_val:
                    try:
                        data = json.loads(value)
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        continue
                    if isinstance(data, dict) and "signatures" in data:
                        found.append(data)
    return found


def machine_paths_in(version_dir: Path) -> list[str]:
    documents = [read_metadata(version_dir), *embedded_metadata(version_dir)]
    raw = (version_dir / "saved_model.pb").read_bytes()
    in_raw = [p for p in ("/root/", "/home/", "/tmp/", "/work/") if p.encode() in raw]
    return [s for d in documents for s in strings(d) if MACHINE_PATH.search(s)] + in_raw


def version_dirs(base: Path) -> list[Path]:
    return sorted(p.parent for p in base.glob("*/*/saved_model.pb"))


# --- new exports ----------------------------------------------------------------------------------------------


def test_new_exports_carry_a_card_and_no_machine_path(tiny_export, train_faces):
    folders = version_dirs(tiny_export)
    assert {f.parent.name for f in folders} >= {"generator", "discriminator", "projector", "vae_encoder"}
    for folder in folders:
        assert machine_paths_in(folder) == [], folder
    # The digest of the data's file list, computed the way the card documents it: with the shell.
    listing = subprocess.run(
        "find . -type f ! -path ./synth_recipe.json -printf '%P\\n' | LC_ALL=C sort | sha256sum",
        shell=True,
        cwd=train_faces,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    files = sum(1 for p in train_faces.rglob("*") if p.is_file() and p.name != "synth_recipe.json")
    expected = {
        "gan": "facemath train gan --data faces --out gan --image-size 32 --z-dim 8 --ngf 8 --ndf 8 --steps 60 "
        "--batch-size 16 --sample-every 30 --checkpoint-every 30",
        "vae": "facemath train vae --data faces --out vae --image-size 32 --z-dim 8 --ngf 8 --ndf 8 --steps 20 "
        "--batch-size 16 --sample-every 10 --checkpoint-every 10",
        "oracle": "facemath train oracle --data faces --out oracle --image-size 32 --z-dim 8 --ngf 8 --ndf 8 "
        "--steps 20 --batch-size 16 --sample-every 10 --checkpoint-every 10",
        "encoder": "facemath train encoder --data faces --out encoder --ndf 8 --steps 20 --batch-size 16 --lr 0.001 "
        "--sample-every 20 --checkpoint-every 20 --generator exported_models/generator --model-version 1",
    }
    for model, kind in (("generator", "gan"), ("vae_decoder", "vae"), ("attribute_oracle", "oracle")):
        card = read_metadata(tiny_export / model / "1")["card"]
        assert card["training"]["command"] == expected[kind]
        assert card["data"] == {
            "name": "faces",
            # conftest's train_faces: write_synthetic_folder(out, 160, seed=5, size=32), recorded as its command
            "recipe": "facemath data synth --count 160 --seed 5 --size 32 --out faces",
            "files": files,
            "files_sha256": listing,
            "split": "train",
            "images": 144,  # 160 faces, the last 10% held out
        }
        assert card["training"]["run"] == kind and card["training"]["checkpoint"].startswith("ckpt-")
        assert card["facemath"]["version"] and re.fullmatch(r"[0-9a-f]{40}(-dirty)?", card["facemath"]["commit"])
    # A VAE's prior is N(0, I): its export says so, and its command needs no --z-dist (the kind sets it).
    assert read_metadata(tiny_export / "vae_decoder" / "1")["z_distribution"] == "normal"
    encoder = read_metadata(next(f for f in folders if f.parent.name == "gan_encoder"))
    assert encoder["card"]["training"]["command"] == expected["encoder"]
    assert encoder["training"]["options"]["generator"] == "generator/1"  # what check_encoder reads: still there
    assert [q["source"] for q in encoder["card"]["quality"]] == ["run.json held_out_psnr"]
    oracle = read_metadata(tiny_export / "attribute_oracle" / "1")["card"]["quality"]
    assert oracle[0]["measure"].startswith("held-out attribute accuracy, lowest of 11")
    projector = read_metadata(tiny_export / "projector" / "1")
    assert projector["card"]["composed_of"] == {"discriminator": 1, "generator": 1}
    assert projector["components"]["generator"]["card"] == read_metadata(tiny_export / "generator" / "1")["card"]


@pytest.mark.slow
def test_the_cards_command_trains_the_same_model(cli, tiny_export, tiny_runs, train_faces, tmp_path):
    """Reproducibility, tested: the oracle card's command (its data named by folder, given here as the folder
    itself) trains and exports a model that judges faces as the card's model does."""
    from facemath_core.serving.backends.embedded import EmbeddedBackend

    command = read_metadata(tiny_export / "attribute_oracle" / "1")["card"]["training"]["command"].split()
    assert command[:3] == ["facemath", "train", "oracle"]
    args = command[1:]
    args[args.index("--data") + 1] = str(train_faces)
    args[args.index("--out") + 1] = str(tmp_path / "oracle")
    result = cli(*args)
    assert result.code == 0, result.stderr
    assert cli("export", str(tmp_path / "oracle"), "--to", str(tmp_path / "models")).code == 0
    images = np.random.default_rng(0).uniform(-1, 1, (6, 32, 32, 3)).astype(np.float32)
    shipped = EmbeddedBackend(tiny_export).judge(images)
    again = EmbeddedBackend(tmp_path / "models").judge(images)
    np.testing.assert_allclose(again, shipped, rtol=1e-4, atol=1e-4)


# --- rewriting metadata -----------------------------------------------------------------------------------------


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_rewrite_changes_the_metadata_everywhere_and_the_weights_nowhere(tiny_export, tmp_path):
    from facemath_core.serving.backends.embedded import EmbeddedBackend
    from facemath_core.serving.session_model import SessionModel

    models = tmp_path / "models"
    shutil.copytree(tiny_export, models)
    version = models / "generator" / "1"
    before = digests(version)
    z = np.random.default_rng(3).uniform(-1, 1, (4, 8)).astype(np.float32)
    images_before = EmbeddedBackend(models).generate(z)

    new = rewrite_metadata(version, lambda m: {**m, "landmarks": {"left_eye": [10.5, 12.0]}})

    after = digests(version)
    changed = {name for name in before if before[name] != after.get(name)}
    assert changed == {"saved_model.pb", "fingerprint.pb", "assets.extra/facemath_metadata.json"}
    assert set(after) == set(before)
    assert any(name.startswith("variables/") for name in after)  # the weights: byte for byte the same files
    assert read_metadata(version) == new and new["landmarks"] == {"left_eye": [10.5, 12.0]}
    # The metadata signature answers the new metadata through TF Serving's loader (TF1, a Session) and TF2's.
    served = SessionModel(version).run(S.METADATA, {S.METADATA_INDEX: np.zeros(1, np.float32)})
    assert json.loads(served[S.METADATA_JSON][0]) == new
    backend = EmbeddedBackend(models)
    np.testing.assert_array_equal(backend.generate(z), images_before)  # the same network
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version))
    answer = loaded.signatures[S.METADATA](**{S.METADATA_INDEX: tf.zeros([1])})[S.METADATA_JSON].numpy()[0]
    assert json.loads(answer) == new
    assert tf.saved_model.experimental.read_fingerprint(str(version)).checkpoint_hash  # a valid fingerprint.pb

    # The projector embeds its generator's metadata: rewriting it (after the generator) refreshes that copy.
    projector = models / "projector" / "1"
    weights = {k: v for k, v in digests(projector).items() if k.startswith("variables/")}
    rewrite_metadata(projector, lambda m: m)
    embedded = {m["model"]: m for m in embedded_metadata(projector)}
    assert embedded["generator"] == new and embedded["projector"] == read_metadata(projector)
    assert {k: v for k, v in digests(projector).items() if k.startswith("variables/")} == weights


def test_a_projector_built_again_after_a_rewrite_carries_the_cards(tiny_export, tmp_path):
    """The projector is rebuilt from its components' exports (export_projector, issue 27's path): its card and
    its copies of their metadata are the components' current ones, a field added by a rewrite included."""
    from facemath_core.models.projector_export import export_projector

    models = tmp_path / "models"
    shutil.copytree(tiny_export, models, ignore=shutil.ignore_patterns("projector"))
    generator = rewrite_metadata(models / "generator" / "1", lambda m: {**m, "psnr_distribution": [20.0, 25.0]})
    folder = export_projector(models)
    metadata = read_metadata(folder)
    assert metadata["card"]["composed_of"] == {"discriminator": 1, "generator": 1}
    assert metadata["components"]["generator"]["card"] == generator["card"]
    assert {m["model"]: m for m in embedded_metadata(folder)}["generator"] == generator
    assert machine_paths_in(folder) == []


def test_rewrite_refuses_machine_paths_and_non_metadata(tiny_export, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_export / "vae_decoder", models / "vae_decoder")
    version = models / "vae_decoder" / "1"
    before = digests(version)
    with pytest.raises(FacemathError, match=r"metadata field card\.data\.name holds a path of this machine"):
        rewrite_metadata(version, lambda m: {**m, "card": {**m["card"], "data": {"name": "/home/me/faces"}}})
    with pytest.raises(FacemathError, match="must be an object with 'model' and 'signatures'"):
        rewrite_metadata(version, lambda m: {"z_dim": 8})
    assert digests(version) == before  # nothing written


# --- the shipped models and `facemath info` ---------------------------------------------------------------------


SHIPPED = ROOT / "exported_models"


@pytest.mark.parametrize("version", version_dirs(SHIPPED), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_shipped_model_holds_a_path_of_a_build_machine(version):
    assert machine_paths_in(version) == []
    card = read_metadata(version)["card"]
    assert card["facemath"]["version"] and re.fullmatch(r"[0-9a-f]{40}(-dirty)?", card["facemath"]["commit"])
    if version.parent.name != "projector":
        assert card["data"]["recipe"] == "facemath data synth --count 32000 --seed 0 --out faces"
        assert card["training"]["command"].startswith("facemath train ")


def test_info_shows_the_cards_and_no_machine_path(cli, tiny_export):
    for models in (SHIPPED, tiny_export):
        result = cli("info", "--models", str(models))
        assert result.code == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[1] == f"models: {models.resolve()} (from --models)"  # the user's own folder: the one path
        for line in lines[2:]:
            assert not any(MACHINE_PATH.search(word) for word in line.split()), line
        for name in ("generator", "vae_encoder", "attribute_oracle"):
            start = next(i for i, line in enumerate(lines) if line.startswith(f"  {name} "))
            card = [line.strip() for line in lines[start + 1 :] if line.startswith("      ")][:3]
            assert card[0].startswith("data      ") and card[1].startswith("command   facemath train ")
