"""Writing GBNF, llama.cpp's grammar language: literals, classes, repetitions, and a rule table with limits.

The converters (``schema.py``, ``tools.py``) build grammars out of
expressions (plain strings of GBNF) and named rules. ``Rules`` keeps the
table: it names rules uniquely, shares identical bodies, and refuses a
grammar past ``MAX_GRAMMAR_BYTES`` or a repetition past ``MAX_REPEAT``, so
what a request can make llama.cpp compile and walk stays bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.errors import UnsupportedSchema

MAX_REPEAT = 1000  # minItems, maxItems, minLength, maxLength, ...: llama.cpp writes out one rule per repeat
MAX_GRAMMAR_BYTES = 256 * 1024  # the GBNF text of one request
MAX_RULES = 8192

_NAME = re.compile(r"[^a-zA-Z0-9-]+")


def literal(text: str) -> str:
    """A GBNF string literal matching ``text`` exactly (UTF-8 left as it is, control characters escaped)."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def digit_class(low: int, high: int) -> str:
    """The digits ``low`` to ``high`` (0-9): ``"5"`` or ``[3-7]``."""
    if low == high:
        return f'"{low}"'
    return f"[{low}-{high}]"


_SINGLE = re.compile(r'[a-zA-Z0-9-]+|"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]')


def group(expression: str) -> str:
    """``expression`` in parentheses unless it is one item already (a name, a literal, a class, a group)."""
    if _SINGLE.fullmatch(expression) or (expression.startswith("(") and _balanced_outer(expression)):
        return expression
    return f"({expression})"


def _balanced_outer(expression: str) -> bool:
    """Whether the outer parentheses of ``(...)`` enclose everything (not ``(a) (b)``)."""
    if not expression.endswith(")"):
        return False
    depth = 0
    in_string = in_class = escaped = False
    for i, char in enumerate(expression):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_string:
            in_string = char != '"'
        elif in_class:
            in_class = char != "]"
        elif char == '"':
            in_string = True
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0 and i != len(expression) - 1:
                return False
    return True


def alt(*options: str) -> str:
    """Any one of ``options`` (duplicates dropped, order kept)."""
    unique = list(dict.fromkeys(o for o in options))
    if len(unique) == 1:
        return unique[0]
    return "(" + " | ".join(unique) + ")"


def seq(*parts: str) -> str:
    """``parts`` one after another (empty parts dropped)."""
    return " ".join(p for p in parts if p)


def repeat(expression: str, low: int, high: int | None, *, what: str) -> str:
    """``expression`` ``low`` to ``high`` times (None: no upper bound), refused past ``MAX_REPEAT``."""
    for bound in (low, high):
        if bound is not None and bound > MAX_REPEAT:
            raise UnsupportedSchema(f"{what} of {bound} is past llamadeck's limit of {MAX_REPEAT}")
    if high is not None and high < low:
        raise UnsupportedSchema(f"{what}: no count between {low} and {high}")
    if high == 0:
        return ""
    item = group(expression)
    if high is None:
        return {0: f"{item}*", 1: f"{item}+"}.get(low, f"{item}{{{low},}}")
    if low == high:
        return item if low == 1 else f"{item}{{{low}}}"
    if (low, high) == (0, 1):
        return f"{item}?"
    return f"{item}{{{low},{high}}}"


_END = ""  # in a prefix tree: a text ends here
_Tree = dict[str, "_Tree"]


def choice(texts: Iterable[str], rules: Rules, hint: str) -> str:
    """Exactly one of ``texts``, written as a prefix tree (shared beginnings written once).

    A plain alternation of 3,000 enum values keeps 3,000 grammar stacks alive
    while their texts agree, and llama.cpp checks each token against every
    stack: 120 ms a step on Gemma. In a tree the grammar follows one path.
    """
    texts = list(dict.fromkeys(texts))
    if len(texts) < 2 or max(len(t) for t in texts) > 400:  # (the tree's depth is a text's length)
        return alt(*(literal(t) for t in texts))
    tree: _Tree = {}
    for text in texts:
        node = tree
        for char in text:
            node = node.setdefault(char, {})
        node[_END] = {}

    def write(node: _Tree) -> str:
        options = []
        for char, child in node.items():
            if char == _END:
                continue
            run = char
            while len(child) == 1 and _END not in child:
                ((char, child),) = child.items()
                run += char
            rest = write(child) if len(child) > (1 if _END in child else 0) else ""
            if rest and _END in child:
                rest = f"{group(rest)}?"
            options.append(seq(literal(run), rest))
        expression = alt(*options)
        return rules.add(hint, expression) if len(options) > 1 else expression

    return write(tree)


class Rules:
    """The rules of one grammar: unique names, identical bodies shared, bounded in size."""

    _too_big = f"the schema's grammar is past llamadeck's limit of {MAX_GRAMMAR_BYTES // 1024} KiB"

    def __init__(self, *, taken: Iterable[str] = ()) -> None:
        self._taken = {"root", *taken}  # names written by hand (``define``), never handed out
        self._bodies: dict[str, str] = {}
        self._by_body: dict[str, str] = {}
        self._size = 0

    def reserve(self, hint: str) -> str:
        """A fresh name for a rule defined later (``define``): a recursive schema refers to itself."""
        base = _NAME.sub("-", hint).strip("-").lower()[:40] or "r"
        name = base
        n = 1
        while name in self._bodies or name in self._taken:
            n += 1
            name = f"{base}-{n}"
        if len(self._bodies) >= MAX_RULES:
            raise UnsupportedSchema(f"the schema needs more than {MAX_RULES} grammar rules")
        self._bodies[name] = ""
        return name

    def define(self, name: str, body: str) -> None:
        body = body or '""'
        self._bodies[name] = body
        self._by_body.setdefault(body, name)
        self._size += len(name) + len(body) + 6
        if self._size > MAX_GRAMMAR_BYTES:
            raise UnsupportedSchema(self._too_big)

    def __contains__(self, name: object) -> bool:
        return name in self._bodies

    def add(self, hint: str, body: str) -> str:
        """A rule for ``body``: the existing one when an identical body has a rule already."""
        known = self._by_body.get(body)
        if known is not None:
            return known
        name = self.reserve(hint)
        self.define(name, body)
        return name

    def text(self, root: str) -> str:
        """The grammar, ``root ::= <root>`` first."""
        lines = [f"root ::= {root}"]
        missing = [name for name, body in self._bodies.items() if not body]
        assert not missing, f"rules reserved but never defined: {missing}"
        lines += [f"{name} ::= {body}" for name, body in self._bodies.items()]
        text = "\n".join(lines) + "\n"
        if len(text.encode()) > MAX_GRAMMAR_BYTES:
            raise UnsupportedSchema(self._too_big)
        return text
