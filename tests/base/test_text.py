"""Counted nouns (facemath_core.base.text): the English rule, 1 takes the singular and every other count the plural.
File names shown in messages: one printable line whatever the name holds."""

import os

import pytest

from facemath_core.base.text import plural, shown


@pytest.mark.parametrize(
    "count, noun, nouns, expected",
    [
        (1, "image", None, "1 image"),
        (0, "image", None, "0 images"),
        (2, "image", None, "2 images"),
        (16, "flagged face", None, "16 flagged faces"),
        (1, "match", "matches", "1 match"),
        (3, "match", "matches", "3 matches"),
    ],
)
def test_one_is_singular_and_every_other_count_plural(count, noun, nouns, expected):
    assert plural(count, noun, nouns) == expected


def test_names_are_shown_on_one_printable_line_as_python_writes_their_bytes():
    """Checked against Python's own escaping of bytes (repr of a bytes object) for ASCII names: a space stays,
    a newline is \\n, a tab \\t, an undecodable byte \\xNN; non-ASCII letters are shown as they are."""
    raw = [b"with space.png", b"new\nline.png", b"tab\there.png", b"bad\xff\xfe.png", b"\x1b[31mred.png"]
    for name in raw:
        # Python keeps undecodable bytes of a file name as lone surrogates (PEP 383): what os.listdir returns.
        text = shown(os.fsdecode(name))
        assert text == shown(name) == repr(name)[2:-1]
        text.encode("utf-8")  # printable on any UTF-8 terminal: no surrogate left
        assert text.isprintable()
    assert shown("\u00e9t\u00e9 1.png") == "\u00e9t\u00e9 1.png"
