"""Small drawing helpers shared by every figure facemath writes: tiles at a legible scale, headers, captions.

A 64x64 face next to 8-pixel text is unreadable, so tiles under MIN_TILE pixels are drawn enlarged (nearest
neighbour, so no detail is invented) and text uses PIL's built-in scalable font (Pillow >= 10.1, no download).
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facemath_core.base.text import shown

MIN_TILE = 128  # tiles smaller than this are enlarged to at least this size
FONT_SIZE = 13
PAD = 2
TEXT = (0, 0, 0)
FLAG = (200, 0, 0)  # flagged rows: red frame and caption
OUTLINE = (255, 200, 0)  # mask outlines: amber, visible on faces and on the grey hole


@functools.lru_cache(maxsize=8)
def font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def line_height(size: int = FONT_SIZE) -> int:
    return size + 6


def scale_for(tile: int) -> int:
    """The whole-number enlargement that brings a tile to at least MIN_TILE pixels."""
    return max(1, -(-MIN_TILE // tile))


def enlarge(tiles: np.ndarray, scale: int) -> np.ndarray:
    """(N, S, S, C) uint8 tiles enlarged by a whole factor, nearest neighbour."""
    return tiles if scale == 1 else tiles.repeat(scale, axis=1).repeat(scale, axis=2)


def outline(tile: np.ndarray, mask: np.ndarray, colour=OUTLINE) -> np.ndarray:
    """A copy of a uint8 tile with the border of the mask's kept region (mask > 0.5) painted in."""
    keep = np.asarray(mask) > 0.5
    hidden = np.pad(~keep, 1, mode="edge")
    h, w = keep.shape
    # A kept pixel with a hidden one among its 8 neighbours: a closed ring around the hole, corners included.
    touches_hole = np.zeros_like(keep)
    for dy in range(3):
        for dx in range(3):
            touches_hole |= hidden[dy : dy + h, dx : dx + w]
    border = keep & touches_hole
    out = tile.copy()
    out[border] = colour
    return out


def fit_text(draw: ImageDraw.ImageDraw, text: str, width: int, size: int = FONT_SIZE) -> str:
    """The text on one line (a file name's newline or undecodable byte escaped: `text.shown`), cut with an
    ellipsis so it fits the width in pixels."""
    text = shown(text)
    if draw.textlength(text, font=font(size)) <= width:
        return text
    while text and draw.textlength(text + "...", font=font(size)) > width:
        text = text[:-1]
    return text + "..."


def centred(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, fill=TEXT, size: int = FONT_SIZE):
    """Text centred in a box (left, top, right, bottom), cut to fit its width."""
    left, top, right, bottom = box
    text = fit_text(draw, text, right - left - 2, size)
    draw.text(((left + right) / 2, (top + bottom) / 2), text, fill=fill, font=font(size), anchor="mm")


def corner_label(draw: ImageDraw.ImageDraw, at: tuple[int, int], text: str, width: int, size: int = FONT_SIZE):
    """A short label on a white patch at a tile's top-left corner, readable over any face."""
    text = fit_text(draw, text, width - 6, size)
    left, top, right, bottom = draw.textbbox((at[0] + 3, at[1] + 2), text, font=font(size))
    draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill="white")
    draw.text((at[0] + 3, at[1] + 2), text, fill=TEXT, font=font(size))


def labelled_grid(
    tiles: np.ndarray,
    columns: int,
    headers: list[str] | None = None,
    captions: list[str] | None = None,
    flagged: list[bool] | None = None,
    scale: int | None = None,
    tile_labels: dict[int, str] | None = None,
) -> np.ndarray:
    """Tiles (N, S, S, 3) uint8 in rows of `columns`, enlarged to a legible size, as one uint8 picture.

    headers: one text per column, drawn in a header row on top. captions: one text per row, drawn on a strip above
    the row. flagged: per row; a flagged row gets a red frame and a red caption. tile_labels: tile index -> a short
    text drawn on a white patch in the tile's top-left corner (A, B, C of an analogy)."""
    scale = scale_for(tiles.shape[1]) if scale is None else scale
    tiles = enlarge(np.asarray(tiles, np.uint8), scale)
    n, size = len(tiles), tiles.shape[1]
    rows = -(-n // columns)
    header = line_height() if headers else 0
    # Only rows with a caption get a caption strip, so a figure captioned on one row stays compact.
    strips = [line_height() if captions and captions[r] else 0 for r in range(rows)]
    tops = np.cumsum([header + PAD] + [strips[r] + size + PAD for r in range(rows)])
    width = PAD + columns * (size + PAD)
    height = int(tops[-1])
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(headers or []):
        left = PAD + c * (size + PAD)
        centred(draw, (left, 0, left + size, header), text)
    for r in range(rows):
        top, caption = int(tops[r]), strips[r]
        bad = bool(flagged and flagged[r])
        if caption:
            text = fit_text(draw, captions[r], width - 2 * PAD - 4)
            draw.text((PAD + 2, top + caption / 2), text, fill=FLAG if bad else TEXT, font=font(), anchor="lm")
        for c in range(columns):
            k = r * columns + c
            if k < n:
                canvas.paste(Image.fromarray(tiles[k]), (PAD + c * (size + PAD), top + caption))
            if tile_labels and k in tile_labels:
                corner_label(draw, (PAD + c * (size + PAD), top + caption), tile_labels[k], size)
        if bad:
            draw.rectangle((0, top - 1, width - 1, top + caption + size), outline=FLAG, width=2)
    return np.asarray(canvas)
