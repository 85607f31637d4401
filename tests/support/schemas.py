"""Random JSON schemas of the kinds clients send, for checking that every constrained reply validates.

    schemas = random_schemas(40, seed=1)

Each is built from the constructs llamadeck enforces: nested objects with
required and optional properties, arrays with item bounds and tuples, enums,
consts, strings with lengths and formats, integers and numbers with bounds
(inclusive and exclusive), booleans, nulls, ``$defs``/``$ref`` (recursive
too), ``anyOf``, discriminated ``oneOf`` and nullable values. Strings are
mostly short: a random model, which picks any character, then finishes.
"""

from __future__ import annotations

import random
from typing import Any

FORMATS = ["date", "time", "date-time", "uuid", "email"]


class _Maker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.defs: dict[str, Any] = {}

    def schema(self, depth: int) -> dict[str, Any]:
        rng = self.rng
        kinds = ["string", "integer", "number", "boolean", "enum", "const", "null"]
        if depth < 3:
            kinds += ["object", "object", "array", "anyOf", "oneOf", "ref", "nullable"]
        kind = rng.choice(kinds)
        return getattr(self, kind)(depth)

    def string(self, depth: int) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.25:
            return {"type": "string", "format": rng.choice(FORMATS)}
        low = rng.choice([0, 0, 1, 3])
        return {"type": "string", "minLength": low, "maxLength": low + rng.choice([0, 2, 6, 12])}

    def integer(self, depth: int) -> dict[str, Any]:
        rng = self.rng
        schema: dict[str, Any] = {"type": "integer"}
        if rng.random() < 0.7:
            schema[rng.choice(["minimum", "exclusiveMinimum"])] = rng.randint(-50, 50)
        if rng.random() < 0.7:
            low = schema.get("minimum", schema.get("exclusiveMinimum", -50))
            schema[rng.choice(["maximum", "exclusiveMaximum"])] = low + rng.randint(2, 500)
        return schema

    def number(self, depth: int) -> dict[str, Any]:
        rng = self.rng
        schema: dict[str, Any] = {"type": "number"}
        if rng.random() < 0.7:
            schema[rng.choice(["minimum", "exclusiveMinimum"])] = round(
                rng.uniform(-10, 10), rng.choice([0, 1, 2])
            )
        if rng.random() < 0.7:
            low = schema.get("minimum", schema.get("exclusiveMinimum", -10))
            schema[rng.choice(["maximum", "exclusiveMaximum"])] = round(low + rng.uniform(0.5, 20), 2)
        return schema

    def boolean(self, depth: int) -> dict[str, Any]:
        return {"type": "boolean"}

    def null(self, depth: int) -> dict[str, Any]:
        return {"type": "null"}

    def enum(self, depth: int) -> dict[str, Any]:
        pool: list[Any] = ["red", "green", "blue", 1, 2.5, True, None, "é", {"a": 1}, [1, 2]]
        return {"enum": self.rng.sample(pool, self.rng.randint(1, 4))}

    def const(self, depth: int) -> dict[str, Any]:
        return {"const": self.rng.choice(["fixed", 42, False, None, {"k": "v"}])}

    def object(self, depth: int) -> dict[str, Any]:
        rng = self.rng
        names = rng.sample(
            ["id", "name", "age", "tags", "kind", "value", "when", "note", "x", "y"], rng.randint(0, 4)
        )
        properties = {name: self.schema(depth + 1) for name in names}
        required = [n for n in names if rng.random() < 0.6]
        schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
        if not names or rng.random() < 0.5:  # (no properties and no false: any keys, which a random model
            schema["additionalProperties"] = False  # may go on writing for ever)
        return schema

    def array(self, depth: int) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.25:
            prefix = [self.schema(depth + 1) for _ in range(rng.randint(1, 3))]
            return {
                "type": "array",
                "prefixItems": prefix,
                "items": False,
                "minItems": rng.randint(0, len(prefix)),
            }
        low = rng.randint(0, 2)
        return {
            "type": "array",
            "items": self.schema(depth + 1),
            "minItems": low,
            "maxItems": low + rng.randint(0, 3),
        }

    def anyOf(self, depth: int) -> dict[str, Any]:  # noqa: N802 (the keyword's name)
        return {"anyOf": [self.schema(depth + 1) for _ in range(self.rng.randint(1, 3))]}

    def oneOf(self, depth: int) -> dict[str, Any]:  # noqa: N802
        """A discriminated union: objects told apart by a const ``kind``."""
        branches = []
        for tag in self.rng.sample(["cat", "dog", "bird"], self.rng.randint(1, 3)):
            branch = self.object(depth + 1)
            branch["properties"] = {**branch["properties"], "kind": {"const": tag}}
            branch["required"] = ["kind", *[r for r in branch["required"] if r != "kind"]]
            branches.append(branch)
        return {"oneOf": branches}

    def ref(self, depth: int) -> dict[str, Any]:
        name = f"Def{len(self.defs)}"
        if self.rng.random() < 0.3:  # a recursive tree: nodes with optional children
            self.defs[name] = {
                "type": "object",
                "properties": {
                    "label": {"type": "string", "maxLength": 4},
                    "children": {"type": "array", "items": {"$ref": f"#/$defs/{name}"}, "maxItems": 2},
                },
                "required": ["label"],
            }
        else:
            self.defs[name] = {}  # reserved before the body (the body may add more definitions)
            self.defs[name] = self.schema(depth + 1)
        return {"$ref": f"#/$defs/{name}", "description": "a reference"}

    def nullable(self, depth: int) -> dict[str, Any]:
        return {"anyOf": [self.schema(depth + 1), {"type": "null"}], "default": None}


def random_schema(rng: random.Random) -> dict[str, Any]:
    maker = _Maker(rng)
    root = maker.object(0) if rng.random() < 0.7 else maker.schema(0)
    if maker.defs:
        root = {**root, "$defs": maker.defs}
    return root


def random_schemas(count: int, *, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [random_schema(rng) for _ in range(count)]
