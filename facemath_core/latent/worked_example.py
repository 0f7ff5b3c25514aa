"""Worked examples of face arithmetic: an expression evaluated term by term, jittered, and drawn as one picture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemath_core.base.drawing import PAD, centred, enlarge, labelled_grid, line_height, scale_for
from facemath_core.data.images import from_unit
from facemath_core.latent.arithmetic import Evaluator, Vector


@dataclass
class WorkedExample:
    """An evaluated expression ready to draw: its top-level terms, the result and the jittered variants."""

    expression: str
    signs: list[int]  # +1 / -1 per term
    term_texts: list[str]
    terms: list[Vector]
    result: Vector
    jittered: np.ndarray  # (J, D): result + U(-jitter, +jitter) noise, as the DCGAN paper shows
    faces: dict[int, np.ndarray]  # row -> z of every face the terms were made from
    names: dict[int, str]  # row -> latent name


def work_out(evaluator: Evaluator, expression: str, jitter: float = 0.25, variants: int = 8, seed: int = 0):
    """Evaluate an expression term by term and jitter its result."""
    terms, result = evaluator.terms(expression)
    noise = np.random.default_rng(seed).uniform(-jitter, jitter, (variants, result.z.shape[0])).astype(np.float32)
    rows = {r for _, _, term in terms for r in term.rows}
    return WorkedExample(
        expression,
        [sign for sign, _, _ in terms],
        [text for _, text, _ in terms],
        [term for _, _, term in terms],
        result,
        result.z[None] + noise,
        {r: evaluator.space.z[r] for r in rows},
        {r: evaluator.space.latents.names[r] for r in rows},
    )


def example_grid(example: WorkedExample, render, max_exemplars: int = 5) -> np.ndarray:
    """The picture of a worked example (uint8).

    Left: one column per term, its exemplar faces on top (the faces a mean averaged, or the named face) and the
    term's own render in the bottom row, with +, - and = drawn between the columns and each term's text over its
    column. Right: a 3x3 block whose centre (framed) is the result and whose other cells are the jittered variants.
    Faces are drawn enlarged (facemath_core.base.drawing) so the text beside them stays legible.
    """
    from PIL import Image, ImageDraw

    space_rows = [list(t.rows[:max_exemplars]) if len(t.rows) > 1 else [] for t in example.terms]
    exemplar_rows = max((len(r) for r in space_rows), default=0)
    term_images = from_unit(render(np.stack([t.z for t in example.terms])))
    scale = scale_for(term_images.shape[1])
    term_images = enlarge(term_images, scale)
    block = np.concatenate([example.jittered[:4], example.result.z[None], example.jittered[4:8]])
    block_images = enlarge(from_unit(render(block)), scale)
    all_rows = sorted({r for rows in space_rows for r in rows})
    exemplar_images = {}
    if all_rows:
        rendered = enlarge(from_unit(render(np.stack([example.faces[r] for r in all_rows]))), scale)
        exemplar_images = dict(zip(all_rows, rendered, strict=True))

    size, pad, gutter, header = term_images.shape[1], PAD, 32, line_height()
    sign_size = 2 * line_height()
    rows = max(exemplar_rows + 1, 3)
    height = header + pad + rows * (size + pad)
    width = pad + len(example.terms) * (size + pad) + len(example.terms) * gutter + 3 * (size + pad)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    bottom = height - (size + pad)
    middle = (bottom, bottom + size)
    for i, (term_rows, image) in enumerate(zip(space_rows, term_images, strict=True)):
        if i:
            sign = "+" if example.signs[i] > 0 else "-"
            centred(draw, (x - gutter - pad, middle[0], x - pad, middle[1]), sign, size=sign_size)
        lead = "- " if i == 0 and example.signs[0] < 0 else ""
        # The header row is free over the gutters (the signs sit by the terms' row): long terms may use it.
        centred(draw, (max(0, x - gutter // 2), 0, x + size + gutter // 2, header), lead + example.term_texts[i])
        for j, row in enumerate(term_rows):
            top = bottom - (len(term_rows) - j) * (size + pad)
            canvas.paste(Image.fromarray(exemplar_images[row]), (x, top))
        canvas.paste(Image.fromarray(image), (x, bottom))
        x += size + pad + gutter
    centred(draw, (x - gutter - pad, middle[0], x - pad, middle[1]), "=", size=sign_size)
    block_top = height - 3 * (size + pad)
    centred(draw, (x, block_top - header, x + 3 * (size + pad), block_top), "result (centre) and jittered variants")
    for k, image in enumerate(block_images):
        r, c = divmod(k, 3)
        canvas.paste(Image.fromarray(image), (x + c * (size + pad), block_top + r * (size + pad)))
    left, top = x + size + pad, block_top + size + pad
    draw.rectangle((left - 2, top - 2, left + size + 1, top + size + 1), outline="black", width=2)
    return np.asarray(canvas)


def j_diagram_latents(za: np.ndarray, zb: np.ndarray, zc: np.ndarray, steps: int) -> np.ndarray:
    """White's J-diagram as latents, row-major (steps * steps, D): A in the top left, B along the top row, C down
    the first column, and B + C - A in the far corner (the analogy's answer)."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    cells = za + t[None, :, None] * (zb - za) + t[:, None, None] * (zc - za)
    return cells.reshape(-1, za.shape[0])


def analogy_figure(images, steps: int, a: str, b: str, c: str):
    """The J-diagram with its corners named: A, B and C on their tiles, their expressions in the header and the
    last row's caption, and the far corner marked B + C - A."""

    headers = [f"A = {a}"] + [""] * (steps - 2) + [f"B = {b}"]
    captions = [""] * (steps - 1) + [f"C = {c}   (bottom left); bottom right: B + C - A"]
    corners = {0: "A", steps - 1: "B", (steps - 1) * steps: "C", steps * steps - 1: "B + C - A"}
    return labelled_grid(images, steps, headers=headers, captions=captions, tile_labels=corners)
