"""The lexer: text/template/parse/lex.go, turning a template's text into tokens.

Trim markers (``{{-`` and ``-}}``), comments, quoted strings and numbers are
read as Go reads them; an error names its line and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from engine.errors import TemplateError

MAX_NESTING = 100  # parentheses and blocks inside one another


_SPACE = " \t\r\n"
_KEYWORDS = {
    "block",
    "break",
    "continue",
    "define",
    "else",
    "end",
    "if",
    "range",
    "nil",
    "template",
    "with",
}


def _alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdecimal()


@dataclass(frozen=True)
class Token:
    typ: str
    val: str
    pos: int


class Lexer:
    def __init__(self, src: str):
        self.src = src
        self.pos = 0
        self.tokens: list[Token] = []

    def fail(self, msg: str, pos: int | None = None) -> NoReturn:
        raise TemplateError(f"Go template {line_column(self.src, self.pos if pos is None else pos)}: {msg}")

    def emit(self, typ: str, start: int, end: int | None = None) -> None:
        self.tokens.append(Token(typ, self.src[start : self.pos if end is None else end], start))

    def at_right_delim(self) -> tuple[bool, bool]:
        s = self.src
        p = self.pos
        if p + 1 < len(s) and s[p] in _SPACE and s[p + 1] == "-" and s.startswith("}}", p + 2):
            return True, True
        return s.startswith("}}", p), False

    def at_terminator(self) -> bool:
        p = self.pos
        if p >= len(self.src):
            return True
        return self.src[p] in _SPACE + ".,|:)(" or self.src.startswith("}}", p)

    def run(self) -> list[Token]:
        s = self.src
        while True:
            x = s.find("{{", self.pos)
            if x < 0:
                if self.pos < len(s):
                    self.tokens.append(Token("text", s[self.pos :], self.pos))
                self.tokens.append(Token("eof", "", len(s)))
                return self.tokens
            left_trim = s[x + 2 : x + 3] == "-" and s[x + 3 : x + 4] != "" and s[x + 3 : x + 4] in _SPACE
            end = len(s[self.pos : x].rstrip(_SPACE)) + self.pos if left_trim else x
            if end > self.pos:
                self.tokens.append(Token("text", s[self.pos : end], self.pos))
            self.pos = x + 2
            after = 2 if left_trim else 0
            if s.startswith("/*", self.pos + after):
                self.comment(self.pos + after)
                continue
            self.tokens.append(Token("left", "{{", x))
            self.pos += after
            self.inside_action()

    def comment(self, start: int) -> None:
        i = self.src.find("*/", start + 2)
        if i < 0:
            self.fail("unclosed comment", start)
        self.pos = i + 2
        delim, trim = self.at_right_delim()
        if not delim:
            self.fail("comment ends before closing delimiter")
        self.pos += (2 if trim else 0) + 2
        if trim:
            self.skip_space()

    def skip_space(self) -> None:
        while self.pos < len(self.src) and self.src[self.pos] in _SPACE:
            self.pos += 1

    def right_delim(self, trim: bool) -> None:
        if trim:
            self.pos += 2
        self.tokens.append(Token("right", "}}", self.pos))
        self.pos += 2
        if trim:
            self.skip_space()

    def inside_action(self) -> None:
        s = self.src
        depth = 0
        while True:
            delim, trim = self.at_right_delim()
            if delim:
                if depth == 0:
                    self.right_delim(trim)
                    return
                self.fail("unclosed left paren")
            start = self.pos
            if start >= len(s):
                self.fail("unclosed action")
            ch = s[start]
            self.pos += 1
            if ch in _SPACE:
                while self.pos < len(s) and s[self.pos] in _SPACE:
                    self.pos += 1
                if s[self.pos : self.pos + 1] == "-" and s.startswith("}}", self.pos + 1):
                    self.pos -= 1  # the space before "-}}" belongs to the delimiter
                    if self.pos == start:
                        continue
                self.emit("space", start)
            elif ch == "=":
                self.emit("assign", start)
            elif ch == ":":
                if s[self.pos : self.pos + 1] != "=":
                    self.fail("expected :=")
                self.pos += 1
                self.emit("declare", start)
            elif ch == "|":
                self.emit("pipe", start)
            elif ch == '"':
                self.quote(start, '"', "unterminated quoted string")
                self.emit("string", start)
            elif ch == "'":
                self.quote(start, "'", "unterminated character constant")
                self.emit("charconst", start)
            elif ch == "`":
                i = s.find("`", self.pos)
                if i < 0:
                    self.fail("unterminated raw quoted string", start)
                self.pos = i + 1
                self.emit("rawstring", start)
            elif ch == "$":
                self.field_or_variable(start, "variable")
            elif ch == "." and self.pos < len(s) and s[self.pos] not in "0123456789":
                self.field_or_variable(start, "field")
            elif ch in "+-.0123456789":
                self.pos = start
                self.number(start)
            elif _alnum(ch):
                while self.pos < len(s) and _alnum(s[self.pos]):
                    self.pos += 1
                word = s[start : self.pos]
                if not self.at_terminator():
                    self.fail(f"bad character {s[self.pos]!r}")
                typ = word if word in _KEYWORDS else "bool" if word in ("true", "false") else "identifier"
                self.emit(typ, start)
            elif ch == "(":
                depth += 1
                if depth > MAX_NESTING:
                    self.fail("parentheses nested too deep")
                self.emit("lparen", start)
            elif ch == ")":
                depth -= 1
                if depth < 0:
                    self.fail("unexpected right paren")
                self.emit("rparen", start)
            elif ch.isascii() and ch.isprintable():
                self.emit("char", start)
            else:
                self.fail(f"unrecognized character in action: {ch!r}")

    def quote(self, start: int, close: str, error: str) -> None:
        s = self.src
        while True:
            ch = s[self.pos : self.pos + 1]
            self.pos += 1
            if ch == "\\":
                nxt = s[self.pos : self.pos + 1]
                if nxt in ("", "\n"):
                    self.fail(error, start)
                self.pos += 1
            elif ch in ("", "\n"):
                self.fail(error, start)
            elif ch == close:
                return

    def field_or_variable(self, start: int, typ: str) -> None:
        if self.at_terminator():
            self.emit("variable" if typ == "variable" else "dot", start)
            return
        s = self.src
        while self.pos < len(s) and _alnum(s[self.pos]):
            self.pos += 1
        if not self.at_terminator():
            self.fail(f"bad character {s[self.pos]!r}")
        self.emit(typ, start)

    def number(self, start: int) -> None:
        s = self.src

        def accept(chars: str) -> bool:
            if self.pos < len(s) and s[self.pos] in chars:
                self.pos += 1
                return True
            return False

        def run(chars: str) -> None:
            while accept(chars):
                pass

        accept("+-")
        digits = "0123456789_"
        if accept("0"):
            if accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif accept("oO"):
                digits = "01234567_"
            elif accept("bB"):
                digits = "01_"
        run(digits)
        if accept("."):
            run(digits)
        if len(digits) == 11 and accept("eE"):
            accept("+-")
            run("0123456789_")
        if len(digits) == 23 and accept("pP"):
            accept("+-")
            run("0123456789_")
        accept("i")
        if self.pos < len(s) and _alnum(s[self.pos]) or s[self.pos : self.pos + 1] in ("+", "-"):
            self.fail(f"bad or unsupported number syntax: {s[start : self.pos + 1]!r}", start)
        self.emit("number", start)


def line_column(src: str, pos: int) -> str:
    line = src.count("\n", 0, pos) + 1
    col = pos - (src.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {col}"
