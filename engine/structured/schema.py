"""A JSON schema turned into a GBNF grammar that only lets a model write JSON valid against it.

Why not llama-cpp-python's ``json_schema_to_gbnf``: it ignores ``minimum``,
``maximum`` and unknown formats (a reply that breaks the schema), reports
errors with ``assert`` and nests repetitions until Python's recursion limit.
Here every validation keyword is either enforced by the grammar or refused
with ``UnsupportedSchema`` naming it and where it is; keywords that only
annotate (``title``, ``description``, ``default``...) and names JSON Schema
does not define are ignored, as validators ignore them.

The grammar may be stricter than the schema, never looser: properties come
in the schema's order and only the declared ones are written; numbers carry
at most 16 digits on an unbounded side; whitespace between tokens is at most
a new line and 20 blanks. What is enforced: ``type`` (one or a list),
``enum``, ``const``, ``properties``/``required``/``additionalProperties``,
``minProperties``/``maxProperties`` where the declared properties decide
them, ``items``/``prefixItems``/``minItems``/``maxItems``,
``minLength``/``maxLength``, the formats of ``formats.py``, ``minimum``,
``maximum`` and both exclusive forms (draft 4's booleans too), ``multipleOf``
1 on integers, ``$ref`` to ``#...`` (``$defs``, ``definitions``, recursion),
``anyOf``, ``oneOf`` whose alternatives cannot overlap, ``allOf`` of one
schema, ``nullable``. Refused: ``pattern``, ``not``, ``if``/``then``/``else``,
``patternProperties``, ``uniqueItems``, ``contains``, remote ``$ref`` and the rest.

    grammar = schema_grammar({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}})
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from engine.errors import UnsupportedSchema
from engine.structured.formats import FORMATS, GENERIC_RULES
from engine.structured.gbnf import MAX_REPEAT, Rules, alt, choice, group, literal, repeat, seq
from engine.structured.numbers import (
    UNBOUNDED_INTEGER,
    UNBOUNDED_NUMBER,
    Bound,
    integer,
    integer_bounds,
    number,
)

MAX_DEPTH = 48  # schemas nested inline (a $ref starts again)
MAX_NODES = 10_000  # subschemas visited

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


def _matches(kind: str, types: set[str]) -> bool:
    return kind in types or (kind == "integer" and "number" in types)


def _count(schema: Mapping[str, Any], key: str, where: str) -> int | None:
    value = schema.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        raise UnsupportedSchema(f"{key} at {where} must be a whole number >= 0")
    return int(value)


def _decimal(value: Any, key: str, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnsupportedSchema(f"{key} at {where} must be a number")
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


class SchemaGrammar:
    """One conversion: the rules written so far and the ``$ref`` targets already named."""

    def __init__(self, root: Any, rules: Rules | None = None) -> None:
        self.root = root
        self.rules = rules if rules is not None else new_rules()  # shared by the tools of one request
        self._refs: dict[str, str] = {}
        self._nodes = 0

    # entry ---------------------------------------------------------------------------------------

    def grammar(self) -> str:
        return self.rules.text(self.expression())

    def expression(self) -> str:
        """The root schema's expression (its rules written into ``rules``)."""
        if not isinstance(self.root, Mapping | bool):
            raise UnsupportedSchema("a JSON schema is an object (or true)")
        return self.visit(self.root, "#", 0, frozenset())

    def visit(self, schema: Any, where: str, depth: int, aliases: frozenset[str]) -> str:
        """The expression for values valid against ``schema``; ``aliases`` are the $refs followed
        since the last object or array began (a cycle among them would never write a character)."""
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise UnsupportedSchema(f"the schema has more than {MAX_NODES} subschemas")
        if depth > MAX_DEPTH:
            raise UnsupportedSchema(f"the schema nests deeper than {MAX_DEPTH} levels at {where}")
        if schema is True:
            return self.any_value()
        if schema is False:
            raise UnsupportedSchema(f"the schema at {where} is false: no value is valid")
        if not isinstance(schema, Mapping):
            raise UnsupportedSchema(f"the schema at {where} must be an object or a boolean")
        for key in schema:
            if key in REFUSED:
                raise UnsupportedSchema(f"{REFUSED[key]} at {where} cannot be enforced by llamadeck")
        if ("$id" in schema or "id" in schema and isinstance(schema.get("id"), str)) and where != "#":
            raise UnsupportedSchema(f"$id at {where}: only the root schema may have one")
        validating = [k for k in schema if k in VALIDATION or k == "nullable"]
        if "$ref" in schema:
            self._alone(schema, "$ref", where)
            return self.ref(schema["$ref"], where, depth, aliases)
        for combiner in ("anyOf", "oneOf", "allOf"):
            if combiner in schema:
                self._alone(schema, combiner, where)
                return self.combined(combiner, schema[combiner], where, depth, aliases)
        if "const" in schema or "enum" in schema:
            return self.literals(schema, where)
        types = self.types(schema, where)
        if not validating or types is None:
            return self.any_value()
        options = [self.typed(t, schema, where, depth, aliases) for t in types]
        return alt(*options)

    def _alone(self, schema: Mapping[str, Any], key: str, where: str) -> None:
        others = [k for k in schema if k != key and (k in VALIDATION or k == "nullable")]
        if others:
            raise UnsupportedSchema(f"{key} at {where} beside {', '.join(others)}: move them into it")

    # the kinds of schema -------------------------------------------------------------------------

    def types(self, schema: Mapping[str, Any], where: str) -> list[str] | None:
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
                raise UnsupportedSchema(
                    f"type at {where} must be one of {', '.join(TYPES)} or a list of them"
                )
        if schema.get("nullable") is True and "null" not in types:
            types = [*types, "null"]
        return list(dict.fromkeys(types))

    def typed(
        self, kind: str, schema: Mapping[str, Any], where: str, depth: int, aliases: frozenset[str]
    ) -> str:
        if kind == "string":
            return self.string(schema, where)
        if kind in ("number", "integer"):
            return self.number(kind, schema, where)
        if kind == "boolean":
            return '("true" | "false")'
        if kind == "null":
            return '"null"'
        if kind == "object":
            return self.object(schema, where, depth)
        return self.array(schema, where, depth)

    # references and combinations -----------------------------------------------------------------

    def resolve(self, ref: Any, where: str) -> Any:
        """The subschema a local ``$ref`` (``#``, ``#/$defs/Name``, any JSON pointer) points at."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise UnsupportedSchema(
                f"$ref {str(ref)[:80]!r} at {where}: only references inside the schema (#...)"
            )
        target = self.root
        pointer = ref[1:]
        if pointer and not pointer.startswith("/"):
            raise UnsupportedSchema(
                f"$ref {ref[:80]!r} at {where}: anchors are not supported, use #/$defs/..."
            )
        for part in pointer.split("/")[1:] if pointer else []:
            key = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and key in target:
                target = target[key]
            elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            else:
                raise UnsupportedSchema(f"$ref {ref[:80]!r} at {where} points at nothing")
        return target

    def ref(self, ref: Any, where: str, depth: int, aliases: frozenset[str]) -> str:
        target = self.resolve(ref, where)
        if ref in aliases:
            raise UnsupportedSchema(f"$ref {ref[:80]!r} at {where} refers to itself without a value between")
        known = self._refs.get(ref)
        if known is not None:
            return known
        name = self.rules.reserve(ref.rsplit("/", 1)[-1] or "root-ref")
        self._refs[ref] = name
        self.rules.define(name, self.visit(target, ref, 0, aliases | {ref}))
        return name

    def combined(self, combiner: str, parts: Any, where: str, depth: int, aliases: frozenset[str]) -> str:
        if not isinstance(parts, list) or not parts:
            raise UnsupportedSchema(f"{combiner} at {where} must be a non-empty list of schemas")
        if combiner == "allOf":
            validating = [p for p in parts if p is not True and not self._annotation_only(p)]
            if len(validating) > 1:
                raise UnsupportedSchema(f"allOf of several schemas at {where} cannot be enforced: merge them")
            if not validating:
                return self.any_value()
            index = parts.index(validating[0])
            return self.visit(validating[0], f"{where}/allOf/{index}", depth + 1, aliases)
        if combiner == "oneOf":
            self.check_disjoint(parts, where)
        options = [self.visit(p, f"{where}/{combiner}/{i}", depth + 1, aliases) for i, p in enumerate(parts)]
        return alt(*options)

    @staticmethod
    def _annotation_only(schema: Any) -> bool:
        return isinstance(schema, Mapping) and not any(k in VALIDATION or k in REFUSED for k in schema)

    # oneOf: a value valid against two alternatives is invalid, so the alternatives must not overlap

    def _effective(self, schema: Any, seen: int = 0) -> Any:
        while isinstance(schema, Mapping) and seen < 64:
            seen += 1
            if "$ref" in schema:
                schema = self.resolve(schema["$ref"], "oneOf")
            elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
                schema = schema["allOf"][0]
            else:
                break
        return schema

    def kinds(self, schema: Any, seen: int = 0) -> set[str]:
        """The types of the values a schema lets through (a superset; integer counts as number)."""
        schema = self._effective(schema)
        if not isinstance(schema, Mapping) or seen > 32:
            return {"string", "number", "boolean", "null", "object", "array"}
        if "const" in schema or "enum" in schema:
            values = [schema["const"]] if "const" in schema else schema.get("enum") or []
            return {"number" if kind_of(v) == "integer" else kind_of(v) for v in values}
        for combiner in ("anyOf", "oneOf"):
            if isinstance(schema.get(combiner), list):
                return set().union(*(self.kinds(p, seen + 1) for p in schema[combiner]))
        types = self.types(schema, "oneOf")
        if types is None:
            return {"string", "number", "boolean", "null", "object", "array"}
        return {"number" if t == "integer" else t for t in types}

    def literal_set(self, schema: Any) -> set[str] | None:
        schema = self._effective(schema)
        if isinstance(schema, Mapping):
            if "const" in schema:
                return {json_text(schema["const"])}
            if isinstance(schema.get("enum"), list):
                return {json_text(v) for v in schema["enum"]}
        return None

    def disjoint(self, a: Any, b: Any) -> bool:
        if not self.kinds(a) & self.kinds(b):
            return True
        literals_a, literals_b = self.literal_set(a), self.literal_set(b)
        if literals_a is not None and literals_b is not None:
            return not literals_a & literals_b
        a, b = self._effective(a), self._effective(b)
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            return False
        # objects told apart by a property both require, with values that cannot be the same (a discriminator)
        properties_a, properties_b = a.get("properties") or {}, b.get("properties") or {}
        shared = set(a.get("required") or []) & set(b.get("required") or [])
        for name in shared:
            if name in properties_a and name in properties_b:
                values_a, values_b = (
                    self.literal_set(properties_a[name]),
                    self.literal_set(properties_b[name]),
                )
                if values_a is not None and values_b is not None and not values_a & values_b:
                    return True
        return False

    def check_disjoint(self, parts: list[Any], where: str) -> None:
        for i, a in enumerate(parts):
            for j in range(i + 1, len(parts)):
                if not self.disjoint(a, parts[j]):
                    raise UnsupportedSchema(
                        f"oneOf at {where}: alternatives {i} and {j} may both match one value, "
                        "which oneOf forbids; use anyOf, or tell them apart with a const property"
                    )

    # values ----------------------------------------------------------------------------------------

    def any_value(self) -> str:
        if "value" not in self.rules:
            for name, body in GENERIC_RULES.items():
                self.rules.define(name, body)
            self.rules.define("number", UNBOUNDED_NUMBER)
        return "value"

    def ws(self) -> str:
        self.any_value()  # the generic rules include ws
        return "ws"

    def literals(self, schema: Mapping[str, Any], where: str) -> str:
        if "const" in schema and "enum" in schema:
            values = [v for v in schema["enum"] if json_text(v) == json_text(schema["const"])]
        elif "const" in schema:
            values = [schema["const"]]
        else:
            values = schema["enum"]
            if not isinstance(values, list):
                raise UnsupportedSchema(f"enum at {where} must be a list")
        others = [k for k in schema if k in VALIDATION and k not in ("const", "enum", "type")]
        if others:
            raise UnsupportedSchema(f"enum or const at {where} beside {', '.join(others)} cannot be enforced")
        types = self.types(schema, where) if "type" in schema else None
        if types is not None:
            values = [v for v in values if _matches(kind_of(v), set(types))]
        if schema.get("nullable") is True and None not in values:
            values = [*values, None]
        if not values:
            raise UnsupportedSchema(f"enum or const at {where} leaves no value that is valid")
        try:
            texts = [json_text(v) for v in values]
        except ValueError as error:
            raise UnsupportedSchema(f"enum or const at {where}: {error}") from None
        return choice(texts, self.rules, (where.rsplit("/", 1)[-1].strip("#") or "value") + "-enum")

    def string(self, schema: Mapping[str, Any], where: str) -> str:
        shortest = _count(schema, "minLength", where) or 0
        longest = _count(schema, "maxLength", where)
        name = schema.get("format")
        if name is not None:
            known = FORMATS.get(name) if isinstance(name, str) else None
            if known is None:
                raise UnsupportedSchema(
                    f"format {str(name)[:40]!r} at {where} cannot be enforced by llamadeck "
                    f"(it can: {', '.join(FORMATS)})"
                )
            if known.shortest < shortest or (longest is not None and known.longest > longest):
                raise UnsupportedSchema(
                    f"format {name} at {where} writes {known.shortest} to {known.longest} characters, "
                    f"outside minLength/maxLength"
                )
            return seq('"\\""', known.expression, '"\\""')
        self.any_value()  # the char rule
        return seq('"\\""', repeat("char", shortest, longest, what=f"a string length at {where}"), '"\\""')

    def number(self, kind: str, schema: Mapping[str, Any], where: str) -> str:
        step = schema.get("multipleOf")
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, int | float) or step != 1:
                raise UnsupportedSchema(f"multipleOf {str(step)[:40]} at {where} cannot be enforced (only 1)")
            kind = "integer"
        low = self._bound(schema, "minimum", "exclusiveMinimum", where)
        high = self._bound(schema, "maximum", "exclusiveMaximum", where)
        if kind == "integer":
            if low is None and high is None:
                return group(UNBOUNDED_INTEGER)
            a, b = integer_bounds(low, high)
            return group(integer(a, b, where=f"the integer at {where}"))
        return group(number(low, high, where=f"the number at {where}"))

    @staticmethod
    def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str, where: str) -> Bound | None:
        """The tighter of ``minimum``/``exclusiveMinimum`` (or the maxima); draft 4's boolean form too."""
        bounds: list[Bound] = []
        plain, strict = schema.get(inclusive), schema.get(exclusive)
        if plain is not None:
            bounds.append((_decimal(plain, inclusive, where), strict is not True))
        if strict is not None and not isinstance(strict, bool):
            bounds.append((_decimal(strict, exclusive, where), False))
        elif strict is True and plain is None:
            raise UnsupportedSchema(f"{exclusive}: true at {where} needs {inclusive}")
        if not bounds:
            return None
        lower = inclusive == "minimum"
        # the tightest: the largest minimum (exclusive wins a tie), the smallest maximum
        bounds.sort(key=lambda b: (b[0] if lower else -b[0], not b[1]))
        return bounds[-1]

    # objects and arrays -----------------------------------------------------------------------------

    def object(self, schema: Mapping[str, Any], where: str, depth: int) -> str:
        ws = self.ws()
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        extra = schema.get("additionalProperties", True)
        if not isinstance(properties, Mapping) or not isinstance(required, list):
            raise UnsupportedSchema(f"properties at {where} must be an object and required a list of names")
        least = _count(schema, "minProperties", where) or 0
        most = _count(schema, "maxProperties", where)
        members: list[tuple[str, Any, bool]] = []
        for name, subschema in properties.items():
            if subschema is False:
                if name in required:
                    raise UnsupportedSchema(
                        f"property {name!r} at {where} is required but its schema is false"
                    )
                continue
            members.append((name, subschema, name in required))
        for name in dict.fromkeys(required):
            if not isinstance(name, str):
                raise UnsupportedSchema(f"required at {where} must list property names")
            if name not in properties:
                if extra is False:
                    raise UnsupportedSchema(
                        f"{name!r} is required at {where} but additionalProperties is false"
                    )
                members.append((name, extra, True))
        if not members:
            return self.free_object(extra, least, most, where, depth)
        if least > max(1, sum(r for _, _, r in members)):
            raise UnsupportedSchema(f"minProperties {least} at {where} is more than its required properties")
        if most is not None and most < len(members):
            raise UnsupportedSchema(f"maxProperties {most} at {where} is fewer than its properties")
        hint = where.rsplit("/", 1)[-1].strip("#") or "schema"
        pairs = []
        for name, subschema, needed in members:
            value = self.visit(subschema, f"{where}/properties/{name}", depth + 1, frozenset())
            pairs.append((seq(literal(json_text(name)), ws, '":"', ws, value), needed))
        # after[k]: the members from k on, once something was written (each one with its comma)
        after = [""] * (len(pairs) + 1)
        for k in range(len(pairs) - 1, -1, -1):
            pair, needed = pairs[k]
            item = seq(ws, '","', ws, pair)
            body = seq(item if needed else f"({item})?", after[k + 1])
            after[k] = self.rules.add(f"{hint}-rest", body) if 0 < k < len(pairs) - 1 else body
        firsts = []  # the first member written: any optional one before the first required one
        for k, (pair, needed) in enumerate(pairs):
            firsts.append(seq(pair, after[k + 1]))
            if needed:
                break
        inner = alt(*firsts)
        if any(needed for _, needed in pairs) or least >= 1:
            body = seq('"{"', ws, inner, ws, '"}"')
        else:
            body = seq('"{"', ws, f"({seq(inner, ws)})?", '"}"')
        return self.rules.add(hint, body)

    def free_object(self, extra: Any, least: int, most: int | None, where: str, depth: int) -> str:
        """An object with no declared properties: any keys, values valid against ``additionalProperties``."""
        ws = self.ws()
        if extra is False or most == 0:
            if least > 0:
                raise UnsupportedSchema(f"minProperties {least} at {where} but no property is allowed")
            return seq('"{"', ws, '"}"')
        if least > 1:  # a key written twice counts once: only the first one can be promised
            raise UnsupportedSchema(
                f"minProperties {least} at {where} on an object without declared properties"
            )
        value = (
            "value"
            if extra is True
            else self.visit(extra, f"{where}/additionalProperties", depth + 1, frozenset())
        )
        pair = seq("string", ws, '":"', ws, value)
        more = repeat(
            seq(ws, '","', ws, pair), 0, None if most is None else most - 1, what=f"maxProperties at {where}"
        )
        inner = seq(pair, more, ws)
        return seq('"{"', ws, inner if least == 1 else f"({inner})?", '"}"')

    def array(self, schema: Mapping[str, Any], where: str, depth: int) -> str:
        ws = self.ws()
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", True)
        if isinstance(items, list):
            raise UnsupportedSchema(f"items as a list at {where} (use prefixItems)")
        if not isinstance(prefix, list):
            raise UnsupportedSchema(f"prefixItems at {where} must be a list of schemas")
        least = _count(schema, "minItems", where) or 0
        most = _count(schema, "maxItems", where)
        if items is False:
            most = len(prefix) if most is None else min(most, len(prefix))
        if most is not None and most < least:
            raise UnsupportedSchema(f"minItems {least} and maxItems {most} at {where} leave no length")
        if schema.get("uniqueItems") is True and (most is None or most > 1):
            raise UnsupportedSchema(f"uniqueItems at {where} cannot be enforced by llamadeck")
        for count, key in ((least, "minItems"), (most, "maxItems")):
            if count is not None and count > MAX_REPEAT:
                raise UnsupportedSchema(
                    f"{key} at {where} of {count} is past llamadeck's limit of {MAX_REPEAT}"
                )
        if most == 0:
            return seq('"["', ws, '"]"')
        hint = (where.rsplit("/", 1)[-1] or "array") + "-item"
        elements = [
            self.visit(p, f"{where}/prefixItems/{i}", depth + 1, frozenset()) for i, p in enumerate(prefix)
        ]
        rest = None
        if most is None or most > len(prefix):
            rest = self.visit(items, f"{where}/items", depth + 1, frozenset())
            if rest != "value" and not rest.replace("-", "").isalnum():
                rest = self.rules.add(hint, rest)

        def tail(i: int) -> str:
            """The items after the first i, each with its comma."""
            if most is not None and i >= most:
                return ""
            if i < len(elements):
                part = seq(ws, '","', ws, elements[i], tail(i + 1))
                return part if i < least else f"({part})?"
            if rest is None:
                return ""
            high = None if most is None else most - i
            return repeat(seq(ws, '","', ws, rest), max(0, least - i), high, what=f"maxItems at {where}")

        first = elements[0] if elements else rest
        assert first is not None
        inner = seq(first, tail(1))
        body = seq('"["', ws, seq(inner, ws) if least >= 1 else f"({seq(inner, ws)})?", '"]"')
        return self.rules.add(where.rsplit("/", 1)[-1] or "array", body)


def new_rules() -> Rules:
    """A rule table that keeps the generic rules' names (``value``, ``string``, ...) for them."""
    return Rules(taken=[*GENERIC_RULES, "number"])


def schema_grammar(schema: Any) -> str:
    """The GBNF grammar (root rule ``root``) of JSON values valid against ``schema``; UnsupportedSchema if
    the schema holds what llamadeck cannot enforce."""
    return SchemaGrammar(schema).grammar()


def json_grammar() -> str:
    """Ollama's ``format: "json"`` and OpenAI's ``json_object``: any JSON object."""
    converter = SchemaGrammar({"type": "object"})
    converter.any_value()
    return converter.rules.text("object")
