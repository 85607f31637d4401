"""The JSON Schema vocabulary as llamadeck reads it: which keywords are enforced, refused or only annotate.

Kept apart from the grammar writer so that the rules about keywords (and the
small readers of their values) are in one place for the writer
(``schema``), its container rules (``containers``) and the ``oneOf`` overlap
check (``overlap``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.errors import UnsupportedSchema

ANNOTATIONS = frozenset(
    {
        "title", "description", "default", "examples", "$schema", "$comment", "deprecated", "readOnly",
        "writeOnly", "discriminator", "contentEncoding", "contentMediaType", "contentSchema", "$anchor",
        "$defs", "definitions", "$vocabulary", "example", "externalDocs", "xml",
    }
)  # fmt: skip
REFUSED = {
    "not": "not",
    "if": "if/then/else",
    "then": "if/then/else",
    "else": "if/then/else",
    "pattern": "pattern (regular expressions)",
    "patternProperties": "patternProperties",
    "propertyNames": "propertyNames",
    "dependentSchemas": "dependentSchemas",
    "dependentRequired": "dependentRequired",
    "dependencies": "dependencies",
    "unevaluatedProperties": "unevaluatedProperties",
    "unevaluatedItems": "unevaluatedItems",
    "contains": "contains",
    "minContains": "minContains",
    "maxContains": "maxContains",
    "additionalItems": "additionalItems (use prefixItems and items)",
    "$dynamicRef": "$dynamicRef",
    "$recursiveRef": "$recursiveRef",
    "$dynamicAnchor": "$dynamicAnchor",
    "$recursiveAnchor": "$recursiveAnchor",
}
STRING_KEYS = frozenset({"minLength", "maxLength", "format"})
NUMBER_KEYS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
OBJECT_KEYS = frozenset({"properties", "required", "additionalProperties", "minProperties", "maxProperties"})
ARRAY_KEYS = frozenset({"items", "prefixItems", "minItems", "maxItems", "uniqueItems"})
COMBINERS = frozenset({"anyOf", "oneOf", "allOf", "$ref"})
VALIDATION = STRING_KEYS | NUMBER_KEYS | OBJECT_KEYS | ARRAY_KEYS | COMBINERS | {"type", "enum", "const"}
TYPES = ("string", "number", "integer", "boolean", "null", "object", "array")
_KINDS_OF = {"string": STRING_KEYS, "number": NUMBER_KEYS, "object": OBJECT_KEYS, "array": ARRAY_KEYS}


def json_text(value: Any) -> str:
    """A JSON value as the grammar has the model write it: compact, UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def kind_of(value: Any) -> str:
    """A JSON value's type as JSON Schema names it (1.0 is an integer, as validators say)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def schema_types(schema: Mapping[str, Any], where: str) -> list[str] | None:
    """The types the schema allows (None: any value), inferred from its keywords without ``type``."""
    declared = schema.get("type")
    if declared is None:
        found = [t for t, keys in _KINDS_OF.items() if any(k in schema for k in keys)]
        if not found:
            return None
        types = found
    else:
        types = [declared] if isinstance(declared, str) else declared
        if not isinstance(types, list) or not types or not all(t in TYPES for t in types):
            raise UnsupportedSchema(f"type at {where} must be one of {', '.join(TYPES)} or a list of them")
    if schema.get("nullable") is True and "null" not in types:
        types = [*types, "null"]
    return list(dict.fromkeys(types))


def matches_type(kind: str, types: set[str]) -> bool:
    return kind in types or (kind == "integer" and "number" in types)


def keyword_count(schema: Mapping[str, Any], key: str, where: str) -> int | None:
    value = schema.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        raise UnsupportedSchema(f"{key} at {where} must be a whole number >= 0")
    return int(value)


def keyword_decimal(value: Any, key: str, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnsupportedSchema(f"{key} at {where} must be a number")
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))
