"""Whether two schemas can match one value: ``oneOf`` needs its alternatives disjoint to be enforced.

A value valid against two alternatives of a ``oneOf`` is invalid, and a
grammar cannot count matches, so ``oneOf`` is enforced only where its
alternatives cannot overlap. The check looks at what kinds of value each
alternative lets through (a superset), their literals, and a discriminator
property; it reads schemas only, so it lives apart from the grammar writer.
``value_kinds`` also tells a tool's parameters schema is an object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import UnsupportedSchema
from engine.structured.keywords import json_text, kind_of, schema_types

Resolve = Callable[[Any, str], Any]  # a local $ref and where it stands -> the subschema it points at
_ANY = frozenset({"string", "number", "boolean", "null", "object", "array"})


def check_disjoint(parts: list[Any], where: str, resolve: Resolve) -> None:
    """Refuse a ``oneOf`` two of whose alternatives may both match one value."""
    for i, a in enumerate(parts):
        for j in range(i + 1, len(parts)):
            if not _disjoint(a, parts[j], resolve):
                raise UnsupportedSchema(
                    f"oneOf at {where}: alternatives {i} and {j} may both match one value, "
                    "which oneOf forbids; use anyOf, or tell them apart with a const property"
                )


def value_kinds(schema: Any, resolve: Resolve, seen: int = 0) -> set[str]:
    """The types of the values a schema lets through (a superset; integer counts as number)."""
    schema = _effective(schema, resolve)
    if not isinstance(schema, Mapping) or seen > 32:
        return set(_ANY)
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema.get("enum") or []
        return {"number" if kind_of(v) == "integer" else kind_of(v) for v in values}
    for combiner in ("anyOf", "oneOf"):
        if isinstance(schema.get(combiner), list):
            return set().union(*(value_kinds(p, resolve, seen + 1) for p in schema[combiner]))
    types = schema_types(schema, "oneOf")
    if types is None:
        return set(_ANY)
    return {"number" if t == "integer" else t for t in types}


def _effective(schema: Any, resolve: Resolve, seen: int = 0) -> Any:
    while isinstance(schema, Mapping) and seen < 64:
        seen += 1
        if "$ref" in schema:
            schema = resolve(schema["$ref"], "oneOf")
        elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        else:
            break
    return schema


def _literal_set(schema: Any, resolve: Resolve) -> set[str] | None:
    schema = _effective(schema, resolve)
    if isinstance(schema, Mapping):
        if "const" in schema:
            return {json_text(schema["const"])}
        if isinstance(schema.get("enum"), list):
            return {json_text(v) for v in schema["enum"]}
    return None


def _disjoint(a: Any, b: Any, resolve: Resolve) -> bool:
    if not value_kinds(a, resolve) & value_kinds(b, resolve):
        return True
    literals_a, literals_b = _literal_set(a, resolve), _literal_set(b, resolve)
    if literals_a is not None and literals_b is not None:
        return not literals_a & literals_b
    a, b = _effective(a, resolve), _effective(b, resolve)
    if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
        return False
    # objects told apart by a property both require, with values that cannot be the same (a discriminator)
    properties_a, properties_b = a.get("properties") or {}, b.get("properties") or {}
    shared = set(a.get("required") or []) & set(b.get("required") or [])
    for name in shared:
        if name in properties_a and name in properties_b:
            values_a = _literal_set(properties_a[name], resolve)
            values_b = _literal_set(properties_b[name], resolve)
            if values_a is not None and values_b is not None and not values_a & values_b:
                return True
    return False


__all__ = ["Resolve", "check_disjoint", "value_kinds"]
