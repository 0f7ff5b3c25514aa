"""Worked examples of face arithmetic: an expression evaluated term by term, jittered, and drawn as one picture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemath_core.arithmetic import Evaluator, Vector


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
    term's own render in the bottom row, with +, - and = drawn between the columns. Right: a 3x3 block whose centre
    is the result and whose other cells are the jittered variants.
    """
    from PIL import Image, ImageDraw

    from facemath_core.images import from_unit

    space_rows = [list(t.rows[:max_exemplars]) if len(t.rows) > 1 else [] for t in example.terms]
    exemplar_rows = max((len(r) for r in space_rows), default=0)
    term_images = from_unit(render(np.stack([t.z for t in example.terms])))
    block = np.concatenate([example.jittered[:4], example.result.z[None], example.jittered[4:8]])
    block_images = from_unit(render(block))
    all_rows = sorted({r for rows in space_rows for r in rows})
    exemplar_images = {}
    if all_rows:
        rendered = from_unit(render(np.stack([example.faces[r] for r in all_rows])))
        exemplar_images = dict(zip(all_rows, rendered, strict=True))

    size, pad, gutter = term_images.shape[1], 2, 18
    rows = max(exemplar_rows + 1, 3)
    height = pad + rows * (size + pad)
    width = pad + len(example.terms) * (size + pad) + len(example.terms) * gutter + 3 * (size + pad)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    bottom = pad + (rows - 1) * (size + pad)
    for i, (term_rows, image) in enumerate(zip(space_rows, term_images, strict=True)):
        if i:
            sign = "+" if example.signs[i] > 0 else "-"
            draw.text((x - gutter + 5, bottom + size // 2 - 6), sign, fill="black")
        for j, row in enumerate(term_rows):
            top = bottom - (len(term_rows) - j) * (size + pad)
            canvas.paste(Image.fromarray(exemplar_images[row]), (x, top))
        canvas.paste(Image.fromarray(image), (x, bottom))
        x += size + pad + gutter
    draw.text((x - gutter + 5, bottom + size // 2 - 6), "=", fill="black")
    for k, image in enumerate(block_images):
        r, c = divmod(k, 3)
        canvas.paste(Image.fromarray(image), (x + c * (size + pad), height - 3 * (size + pad) + r * (size + pad)))
    return np.asarray(canvas)
