"""Words in messages: counted nouns ("1 image", "2 images", never "1 images" or "2 image(s)") and file names shown
with their control characters and undecodable bytes escaped."""

from __future__ import annotations

import os


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`count` and the noun in the number it needs: plural(1, "face") is "1 face", plural(3, "face") "3 faces";
    `nouns` for a plural that is not noun + "s" (plural(2, "match", "matches"))."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def shown(name: str | os.PathLike | bytes) -> str:
    """A file name as a message shows it: printable on any terminal and on one line. Control characters (a
    newline, a tab) become `\\n`, `\\t`, `\\xNN`; bytes that are not UTF-8 (which Python keeps in a name as lone
    surrogates, PEP 383) become `\\xNN`, the byte itself. Everything else, spaces and non-ASCII letters included, is
    shown as it is. The name itself still works: only the message is escaped."""
    text = os.fsdecode(name) if isinstance(name, bytes) else os.fspath(name)
    if text.isprintable():
        return text
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the undecodable byte code - 0xDC00
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable() or char == " ":
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
