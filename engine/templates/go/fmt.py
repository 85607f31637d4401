"""Printing Go values as Go's ``fmt`` and ``encoding/json`` do.

``{{ . }}``, ``print``, ``printf`` and Ollama's ``json`` write what Go writes:
a map as ``map[a:1 b:2]``, a float64 as ``1e+06``, JSON compact with ``<``,
``>`` and ``&`` escaped (``encoding/json`` of Go 1.22+, as Ollama ships).
Only the printf verbs Ollama's templates use (``%s %d %v %q``) are supported.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from engine.errors import TemplateError
from engine.templates.go.values import (
    MISSING,
    NIL_POINTER,
    GoMap,
    GoSlice,
    GoStruct,
    OrderedProperties,
    PropertyType,
    describe,
)


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


def print_value(v: Any) -> str:
    """What ``{{ pipeline }}`` writes: text/template's printableValue, then fmt."""
    return go_sprint_value(printable(v))


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


def printf_check(fmt: str) -> None:
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
    raise TemplateError(f"printf cannot print {describe(v)} with that verb")


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
    raise TemplateError(f"printf %{verb} cannot print {describe(v)}")


def go_sprintf(fmt: str, args: Sequence[Any]) -> str:
    """``fmt.Sprintf`` for the verbs Ollama's templates use: ``%s %d %v %q %%``, misuse as Go writes it."""
    printf_check(fmt)
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


def printable(v: Any) -> Any:
    """text/template's printableValue before fmt: nil as "<no value>", a pointer's struct itself."""
    if v is None or v is MISSING:
        return "<no value>"
    if isinstance(v, GoStruct) and v.pointer:
        return GoStruct(v.type_name, v.fields, v.tags, False, v.stringer, v.methods)
    return v
