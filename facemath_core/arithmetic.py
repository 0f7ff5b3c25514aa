"""Evaluating face arithmetic: latents, groups of faces chosen by attribute, attribute vectors, operators.

`LatentSpace` joins one or more latents files (all from the same model) with the attribute labels of their
images. `Evaluator` walks an expression tree from `facemath_core.expression` over that space. Values are numbers,
latent vectors (`Vector`, which remembers the faces it was made from, for the grid) or groups of faces (`Group`,
a boolean row mask: `Smiling & ~Male`). Groups only become latents through `mean(...)`; `attr(Smiling)` is the
attribute vector.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facemath_core.dataset import ATTR_FILE, read_attribute_file
from facemath_core.errors import FacemathError
from facemath_core.expression import Binary, Call, ExpressionError, Name, Node, Number, Unary, parse
from facemath_core.latents import Latents, load_latents

BUILTIN_FUNCTIONS = {
    "mean": "mean(a, b, ...) of latents, or mean(GROUP) of --exemplars faces of a group such as Smiling & ~Male",
    "attr": "attr(ATTRIBUTE): the attribute vector, bias-corrected against the other attributes (White 2016)",
}


@dataclass
class LatentSpace:
    """Latents (N, D) with their names, and optionally attribute labels (N, K) as booleans."""

    latents: Latents
    attribute_names: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None  # (N, K) bool
    label_source: str = ""
    labels_unusable: str = ""  # why an attribute file found next to the images could not label these latents

    @property
    def z(self) -> np.ndarray:
        return self.latents.z

    @functools.cached_property
    def stems(self) -> list[str]:
        return [Path(n).stem for n in self.latents.names]

    def require_labels(self, what: str) -> np.ndarray:
        if self.labels is None and self.labels_unusable:
            raise FacemathError(f"{what} needs attribute labels: {self.labels_unusable}")
        if self.labels is None:
            raise FacemathError(
                f"{what} needs attribute labels, and no {ATTR_FILE} was found next to the latents' images; "
                f"give one with --attributes FILE_OR_FOLDER"
            )
        return self.labels


def merge_latents(files: Sequence[str | Path]) -> Latents:
    """Several latents files as one; all must come from the same model with the same z size."""
    if not files:
        raise FacemathError("--latents: give at least one latents.npz")
    parts = [(str(f), load_latents(f)) for f in files]
    first_path, first = parts[0]
    names, seen = [], {}
    for path, part in parts:
        if (part.family, part.model, part.z.shape[1]) != (first.family, first.model, first.z.shape[1]):
            raise FacemathError(
                f"{path}: latents of the {part.family} model {part.model} ({part.z.shape[1]} dims) cannot be mixed "
                f"with {first_path} ({first.family} model {first.model}, {first.z.shape[1]} dims)"
            )
        for name in part.names:
            if name in seen:
                raise FacemathError(f"{path}: the name {name!r} is also in {seen[name]}; names must be unique")
            seen[name] = path
            names.append(name)
    if len(parts) == 1:
        return first
    inputs = [p for _, part in parts for p in part.config.get("inputs", [])]
    return Latents(
        names=names,
        z=np.concatenate([part.z for _, part in parts]),
        family=first.family,
        model=first.model,
        model_version=first.model_version,
        source="+".join(sorted({part.source for _, part in parts})),
        config={"inputs": inputs, "merged_from": [p for p, _ in parts]},
        models=first.models,
    )


def find_attribute_file(latents: Latents, given: str | Path | None) -> Path | None:
    """The attribute file: --attributes (a file or a folder holding one), else the one next to the images."""
    if given is not None:
        path = Path(given)
        path = path / ATTR_FILE if path.is_dir() else path
        if not path.is_file():
            raise FacemathError(f"--attributes {given}: no such attribute file")
        return path
    folders = {Path(p).parent for p in latents.config.get("inputs", [])}
    candidates = {f / ATTR_FILE for f in folders} | {f.parent / ATTR_FILE for f in folders}
    found = sorted(c for c in candidates if c.is_file())
    if len(found) > 1:
        raise FacemathError(
            f"the latents' images come from folders with different attribute files ({', '.join(map(str, found))}); "
            "choose one with --attributes FILE_OR_FOLDER"
        )
    return found[0] if found else None


def open_space(files: Sequence[str | Path], attributes: str | Path | None = None) -> LatentSpace:
    latents = merge_latents(files)
    path = find_attribute_file(latents, attributes)
    if path is None:
        return LatentSpace(latents)
    rows, names, values = read_attribute_file(path)
    by_name = dict(zip(rows, values, strict=True))
    missing = [n for n in latents.names if n not in by_name]
    if missing:
        problem = f"{path}: has no labels for {len(missing)} of the {len(latents.names)} latents, e.g. {missing[0]!r}"
        if attributes is not None:
            raise FacemathError(problem)
        # Found by itself, not asked for: expressions without groups or attr() still work; the rest say why not.
        return LatentSpace(latents, labels_unusable=problem)
    labels = np.stack([by_name[n] for n in latents.names]) > 0
    return LatentSpace(latents, list(names), labels, str(path))


def exclusive_with(labels: np.ndarray) -> np.ndarray:
    """(K, K) bool: attribute j never co-occurs with attribute k although both occur (hair colours)."""
    both = labels.T.astype(int) @ labels.astype(int)
    present = labels.any(axis=0)
    exclusive = (both == 0) & present[:, None] & present[None, :]
    np.fill_diagonal(exclusive, False)
    return exclusive


def attribute_vectors(z: np.ndarray, labels: np.ndarray, names: Sequence[str], corrected: bool = True) -> np.ndarray:
    """One vector per attribute (K, D): the change of z when that attribute is switched on.

    Uncorrected, it is the balanced difference of means (faces with minus faces without). Attributes are often
    correlated in real data (Male and Wearing_Hat in CelebA), and then a difference of means carries the correlated
    attribute along. White's bias correction removes that: each vector is estimated by least squares of z on the
    attribute indicators together, so its coefficient is the effect of its attribute with the others held fixed.
    With independent, balanced attributes both give the same vectors.

    Attributes that never occur together (two hair colours) are the exception: Blond_Hair cannot be switched on
    with Black_Hair held fixed, so holding it fixed would leave the Black-to-Blond change out of the Blond vector
    and adding it to a black-haired face would do little. Each attribute's regression therefore leaves out the
    attributes it excludes; its vector then also switches them off, as the data says it must.
    """
    labels = np.asarray(labels, bool)
    counts = labels.sum(axis=0)
    varies = (counts > 0) & (counts < len(labels))
    vectors = np.full((labels.shape[1], z.shape[1]), np.nan, np.float32)
    if not corrected:
        for k in np.flatnonzero(varies):
            vectors[k] = z[labels[:, k]].mean(axis=0) - z[~labels[:, k]].mean(axis=0)
        return vectors
    # Constant attributes (nobody wears a hat in this folder) have no vector and stay out of the regressions.
    exclusive = exclusive_with(labels)
    fits: dict[tuple[int, ...], np.ndarray] = {}  # attributes in the regression -> coefficients (one fit per set)
    for k in np.flatnonzero(varies):
        kept = tuple(int(j) for j in np.flatnonzero(varies) if not exclusive[k, j])
        if kept not in fits:
            design = np.concatenate([np.ones((len(z), 1)), labels[:, kept].astype(np.float64)], axis=1)
            fits[kept], *_ = np.linalg.lstsq(design, z.astype(np.float64), rcond=None)
        vectors[k] = fits[kept][1 + kept.index(int(k))]
    return vectors


def check_vector(vectors: np.ndarray, labels: np.ndarray, names: Sequence[str], name: str) -> np.ndarray:
    """The vector of one attribute, or a clear error when every face has (or lacks) it."""
    k = list(names).index(name)
    if np.isnan(vectors[k]).any():
        state = "has" if labels[:, k].all() else "lacks"
        raise FacemathError(f"attribute {name}: every one of the {len(labels)} faces {state} it, so it has no vector")
    return vectors[k]


@dataclass
class Vector:
    z: np.ndarray  # (D,)
    rows: tuple[int, ...] = ()  # the faces it was made from (a name, or the exemplars of a mean)


@dataclass
class Group:
    mask: np.ndarray  # (N,) bool
    text: str


Value = float | Vector | Group


class Evaluator:
    """Evaluates expression trees over a LatentSpace with the operators of the plugin registry.

    `exemplars` is how many faces `mean(GROUP)` averages (0 = the whole group), drawn without replacement with a
    generator seeded by `seed` and the call's column, so one expression always picks the same faces.
    """

    def __init__(self, space: LatentSpace, operators: dict, exemplars: int = 3, seed: int = 0):
        clash = sorted(set(operators) & set(BUILTIN_FUNCTIONS))
        if clash:
            raise FacemathError(f"operator plugin name {clash[0]!r} is taken by a built-in expression function")
        self.space, self.operators, self.exemplars, self.seed = space, operators, exemplars, seed
        self.expression = ""
        self._attr_vectors: np.ndarray | None = None

    def evaluate(self, expression: str | Node) -> Value:
        if isinstance(expression, str):
            self.expression = expression
            expression = parse(expression)
        return self._eval(expression)

    def latent(self, expression: str) -> Vector:
        """Evaluate an expression that must give one latent vector."""
        tree = parse(expression)
        self.expression = expression
        return self._as_vector(self._eval(tree), tree, "the expression")

    def terms(self, expression: str) -> tuple[list[tuple[int, str, Vector]], Vector]:
        """The top-level terms of a sum as (sign, text, value), and the result: a - b + c gives a, b and c.

        Each term is evaluated on its own but with the columns it has in the whole expression, so a
        mean(GROUP) term draws the same exemplars as it does inside the result."""
        from facemath_core.expression import additive_terms, unparse

        result = self.latent(expression)
        pairs = additive_terms(parse(expression))
        if len(pairs) == 1:
            return [(1, unparse(pairs[0][1]), result)], result
        return [(sign, unparse(node), self._eval(node)) for sign, node in pairs], result

    # --- helpers ------------------------------------------------------------------------------------------

    def _error(self, node: Node, message: str) -> ExpressionError:
        return ExpressionError(self.expression, node.column, message)

    def _start(self, node: Node) -> Node:
        """The leftmost node of a subtree: where a message about the whole subtree should point."""
        while isinstance(node, Binary):
            node = node.left
        return node

    def _as_vector(self, value: Value, node: Node, what: str) -> Vector:
        if isinstance(value, Vector):
            return value
        node = self._start(node)
        if isinstance(value, Group):
            raise self._error(
                node, f"{what} is a group of faces ({value.text}); turn it into a latent with mean({value.text})"
            )
        raise self._error(node, f"{what} is the number {value:g}, not a latent")

    def _as_group(self, value: Value, node: Node, op: str) -> Group:
        if isinstance(value, Group):
            return value
        raise self._error(
            self._start(node), f"{op!r} combines groups of faces (attributes such as Smiling), not latents or numbers"
        )

    def _name(self, node: Name) -> Value:
        space = self.space
        if node.text in space.latents.names:
            return Vector(space.z[space.latents.names.index(node.text)], (space.latents.names.index(node.text),))
        stems = space.stems
        if node.text in stems:
            row = stems.index(node.text)
            return Vector(space.z[row], (row,))
        if node.text in space.attribute_names:
            column = space.attribute_names.index(node.text)
            return Group(space.labels[:, column].copy(), node.text)
        candidates = stems + space.attribute_names + list(self.operators) + list(BUILTIN_FUNCTIONS)
        close = difflib.get_close_matches(node.text, candidates, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        if space.labels is not None:
            raise self._error(node, f"unknown latent or attribute {node.text!r}{hint}")
        why = space.labels_unusable or "no attribute file is loaded"
        raise self._error(node, f"unknown latent {node.text!r}{hint} (attributes: {why})")

    def _eval(self, node: Node) -> Value:
        if isinstance(node, Number):
            # A bare number that is exactly a latent's stem is that latent (image files named 000001.png).
            if node.text in self.space.stems:
                return self._name(Name(node.text, node.column))
            return node.value
        if isinstance(node, Name):
            return self._name(node)
        if isinstance(node, Unary):
            value = self._eval(node.operand)
            if node.op == "~":
                group = self._as_group(value, node.operand, "~")
                return Group(~group.mask, f"~{group.text}")
            if isinstance(value, Group):
                self._as_vector(value, node.operand, "the operand of '-'")
            return -value if isinstance(value, float) else Vector(-value.z, value.rows)
        if isinstance(node, Binary):
            return self._binary(node)
        return self._call(node)

    def _binary(self, node: Binary) -> Value:
        left, right = self._eval(node.left), self._eval(node.right)
        if node.op in "&|":
            a, b = self._as_group(left, node.left, node.op), self._as_group(right, node.right, node.op)
            mask = a.mask & b.mask if node.op == "&" else a.mask | b.mask
            return Group(mask, f"{a.text} {node.op} {b.text}")
        for value, side in ((left, node.left), (right, node.right)):
            if isinstance(value, Group):
                self._as_vector(value, side, f"the operand of {node.op!r}")
        if isinstance(left, float) and isinstance(right, float):
            if node.op == "/" and right == 0:
                raise self._error(self._start(node.right), "division by zero")
            if node.op == "/":
                return left / right
            return {"+": left + right, "-": left - right, "*": left * right}[node.op]
        if node.op in "+-":
            if not (isinstance(left, Vector) and isinstance(right, Vector)):
                number = node.left if isinstance(left, float) else node.right
                verb = "add" if node.op == "+" else "subtract"
                raise self._error(self._start(number), f"cannot {verb} a number and a latent")
            z = left.z + right.z if node.op == "+" else left.z - right.z
            return Vector(z, left.rows + right.rows)
        if node.op == "*":
            if isinstance(left, Vector) and isinstance(right, Vector):
                raise self._error(node, "cannot multiply two latents; scale a latent by a number")
            vector, number = (left, right) if isinstance(left, Vector) else (right, left)
            return Vector(vector.z * number, vector.rows)
        if not isinstance(right, float):
            raise self._error(self._start(node.right), "can only divide by a number")
        if right == 0:
            raise self._error(self._start(node.right), "division by zero")
        return Vector(left.z / right, left.rows)

    def _call(self, node: Call) -> Value:
        if node.function == "mean":
            return self._mean(node)
        if node.function == "attr":
            return self._attr(node)
        operator = self.operators.get(node.function)
        if operator is None:
            known = sorted([*BUILTIN_FUNCTIONS, *self.operators])
            close = difflib.get_close_matches(node.function, known, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
            raise self._error(node, f"unknown function {node.function!r}; {hint}")
        if operator.arity is not None and len(node.args) != operator.arity:
            raise self._error(node, f"{node.function} takes {operator.arity} arguments, got {len(node.args)}")
        args, rows = [], ()
        for arg in node.args:
            value = self._eval(arg)
            if isinstance(value, Group):
                self._as_vector(value, arg, f"an argument of {node.function}")
            if isinstance(value, Vector):
                rows += value.rows
                value = value.z
            args.append(value)
        try:
            result = operator.function(*args, **operator.defaults)
        except Exception as exc:
            raise self._error(node, f"{operator.label} failed: {type(exc).__name__}: {exc}") from exc
        result = np.asarray(result, np.float32)
        if result.shape != self.space.z.shape[1:]:
            raise self._error(node, f"{node.function} returned shape {result.shape}, expected a latent")
        return Vector(result, rows)

    def _mean(self, node: Call) -> Vector:
        if not node.args:
            raise self._error(node, "mean() needs latents or a group of faces")
        values = [self._eval(a) for a in node.args]
        if len(values) == 1 and isinstance(values[0], Group):
            group = values[0]
            rows = np.flatnonzero(group.mask)
            if len(rows) == 0:
                raise self._error(
                    self._start(node.args[0]), f"the group {group.text} is empty: no face has these attributes"
                )
            if self.exemplars and len(rows) > self.exemplars:
                rng = np.random.default_rng([self.seed, node.column])
                rows = np.sort(rng.choice(rows, self.exemplars, replace=False))
            return Vector(self.space.z[rows].mean(axis=0), tuple(int(r) for r in rows))
        vectors = [self._as_vector(v, a, "an argument of mean") for v, a in zip(values, node.args, strict=True)]
        return Vector(np.mean([v.z for v in vectors], axis=0), tuple(r for v in vectors for r in v.rows))

    def _attr(self, node: Call) -> Vector:
        if len(node.args) != 1 or not isinstance(node.args[0], Name):
            raise self._error(node, "attr takes one attribute name, e.g. attr(Smiling)")
        name = node.args[0]
        labels = self.space.require_labels(f"attr({name.text})")
        if name.text not in self.space.attribute_names:
            close = difflib.get_close_matches(name.text, self.space.attribute_names, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(self.space.attribute_names)}"
            raise self._error(name, f"unknown attribute {name.text!r}; {hint}")
        if self._attr_vectors is None:
            self._attr_vectors = attribute_vectors(self.space.z, labels, self.space.attribute_names)
        try:
            return Vector(check_vector(self._attr_vectors, labels, self.space.attribute_names, name.text))
        except FacemathError as exc:
            raise self._error(name, str(exc)) from None


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
