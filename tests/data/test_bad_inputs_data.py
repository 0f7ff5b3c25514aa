"""The error contract of `facemath data` (docs/errors.md): bad, odd and unreadable image files for `data info`, and
bad numbers for `data grid` and `data synth`; `data pack` and the shard folders it writes (what it may read and
replace, label files naming outside files, named pipes, damaged indexes and records, odd names, a full disk, signals).
Each case: the exit code, one `error:` line, no traceback, nothing created or changed (support.fails_cleanly)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ..support import (
    BAD_IMAGES,
    assert_one_error,
    facemath_process,
    fails_cleanly,
    good_png,
    run_facemath,
    snapshot,
)

# --- images ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_images_are_named_in_one_line(cli, ws, name):
    payload, fragment = BAD_IMAGES[name]
    folder = ws / "faces"
    folder.mkdir()
    (folder / "good.png").write_bytes(good_png())
    (folder / name).write_bytes(payload)
    line = fails_cleanly(cli, ws, ["data", "info", folder], 1, "1 of 2 images could not be read", name, fragment)
    assert "good.png" not in line


def test_a_folder_named_like_an_image_and_a_link_loop(cli, ws):
    folder = ws / "faces"
    folder.mkdir()
    (folder / "sub.png").mkdir()
    (folder / "loop.png").symlink_to(folder / "loop.png")
    fails_cleanly(cli, ws, ["data", "info", folder], 1, "2 of 2 images", "sub.png", "loop.png")
    fails_cleanly(cli, ws, ["data", "info", ws / "missing"], 1, "no such folder")


def test_odd_image_modes_are_read_not_refused(cli, ws):
    """Not bad inputs: 16-bit, 1-bit, palette with transparency, CMYK, grey+alpha and animated files decode."""
    folder = ws / "faces"
    folder.mkdir()
    gradient = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(gradient).save(folder / "grey16.png")
    Image.new("1", (32, 32), 1).save(folder / "bits.png")
    palette = Image.new("P", (32, 32), 0)
    palette.info["transparency"] = 0
    palette.save(folder / "palette.png", transparency=0)
    Image.new("CMYK", (32, 32), (0, 255, 0, 0)).save(folder / "cmyk.jpg")
    Image.new("LA", (32, 32), (10, 128)).save(folder / "la.png")
    frames = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    result = cli("data", "info", folder)
    assert result.code == 0 and "all 6 images decode" in result.stdout, result.stderr

    from facemath_core.data.images import read_image

    assert read_image(folder / "grey16.png")[31, 31].tolist() == [255, 255, 255]  # 65535 is white, not clipped
    assert read_image(folder / "cmyk.jpg").shape == (32, 32, 3)
    assert read_image(folder / "palette.png")[0, 0].tolist() == [255, 255, 255]  # transparent shows as white


# --- numbers -----------------------------------------------------------------------------------------------


def test_bad_numbers_in_data_grid_and_synth(cli, ws, synth_faces):
    for option in ("--columns", "--size", "--count"):
        fails_cleanly(cli, ws, ["data", "grid", synth_faces, "--out", ws / "g.png", option, "0"], 1, f"{option} 0")
    fails_cleanly(
        cli, ws, ["data", "grid", synth_faces, "--out", ws / "g.png", "--count", "100000", "--size", "512"], 1
    )
    for extra, fragment in ((["--count", "0"], "--count 0"), (["--size", "0"], "--size 0")):
        fails_cleanly(cli, ws, ["data", "synth", "--out", ws / "s", *extra], 1, fragment)
    fails_cleanly(cli, ws, ["data", "synth", "--out", ws / "s", "--count", "x"], 2, "--count")


# --- data pack: what it reads, what it writes (issue 30) -------------------------------------------------------


def _copy_faces(synth_faces, ws, name="faces"):
    import shutil

    return Path(shutil.copytree(synth_faces, ws / name))


def test_pack_never_replaces_the_folder_it_reads(cli, ws, synth_faces):
    """Data loss: `data pack DIR --out DIR --overwrite` replaced the face folder by its shards."""
    faces = _copy_faces(synth_faces, ws)
    images = faces / "img_align_celeba"
    for out, fragment in (
        (faces, "is the input"),
        (ws, "holds the input"),
        (images, "lies inside the input folder"),
        (faces / "shards", "lies inside the input folder"),
    ):
        fails_cleanly(cli, ws, ["data", "pack", faces, "--out", out, "--overwrite"], 1, fragment)
    # Through a link to the folder: the same folder.
    (ws / "alias").symlink_to(faces)
    fails_cleanly(cli, ws, ["data", "pack", ws / "alias", "--out", faces, "--overwrite"], 1, "is the input")


def test_label_files_cannot_name_files_outside_the_folder(cli, ws, synth_faces):
    """Security: an attribute file naming ../../etc/hostname packed that file into the shards. Names in label and
    partition files must stay inside the face folder."""
    outside = ws / "secret.png"
    outside.write_bytes(good_png())
    for label_file, row in (("list_attr_celeba.txt", 2), ("list_eval_partition.txt", 0)):
        faces = _copy_faces(synth_faces, ws, f"faces_{row}")
        path = faces / label_file
        lines = path.read_text().splitlines()
        first = lines[row].split()[0]
        for name in ("../../secret.png", str(outside), "../" * 12 + "etc/hostname"):
            path.write_text("\n".join([*lines[:row], lines[row].replace(first, name, 1), *lines[row + 1 :]]) + "\n")
            for command in (["data", "pack", faces, "--out", ws / "shards"], ["data", "info", faces]):
                line = fails_cleanly(cli, ws, command, 1, f"{path}:{row + 1}", "outside the face folder")
                assert name in line


@pytest.mark.slow
def test_a_named_pipe_named_like_an_image_is_refused_not_read(ws):
    """Hang: `data pack` on a folder holding a FIFO named pipe.png never returned (reading it blocks for ever).
    A real process, with a deadline: a regression must fail this test, not hang the suite."""
    folder = ws / "faces"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(good_png())
    os.mkfifo(folder / "pipe.png")
    for command in (["data", "pack", folder, "--out", ws / "shards"], ["data", "info", folder]):
        before = snapshot(ws)
        result = run_facemath(*command, timeout=120)
        assert_one_error(result, 1, "1 of 4 images could not be read", "pipe.png: not a regular file (a named pipe)")
        assert snapshot(ws) == before


def test_pack_decodes_every_image_as_data_info_does(cli, ws, synth_faces):
    """Silent success: a .png that is not an image was packed (exit 0); `data info` refuses the folder."""
    faces = _copy_faces(synth_faces, ws)
    images = sorted((faces / "img_align_celeba").iterdir())
    images[3].write_bytes(b"not a picture\n" * 10)
    images[7].write_bytes(good_png()[:150])
    for command in (["data", "info", faces], ["data", "pack", faces, "--out", ws / "shards"]):
        line = fails_cleanly(cli, ws, command, 1, "2 of 48 images could not be read")
        assert f"{images[3].name}: not an image" in line and f"{images[7].name}: truncated" in line


@pytest.mark.slow
def test_a_successful_pack_prints_one_line_and_no_tensorflow_start_up_lines(ws, synth_faces):
    """Noise: TensorFlow's C++ start-up lines (oneDNN, CUDA drivers) went to stderr on every successful pack. Only
    a real process shows them: they are written to file descriptor 2 when TensorFlow is first imported."""
    result = run_facemath("data", "pack", synth_faces, "--out", ws / "shards", "--shard-size", "20")
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [f"wrote 48 faces in 3 shards to {ws / 'shards'}"]


# --- shard folders that are damaged (read by `train --data`) ----------------------------------------------------


@pytest.fixture(scope="module")
def packed(cli, synth_faces, tmp_path_factory) -> Path:
    shards = tmp_path_factory.mktemp("packed") / "shards"
    result = cli("data", "pack", synth_faces, "--out", shards)
    assert result.code == 0, result.stderr
    return shards


def _train_on(cli, ws, data, *fragments):
    args = ["train", "gan", "--data", data, "--out", ws / "run", "--steps", "1", "--image-size", "32"]
    return fails_cleanly(cli, ws, args, 1, *fragments)


def test_damaged_shard_indexes_are_one_line(cli, ws, packed):
    """Exit 70: shards.json `[]`, without `shards`, `shards` a string, `attribute_names` a number (TypeError and
    KeyError inside the reader), JSON nested too deep (RecursionError), a shard file outside the folder."""
    import shutil

    index = json.loads((packed / "shards.json").read_text())
    variants = {
        "list": ("[]", "expected a JSON object, not list"),
        "no_shards": (json.dumps({k: v for k, v in index.items() if k != "shards"}), "'shards' must be"),
        "shards_text": (json.dumps({**index, "shards": "shard-00000-of-00001.tfrecord"}), "'shards' must be"),
        "names_number": (json.dumps({**index, "attribute_names": 11}), "'attribute_names' must be a list"),
        "deep": ("[" * 100_000 + "]" * 100_000, "cannot read the shard index"),
        "outside": (
            json.dumps({**index, "shards": [{"file": "../faces/list_attr_celeba.txt", "count": 48}]}),
            "must be the name of a file in this folder",
        ),
        "count": (json.dumps({**index, "count": 47}), "is not the sum of the shards' counts"),
    }
    for name, (text, fragment) in variants.items():
        folder = Path(shutil.copytree(packed, ws.parent / f"{ws.name}_{name}"))
        (folder / "shards.json").write_text(text)
        _train_on(cli, ws, folder, f"{folder / 'shards.json'}: ", fragment)


def test_records_that_are_not_faces_are_one_line(cli, ws, packed):
    """Exit 70: a TFRecord holding a non-image record came back as `UnknownError ... PyFunc`."""
    import shutil

    import tensorflow as tf

    from facemath_core.data.tfrecords import _example

    records = {
        "not_an_image": (_example(b"hello, not a picture", "x.png", [1] * 11, False), "x.png: not an image"),
        "not_an_example": (b"\x00garbage bytes", "a record is not a face record"),
        "no_features": (tf.train.Example().SerializeToString(), "is required but could not be found"),
    }
    for name, (record, fragment) in records.items():
        folder = Path(shutil.copytree(packed, ws.parent / f"{ws.name}_{name}"))
        with tf.io.TFRecordWriter(str(folder / "shard-00000-of-00001.tfrecord")) as writer:
            writer.write(record)
        index = json.loads((folder / "shards.json").read_text())
        index["count"] = index["shards"][0]["count"] = 1
        (folder / "shards.json").write_text(json.dumps(index))
        line = _train_on(cli, ws, folder, str(folder), fragment)
        assert "PyFunc" not in line and "function_node" not in line


# --- odd file names and label files that are not UTF-8 ----------------------------------------------------------

ODD_NAMES = [b"with space.png", b"new\nline.png", b"tab\there.png", b"bad\xff\xfe.png"]


def test_odd_file_names_work_and_are_shown_escaped(cli, ws):
    """Exit 70: names with spaces, newlines, tabs and bytes that are not UTF-8 crashed `data info` and `data grid`
    (UnicodeEncodeError). They are read like any name and shown with escapes, each message on one line."""
    folder = ws / "odd"
    folder.mkdir()
    for i, name in enumerate(ODD_NAMES):
        (folder / os.fsdecode(name)).write_bytes(good_png(16 + i))
    result = cli("data", "info", folder)
    assert result.code == 0 and "all 4 images decode" in result.stdout, result.stderr
    result = cli("data", "grid", folder, "--out", ws / "grid.png", "--size", "16")
    assert result.code == 0, result.stderr
    assert np.asarray(Image.open(ws / "grid.png")).shape == (20, 8 * 18 + 2, 3)  # one row of 8 columns
    result = cli("data", "pack", folder, "--out", ws / "shards")
    assert result.code == 0, result.stderr
    from facemath_core.data.tfrecords import load_shards

    names = load_shards(ws / "shards", 16)[0]
    assert sorted(os.fsencode(n) for n in names) == sorted(ODD_NAMES)  # the bytes on disk, round trip
    # A bad image with such a name: named with escapes, on one line.
    (folder / os.fsdecode(b"new\nline.png")).write_bytes(b"not a picture")
    (folder / os.fsdecode(b"bad\xff\xfe.png")).write_bytes(b"")
    line = fails_cleanly(cli, ws, ["data", "info", folder], 1, "2 of 4 images could not be read")
    assert "new\\nline.png: not an image" in line and "bad\\xff\\xfe.png: empty file" in line


def test_label_files_that_are_not_utf8_are_one_line(cli, ws, synth_faces):
    """Exit 70: a partition file that is not UTF-8 raised UnicodeDecodeError."""
    for label_file, row in (("list_eval_partition.txt", 5), ("list_attr_celeba.txt", 9)):
        faces = _copy_faces(synth_faces, ws, f"faces_{label_file[:9]}")
        path = faces / label_file
        lines = path.read_bytes().split(b"\n")
        lines[row - 1] = lines[row - 1].replace(b".png", b"\xe9.png", 1)  # Latin-1's é
        path.write_bytes(b"\n".join(lines))
        fails_cleanly(cli, ws, ["data", "info", faces], 1, f"{path}:{row}: not UTF-8 text (byte 0xe9)")


# --- a full disk and signals --------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(ws):
    """`small_disk(size)`: a tmpfs of `size` mounted under the workspace (unmounted after the test), or a skip
    saying why none can be mounted here."""
    import subprocess

    mounted = []

    def mount(size: str) -> Path:
        disk = ws / f"disk_{size}"
        disk.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", disk], capture_output=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", disk], check=True)


def test_pack_on_a_full_disk_is_one_line_and_writes_nothing(cli, small_disk, synth_faces):
    """Resource: `data pack` with 30 KB free ended in ResourceExhaustedError (exit 70)."""
    disk = small_disk("30k")
    line = assert_one_error(cli("data", "pack", synth_faces, "--out", disk / "shards"), 1)
    assert line == f"error: no space left on {disk} while writing the shards {disk / 'shards'}; nothing was published"
    assert list(disk.iterdir()) == []


def _gradient_png(side: int) -> bytes:
    """A large image that compresses to little on disk and takes a while to decode (a slow pack, on purpose)."""
    import io

    ramp = np.linspace(0, 255, side, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], ramp[None, :]), -1)).save(buffer, "PNG")
    return buffer.getvalue()


def signal_when_a_part_appears(process, folder: Path, signum: int, timeout: float = 180.0) -> list[str]:
    """Send `signum` to `process` as soon as a temporary (`.NAME.PID@HOST.XXXX.part`) appears under `folder`;
    returns the temporaries seen."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        parts = [str(p) for p in folder.rglob(".*.part")] if folder.exists() else []
        if parts:
            process.send_signal(signum)
            return parts
        time.sleep(0.005)
    raise AssertionError(f"no temporary appeared under {folder}; the command ended with {process.poll()}")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_pack_leaves_nothing_and_says_so(ws, signum):
    """Half-written: SIGTERM during `data pack` left `.shards.XXXX.part` behind."""
    folder = ws / "faces"
    folder.mkdir()
    big = _gradient_png(3000)
    for i in range(60):
        (folder / f"{i:03d}.png").write_bytes(big)
    out = ws / "out"
    process = facemath_process("data", "pack", folder, "--out", out / "shards", "--shard-size", "1")
    parts = signal_when_a_part_appears(process, out, signum)
    _, stderr = process.communicate(timeout=120)
    assert parts and process.returncode == 130, stderr
    assert stderr.strip().splitlines() == [f"error: interrupted; nothing was written ({out / 'shards'} is as it was)"]
    assert not out.exists()  # the temporary and the folder made for it are gone


# --- data synth records its recipe --------------------------------------------------------------------------------


def test_synth_records_its_recipe_and_the_recipe_makes_the_same_folder(cli, ws):
    """The recipe (the command's parameters) is recorded beside the attribute file; run again as the command line
    it gives, it renders the same faces byte for byte: the second run is the check, not the recorded numbers."""
    import hashlib
    import shlex

    from facemath_core.data.folders import RECIPE_FILE, read_recipe, recipe_command

    args = ["--count", "12", "--seed", "7", "--size", "24", "--freq", "Smiling=0.8", "--correlate", "Male:Bangs=0.5"]
    assert cli("data", "synth", *args, "--held-out-percent", "25", "--out", ws / "first").code == 0
    recipe = read_recipe(ws / "first")
    assert json.loads((ws / "first" / RECIPE_FILE).read_text()) == recipe
    assert {k: recipe[k] for k in ("count", "seed", "size", "freq", "correlate", "held_out_percent", "flat")} == {
        "count": 12,
        "seed": 7,
        "size": 24,
        "freq": {"Smiling": 0.8},
        "correlate": {"Male:Bangs": 0.5},
        "held_out_percent": 25,
        "flat": False,
    }
    command = shlex.split(recipe_command(recipe, str(ws / "second")))
    assert command[:3] == ["facemath", "data", "synth"]
    assert cli(*command[1:]).code == 0

    def digests(folder):
        return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.*")}

    assert digests(ws / "first") == digests(ws / "second") and len(digests(ws / "first")) == 12 + 4
