"""The expression language of `facemath math`: parsed by hand, never with eval.

    expr     := or
    or       := and ('|' and)*               groups of faces: either attribute
    and      := sum ('&' sum)*               groups of faces: both attributes
    sum      := product (('+' | '-') product)*
    product  := unary (('*' | '/') unary)*
    unary    := ('-' | '~') unary | atom      '~' negates a group (~Smiling)
    atom     := NUMBER | NAME | QUOTED | NAME '(' [expr (',' expr)*] ')' | '(' expr ')'

A NAME is a latent (an image stem such as `smile_woman`) or an attribute (a column of the attribute file, such as
`Smiling`, which stands for the group of faces that have it); which one is decided when the expression is
evaluated (`facemath_core.latent.arithmetic`). Names that are not identifiers (`'000001.png'`, `"face-2"`) are quoted. A
bare number that is exactly the stem of a latent (`000001`) is that latent; write `1.0` for the number.

Every node keeps the 1-based column where it starts, so errors can point at it.

Limits: a chain of one operator (`a + b + c + ...`, any length) is parsed, printed and evaluated with loops, never
recursion; nesting (parentheses, function calls, signs such as `--a`) deeper than MAX_DEPTH levels is refused at
the column where the level is exceeded, so no input can exhaust Python's stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from facemath_core.base.errors import EXIT_USAGE, FacemathError

MAX_DEPTH = 100

# Binding strength of the binary operators, loosest first (the grammar above).
_LEVEL = {"|": 0, "&": 1, "+": 2, "-": 2, "*": 3, "/": 3}


class ExpressionError(FacemathError):
    """A problem at one column of an expression."""

    exit_code = EXIT_USAGE  # a malformed expression is a malformed command line

    def __init__(self, expression: str, column: int, message: str):
        self.expression, self.column, self.message = expression, column, message
        super().__init__(f"expression column {column}: {message}")


@dataclass(frozen=True)
class Number:
    value: float
    text: str
    column: int


@dataclass(frozen=True)
class Name:
    text: str
    column: int
    quoted: bool = False


@dataclass(frozen=True)
class Unary:
    op: str  # '-' or '~'
    operand: Node
    column: int


@dataclass(frozen=True)
class Binary:
    op: str  # '+', '-', '*', '/', '&', '|'
    left: Node
    right: Node
    column: int


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Node, ...]
    column: int


Node = Number | Name | Unary | Binary | Call

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z_0-9.]))
  | (?P<name>[A-Za-z_0-9][A-Za-z_0-9]*)
  | (?P<quoted>'[^']*'|"[^"]*")
  | (?P<op>[-+*/&|~(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # number, name, quoted, op, end
    text: str
    column: int


def tokenize(expression: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            char = expression[position]
            if char in "'\"":
                raise ExpressionError(expression, position + 1, f"unclosed quote {char}")
            raise ExpressionError(expression, position + 1, f"unexpected character {char!r}")
        kind = match.lastgroup
        if kind != "space":
            tokens.append(Token(kind, match.group(), position + 1))
        position = match.end()
    tokens.append(Token("end", "", len(expression) + 1))
    return tokens


class _Parser:
    def __init__(self, expression: str):
        self.expression = expression
        self.tokens = tokenize(expression)
        self.position = 0
        self.depth = 0

    def enter(self, token: Token) -> None:
        """One level deeper (a parenthesis, a call or a sign); refused beyond MAX_DEPTH."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"nested more than {MAX_DEPTH} levels deep (parentheses, function calls and signs); "
                f"simplify the expression",
                token,
            )

    @property
    def current(self) -> Token:
        return self.tokens[self.position]

    def error(self, message: str, token: Token | None = None) -> ExpressionError:
        return ExpressionError(self.expression, (token or self.current).column, message)

    def take(self) -> Token:
        token = self.current
        self.position += 1
        return token

    def expect(self, text: str) -> Token:
        if self.current.kind == "op" and self.current.text == text:
            return self.take()
        found = "the end of the expression" if self.current.kind == "end" else repr(self.current.text)
        raise self.error(f"expected {text!r}, found {found}")

    def at(self, *ops: str) -> bool:
        return self.current.kind == "op" and self.current.text in ops

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise self.error("the expression is empty")
        node = self.binary_level(0)
        if self.current.kind != "end":
            raise self.error(f"unexpected {self.current.text!r} after a complete expression")
        return node

    _LEVELS = (("|",), ("&",), ("+", "-"), ("*", "/"))

    def binary_level(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        node = self.binary_level(level + 1)
        while self.at(*self._LEVELS[level]):
            op = self.take()
            node = Binary(op.text, node, self.binary_level(level + 1), op.column)
        return node

    def unary(self) -> Node:
        if self.at("-", "~"):
            op = self.take()
            self.enter(op)
            node = Unary(op.text, self.unary(), op.column)
            self.depth -= 1
            return node
        if self.at("+"):
            self.enter(self.take())
            node = self.unary()
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Node:
        token = self.current
        if token.kind == "number":
            self.take()
            return Number(float(token.text), token.text, token.column)
        if token.kind == "quoted":
            self.take()
            if len(token.text) == 2:
                raise self.error("empty quoted name", token)
            return Name(token.text[1:-1], token.column, quoted=True)
        if token.kind == "name":
            self.take()
            if self.at("("):
                return self.call(token)
            return Name(token.text, token.column)
        if self.at("("):
            self.enter(self.take())
            node = self.binary_level(0)
            self.expect(")")
            self.depth -= 1
            return node
        if token.kind == "end":
            raise self.error("the expression ends too early; a name, number or '(' is missing")
        raise self.error(f"unexpected {token.text!r}; expected a name, number or '('")

    def call(self, name: Token) -> Call:
        self.expect("(")
        self.enter(name)
        args = []
        if not self.at(")"):
            args.append(self.binary_level(0))
            while self.at(","):
                self.take()
                args.append(self.binary_level(0))
        self.expect(")")
        self.depth -= 1
        return Call(name.text, tuple(args), name.column)


def parse(expression: str) -> Node:
    """The syntax tree of an expression, or an ExpressionError naming the column of the first problem."""
    return _Parser(expression).parse()


def unparse(node: Node) -> str:
    """Text that parses back to the same tree, parenthesised only where the grammar needs it."""
    if isinstance(node, Binary):
        # Walk the left spine with a loop: a sum of 500 names is 500 levels deep on the left.
        spine = []
        while isinstance(node, Binary):
            spine.append(node)
            node = node.left
        text = unparse(node)
        for child, parent in zip([node, *reversed(spine)], reversed(spine), strict=False):
            if isinstance(child, Binary) and _LEVEL[child.op] < _LEVEL[parent.op]:
                text = f"({text})"  # a looser operator on the left: (a + b) * c
            text = f"{text} {parent.op} {_wrapped(parent.right)}"
        return text
    if isinstance(node, Number):
        return node.text
    if isinstance(node, Name):
        if not node.quoted and re.fullmatch(r"[A-Za-z_0-9]+", node.text):
            return node.text
        quote = '"' if "'" in node.text else "'"  # a name cannot hold both: neither quote could enclose it
        return f"{quote}{node.text}{quote}"
    if isinstance(node, Unary):
        return f"{node.op}{_wrapped(node.operand)}"
    return f"{node.function}({', '.join(unparse(a) for a in node.args)})"


def _wrapped(node: Node) -> str:
    text = unparse(node)
    return f"({text})" if isinstance(node, Binary) else text


def additive_terms(node: Node) -> list[tuple[int, Node]]:
    """The top-level terms of a sum with their signs: a - b + c -> [(+1, a), (-1, b), (+1, c)]."""
    terms = []
    while isinstance(node, Binary) and node.op in "+-":
        terms.append((1 if node.op == "+" else -1, node.right))
        node = node.left
    terms.append((1, node))
    return terms[::-1]


def same_tree(a: Node, b: Node) -> bool:
    """Structural equality that ignores columns (used by the property tests); a loop, not recursion."""
    pending = [(a, b)]
    while pending:
        a, b = pending.pop()
        if type(a) is not type(b):
            return False
        if isinstance(a, Number):
            if a.value != b.value:
                return False
        elif isinstance(a, Name):
            if a.text != b.text:
                return False
        elif isinstance(a, Unary):
            if a.op != b.op:
                return False
            pending.append((a.operand, b.operand))
        elif isinstance(a, Binary):
            if a.op != b.op:
                return False
            pending += [(a.left, b.left), (a.right, b.right)]
        else:
            if a.function != b.function or len(a.args) != len(b.args):
                return False
            pending += list(zip(a.args, b.args, strict=True))
    return True
