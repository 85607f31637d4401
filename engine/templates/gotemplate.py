"""Ollama's Go chat templates, rendered byte for byte as Go's ``text/template`` and Ollama do.

An Ollama Modelfile ``TEMPLATE`` is a Go ``text/template`` that Ollama runs
over the conversation (``template/template.go``). :class:`GoTemplate` parses
one once, in pure Python, and renders it with Ollama's ``Execute``:

* a template that reads ``.Messages`` sees the whole conversation at once:
  ``.System`` (every system message, joined by a blank line), ``.Messages``
  (consecutive turns of one role merged, tool results kept apart), ``.Tools``;
* any other (legacy) template runs once per user turn with ``.System``,
  ``.Prompt`` and ``.Response``, and the last turn stops where ``.Response``
  would be printed, so that the model writes it.

The values a template sees have Go's types (``templateMessage``,
``templateTool``, ``api.ToolProperty``...) and print as Go prints them: a map
as ``map[a:1 b:2]``, tool arguments and definitions as compact JSON with
``<``, ``>`` and ``&`` escaped, a float64 as ``1e+06``.

Only what Ollama's library uses is supported; the rest (``define``,
``template``, ``block``, method calls, ``call``, ``js``, ``urlquery``, complex
numbers, printf verbs other than ``%s %d %v %q``) is a :class:`TemplateError`
when the template is read, never a silently wrong prompt. A render is bounded
in steps and output size::

    GoTemplate.parse("{{ range .Messages }}<|{{ .Role }}|>{{ .Content }}{{ end }}<|assistant|>")
        .render([Message("user", "Hi")])        # '<|user|>Hi<|assistant|>'
"""

from __future__ import annotations

import base64
import bisect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

from engine.errors import TemplateError

if TYPE_CHECKING:
    from engine.templates.render import Message

__all__ = ["MAX_OUTPUT", "MAX_STEPS", "GoTemplate"]

MAX_OUTPUT = 4 * 1024 * 1024  # characters one render may write
MAX_STEPS = 2_000_000  # nodes, commands and loop turns one render may take
_MAX_NESTING = 100  # parentheses and blocks inside one another


# ---------------------------------------------------------------------------------------------
# Go values: what a template sees, with Go's types where they change how a value prints


class _Missing:
    """Go's invalid ``reflect.Value``: a missing key after a pipeline, printed ``<no value>``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


class _NilPointer:
    """A typed nil pointer (``ToolProperty.Properties`` when absent): prints ``<nil>``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NIL_POINTER"


MISSING = _Missing()
NIL_POINTER = _NilPointer()
# None stands for a nil interface{} held in a map, slice or struct field (JSON null, a missing
# map key under missingkey=zero): printing it gives "<nil>", reading a field of it is an error.


class GoSlice(list[Any]):
    """A Go slice with a type: ``nil`` (JSON ``null``) apart from empty, maybe a ``String()`` method."""

    def __init__(
        self, items: Sequence[Any] = (), *, type_name: str, nil: bool = False, stringer: bool = False
    ):
        super().__init__(items)
        self.type_name = type_name
        self.nil = nil and not items
        self.stringer = stringer


class GoMap(dict[str, Any]):
    """A Go map with string keys: its element type's zero for a missing key, maybe a ``String()``."""

    def __init__(
        self,
        items: Mapping[str, Any] | None = None,
        *,
        type_name: str,
        zero: Callable[[], Any] = lambda: None,
        stringer: bool = False,
    ):
        super().__init__(items or {})
        self.type_name = type_name
        self.nil = items is None
        self.zero = zero
        self.stringer = stringer


class PropertyType(list[str]):
    """``api.PropertyType``: prints as its one type, or as ``[a b]``; JSON a string or a list."""

    def __init__(self, types: Sequence[str] = (), *, nil: bool = False):
        super().__init__(types)
        self.nil = nil and not types


class OrderedProperties(dict[str, Any]):
    """``*api.ToolPropertiesMap`` inside a property: opaque to a template, JSON in insertion order."""


@dataclass(eq=False)
class GoStruct:
    """A Go struct value (or a pointer to one) with its fields in declaration order.

    ``tags`` maps a field to its JSON name and omitempty, or is None for a
    struct without tags; ``stringer`` marks a ``String()`` that prints the
    struct as its JSON; ``methods`` names the methods a template must not call.
    """

    type_name: str
    fields: dict[str, Any]
    tags: dict[str, tuple[str, bool]] | None = None
    pointer: bool = False
    stringer: bool = False
    methods: frozenset[str] = frozenset()


# ---------------------------------------------------------------------------------------------
# Printing as fmt does


def _float_digits(f: float) -> tuple[str, int]:
    """The shortest digits of ``abs(f)`` (non-zero, finite) and the decimal point position."""
    _, digits, exp = Decimal(repr(abs(f))).normalize().as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits))
    return ds, len(ds) + exp


def _fmt_e(ds: str, dp: int, *, json_style: bool) -> str:
    exp = dp - 1
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    sign = "-" if exp < 0 else "+"
    digits = str(abs(exp))
    if len(digits) < 2 and not (json_style and exp < 0):
        digits = "0" + digits
    return f"{mant}e{sign}{digits}"


def _fmt_f(ds: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * -dp + ds
    if dp >= len(ds):
        return ds + "0" * (dp - len(ds))
    return ds[:dp] + "." + ds[dp:]


def go_float(f: float) -> str:
    """``fmt.Sprint(f)`` for a float64: strconv's shortest ``%g``, exponent when < 1e-4 or >= 1e6."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if str(f).startswith("-") else ""
    if f == 0:
        return sign + "0"
    ds, dp = _float_digits(f)
    exp = dp - 1
    body = _fmt_e(ds, dp, json_style=False) if exp < -4 or exp >= 6 else _fmt_f(ds, dp)
    return sign + body


def json_float(f: float) -> str:
    """``encoding/json``'s float64: shortest, as an exponent below 1e-6 or from 1e21."""
    if f != f or f in (float("inf"), float("-inf")):
        raise TemplateError(f"the template printed {f} as JSON, which JSON cannot hold")
    sign = "-" if str(f).startswith("-") else ""
    if f == 0:
        return sign + "0"
    ds, dp = _float_digits(f)
    if abs(f) < 1e-6 or abs(f) >= 1e21:
        return sign + _fmt_e(ds, dp, json_style=True)
    return sign + _fmt_f(ds, dp)


def _string_of(v: Any) -> str | None:
    """What a ``String()`` method returns, for the values that have one; None for the rest."""
    if isinstance(v, PropertyType):
        return "" if not v else v[0] if len(v) == 1 else "[" + " ".join(v) + "]"
    if isinstance(v, GoMap) and v.stringer:
        return "{}" if v.nil else go_json(v)
    if isinstance(v, GoSlice) and v.stringer:
        return go_json(v)
    if isinstance(v, GoStruct) and v.stringer:
        return go_json(v)
    return None


def go_sprint_value(v: Any, depth: int = 0) -> str:
    """One operand as ``fmt`` prints it with ``%v``; a pointer prints ``&{...}`` at the top only."""
    if v is None or v is MISSING or v is NIL_POINTER:
        return "<nil>"
    s = _string_of(v)
    if s is not None:
        return s
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return "[" + " ".join(str(b) for b in v) + "]"
    if isinstance(v, OrderedProperties):
        raise TemplateError(
            "the template prints a property's nested properties, which Go prints as an address"
        )
    if isinstance(v, GoStruct):
        if v.pointer and depth > 0:
            raise TemplateError(
                f"the template prints a {v.type_name} inside a value, which Go prints as an address"
            )
        inner = "{" + " ".join(go_sprint_value(x, depth + 1) for x in v.fields.values()) + "}"
        return "&" + inner if v.pointer else inner
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{k}:{go_sprint_value(v[k], depth + 1)}" for k in sorted(v)) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(go_sprint_value(x, depth + 1) for x in v) + "]"
    raise TemplateError(f"the template prints a value of Python type {type(v).__name__}")


def _print_value(v: Any) -> str:
    """What ``{{ pipeline }}`` writes: text/template's printableValue, then fmt."""
    return go_sprint_value(_printable(v))


def _is_string(v: Any) -> bool:
    return isinstance(v, str)


def go_sprint(args: Sequence[Any]) -> str:
    """``fmt.Sprint``: a space between two operands when neither is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i > 0 and not _is_string(a) and not _is_string(args[i - 1]):
            out.append(" ")
        out.append(go_sprint_value(a))
    return "".join(out)


_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """``strconv.Quote``: printable runes as they are, the rest escaped as Go does."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append(_QUOTE_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_PRINTF_VERBS = frozenset("sdvq")


def _printf_check(fmt: str) -> None:
    i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            verb = fmt[i + 1 : i + 2]
            if verb not in ("%", "") and verb not in _PRINTF_VERBS:
                raise TemplateError(f"printf verb %{verb} is not supported (only %s, %d, %v, %q and %%)")
            i += 2
        else:
            i += 1


def go_quote_rune(r: int) -> str:
    """``strconv.QuoteRune``, as ``%q`` prints an integer."""
    ch = chr(r) if 0 <= r <= 0x10FFFF and not 0xD800 <= r <= 0xDFFF else "\ufffd"
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    return "'" + go_quote(ch)[1:-1] + "'"


def _type_name(v: Any) -> str:
    """Go's name for a value's dynamic type, for fmt's ``%!verb(type=value)``."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    raise TemplateError(f"printf cannot print {_desc(v)} with that verb")


def _fmt_verb(v: Any, verb: str, depth: int) -> str:
    """One operand of ``fmt.Sprintf`` with ``%s``, ``%d`` or ``%q``, containers element by element."""
    if v is None or v is MISSING or v is NIL_POINTER:
        return "<nil>" if depth > 0 else f"%!{verb}(<nil>)"
    text = None if verb == "d" else v if isinstance(v, str) else _string_of(v)
    if text is not None:
        return go_quote(text) if verb == "q" else text
    if isinstance(v, int) and not isinstance(v, bool) and verb in "dq":
        return str(v) if verb == "d" else go_quote_rune(v)
    if isinstance(v, bool | int | float | str):
        return f"%!{verb}({_type_name(v)}={go_sprint_value(v)})"
    if isinstance(v, GoStruct):
        if v.pointer and depth > 0:
            raise TemplateError(
                f"the template prints a {v.type_name} inside a value, which Go prints as an address"
            )
        inner = "{" + " ".join(_fmt_verb(x, verb, depth + 1) for x in v.fields.values()) + "}"
        return "&" + inner if v.pointer else inner
    if isinstance(v, Mapping) and not isinstance(v, OrderedProperties):
        items = (f"{_fmt_verb(k, verb, depth + 1)}:{_fmt_verb(v[k], verb, depth + 1)}" for k in sorted(v))
        return "map[" + " ".join(items) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(_fmt_verb(x, verb, depth + 1) for x in v) + "]"
    raise TemplateError(f"printf %{verb} cannot print {_desc(v)}")


def go_sprintf(fmt: str, args: Sequence[Any]) -> str:
    """``fmt.Sprintf`` for the verbs Ollama's templates use: ``%s %d %v %q %%``, misuse as Go writes it."""
    _printf_check(fmt)
    out: list[str] = []
    n = 0
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            j = fmt.find("%", i)
            j = len(fmt) if j < 0 else j
            out.append(fmt[i:j])
            i = j
            continue
        verb = fmt[i + 1 : i + 2]
        i += 2
        if verb == "%":
            out.append("%")
        elif verb == "":
            out.append("%!(NOVERB)")
        elif n >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            arg = args[n]
            n += 1
            out.append(go_sprint_value(arg) if verb == "v" else _fmt_verb(arg, verb, 0))
    if n < len(args):
        extra = (
            "<nil>" if a is None or a is MISSING else f"{_type_name(a)}={go_sprint_value(a)}"
            for a in args[n:]
        )
        out.append("%!(EXTRA " + ", ".join(extra) + ")")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# JSON as encoding/json writes it (Go 1.22+, as Ollama ships: HTML-safe, \b and \f short)

_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def json_string(s: str) -> str:
    out = ['"']
    for ch in s:
        esc = _JSON_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " " or ch in "<>&\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        elif "\ud800" <= ch <= "\udfff":
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_empty(v: Any) -> bool:
    if v is None or v is NIL_POINTER or v is False:
        return True
    if isinstance(v, bool):
        return False
    if isinstance(v, int | float):
        return v == 0
    if isinstance(v, str | bytes | list | dict):
        return len(v) == 0
    return False


def go_json(v: Any) -> str:
    """``json.Marshal(v)`` for the values a template holds."""
    if v is None or v is MISSING or v is NIL_POINTER:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return json_float(v)
    if isinstance(v, str):
        return json_string(v)
    if isinstance(v, bytes):
        return json_string(base64.b64encode(v).decode("ascii"))
    if isinstance(v, PropertyType):
        if v.nil:
            return "null"
        return json_string(v[0]) if len(v) == 1 else "[" + ",".join(json_string(t) for t in v) + "]"
    if isinstance(v, GoStruct):
        parts = []
        for name, value in v.fields.items():
            key, omitempty = (name, False) if v.tags is None else v.tags[name]
            if omitempty and _json_empty(value):
                continue
            parts.append(f"{json_string(key)}:{go_json(value)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(v, OrderedProperties):
        return "{" + ",".join(f"{json_string(k)}:{go_json(x)}" for k, x in v.items()) + "}"
    if isinstance(v, GoMap) and v.nil:
        return "null"
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{json_string(k)}:{go_json(v[k])}" for k in sorted(v)) + "}"
    if isinstance(v, GoSlice) and v.nil:
        return "null"
    if isinstance(v, list | tuple):
        return "[" + ",".join(go_json(x) for x in v) + "]"
    raise TemplateError(f"the template writes a value of Python type {type(v).__name__} as JSON")


# ---------------------------------------------------------------------------------------------
# The parse tree (text/template/parse's node types, for the subset supported)


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Field:
    idents: tuple[str, ...]


@dataclass(frozen=True)
class _Variable:
    idents: tuple[str, ...]  # the variable's name ("$", "$x") then fields


@dataclass(frozen=True)
class _Chain:
    node: Any
    fields: tuple[str, ...]


@dataclass(frozen=True)
class _Dot:
    pass


@dataclass(frozen=True)
class _Nil:
    pass


@dataclass(frozen=True)
class _Const:
    value: Any  # bool, int, float or str


@dataclass(frozen=True)
class _Ident:
    name: str


@dataclass(frozen=True)
class _Command:
    args: tuple[Any, ...]


@dataclass(frozen=True)
class _Pipe:
    decls: tuple[str, ...]
    is_assign: bool
    cmds: tuple[_Command, ...]


@dataclass(frozen=True)
class _Action:
    pipe: _Pipe
    line: int


@dataclass(frozen=True)
class _List:
    nodes: tuple[Any, ...]


@dataclass(frozen=True)
class _Branch:
    kind: str  # "if", "range" or "with"
    pipe: _Pipe
    list: _List
    else_list: _List | None
    line: int


@dataclass(frozen=True)
class _Break:
    pass


@dataclass(frozen=True)
class _Continue:
    pass


# ---------------------------------------------------------------------------------------------
# The lexer (text/template/parse/lex.go)

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
class _Token:
    typ: str
    val: str
    pos: int


class _Lexer:
    def __init__(self, src: str):
        self.src = src
        self.pos = 0
        self.tokens: list[_Token] = []

    def fail(self, msg: str, pos: int | None = None) -> NoReturn:
        raise TemplateError(f"Go template {_where(self.src, self.pos if pos is None else pos)}: {msg}")

    def emit(self, typ: str, start: int, end: int | None = None) -> None:
        self.tokens.append(_Token(typ, self.src[start : self.pos if end is None else end], start))

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

    def run(self) -> list[_Token]:
        s = self.src
        while True:
            x = s.find("{{", self.pos)
            if x < 0:
                if self.pos < len(s):
                    self.tokens.append(_Token("text", s[self.pos :], self.pos))
                self.tokens.append(_Token("eof", "", len(s)))
                return self.tokens
            left_trim = s[x + 2 : x + 3] == "-" and s[x + 3 : x + 4] != "" and s[x + 3 : x + 4] in _SPACE
            end = len(s[self.pos : x].rstrip(_SPACE)) + self.pos if left_trim else x
            if end > self.pos:
                self.tokens.append(_Token("text", s[self.pos : end], self.pos))
            self.pos = x + 2
            after = 2 if left_trim else 0
            if s.startswith("/*", self.pos + after):
                self.comment(self.pos + after)
                continue
            self.tokens.append(_Token("left", "{{", x))
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
        self.tokens.append(_Token("right", "}}", self.pos))
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
                if depth > _MAX_NESTING:
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


def _where(src: str, pos: int) -> str:
    line = src.count("\n", 0, pos) + 1
    col = pos - (src.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {col}"


# ---------------------------------------------------------------------------------------------
# The parser (text/template/parse/parse.go)

_BUILTINS = frozenset(
    {"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "slice"}
    | {"print", "printf", "println", "html"}
)
_OLLAMA_FUNCS = frozenset({"json", "currentDate", "yesterdayDate", "toTypeScriptType"})
_UNSUPPORTED_FUNCS = frozenset({"call", "js", "urlquery"})
# methods of the values Ollama passes: calling one is a method call, which llamadeck refuses
_METHODS = frozenset({"String", "ToTypeScriptType", "MarshalJSON", "UnmarshalJSON"})
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unquote(text: str, fail: Callable[[str], NoReturn]) -> str:
    """``strconv.Unquote`` for a Go string or character literal (raw strings drop ``\\r``)."""
    if text[0] == "`":
        return text[1:-1].replace("\r", "")
    quote = text[0]
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == quote:
            fail(f"invalid syntax in {text}")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        e = body[i + 1 : i + 2]
        i += 2
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
        elif e == quote:
            out.append(e)
        elif e in ("x", "u", "U") or e in "01234567":
            width = {"x": 2, "u": 4, "U": 8}.get(e, 2)
            digits = body[i : i + width] if e in "xuU" else e + body[i : i + 2]
            base = 8 if e not in "xuU" else 16
            try:
                value = int(digits, base)
            except ValueError:
                fail(f"invalid escape in {text}")
            if len(digits) != (width if e in "xuU" else 3) or value > 0x10FFFF:
                fail(f"invalid escape in {text}")
            i += width if e in "xuU" else 2
            if e in "x01234567" and value > 0x7F:
                fail(
                    f"byte escape \\{digits if e in '01234567' else 'x' + digits} is not supported in {text}"
                )
            out.append(chr(value))
        else:
            fail(f"invalid escape \\{e} in {text}")
    result = "".join(out)
    if quote == "'" and len(result) != 1:
        fail(f"malformed character constant: {text}")
    return result


def _number(text: str, fail: Callable[[str], NoReturn]) -> int | float:
    """A number literal as text/template's idealConstant makes it: int, or float64 with ``.eE``."""
    if text.endswith("i"):
        fail(f"complex number {text} is not supported")
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in ("+", "-") else text
    low = body.lower()
    try:
        if low.startswith(("0x", "0o", "0b")):
            if "." in low or "p" in low:
                fail(f"hexadecimal float {text} is not supported")
            value: int | float = sign * int(body.replace("_", ""), 0)
        elif any(c in body for c in ".eE"):
            value = float(sign * float(body.replace("_", "")))
        elif len(body) > 1 and body.startswith("0"):
            value = sign * int(body.replace("_", ""), 8)
        else:
            value = sign * int(body.replace("_", ""), 10)
    except ValueError:
        fail(f"bad number syntax: {text!r}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        fail(f"{text} overflows int")
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        fail(f"illegal number syntax: {text!r}")
    return value


class _Parser:
    def __init__(self, src: str):
        self.src = src
        self.tokens = _Lexer(src).run()
        self.newlines = [i for i, ch in enumerate(src) if ch == "\n"]
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.depth = 0

    # -- tokens
    def next(self) -> _Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next_non_space(self) -> _Token:
        t = self.next()
        while t.typ == "space":
            t = self.next()
        return t

    def peek_non_space(self) -> _Token:
        t = self.next_non_space()
        self.i -= 1
        return t

    def fail(self, msg: str, tok: _Token | None = None) -> NoReturn:
        pos = (tok or self.tokens[max(self.i - 1, 0)]).pos
        raise TemplateError(f"Go template {_where(self.src, pos)}: {msg}")

    def unsupported(self, what: str, tok: _Token) -> NoReturn:
        self.fail(f"{what} is not supported by llamadeck's Go templates", tok)

    def line(self, tok: _Token) -> int:
        return bisect.bisect_right(self.newlines, tok.pos) + 1

    # -- structure
    def parse(self) -> _List:
        nodes: list[Any] = []
        while self.peek().typ != "eof":
            n, tok = self.text_or_action()
            if n in ("end", "else"):
                self.fail(f"unexpected {{{{{n}}}}}", tok)
            nodes.append(n)
        return _List(tuple(nodes))

    def item_list(self) -> tuple[_List, str, _Token]:
        nodes: list[Any] = []
        while self.peek_non_space().typ != "eof":
            n, tok = self.text_or_action()
            if n in ("end", "else"):
                return _List(tuple(nodes)), n, tok
            nodes.append(n)
        self.fail("unexpected EOF")

    def text_or_action(self) -> tuple[Any, _Token]:
        tok = self.next_non_space()
        if tok.typ == "text":
            return _Text(tok.val), tok
        if tok.typ == "left":
            return self.action(), tok
        self.fail(f"unexpected {tok.val!r} in input", tok)

    def action(self) -> Any:
        tok = self.next_non_space()
        typ = tok.typ
        if typ in ("block", "define", "template"):
            self.unsupported(f"{{{{{typ}}}}}", tok)
        if typ in ("break", "continue"):
            if self.range_depth == 0:
                self.fail(f"{{{{{typ}}}}} outside {{{{range}}}}", tok)
            self.expect("right", typ)
            return _Break() if typ == "break" else _Continue()
        if typ == "else":
            if self.peek_non_space().typ == "if":
                return "else"
            self.expect("right", "else")
            return "else"
        if typ == "end":
            self.expect("right", "end")
            return "end"
        if typ in ("if", "range", "with"):
            return self.control(typ, tok)
        self.i -= 1
        return _Action(self.pipeline("command", "right"), self.line(tok))

    def expect(self, typ: str, context: str) -> _Token:
        tok = self.next_non_space()
        if tok.typ != typ:
            self.fail(f"unexpected {tok.val!r} in {context}", tok)
        return tok

    def control(self, kind: str, tok: _Token) -> _Branch:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            self.fail("blocks nested too deep", tok)
        mark = len(self.vars)
        pipe = self.pipeline(kind, "right")
        if kind == "range" and pipe.is_assign:
            self.unsupported("assigning in a range ({{ range $x = ... }})", tok)
        if kind == "range":
            self.range_depth += 1
        body, nxt, end_tok = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_list = None
        if nxt == "else":
            if kind == "if" and self.peek_non_space().typ == "if":
                if_tok = self.next_non_space()
                else_list = _List((self.control("if", if_tok),))
            else:
                else_list, nxt, end_tok = self.item_list()
                if nxt != "end":
                    self.fail("expected end; found {{else}}", end_tok)
        del self.vars[mark:]
        self.depth -= 1
        return _Branch(kind, pipe, body, else_list, self.line(tok))

    def pipeline(self, context: str, end: str) -> _Pipe:
        decls: list[str] = []
        is_assign = False
        while True:  # declarations
            save = self.i
            v = self.peek_non_space()
            if v.typ != "variable":
                break
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.typ in ("assign", "declare"):
                is_assign = nxt.typ == "assign"
                self.next_non_space()
                decls.append(v.val)
                self.vars.append(v.val)
                break
            if nxt.typ == "char" and nxt.val == ",":
                self.next_non_space()
                decls.append(v.val)
                self.vars.append(v.val)
                if context == "range" and len(decls) < 2:
                    if self.peek_non_space().typ in ("variable", "right", "rparen"):
                        continue
                    self.fail("range can only initialize variables", nxt)
                self.fail(f"too many declarations in {context}", nxt)
            self.i = save  # the variable is an operand, not a declaration
            break
        cmds: list[_Command] = []
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                if not cmds:
                    self.fail(f"missing value for {context}", tok)
                for n, c in enumerate(cmds[1:], start=1):
                    if isinstance(c.args[0], _Const | _Dot | _Nil):
                        self.fail(f"non executable command in pipeline stage {n + 1}", tok)
                return _Pipe(tuple(decls), is_assign, tuple(cmds))
            if tok.typ in (
                "bool",
                "charconst",
                "dot",
                "field",
                "identifier",
                "number",
                "nil",
                "rawstring",
                "string",
                "variable",
                "lparen",
            ):
                self.i -= 1
                cmds.append(self.command())
            else:
                self.fail(f"unexpected {tok.val!r} in {context}", tok)

    def command(self) -> _Command:
        args: list[Any] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            tok = self.next()
            if tok.typ == "space":
                continue
            if tok.typ in ("right", "rparen"):
                self.i -= 1
            elif tok.typ != "pipe":
                self.fail(f"unexpected {tok.val!r} in operand", tok)
            break
        if not args:
            self.fail("empty command")
        if isinstance(args[0], _Nil):
            self.fail("nil is not a command")
        return _Command(tuple(args))

    def operand(self) -> Any:
        node = self.term()
        if node is None or self.peek().typ != "field":
            return node
        fields: list[str] = []
        while self.peek().typ == "field":
            fields.append(self.next().val[1:])
        if isinstance(node, _Field):
            return _Field(node.idents + tuple(fields))
        if isinstance(node, _Variable):
            return _Variable(node.idents + tuple(fields))
        if isinstance(node, _Const | _Nil | _Dot):
            self.fail("unexpected . after term")
        return _Chain(node, tuple(fields))

    def term(self) -> Any:
        tok = self.next_non_space()
        typ = tok.typ
        if typ == "identifier":
            if tok.val in _UNSUPPORTED_FUNCS:
                self.unsupported(f"function {tok.val!r}", tok)
            if tok.val not in _BUILTINS and tok.val not in _OLLAMA_FUNCS:
                self.fail(f"function {tok.val!r} not defined", tok)
            return _Ident(tok.val)
        if typ == "dot":
            return _Dot()
        if typ == "nil":
            return _Nil()
        if typ == "variable":
            name, *rest = tok.val.split(".")
            if name not in self.vars:
                self.fail(f"undefined variable {name!r}", tok)
            return _Variable((name, *rest))
        if typ == "field":
            name = tok.val[1:]
            if name in _METHODS:
                self.unsupported(f"calling the method .{name}", tok)
            return _Field((name,))
        if typ == "bool":
            return _Const(tok.val == "true")
        if typ == "number":
            return _Const(_number(tok.val, lambda m: self.fail(m, tok)))
        if typ == "charconst":
            return _Const(ord(_unquote(tok.val, lambda m: self.fail(m, tok))))
        if typ in ("string", "rawstring"):
            return _Const(_unquote(tok.val, lambda m: self.fail(m, tok)))
        if typ == "lparen":
            self.depth += 1
            if self.depth > _MAX_NESTING:
                self.fail("parentheses nested too deep", tok)
            pipe = self.pipeline("parenthesized pipeline", "rparen")
            self.depth -= 1
            return pipe
        self.i -= 1
        return None


def _check(node: Any) -> None:
    """Refuse at parse time what a render would refuse: printf formats llamadeck cannot print."""
    if isinstance(node, _List):
        for n in node.nodes:
            _check(n)
    elif isinstance(node, _Branch):
        _check(node.pipe)
        _check(node.list)
        if node.else_list is not None:
            _check(node.else_list)
    elif isinstance(node, _Action):
        _check(node.pipe)
    elif isinstance(node, _Pipe):
        for c in node.cmds:
            fmt = c.args[1] if len(c.args) > 1 and c.args[0] == _Ident("printf") else None
            if isinstance(fmt, _Const) and isinstance(fmt.value, str):
                _printf_check(fmt.value)
            for a in c.args:
                _check(a)
    elif isinstance(node, _Chain):
        _check(node.node)
    elif isinstance(node, _Field | _Variable):
        for name in node.idents[1:] if isinstance(node, _Variable) else node.idents:
            if name in _METHODS:
                raise TemplateError(f"Go template: calling the method .{name} is not supported")


# ---------------------------------------------------------------------------------------------
# Ollama's view of the tree: Vars (which names a template reads) and the cut after .Response


def _identifiers(node: Any) -> list[str]:
    """template.Identifiers: the names of fields and variables, as Ollama's Vars collects them."""
    if isinstance(node, _List):
        return [name for n in node.nodes for name in _identifiers(n)]
    if isinstance(node, _Action):
        return _identifiers(node.pipe)
    if isinstance(node, _Branch):
        names = _identifiers(node.pipe) + _identifiers(node.list)
        return names + (_identifiers(node.else_list) if node.else_list is not None else [])
    if isinstance(node, _Pipe):
        return [name for c in node.cmds for a in c.args for name in _identifiers(a)]
    if isinstance(node, _Field | _Variable):
        return list(node.idents)
    return []


_RESPONSE = _Action(_Pipe((), False, (_Command((_Field(("Response",)),)),)), 0)


def _cut_after_response(root: _List) -> _List:
    """Ollama's deleteNode: keep the tree up to the first ``.Response`` field, drop what follows."""
    cut = False

    def fn(n: Any) -> bool:
        nonlocal cut
        if isinstance(n, _Field) and "Response" in n.idents:
            cut = True
            return False
        return cut

    def walk(n: Any) -> Any:
        if fn(n):
            return None
        if isinstance(n, _List):
            return _List(tuple(w for w in (walk(c) for c in n.nodes) if w is not None))
        if isinstance(n, _Branch):
            body = walk(n.list)
            else_list = n.else_list
            if else_list is not None:
                if fn(else_list):  # Ollama panics here: its walk returns nil for a ListNode
                    raise TemplateError(
                        f"Go template line {n.line}: .Response inside an {{{{{n.kind}}}}} that has an "
                        "{{else}} cannot be cut for the last turn (Ollama fails on it too)"
                    )
                else_list = walk(else_list)
            return _Branch(n.kind, n.pipe, body, else_list, n.line)
        if isinstance(n, _Action):
            pipe = walk(n.pipe)
            return None if pipe is None else _Action(pipe, n.line)
        if isinstance(n, _Pipe):
            cmds = []
            for c in n.cmds:
                args = tuple(w for w in (walk(a) for a in c.args) if w is not None)
                if not args:
                    return None
                cmds.append(_Command(args))
            return _Pipe(n.decls, n.is_assign, tuple(cmds))
        return n

    result = walk(root)
    assert isinstance(result, _List)
    return result


# ---------------------------------------------------------------------------------------------
# Execution (text/template/exec.go and funcs.go)


class _BreakSignal(Exception):
    pass


class _ContinueSignal(Exception):
    pass


_NO_FINAL = object()  # exec.go's missingVal: no value piped into a command


def _truth(v: Any) -> bool:
    if v is None or v is MISSING or v is NIL_POINTER:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | bytes | list | dict):
        return len(v) > 0
    return True  # structs, non-nil pointers


def _kind(v: Any) -> str:
    """funcs.go's basicKind; "invalid" for nil and for every kind it does not compare by value."""
    if v is None or v is MISSING:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "invalid"


def _is_nil(v: Any) -> bool:
    return v is None or v is MISSING or v is NIL_POINTER or (isinstance(v, GoSlice | GoMap) and v.nil)


def _eq(a: Any, *others: Any) -> bool:
    """funcs.go's eq: basic kinds compare by value, nil only with nil, anything else is an error."""
    if not others:
        raise TemplateError("Go template: missing argument for comparison")
    k1 = _kind(a)
    for b in others:
        k2 = _kind(b)
        if k1 != k2:
            if a is not MISSING and a is not None and b is not MISSING and b is not None:
                raise TemplateError(
                    f"Go template: incompatible types for comparison: {_desc(a)} and {_desc(b)}"
                )
        elif k1 in ("bool", "int", "float", "string"):
            if a == b:
                return True
        elif a is None or a is MISSING or b is None or b is MISSING:
            if _is_nil(a) == _is_nil(b):
                return True
        else:
            raise TemplateError(f"Go template: cannot compare {_desc(a)} with {_desc(b)}")
    return False


def _less(name: str, a: Any, b: Any) -> bool:
    k1, k2 = _kind(a), _kind(b)
    if k1 not in ("int", "float", "string"):
        raise TemplateError(f"Go template: invalid type for comparison in {name}: {_desc(a)}")
    if k1 != k2:
        raise TemplateError(f"Go template: incompatible types for comparison in {name}")
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "lt": lambda x, y: x < y,
        "le": lambda x, y: x <= y,
        "gt": lambda x, y: x > y,
        "ge": lambda x, y: x >= y,
    }
    return ops[name](a, b)


def _desc(v: Any) -> str:
    if v is MISSING or v is None:
        return "nil"
    if isinstance(v, GoStruct | GoSlice | GoMap):
        return v.type_name
    return type(v).__name__


def _int_arg(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TemplateError(f"Go template: cannot {what} with {_desc(v)}")
    return v


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode("utf-8"))
    if isinstance(v, list | tuple | dict | bytes) and not isinstance(v, OrderedProperties):
        return len(v)
    raise TemplateError(f"Go template: len of {_desc(v)}")


def _index(item: Any, *indexes: Any) -> Any:
    if item is None or item is MISSING:
        raise TemplateError("Go template: index of untyped nil")
    for x in indexes:
        if isinstance(item, GoStruct) and item.pointer:
            raise TemplateError(f"Go template: can't index item of type {item.type_name}")
        if isinstance(item, str | bytes | list | tuple) and not isinstance(item, OrderedProperties):
            seq: Any = item.encode("utf-8") if isinstance(item, str) else item
            i = _int_arg(x, "index a slice")
            if not 0 <= i < len(seq):
                raise TemplateError(f"Go template: index out of range: {i}")
            item = seq[i]
        elif isinstance(item, dict) and not isinstance(item, OrderedProperties):
            if not isinstance(x, str):
                raise TemplateError(f"Go template: value has type {_desc(x)}; should be string")
            item = item[x] if x in item else item.zero() if isinstance(item, GoMap) else None
        elif item is None or item is MISSING:
            raise TemplateError("Go template: index of nil pointer")
        else:
            raise TemplateError(f"Go template: can't index item of type {_desc(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None or item is MISSING:
        raise TemplateError("Go template: slice of untyped nil")
    if len(indexes) > 3:
        raise TemplateError(f"Go template: too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise TemplateError("Go template: cannot 3-index slice a string")
        data = item.encode("utf-8")
    elif isinstance(item, list | tuple | bytes):
        data = item  # type: ignore[assignment]
    else:
        raise TemplateError(f"Go template: can't slice item of type {_desc(item)}")
    ix = [_int_arg(x, "slice") for x in indexes]
    for x in ix:
        if not 0 <= x <= len(data):
            raise TemplateError(f"Go template: index out of range: {x}")
    lo = ix[0] if ix else 0
    hi = ix[1] if len(ix) > 1 else len(data)
    if lo > hi:
        raise TemplateError(f"Go template: invalid slice index: {lo} > {hi}")
    if len(ix) == 3 and hi > ix[2]:
        raise TemplateError(f"Go template: invalid slice index: {hi} > {ix[2]}")
    part = data[lo:hi]
    if isinstance(item, str):
        try:
            return bytes(part).decode("utf-8")
        except UnicodeDecodeError:
            raise TemplateError("Go template: slice cuts a character of a string in two") from None
    if isinstance(item, GoSlice):
        return GoSlice(part, type_name=item.type_name, nil=item.nil, stringer=item.stringer)
    if isinstance(item, PropertyType):
        return PropertyType(item[lo:hi])
    return part


def _printable(v: Any) -> Any:
    """text/template's printableValue before fmt: nil as "<no value>", a pointer's struct itself."""
    if v is None or v is MISSING:
        return "<no value>"
    if isinstance(v, GoStruct) and v.pointer:
        return GoStruct(v.type_name, v.fields, v.tags, False, v.stringer, v.methods)
    return v


def _html(args: Sequence[Any]) -> str:
    one = len(args) == 1 and isinstance(args[0], str)
    s = args[0] if one else go_sprint([_printable(a) for a in args])
    return (
        s.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\0", "\ufffd")
    )


def _ts_type(t: str) -> str:
    return {
        "string": "string",
        "number": "number",
        "integer": "number",
        "boolean": "boolean",
        "array": "any[]",
        "object": "Record<string, any>",
        "null": "null",
    }.get(t, "any")


def to_typescript_type(v: Any) -> str:
    """Ollama's ``toTypeScriptType``: an ``api.ToolProperty``'s type in TypeScript, else ``any``."""
    if not (isinstance(v, GoStruct) and v.type_name == "api.ToolProperty"):
        return "any"
    any_of = v.fields["AnyOf"]
    if any_of:
        return " | ".join(to_typescript_type(p) for p in any_of)
    types = v.fields["Type"]
    if not types:
        return "any"
    return " | ".join(_ts_type(t) for t in types)


def _strings_only(name: str, args: Sequence[Any]) -> None:
    for a in args:
        if not isinstance(a, str):
            raise TemplateError(f"Go template: {name} takes strings, not {_desc(a)}")


def _one(name: str, args: Sequence[Any]) -> Any:
    if len(args) != 1:
        raise TemplateError(f"Go template: wrong number of args for {name}: want 1 got {len(args)}")
    return args[0]


def _two(name: str, args: Sequence[Any]) -> tuple[Any, Any]:
    if len(args) != 2:
        raise TemplateError(f"Go template: wrong number of args for {name}: want 2 got {len(args)}")
    return args[0], args[1]


def _at_least_one(name: str, args: Sequence[Any]) -> None:
    if not args:
        raise TemplateError(f"Go template: wrong number of args for {name}: want at least 1 got 0")


def _call(name: str, args: list[Any], ollama_funcs: bool) -> Any:
    if name in _OLLAMA_FUNCS and not ollama_funcs:
        # Ollama renders the last legacy turn from a bare copy of the tree, without its FuncMap
        raise TemplateError(f'Go template: "{name}" is not a defined function')
    if name == "not":
        return not _truth(_one(name, args))
    if name == "eq":
        _at_least_one(name, args)
        return _eq(args[0], *args[1:])
    if name == "ne":
        return not _eq(*_two(name, args))
    if name in ("lt", "le", "gt", "ge"):
        return _less(name, *_two(name, args))
    if name == "len":
        return _len(_one(name, args))
    if name == "index":
        _at_least_one(name, args)
        return _index(args[0], *args[1:])
    if name == "slice":
        _at_least_one(name, args)
        return _slice(args[0], *args[1:])
    if name == "print":
        return go_sprint(args)
    if name == "println":
        return " ".join(go_sprint_value(a) for a in args) + "\n"
    if name == "printf":
        _at_least_one(name, args)
        if not isinstance(args[0], str):
            raise TemplateError(f"Go template: printf's format must be a string, not {_desc(args[0])}")
        return go_sprintf(args[0], args[1:])
    if name == "html":
        return _html(args)
    if name == "json":
        return go_json(_one(name, args))
    if name in ("currentDate", "yesterdayDate"):
        _strings_only(name, args)
        day = date.today() - timedelta(days=1 if name == "yesterdayDate" else 0)
        return day.isoformat()
    if name == "toTypeScriptType":
        return to_typescript_type(_one(name, args))
    raise TemplateError(f"Go template: function {name!r} is not supported")  # pragma: no cover


@dataclass
class _State:
    ollama_funcs: bool  # Ollama's FuncMap is there (not in the cut tree of the last legacy turn)
    missing_zero: bool  # missingkey=zero (not in the cut tree either)
    out: list[str] = field(default_factory=list)
    size: int = 0
    steps: int = 0
    vars: list[tuple[str, Any]] = field(default_factory=list)

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateError(f"the Go template ran past {MAX_STEPS} steps; is it looping over too much?")

    def write(self, s: str) -> None:
        self.size += len(s)
        if self.size > MAX_OUTPUT:
            raise TemplateError(f"the Go template wrote more than {MAX_OUTPUT} characters")
        self.out.append(s)

    def var(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise TemplateError(f"Go template: undefined variable {name}")  # pragma: no cover

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise TemplateError(f"Go template: undefined variable {name}")  # pragma: no cover

    # -- walking
    def walk(self, dot: Any, node: Any) -> None:
        self.step()
        if isinstance(node, _Text):
            self.write(node.text)
        elif isinstance(node, _List):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, _Action):
            value = self.pipeline(dot, node.pipe)
            if not node.pipe.decls:
                self.write(_print_value(value))
        elif isinstance(node, _Branch):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, _Break):
            raise _BreakSignal
        elif isinstance(node, _Continue):
            raise _ContinueSignal
        else:  # pragma: no cover
            raise TemplateError(f"Go template: unknown node {node!r}")

    def walk_if_or_with(self, dot: Any, node: _Branch) -> None:
        mark = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        if _truth(value):
            self.walk(value if node.kind == "with" else dot, node.list)
        elif node.else_list is not None:
            self.walk(dot, node.else_list)
        del self.vars[mark:]

    def walk_range(self, dot: Any, node: _Branch) -> None:
        outer = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        if isinstance(value, GoStruct) and value.pointer:
            raise TemplateError(f"Go template line {node.line}: range can't iterate over {value.type_name}")
        items: list[tuple[Any, Any]]
        if isinstance(value, OrderedProperties):
            raise TemplateError(
                f"Go template line {node.line}: range can't iterate over a property's properties"
            )
        if isinstance(value, list | tuple | bytes):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif value is MISSING or value is None:
            items = []
        else:
            raise TemplateError(
                f"Go template line {node.line}: range can't iterate over {_print_value(value)}"
            )
        mark = len(self.vars)
        decls = len(node.pipe.decls)
        try:
            for key, elem in items:
                self.step()
                if decls > 0:
                    self.vars[mark - 1] = (self.vars[mark - 1][0], elem)
                if decls > 1:
                    self.vars[mark - 2] = (self.vars[mark - 2][0], key)
                try:
                    self.walk(elem, node.list)
                except _ContinueSignal:
                    pass
                finally:
                    del self.vars[mark:]
        except _BreakSignal:
            pass
        else:
            if not items and node.else_list is not None:
                self.walk(dot, node.else_list)
        del self.vars[outer:]

    # -- evaluation
    def pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
            if value is None:  # an interface{} holding nil: exec.go digs into it
                value = MISSING
        for name in pipe.decls:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        self.step()
        first = cmd.args[0]
        has_args = len(cmd.args) > 1 or final is not _NO_FINAL
        if isinstance(first, _Ident):
            args = [self.arg(dot, a) for a in cmd.args[1:]] if first.name not in ("and", "or") else None
            if args is None:
                return self.and_or(dot, first.name, cmd.args[1:], final)
            if final is not _NO_FINAL:
                args.append(final)
            return _call(first.name, args, self.ollama_funcs)
        if has_args:
            raise TemplateError("Go template: can't give argument to non-function")
        if isinstance(first, _Field):
            return self.field_chain(dot, first.idents)
        if isinstance(first, _Variable):
            return self.variable(first)
        if isinstance(first, _Chain):
            return self.chain(dot, first)
        if isinstance(first, _Pipe):
            return self.pipeline(dot, first)
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Const):
            return first.value
        raise TemplateError("Go template: nil is not a command")  # pragma: no cover

    def and_or(self, dot: Any, name: str, args: Sequence[Any], final: Any) -> Any:
        if not args and final is _NO_FINAL:
            raise TemplateError(f"Go template: wrong number of args for {name}: want at least 1 got 0")
        value: Any = MISSING
        for a in args:
            value = self.arg(dot, a)
            if _truth(value) == (name == "or"):
                return value
        if final is not _NO_FINAL:
            value = final
        return value

    def arg(self, dot: Any, node: Any) -> Any:
        self.step()
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Nil):
            return None
        if isinstance(node, _Field):
            return self.field_chain(dot, node.idents)
        if isinstance(node, _Variable):
            return self.variable(node)
        if isinstance(node, _Pipe):
            value = self.pipeline(dot, node)
            mark = len(self.vars) - len(node.decls)
            del self.vars[mark:]  # a parenthesised declaration lives on in Go; see _check_decls
            return value
        if isinstance(node, _Ident):
            return self.command(dot, _Command((node,)), _NO_FINAL)
        if isinstance(node, _Chain):
            return self.chain(dot, node)
        if isinstance(node, _Const):
            return node.value
        raise TemplateError(f"Go template: unexpected argument {node!r}")  # pragma: no cover

    def variable(self, node: _Variable) -> Any:
        value = self.var(node.idents[0])
        if len(node.idents) == 1:
            return value
        return self.field_chain(value, node.idents[1:])

    def chain(self, dot: Any, node: _Chain) -> Any:
        base = self.arg(dot, node.node)
        if base is None:
            base = MISSING
        return self.field_chain(base, node.fields)

    def field_chain(self, receiver: Any, names: Sequence[str]) -> Any:
        for name in names:
            receiver = self.field(receiver, name)
        return receiver

    def field(self, receiver: Any, name: str) -> Any:
        if receiver is MISSING:
            return MISSING
        if receiver is None:
            raise TemplateError(f"Go template: nil pointer evaluating interface {{}}.{name}")
        if receiver is NIL_POINTER:
            raise TemplateError(f"Go template: nil pointer evaluating .{name}")
        if isinstance(receiver, GoStruct):
            if name in receiver.methods or (receiver.stringer and name == "String"):
                raise TemplateError(f"Go template: calling the method .{name} is not supported")
            if name in receiver.fields:
                return receiver.fields[name]
            raise TemplateError(f"Go template: can't evaluate field {name} in type {receiver.type_name}")
        if isinstance(receiver, dict) and not isinstance(receiver, OrderedProperties):
            if isinstance(receiver, GoMap) and receiver.stringer and name == "String":
                raise TemplateError(f"Go template: calling the method .{name} is not supported")
            if name in receiver:
                return receiver[name]
            if isinstance(receiver, GoMap):
                return receiver.zero()
            return None if self.missing_zero else MISSING
        raise TemplateError(f"Go template: can't evaluate field {name} in type {_desc(receiver)}")


def _check_decls(node: Any) -> None:
    """Refuse a declaration inside parentheses: Go keeps it alive past the parenthesis."""
    if isinstance(node, _List):
        for n in node.nodes:
            _check_decls(n)
    elif isinstance(node, _Branch):
        for part in (node.pipe, node.list, node.else_list):
            if part is not None:
                _check_decls(part)
    elif isinstance(node, _Action):
        _check_decls(node.pipe)
    elif isinstance(node, _Pipe):
        for c in node.cmds:
            for a in c.args:
                if isinstance(a, _Pipe):
                    if a.decls:
                        raise TemplateError(
                            "Go template: a variable declared inside parentheses is not supported"
                        )
                    _check_decls(a)
                elif isinstance(a, _Chain) and isinstance(a.node, _Pipe):
                    _check_decls(_Pipe((), False, (_Command((a.node,)),)))


# ---------------------------------------------------------------------------------------------
# The values Ollama passes (api.Message, api.Tool -> template.go's template* types)


def _go_any(v: Any, where: str) -> Any:
    """A JSON value as Go decodes it into ``any``: numbers float64, objects map[string]any."""
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, Mapping):
        return {str(k): _go_any(x, where) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_go_any(x, where) for x in v]
    raise TemplateError(f"{where} holds a {type(v).__name__}, which is not JSON")


def _get_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    v = obj.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise TemplateError(f"{where}.{key} must be a string")
    return v


def _get_strs(obj: Mapping[str, Any], key: str, where: str) -> GoSlice:
    v = obj.get(key)
    if v is None:
        return GoSlice(type_name="[]string", nil=True)
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
        raise TemplateError(f"{where}.{key} must be a list of strings")
    return GoSlice(v, type_name="[]string")


def _get_obj(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    v = obj.get(key)
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise TemplateError(f"{where}.{key} must be an object")
    return v


_PROPERTY_TAGS = {
    "AnyOf": ("anyOf", True),
    "Type": ("type", True),
    "Items": ("items", True),
    "Description": ("description", True),
    "Enum": ("enum", True),
    "Properties": ("properties", True),
    "Required": ("required", True),
}


def _zero_property() -> GoStruct:
    return _property({}, "property")


def _property(raw: Any, where: str) -> GoStruct:
    """``api.ToolProperty`` from its JSON shape."""
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where} must be an object")
    any_of = raw.get("anyOf")
    if any_of is not None and not isinstance(any_of, list | tuple):
        raise TemplateError(f"{where}.anyOf must be a list")
    typ = raw.get("type")
    if typ is None:
        ptype = PropertyType(nil=True)
    elif isinstance(typ, str):
        ptype = PropertyType([typ])
    elif isinstance(typ, list | tuple) and all(isinstance(t, str) for t in typ):
        ptype = PropertyType(typ)
    else:
        raise TemplateError(f"{where}.type must be a string or a list of strings")
    enum = raw.get("enum")
    if enum is not None and not isinstance(enum, list | tuple):
        raise TemplateError(f"{where}.enum must be a list")
    nested = raw.get("properties")
    if nested is not None and not isinstance(nested, Mapping):
        raise TemplateError(f"{where}.properties must be an object")
    return GoStruct(
        "api.ToolProperty",
        {
            "AnyOf": GoSlice(
                [_property(p, f"{where}.anyOf[{i}]") for i, p in enumerate(any_of or ())],
                type_name="[]api.ToolProperty",
                nil=any_of is None,
            ),
            "Type": ptype,
            "Items": _go_any(raw.get("items"), f"{where}.items"),
            "Description": _get_str(raw, "description", where),
            "Enum": GoSlice(
                _go_any(list(enum or ()), f"{where}.enum"), type_name="[]interface {}", nil=enum is None
            ),
            "Properties": NIL_POINTER
            if nested is None
            else OrderedProperties(
                {str(k): _property(p, f"{where}.properties.{k}") for k, p in nested.items()}
            ),
            "Required": _get_strs(raw, "required", where),
        },
        _PROPERTY_TAGS,
        methods=frozenset({"ToTypeScriptType"}),
    )


def template_tools(tools: Sequence[Mapping[str, Any]] | None) -> GoSlice:
    """``convertToolsForTemplate``: OpenAI-style function schemas as Ollama's ``templateTools``."""
    if tools is None:
        return GoSlice(type_name="template.templateTools", nil=True, stringer=True)
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise TemplateError(f"{where} must be an object")
        fn = _get_obj(tool, "function", where)
        params = _get_obj(fn, "parameters", f"{where}.function")
        pwhere = f"{where}.function.parameters"
        props = params.get("properties")
        if props is not None and not isinstance(props, Mapping):
            raise TemplateError(f"{pwhere}.properties must be an object")
        parameters = GoStruct(
            "template.templateToolFunctionParameters",
            {
                "Type": _get_str(params, "type", pwhere),
                "Defs": _go_any(params.get("$defs"), pwhere),
                "Items": _go_any(params.get("items"), pwhere),
                "Required": _get_strs(params, "required", pwhere),
                "Properties": GoMap(
                    None
                    if props is None
                    else {str(k): _property(p, f"{pwhere}.properties.{k}") for k, p in props.items()},
                    type_name="template.templateProperties",
                    zero=_zero_property,
                    stringer=True,
                ),
            },
            {
                "Type": ("type", False),
                "Defs": ("$defs", True),
                "Items": ("items", True),
                "Required": ("required", True),
                "Properties": ("properties", False),
            },
        )
        function = GoStruct(
            "template.templateToolFunction",
            {
                "Name": _get_str(fn, "name", f"{where}.function"),
                "Description": _get_str(fn, "description", f"{where}.function"),
                "Parameters": parameters,
            },
            {
                "Name": ("name", False),
                "Description": ("description", False),
                "Parameters": ("parameters", False),
            },
        )
        out.append(
            GoStruct(
                "template.templateTool",
                {
                    "Type": _get_str(tool, "type", where),
                    "Items": _go_any(tool.get("items"), where),
                    "Function": function,
                },
                {"Type": ("type", False), "Items": ("items", True), "Function": ("function", False)},
                stringer=True,
            )
        )
    return GoSlice(out, type_name="template.templateTools", stringer=True)


def _arguments(raw: Any, where: str) -> GoMap:
    if isinstance(raw, str):  # OpenAI clients send the arguments as a JSON string
        try:
            raw = json.loads(raw)
        except ValueError:
            raise TemplateError(f"{where} must be a JSON object") from None
    if raw is not None and not isinstance(raw, Mapping):
        raise TemplateError(f"{where} must be an object")
    items = None if raw is None else {str(k): _go_any(v, where) for k, v in raw.items()}
    return GoMap(items, type_name="template.templateArgs", stringer=True)


def _tool_call(raw: Mapping[str, Any], where: str) -> GoStruct:
    fn = _get_obj(raw, "function", where)
    index = fn.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int):
        raise TemplateError(f"{where}.function.index must be an integer")
    return GoStruct(
        "template.templateToolCall",
        {
            "ID": _get_str(raw, "id", where),
            "Function": GoStruct(
                "template.templateToolCallFunction",
                {
                    "Index": index,
                    "Name": _get_str(fn, "name", f"{where}.function"),
                    "Arguments": _arguments(fn.get("arguments"), f"{where}.function.arguments"),
                },
            ),
        },
    )


def template_message(m: Message, where: str) -> GoStruct:
    """``convertMessagesForTemplate`` for one (collated) message: a ``*templateMessage``."""
    return GoStruct(
        "*template.templateMessage",
        {
            "Role": m.role,
            "Content": m.content,
            "Thinking": "",
            "Images": GoSlice(m.images, type_name="[]api.ImageData", nil=True),
            "ToolCalls": GoSlice(
                [_tool_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(m.tool_calls)],
                type_name="[]template.templateToolCall",
                nil=True,
            ),
            "ToolName": m.tool_name or "",
            "ToolCallID": "",
        },
        pointer=True,
    )


def collate(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    """Ollama's collate: every system message joined, consecutive turns of one role merged.

    Tool results stay apart; a merged turn keeps its first message's images,
    tool calls and tool name, as Ollama's does.
    """
    system: list[str] = []
    collated: list[Message] = []
    for m in messages:
        if m.role == "system":
            system.append(m.content)
        if collated and collated[-1].role == m.role and m.role != "tool":
            collated[-1] = replace(collated[-1], content=collated[-1].content + "\n\n" + m.content)
        else:
            collated.append(m)
    return "\n\n".join(system), collated


# ---------------------------------------------------------------------------------------------
# The template


@dataclass(frozen=True)
class GoTemplate:
    """An Ollama Go template, parsed once; :meth:`render` runs Ollama's ``Template.Execute``.

    Constructing one parses ``source`` and raises :class:`TemplateError` for a
    template Go would not parse or that uses a construct llamadeck does not
    render; :meth:`execute` is plain ``text/template`` on any data (with
    ``missingkey=zero`` and Ollama's functions), for tests and tools::

        GoTemplate("{{ .Prompt }}").execute({"Prompt": "Hi"})   # 'Hi'
    """

    source: str
    kind: str = "go"
    tree: _List = field(init=False, repr=False, compare=False)
    vars: frozenset[str] = field(init=False, repr=False, compare=False)
    """Ollama's ``Template.Vars``: the lower-cased names of the fields and variables it reads."""

    def __post_init__(self) -> None:
        tree = _Parser(self.source).parse()  # as written: Ollama normalises CRLF only in its own library
        _check(tree)
        _check_decls(tree)
        object.__setattr__(self, "tree", tree)
        object.__setattr__(self, "vars", frozenset(name.lower() for name in _identifiers(tree)))

    @classmethod
    def parse(cls, source: str) -> GoTemplate:
        """The template for ``source``; the same as ``GoTemplate(source)``."""
        return cls(source)

    @property
    def reads_messages(self) -> bool:
        """Whether Ollama hands this template the whole conversation (it reads ``.Messages``)."""
        return "messages" in self.vars

    def execute(self, data: Any) -> str:
        """Plain ``text/template`` Execute of the template on ``data``; ``$`` and ``.`` are ``data``."""
        return self._run(self.tree, data, ollama_funcs=True, missing_zero=True)

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt Ollama's ``Template.Execute`` builds for ``messages`` and ``tools``.

        Ollama's templates always end with the assistant's header, so
        ``add_generation_prompt`` changes nothing: a trailing assistant message
        is continued (``.Response`` cut) in a legacy template and printed whole
        in a ``.Messages`` one, as Ollama does.
        """
        system, collated = collate(messages)
        tree = self.tree
        if not self.reads_messages and "response" not in self.vars:
            tree = _List((*tree.nodes, _RESPONSE))  # Ollama's Parse appends {{ .Response }}
        if self.reads_messages:
            data = {
                "System": system,
                "Messages": GoSlice(
                    [template_message(m, f"messages[{i}]") for i, m in enumerate(collated)],
                    type_name="[]*template.templateMessage",
                    nil=not collated,
                ),
                "Tools": template_tools(tools),
                "Response": "",
                "Think": False,
                "ThinkLevel": "",
                "IsThinkSet": False,
            }
            return self._run(tree, data, ollama_funcs=True, missing_zero=True)
        return self._legacy(tree, collated)

    def _legacy(self, tree: _List, messages: Sequence[Message]) -> str:
        out: list[str] = []
        turn = {"System": "", "Prompt": "", "Response": ""}

        def data() -> dict[str, Any]:
            return {**turn, "Think": False, "ThinkLevel": "", "IsThinkSet": False}

        def execute() -> None:
            out.append(self._run(tree, data(), ollama_funcs=True, missing_zero=True))
            turn.update(System="", Prompt="", Response="")

        for m in messages:
            if m.role == "system":
                if turn["Prompt"] or turn["Response"]:
                    execute()
                turn["System"] = m.content
            elif m.role == "user":
                if turn["Response"]:
                    execute()
                turn["Prompt"] = m.content
            elif m.role == "assistant":
                turn["Response"] = m.content
        out.append(self._run(_cut_after_response(tree), data(), ollama_funcs=False, missing_zero=False))
        return "".join(out)

    @staticmethod
    def _run(tree: _List, data: Any, *, ollama_funcs: bool, missing_zero: bool) -> str:
        state = _State(ollama_funcs, missing_zero)
        state.vars.append(("$", data))
        try:
            state.walk(data, tree)
        except RecursionError:
            raise TemplateError("the Go template nests too deep to render") from None
        return "".join(state.out)
