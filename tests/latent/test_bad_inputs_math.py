"""The error contract of the commands that read latents files (docs/errors.md): `render`, `math`, `analogy`,
`interpolate` under damaged latents files, bad expressions and bad numbers. Each case: the exit code, one `error:`
line, no traceback, nothing created or changed (support.fails_cleanly)."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ..support import fails_cleanly

# --- latents files -----------------------------------------------------------------------------------------------


def latents_variants(good: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """Damaged copies of a good latents file: name -> (path, fragment the error must contain)."""
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    raw = good.read_bytes()
    cases: dict[str, tuple[Path, str]] = {}

    def write_bytes(name, payload, fragment):
        path = folder / f"{name}.npz"
        path.write_bytes(payload)
        cases[name] = (path, fragment)

    def write_arrays(name, fragment, allow_pickle=False, **changes):
        path = folder / f"{name}.npz"
        new = {k: v for k, v in {**arrays, **changes}.items() if v is not None}
        np.savez(path, **new)
        cases[name] = (path, fragment)

    write_bytes("truncated", raw[: len(raw) // 2], "truncated or corrupt")
    write_bytes("garbage", os.urandom(300), "not a latents file")
    write_bytes("empty", b"", "not a latents file")
    write_bytes("text", b'{"z": [1, 2, 3]}\n', "not a latents file")
    buffer = io.BytesIO()
    np.save(buffer, arrays["z"])
    write_bytes("npy_named_npz", buffer.getvalue(), "a single .npy array")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("readme.txt", "just a zip")
    write_bytes("plain_zip", zipped.getvalue(), "latents file")
    flipped = bytearray(raw)
    member = zipfile.ZipFile(good).getinfo("z.npy")
    name_length, extra_length = struct.unpack("<HH", raw[member.header_offset + 26 : member.header_offset + 30])
    data_start = member.header_offset + 30 + name_length + extra_length
    flipped[data_start + member.file_size - 3] ^= 0xFF  # one flipped bit pattern inside z's numbers
    write_bytes("one_bad_byte", bytes(flipped), "fails its checksum")
    write_arrays("pickled_names", "pickled Python objects", names=np.array(["a", 1, None, 2.0], dtype=object))
    write_arrays("pickled_config", "pickled Python objects", config=np.array({"a": 1}, dtype=object))
    write_arrays("bad_json", "field 'config' is not valid JSON", config=np.array("{not json"))
    write_arrays("json_list", "should be a JSON object", config=np.array("[1, 2]"))
    write_arrays("models_wrong_types", "field 'models'", models=np.array('{"generator": "one"}'))
    write_arrays("row_mismatch", "4 names but 3 rows", z=arrays["z"][:3])
    write_arrays("nan_z", "NaN or infinite", z=np.where(np.arange(8) == 2, np.nan, arrays["z"]).astype(np.float32))
    write_arrays("inf_z", "NaN or infinite", z=np.full((4, 8), np.inf, np.float32))
    write_arrays("z_1d", "2-d array of numbers", z=arrays["z"].ravel())
    write_arrays("z_text", "2-d array of numbers", z=np.array([["a"] * 8] * 4))
    write_arrays("names_numbers", "list of text", names=np.arange(4))
    write_arrays("family_numbers", "field 'family'", family=np.arange(3))
    write_arrays("version_float", "model_version", model_version=np.array(1.5))
    write_arrays("failed_shape", "field 'failed'", failed=np.zeros(7, bool))
    write_arrays("loss_shape", "loss_total", loss_total=np.zeros(2, np.float32))
    write_arrays("missing_z", "missing z", z=None)
    (folder / "folder.npz").mkdir()
    cases["folder"] = (folder / "folder.npz", "is a folder")
    cases["missing"] = (folder / "nothing-here.npz", "no such latents file")
    return cases


@pytest.mark.slow
def test_damaged_latents_files_are_one_line_errors(cli, ws, good_latents, tiny_export):
    bad = ws / "bad"
    bad.mkdir()
    cases = latents_variants(good_latents, bad)
    assert len(cases) >= 25
    for name, (path, fragment) in cases.items():
        line = fails_cleanly(cli, ws, ["render", path, "--models", tiny_export, "--out", ws / "r"], 1, fragment)
        assert str(path) in line, (name, line)
    # The same files where other commands read latents.
    for name in ("truncated", "pickled_names", "nan_z", "row_mismatch"):
        path, fragment = cases[name]
        fails_cleanly(
            cli, ws, ["math", "f0", "--latents", path, "--models", tiny_export, "--out", ws / "m"], 1, fragment
        )
        fails_cleanly(
            cli,
            ws,
            ["interpolate", "f0", "f1", "--latents", path, "--models", tiny_export, "--out", ws / "i.png"],
            1,
            fragment,
        )
    # The good file still works: the checks refuse damage, not valid files.
    assert cli("render", good_latents, "--models", tiny_export, "--out", ws / "r").code == 0


# --- expressions -------------------------------------------------------------------------------------------------


EXPRESSIONS = [
    ("(" * 150 + "f0" + ")" * 150, 2, "column 101: nested more than 100 levels"),
    ("f0 + " + "-" * 150 + "f1", 2, "column 106: nested more than 100 levels"),
    ("mean(" * 120 + "f0" + ")" * 120, 2, "nested more than 100 levels"),
    ("", 2, "empty"),
    ("f0 +", 2, "column 5"),
    ("f0 $ f1", 2, "unexpected character"),
    ("'f0", 2, "unclosed quote"),
    ("f0 / 0", 2, "division by zero"),
    ("f0 * f1", 2, "cannot multiply two latents"),
    ("nobody + f0", 2, "unknown latent"),
    ("f0 + 1", 2, "cannot add a number and a latent"),
    ("1e999999 * f0", 2, None),  # an infinite scale: refused, not rendered as noise
]


@pytest.mark.parametrize("expression, code, fragment", EXPRESSIONS)
def test_bad_expressions(cli, ws, good_latents, tiny_export, expression, code, fragment):
    args = ["math", expression, "--latents", good_latents, "--models", tiny_export, "--out", ws / "m"]
    if expression.startswith("1e999999"):
        fails_cleanly(cli, ws, args, 1, "NaN or infinite")
        return
    fails_cleanly(cli, ws, args, code, *([fragment] if fragment else []))


@pytest.mark.slow
def test_long_flat_sums_evaluate(cli, ws, good_latents, tiny_export):
    """500 names in one sum: no RecursionError, and the mean of 600 copies of f0 and f1 is their midpoint."""
    from facemath_core.latent.latents import load_latents

    expression = "(" + " + ".join(["f0", "f1"] * 300) + ") / 600"
    result = cli("math", expression, "--latents", good_latents, "--models", tiny_export, "--out", ws / "m")
    assert result.code == 0, result.stderr
    z = load_latents(good_latents).z
    np.testing.assert_allclose(load_latents(ws / "m" / "latents.npz").z[0], (z[0] + z[1]) / 2, atol=1e-5)


# --- numbers -----------------------------------------------------------------------------------------------


def test_bad_numbers_in_math_analogy_and_interpolate(cli, ws, good_latents, tiny_export):
    latents = ["--latents", good_latents, "--models", tiny_export]
    for jitter in ("nan", "inf", "-1"):
        fails_cleanly(cli, ws, ["math", "f0", *latents, "--out", ws / "m", "--jitter", jitter], 2, "--jitter")
    fails_cleanly(cli, ws, ["analogy", "f0", "f1", "f2", *latents, "--out", ws / "a.png", "--size", "100000"], 1, "GiB")
    fails_cleanly(
        cli, ws, ["interpolate", "f0", "f1", *latents, "--out", ws / "i.png", "--frames", "1000000"], 1, "GiB"
    )


# --- latents merge (issue 30) -------------------------------------------------------------------------------------


def _shards(folder: Path, record: dict | None = None) -> list[Path]:
    """The two shard result folders of a 4-face run, as `project --shard K/2` writes them; `record` changes the
    shard field of the first one."""
    from facemath_core.latent.latents import Latents, save_latents
    from facemath_core.projection.shards import input_digest

    names = [f"f{i}.png" for i in range(4)]
    z = np.random.default_rng(2).uniform(-0.8, 0.8, (4, 8)).astype(np.float32)
    paths = []
    for k in (1, 2):
        rows = [i for i in range(4) if i % 2 == k - 1]
        shard = {"index": k, "count": 2, "inputs": 4, "digest": input_digest(names)}
        latents = Latents(
            [names[i] for i in rows],
            z[rows],
            "gan",
            "generator",
            1,
            "projection",
            losses={"total": np.ones(len(rows), np.float32)},
            config={"steps": 3},
            models={"generator": 1},
            shard={**shard, **((record or {}) if k == 1 else {})},
            input_index=np.array(rows, np.int64),
        )
        save_latents(folder / f"s{k}" / "latents.npz", latents)
        paths.append(folder / f"s{k}")
    return paths


def test_merge_never_replaces_the_folder_holding_its_shards(cli, ws):
    """Data loss: `latents merge SHARDS... --out <the folder holding them> --overwrite` deleted the shards."""
    bulk = ws / "bulk"
    shards = _shards(bulk)
    assert cli("latents", "merge", *shards, "--out", ws / "merged").code == 0  # the shards do merge
    for out, fragment in ((bulk, "holds the input"), (shards[0], "is the input"), (shards[1] / "m", "lies inside")):
        fails_cleanly(cli, ws, ["latents", "merge", *shards, "--out", out, "--overwrite"], 1, fragment)


@pytest.mark.parametrize(
    "record, fragment",
    [
        ({"index": None}, "shard index is null, not a whole number"),
        ({"index": "1"}, 'shard index is "1", not a whole number'),
        ({"count": True}, "shard count is true, not a whole number"),
        ({"index": 3}, "shard 3/2 of 4 inputs is not a shard K/N"),
        # Merging checked every shard number up to N: a trillion of them exhausted memory.
        ({"count": 10**12}, "N <= 100,000"),
    ],
    ids=["index-null", "index-text", "count-bool", "index-above-count", "count-trillion"],
)
def test_merge_refuses_shard_records_that_are_not_k_of_n(cli, ws, record, fragment):
    """Exit 70: a merge shard with `index` null (TypeError in int()); `--shard 1/1e12` grew memory until OOM."""
    shards = _shards(ws / "bulk", record)
    fails_cleanly(cli, ws, ["latents", "merge", *shards, "--out", ws / "merged"], 1, f"{shards[0]}", fragment)
