"""The functions a template calls: text/template's built-ins (funcs.go) and Ollama's FuncMap.

:func:`call` runs one by name on evaluated arguments; comparisons, ``index``,
``slice`` and ``len`` follow Go's rules and errors. The name sets tell the
parser which identifiers are functions at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any

from engine.errors import TemplateError
from engine.templates.go.fmt import go_json, go_sprint, go_sprint_value, go_sprintf, printable
from engine.templates.go.values import (
    MISSING,
    NIL_POINTER,
    GoMap,
    GoSlice,
    GoStruct,
    OrderedProperties,
    PropertyType,
    describe,
    truth,
)

BUILTINS = frozenset(
    {"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "slice"}
    | {"print", "printf", "println", "html"}
)
OLLAMA_FUNCS = frozenset({"json", "currentDate", "yesterdayDate", "toTypeScriptType"})
UNSUPPORTED_FUNCS = frozenset({"call", "js", "urlquery"})


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
                    f"Go template: incompatible types for comparison: {describe(a)} and {describe(b)}"
                )
        elif k1 in ("bool", "int", "float", "string"):
            if a == b:
                return True
        elif a is None or a is MISSING or b is None or b is MISSING:
            if _is_nil(a) == _is_nil(b):
                return True
        else:
            raise TemplateError(f"Go template: cannot compare {describe(a)} with {describe(b)}")
    return False


def _less(name: str, a: Any, b: Any) -> bool:
    k1, k2 = _kind(a), _kind(b)
    if k1 not in ("int", "float", "string"):
        raise TemplateError(f"Go template: invalid type for comparison in {name}: {describe(a)}")
    if k1 != k2:
        raise TemplateError(f"Go template: incompatible types for comparison in {name}")
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "lt": lambda x, y: x < y,
        "le": lambda x, y: x <= y,
        "gt": lambda x, y: x > y,
        "ge": lambda x, y: x >= y,
    }
    return ops[name](a, b)


def _int_arg(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TemplateError(f"Go template: cannot {what} with {describe(v)}")
    return v


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v) if v.isascii() else len(v.encode("utf-8"))  # ASCII: one byte a character
    if isinstance(v, list | tuple | dict | bytes) and not isinstance(v, OrderedProperties):
        return len(v)
    raise TemplateError(f"Go template: len of {describe(v)}")


def _index(item: Any, *indexes: Any) -> Any:
    if item is None or item is MISSING:
        raise TemplateError("Go template: index of untyped nil")
    for x in indexes:
        if isinstance(item, GoStruct) and item.pointer:
            raise TemplateError(f"Go template: can't index item of type {item.type_name}")
        if isinstance(item, str) and item.isascii():  # its bytes are its characters: not encoded
            i = _int_arg(x, "index a slice")
            if not 0 <= i < len(item):
                raise TemplateError(f"Go template: index out of range: {i}")
            item = ord(item[i])
        elif isinstance(item, str | bytes | list | tuple) and not isinstance(item, OrderedProperties):
            seq: Any = item.encode("utf-8") if isinstance(item, str) else item
            i = _int_arg(x, "index a slice")
            if not 0 <= i < len(seq):
                raise TemplateError(f"Go template: index out of range: {i}")
            item = seq[i]
        elif isinstance(item, dict) and not isinstance(item, OrderedProperties):
            if not isinstance(x, str):
                raise TemplateError(f"Go template: value has type {describe(x)}; should be string")
            item = item[x] if x in item else item.zero() if isinstance(item, GoMap) else None
        elif item is None or item is MISSING:
            raise TemplateError("Go template: index of nil pointer")
        else:
            raise TemplateError(f"Go template: can't index item of type {describe(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None or item is MISSING:
        raise TemplateError("Go template: slice of untyped nil")
    if len(indexes) > 3:
        raise TemplateError(f"Go template: too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise TemplateError("Go template: cannot 3-index slice a string")
        data = item if item.isascii() else item.encode("utf-8")  # ASCII: its characters are its bytes
    elif isinstance(item, list | tuple | bytes):
        data = item  # type: ignore[assignment]
    else:
        raise TemplateError(f"Go template: can't slice item of type {describe(item)}")
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
    if isinstance(part, str):
        return part
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


def _html(args: Sequence[Any]) -> str:
    one = len(args) == 1 and isinstance(args[0], str)
    s = args[0] if one else go_sprint([printable(a) for a in args])
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
            raise TemplateError(f"Go template: {name} takes strings, not {describe(a)}")


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


def call(name: str, args: list[Any], ollama_funcs: bool) -> Any:
    if name in OLLAMA_FUNCS and not ollama_funcs:
        # Ollama renders the last legacy turn from a bare copy of the tree, without its FuncMap
        raise TemplateError(f'Go template: "{name}" is not a defined function')
    if name == "not":
        return not truth(_one(name, args))
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
            raise TemplateError(f"Go template: printf's format must be a string, not {describe(args[0])}")
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
