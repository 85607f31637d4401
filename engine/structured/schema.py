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

This module walks the schema and writes scalars, references and combinations;
the keyword vocabulary is in ``keywords``, objects and arrays in
``containers``, the ``oneOf`` overlap check in ``overlap``.

    grammar = schema_grammar({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from engine.errors import UnsupportedSchema
from engine.structured.containers import array_rule, object_rule
from engine.structured.formats import FORMATS, GENERIC_RULES
from engine.structured.gbnf import Rules, alt, choice, group, repeat, seq
from engine.structured.keywords import (
    REFUSED,
    VALIDATION,
    json_text,
    keyword_count,
    keyword_decimal,
    kind_of,
    matches_type,
    schema_types,
)
from engine.structured.numbers import (
    UNBOUNDED_INTEGER,
    UNBOUNDED_NUMBER,
    Bound,
    integer,
    integer_bounds,
    number,
)
from engine.structured.overlap import check_disjoint

MAX_DEPTH = 48  # schemas nested inline (a $ref starts again)
MAX_NODES = 10_000  # subschemas visited


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
        types = schema_types(schema, where)
        if not validating or types is None:
            return self.any_value()
        options = [self.typed(t, schema, where, depth, aliases) for t in types]
        return alt(*options)

    def _alone(self, schema: Mapping[str, Any], key: str, where: str) -> None:
        others = [k for k in schema if k != key and (k in VALIDATION or k == "nullable")]
        if others:
            raise UnsupportedSchema(f"{key} at {where} beside {', '.join(others)}: move them into it")

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
            return object_rule(self, schema, where, depth)
        return array_rule(self, schema, where, depth)

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
            check_disjoint(parts, where, self.resolve)
        options = [self.visit(p, f"{where}/{combiner}/{i}", depth + 1, aliases) for i, p in enumerate(parts)]
        return alt(*options)

    @staticmethod
    def _annotation_only(schema: Any) -> bool:
        return isinstance(schema, Mapping) and not any(k in VALIDATION or k in REFUSED for k in schema)

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
        types = schema_types(schema, where) if "type" in schema else None
        if types is not None:
            values = [v for v in values if matches_type(kind_of(v), set(types))]
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
        shortest = keyword_count(schema, "minLength", where) or 0
        longest = keyword_count(schema, "maxLength", where)
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
            bounds.append((keyword_decimal(plain, inclusive, where), strict is not True))
        if strict is not None and not isinstance(strict, bool):
            bounds.append((keyword_decimal(strict, exclusive, where), False))
        elif strict is True and plain is None:
            raise UnsupportedSchema(f"{exclusive}: true at {where} needs {inclusive}")
        if not bounds:
            return None
        lower = inclusive == "minimum"
        # the tightest: the largest minimum (exclusive wins a tie), the smallest maximum
        bounds.sort(key=lambda b: (b[0] if lower else -b[0], not b[1]))
        return bounds[-1]


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
