"""Evaluating face arithmetic: an expression tree from `facemath_core.latent.expression` walked over a latent space.

Values are numbers, latent vectors (`Vector`, which remembers the faces it was made from, for the grid) or groups
of faces (`Group`, a boolean row mask: `Smiling & ~Male`). Groups only become latents through `mean(...)`;
`attr(Smiling)` is the attribute vector. The space comes from `facemath_core.latent.space`, attribute vectors from
`facemath_core.latent.attribute_vectors`, and the picture of a result from `facemath_core.latent.worked_example`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from facemath_core.base.errors import EXIT_ERROR, FacemathError
from facemath_core.base.text import plural
from facemath_core.host.contracts import apply_operator
from facemath_core.latent.attribute_vectors import attribute_vectors, check_vector
from facemath_core.latent.expression import (
    Binary,
    Call,
    ExpressionError,
    Name,
    Node,
    Number,
    Unary,
    additive_terms,
    parse,
    unparse,
)
from facemath_core.latent.matching import matched_sets, matching_columns, no_match_message, strata
from facemath_core.latent.space import LatentSpace

BUILTIN_FUNCTIONS = {
    "mean": "mean(a, b, ...) of latents, or mean(GROUP) of --exemplars faces of a group such as Smiling & ~Male",
    "attr": "attr(ATTRIBUTE): the attribute vector, bias-corrected against the other attributes (White 2016)",
}


class ArityError(ExpressionError):
    """An operator called with another number of arguments than the `arity` its plugin declares: one line at the
    call's column naming the operator and its provider, exit 1 like every plugin error (not 2: the expression
    parses)."""

    exit_code = EXIT_ERROR


@dataclass
class Vector:
    z: np.ndarray  # (D,)
    rows: tuple[int, ...] = ()  # the faces it was made from (a name, or the exemplars of a mean)


@dataclass
class Group:
    """A group of faces: every face the labels put in it, flagged or not. Flagged faces are taken out only where a
    group is used (`Evaluator._members`), after the set algebra: taking them out of `Smiling` before `~` would put
    them into `~Smiling`."""

    mask: np.ndarray  # (N,) bool
    text: str


Value = float | Vector | Group


class Evaluator:
    """Evaluates expression trees over a LatentSpace with the operators of the plugin registry.

    `exemplars` is how many faces `mean(GROUP)` averages (0 = the whole group), drawn without replacement with a
    generator seeded by `seed` and the call's column, so one expression always picks the same faces.

    Faces flagged as failed projections (projection.flags) are left out of every group and of attr() vectors
    unless `include_flagged`; `skipped` collects the flagged rows a group or attr() would otherwise have used. A
    group is the exact set its expression says over all faces (`~`, `&` and `|` are set complement, intersection
    and union); the flagged faces are removed from that set where it is used (mean(GROUP), --match), never before
    a `~`. A flagged face named on its own is used (it was asked for by name) and collected in `named_flagged`.
    """

    def __init__(
        self,
        space: LatentSpace,
        operators: dict,
        exemplars: int = 3,
        seed: int = 0,
        include_flagged: bool = False,
        match: bool = False,
        match_on: Sequence[str] | None = None,
        match_labels: tuple[list[str], np.ndarray] | None = None,
        params: dict[str, dict] | None = None,
    ):
        clash = sorted(set(operators) & set(BUILTIN_FUNCTIONS))
        if clash:
            raise FacemathError(f"operator plugin name {clash[0]!r} is taken by a built-in expression function")
        self.space, self.operators, self.exemplars, self.seed = space, operators, exemplars, seed
        self.params = dict(params or {})  # operator name -> its parameters (`--param`), typed; default: defaults
        self.called: set[str] = set()  # the operators the expressions called, for the record of a result
        # Matching (latent.matching): the mean(GROUP) terms of a sum drawn as matched sets, on the labels or
        # on `match_labels` (attribute names and (N, K) bools, e.g. the oracle's judgement of each face's render).
        self.match, self.match_on, self.match_labels = match or match_on is not None, match_on, match_labels
        self._matched: dict[int, np.ndarray] = {}  # id of a mean(GROUP) call -> its matched rows
        self.match_notes: list[str] = []
        self.expression = ""
        self._attr_vectors: np.ndarray | None = None
        flagged = space.latents.flagged
        self.flagged = (
            np.zeros(len(space.latents.names), bool)
            if flagged is None or include_flagged
            else np.asarray(flagged, bool)
        )
        self.usable = ~self.flagged  # the faces a group or attr() may draw from
        self.skipped: set[int] = set()
        self.named_flagged: set[int] = set()

    def flag_notes(self) -> list[str]:
        """What the user should know about flagged faces after evaluating: how many were skipped, which were used."""
        names = self.space.latents.names
        notes = []
        if self.skipped:
            listed = ", ".join(names[r] for r in sorted(self.skipped)[:5]) + (" ..." if len(self.skipped) > 5 else "")
            notes.append(
                f"skipped {plural(len(self.skipped), 'flagged face')} (failed projections: {listed}); "
                f"--include-flagged uses them"
            )
        for r in sorted(self.named_flagged):
            notes.append(f"{names[r]} is flagged as a failed projection; used because it is named")
        return notes

    def evaluate(self, expression: str | Node) -> Value:
        if isinstance(expression, str):
            self.expression = expression
            expression = parse(expression)
        self._prepare_matching([(self.expression, expression)])
        return self._eval(expression)

    def latent(self, expression: str) -> Vector:
        """Evaluate an expression that must give one latent vector."""
        return self.latents([expression])[0]

    def latents(self, expressions: Sequence[str]) -> list[Vector]:
        """Evaluate expressions that must each give one latent vector. With matching on, the mean(GROUP) terms of
        all of them are matched together (the A, B and C of `facemath analogy`)."""
        trees = [(expression, parse(expression)) for expression in expressions]
        self._prepare_matching(trees)
        values = []
        for expression, tree in trees:
            self.expression = expression
            values.append(self._as_vector(self._eval(tree), tree, "the expression"))
        return values

    def terms(self, expression: str) -> tuple[list[tuple[int, str, Vector]], Vector]:
        """The top-level terms of a sum as (sign, text, value), and the result: a - b + c gives a, b and c.

        Each term is evaluated on its own but with the columns it has in the whole expression, so a
        mean(GROUP) term draws the same exemplars as it does inside the result."""

        tree = parse(expression)
        self._prepare_matching([(expression, tree)])
        self.expression = expression
        result = self._as_vector(self._eval(tree), tree, "the expression")
        pairs = additive_terms(tree)
        if len(pairs) == 1:
            return [(1, unparse(pairs[0][1]), result)], result
        return [(sign, unparse(node), self._eval(node)) for sign, node in pairs], result

    # --- matching -----------------------------------------------------------------------------------------

    def _prepare_matching(self, trees: Sequence[tuple[str, Node]]) -> None:
        """Draw the exemplars of the added and subtracted mean(GROUP) terms as matched sets (matching on): the
        terms of the sum, also when scaled or grouped: 2 * (mean(A) - mean(B)) + mean(C)."""
        self._matched, self.match_notes = {}, []
        if not self.match:
            return
        calls = []  # (call node, group)
        for expression, tree in trees:
            self.expression = expression
            for node in _linear_means(tree):
                if len(node.args) == 1:
                    value = self._eval(node.args[0])
                    if isinstance(value, Group):
                        calls.append((node, Group(self._members(value, node.args[0]), value.text)))
        if len(calls) < 2:
            raise FacemathError(
                f"--match needs two or more mean(GROUP) terms added or subtracted, such as "
                f"mean(Smiling & ~Male) - mean(~Smiling & ~Male); found {len(calls)}"
            )
        names, labels = self.match_labels or (self.space.attribute_names, self.space.require_labels("--match"))
        defining = sorted({n.text for node, _ in calls for n in _names(node.args[0])} & set(self.space.attribute_names))
        columns = matching_columns(names, labels, defining, self.match_on)
        rng = np.random.default_rng([self.seed, *(node.column for node, _ in calls)])
        chosen, available = matched_sets(
            [group.mask for _, group in calls], strata(labels[:, columns]), self.exemplars, rng
        )
        on = [names[k] for k in columns]
        if not chosen:
            raise FacemathError(no_match_message([g.text for _, g in calls], on, available, self.exemplars))
        for (node, _), rows in zip(calls, chosen, strict=True):
            self._matched[id(node)] = rows
        self.match_notes.append(
            f"matched {plural(len(chosen[0]), 'set')} of faces (of {available}) on {', '.join(on) or 'no attributes'}"
        )

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
        row = None
        if node.text in space.latents.names:
            row = space.latents.names.index(node.text)
        elif node.text in space.stems:
            row = space.stems.index(node.text)
        if row is not None:
            if self.flagged[row]:
                self.named_flagged.add(row)
            return Vector(space.z[row], (row,))
        if node.text in space.attribute_names:
            column = space.attribute_names.index(node.text)
            return Group(np.array(space.labels[:, column], bool), node.text)
        candidates = space.stems + space.attribute_names + list(self.operators) + list(BUILTIN_FUNCTIONS)
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
                return Group(~group.mask, unparse(node))
            if isinstance(value, Group):
                self._as_vector(value, node.operand, "the operand of '-'")
            return -value if isinstance(value, float) else Vector(-value.z, value.rows)
        if isinstance(node, Binary):
            return self._binary(node)
        return self._call(node)

    def _binary(self, node: Binary) -> Value:
        # A long chain (a + b + c + ...) is deep on the left: fold it with a loop, not recursion.
        spine = []
        while isinstance(node, Binary):
            spine.append(node)
            node = node.left
        value = self._eval(node)
        for parent in reversed(spine):
            value = self._combine(parent, value, self._eval(parent.right))
        return value

    def _combine(self, node: Binary, left: Value, right: Value) -> Value:
        if node.op in "&|":
            a, b = self._as_group(left, node.left, node.op), self._as_group(right, node.right, node.op)
            mask = a.mask & b.mask if node.op == "&" else a.mask | b.mask
            return Group(mask, unparse(node))  # (A | B) & C keeps its parentheses
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
            raise ArityError(
                self.expression,
                node.column,
                f"{operator.label} takes {plural(operator.arity, 'argument')}, got {len(node.args)}",
            )
        args, rows = [], ()
        for arg in node.args:
            value = self._eval(arg)
            if isinstance(value, Group):
                self._as_vector(value, arg, f"an argument of {node.function}")
            if isinstance(value, Vector):
                rows += value.rows
                value = value.z
            args.append(value)
        # Plugin code: what it raises or returns wrongly is its error (exit 1), naming it and the column.
        params = self.params.get(node.function, dict(operator.defaults))
        self.called.add(node.function)
        where = f"expression column {node.column}"
        return Vector(apply_operator(operator, args, params, self.space.z.shape[1:], where), rows)

    def _mean(self, node: Call) -> Vector:
        if not node.args:
            raise self._error(node, "mean() needs latents or a group of faces")
        values = [self._eval(a) for a in node.args]
        if len(values) == 1 and isinstance(values[0], Group):
            group = values[0]
            if id(node) in self._matched:
                rows = self._matched[id(node)]
                return Vector(self.space.z[rows].mean(axis=0), tuple(int(r) for r in rows))
            rows = np.flatnonzero(self._members(group, node.args[0]))
            if self.exemplars and len(rows) > self.exemplars:
                rng = np.random.default_rng([self.seed, node.column])
                rows = np.sort(rng.choice(rows, self.exemplars, replace=False))
            return Vector(self.space.z[rows].mean(axis=0), tuple(int(r) for r in rows))
        vectors = [self._as_vector(v, a, "an argument of mean") for v, a in zip(values, node.args, strict=True)]
        return Vector(np.mean([v.z for v in vectors], axis=0), tuple(r for v in vectors for r in v.rows))

    def _members(self, group: Group, node: Node) -> np.ndarray:
        """(N,) bool: the faces of a group that mean(GROUP) and --match draw from, its flagged faces taken out (and
        noted in `skipped`); an error pointing at the group when none is left."""
        members = group.mask & self.usable
        self.skipped.update(int(r) for r in np.flatnonzero(group.mask & ~self.usable))
        if not members.any():
            start = self._start(node)
            if group.mask.any():
                count = int(group.mask.sum())
                raise self._error(
                    start,
                    f"every face of the group {group.text} ({count}) is flagged as a failed projection; "
                    f"--include-flagged uses them",
                )
            raise self._error(start, f"the group {group.text} is empty: no face has these attributes")
        return members

    def _attr(self, node: Call) -> Vector:
        if len(node.args) != 1 or not isinstance(node.args[0], Name):
            raise self._error(node, "attr takes one attribute name, e.g. attr(Smiling)")
        name = node.args[0]
        labels = self.space.require_labels(f"attr({name.text})")
        if name.text not in self.space.attribute_names:
            close = difflib.get_close_matches(name.text, self.space.attribute_names, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(self.space.attribute_names)}"
            raise self._error(name, f"unknown attribute {name.text!r}; {hint}")
        kept = self.usable
        if self._attr_vectors is None:
            self.skipped.update(int(r) for r in np.flatnonzero(self.flagged))
            self._attr_vectors = attribute_vectors(self.space.z[kept], labels[kept], self.space.attribute_names)
        try:
            return Vector(check_vector(self._attr_vectors, labels[kept], self.space.attribute_names, name.text))
        except FacemathError as exc:
            raise self._error(name, str(exc)) from None


def _names(node: Node) -> Iterator[Name]:
    """Every name in a subtree (the attributes that define a group); a loop, not recursion."""
    pending = [node]
    while pending:
        node = pending.pop()
        if isinstance(node, Name):
            yield node
        elif isinstance(node, Unary):
            pending.append(node.operand)
        elif isinstance(node, Binary):
            pending += [node.left, node.right]
        elif isinstance(node, Call):
            pending += list(node.args)


def _linear_means(node: Node) -> Iterator[Call]:
    """The mean(...) calls of a linear combination: reached through +, -, a sign, and * or / by a number (a
    mean inside a function, or multiplied by another latent, is not a term of the sum); a loop, not recursion."""
    pending = [node]
    while pending:
        node = pending.pop()
        if isinstance(node, Call) and node.function == "mean":
            yield node
        elif isinstance(node, Unary) and node.op == "-":
            pending.append(node.operand)
        elif isinstance(node, Binary) and node.op in "+-":
            pending += [node.right, node.left]
        elif isinstance(node, Binary) and node.op == "*":
            pending += [side for side, other in ((node.right, node.left), (node.left, node.right)) if _number(other)]
        elif isinstance(node, Binary) and node.op == "/" and _number(node.right):
            pending.append(node.left)


def _number(node: Node) -> bool:
    """A constant such as 2, -0.5 or (1 / 3): no names, no calls."""
    pending = [node]
    while pending:
        node = pending.pop()
        if isinstance(node, Unary):
            pending.append(node.operand)
        elif isinstance(node, Binary):
            pending += [node.left, node.right]
        elif not isinstance(node, Number):
            return False
    return True
