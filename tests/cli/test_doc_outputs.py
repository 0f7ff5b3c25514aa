"""Sample output in the docs is what the program prints (issue 24): every block marked `<!-- output: COMMAND -->`
on the line before its fence is checked against COMMAND run here, on the shipped models.

Numbers and paths vary with the machine, the TensorFlow build and the folder; the shape of each line does not. A
line's shape is the line with hex digests replaced by HEX, absolute paths by PATH and numbers by N, and a run of
lines of one shape counts as one (three flagged faces or two: the same shape). `...` on a line of its own in a
block stands for any lines; a line starting with `$ ` is the command. What a terminal shows is compared: stderr's
notes, then stdout (a progress bar is a live display, not output that stays).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = re.compile(r"^<!-- output: (.+) -->\n```[a-z]*\n(.*?)^```", re.M | re.S)


def marked_blocks() -> list[tuple[str, str, list[str]]]:
    """(document, command, the block's lines) of every marked block of the README and docs/."""
    blocks = []
    for path in DOCUMENTS:
        for command, body in MARK.findall(path.read_text()):
            blocks.append((str(path.relative_to(ROOT)), command, body.splitlines()))
    return blocks


def shape(line: str) -> str:
    line = re.sub(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b", "HEX", line)
    line = re.sub(r"(?<![\w.])/[^\s)]*", "PATH", line)
    return re.sub(r"(?<!\w)\d[\d,]*(\.\d+)?", "N", line)  # not inside a word: sha256, gan64r


def collapsed(lines: list[str]) -> list[str]:
    shapes = []
    for line in lines:
        if not shapes or shapes[-1] != line:
            shapes.append(line)
    return shapes


def matches(documented: list[str], printed: list[str]) -> bool:
    """Whether the printed lines have the documented shapes, `...` standing for any lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line.strip() == "..." else re.escape(line) + r"\n"
        for line in collapsed([shape(line) for line in documented if not line.startswith("$ ")])
    )
    text = "".join(f"{line}\n" for line in collapsed([shape(line) for line in printed]))
    return re.fullmatch(pattern, text) is not None


def test_shapes_ignore_numbers_paths_and_digests_but_not_words():
    assert shape("projected 16 images into /tmp/x/p with generator version 2") == (
        "projected N images into PATH with generator version N"
    )
    assert shape("mean 22.9 dB, worst 1,131; commit 99ec6c0987a9, sha256 da4bc04827ee") == (
        "mean N dB, worst N; commit HEX, sha256 HEX"
    )
    assert shape("models: /venv/x (from the default models)") == "models: PATH (from the default models)"
    assert matches(["a 1", "...", "b 2"], ["a 5", "x", "y", "b 7"]) and matches(["a 1", "b 2"], ["a 1", "b 2", "b 3"])
    assert not matches(["a 1", "b 2"], ["a 1", "c 2"]) and not matches(["a 1"], ["a 1", "extra"])


# How to run each documented command here: the files it reads, laid out in a fresh folder as the docs assume.


def _examples(folder: Path) -> None:
    (folder / "examples").symlink_to(ROOT / "examples")


def _encoded_heldout(cli, folder: Path) -> None:
    """arithmetic.md's first commands: 600 labelled held-out faces, encoded by the shipped VAE."""
    made = cli(
        "data", "synth", "--count", "600", "--seed", "12345", "--held-out-percent", "100", "--out", "data/heldout"
    )
    assert made.code == 0, made.stderr
    encoded = cli("encode", "data/heldout", "--out", "enc")
    assert encoded.code == 0, encoded.stderr


SETUP = {
    "facemath info": None,
    "facemath project examples/faces --loss-plugin perceptual": lambda cli, folder: _examples(folder),
    "facemath math 'mean(Smiling & ~Male) - mean(~Smiling & ~Male) + mean(~Smiling & Male)' --latents enc/latents.npz "
    "--match --out smiling_man": _encoded_heldout,
}
BLOCKS = marked_blocks()


def test_the_marked_blocks_are_the_ones_this_test_knows():
    assert {command for _, command, _ in BLOCKS} == set(SETUP)
    assert {document for document, _, _ in BLOCKS} == {"docs/install.md", "docs/projection.md", "docs/arithmetic.md"}


@pytest.mark.slow  # the README's quickstart: 16 faces, 1000 steps
@pytest.mark.parametrize("document, command, block", BLOCKS, ids=[f"{d}: {c[:40]}" for d, c, _ in BLOCKS])
def test_documented_output_has_the_shape_of_what_the_command_prints(
    cli, tmp_path, monkeypatch, document, command, block
):
    monkeypatch.chdir(tmp_path)  # no exported_models/ here: the installed defaults (the shipped models) are in effect
    monkeypatch.delenv("FACEMATH_MODELS", raising=False)
    setup = SETUP[command]
    if setup is not None:
        setup(cli, tmp_path)
    words = shlex.split(command)
    assert words[0] == "facemath"
    result = cli(*words[1:])
    assert result.code == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith(("note:", "warning:"))]
    printed = notes + result.stdout.splitlines()
    assert matches(block, printed), "\n".join(["documented:", *block, "printed:", *printed])
