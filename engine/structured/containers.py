"""The grammar rules of JSON objects and arrays: properties in order, counts, prefix items.

The largest part of the schema conversion, and the one with its own logic
(which members may come first, where commas go, how ``minItems``/``maxItems``
bound a repetition), so it stands apart from the dispatch in ``schema``. The
functions take the converter (``Writer``) to visit the subschemas inside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from engine.errors import UnsupportedSchema
from engine.structured.gbnf import MAX_REPEAT, Rules, alt, literal, repeat, seq
from engine.structured.keywords import json_text, keyword_count


class Writer(Protocol):
    """What the container rules need of the converter (``schema.SchemaGrammar``)."""

    rules: Rules

    def visit(self, schema: Any, where: str, depth: int, aliases: frozenset[str]) -> str: ...

    def ws(self) -> str: ...


def object_rule(g: Writer, schema: Mapping[str, Any], where: str, depth: int) -> str:
    ws = g.ws()
    properties = schema.get("properties") or {}
    required = schema.get("required") or []
    extra = schema.get("additionalProperties", True)
    if not isinstance(properties, Mapping) or not isinstance(required, list):
        raise UnsupportedSchema(f"properties at {where} must be an object and required a list of names")
    least = keyword_count(schema, "minProperties", where) or 0
    most = keyword_count(schema, "maxProperties", where)
    members: list[tuple[str, Any, bool]] = []
    for name, subschema in properties.items():
        if subschema is False:
            if name in required:
                raise UnsupportedSchema(f"property {name!r} at {where} is required but its schema is false")
            continue
        members.append((name, subschema, name in required))
    for name in dict.fromkeys(required):
        if not isinstance(name, str):
            raise UnsupportedSchema(f"required at {where} must list property names")
        if name not in properties:
            if extra is False:
                raise UnsupportedSchema(f"{name!r} is required at {where} but additionalProperties is false")
            members.append((name, extra, True))
    if not members:
        return free_object_rule(g, extra, least, most, where, depth)
    if least > max(1, sum(r for _, _, r in members)):
        raise UnsupportedSchema(f"minProperties {least} at {where} is more than its required properties")
    if most is not None and most < len(members):
        raise UnsupportedSchema(f"maxProperties {most} at {where} is fewer than its properties")
    hint = where.rsplit("/", 1)[-1].strip("#") or "schema"
    pairs = []
    for name, subschema, needed in members:
        value = g.visit(subschema, f"{where}/properties/{name}", depth + 1, frozenset())
        pairs.append((seq(literal(json_text(name)), ws, '":"', ws, value), needed))
    # after[k]: the members from k on, once something was written (each one with its comma)
    after = [""] * (len(pairs) + 1)
    for k in range(len(pairs) - 1, -1, -1):
        pair, needed = pairs[k]
        item = seq(ws, '","', ws, pair)
        body = seq(item if needed else f"({item})?", after[k + 1])
        after[k] = g.rules.add(f"{hint}-rest", body) if 0 < k < len(pairs) - 1 else body
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
    return g.rules.add(hint, body)


def free_object_rule(g: Writer, extra: Any, least: int, most: int | None, where: str, depth: int) -> str:
    """An object with no declared properties: any keys, values valid against ``additionalProperties``."""
    ws = g.ws()
    if extra is False or most == 0:
        if least > 0:
            raise UnsupportedSchema(f"minProperties {least} at {where} but no property is allowed")
        return seq('"{"', ws, '"}"')
    if least > 1:  # a key written twice counts once: only the first one can be promised
        raise UnsupportedSchema(f"minProperties {least} at {where} on an object without declared properties")
    value = (
        "value" if extra is True else g.visit(extra, f"{where}/additionalProperties", depth + 1, frozenset())
    )
    pair = seq("string", ws, '":"', ws, value)
    more = repeat(
        seq(ws, '","', ws, pair), 0, None if most is None else most - 1, what=f"maxProperties at {where}"
    )
    inner = seq(pair, more, ws)
    return seq('"{"', ws, inner if least == 1 else f"({inner})?", '"}"')


def array_rule(g: Writer, schema: Mapping[str, Any], where: str, depth: int) -> str:
    ws = g.ws()
    prefix = schema.get("prefixItems") or []
    items = schema.get("items", True)
    if isinstance(items, list):
        raise UnsupportedSchema(f"items as a list at {where} (use prefixItems)")
    if not isinstance(prefix, list):
        raise UnsupportedSchema(f"prefixItems at {where} must be a list of schemas")
    least = keyword_count(schema, "minItems", where) or 0
    most = keyword_count(schema, "maxItems", where)
    if items is False:
        most = len(prefix) if most is None else min(most, len(prefix))
    if most is not None and most < least:
        raise UnsupportedSchema(f"minItems {least} and maxItems {most} at {where} leave no length")
    if schema.get("uniqueItems") is True and (most is None or most > 1):
        raise UnsupportedSchema(f"uniqueItems at {where} cannot be enforced by llamadeck")
    for count, key in ((least, "minItems"), (most, "maxItems")):
        if count is not None and count > MAX_REPEAT:
            raise UnsupportedSchema(f"{key} at {where} of {count} is past llamadeck's limit of {MAX_REPEAT}")
    if most == 0:
        return seq('"["', ws, '"]"')
    hint = (where.rsplit("/", 1)[-1] or "array") + "-item"
    elements = [g.visit(p, f"{where}/prefixItems/{i}", depth + 1, frozenset()) for i, p in enumerate(prefix)]
    rest = None
    if most is None or most > len(prefix):
        rest = g.visit(items, f"{where}/items", depth + 1, frozenset())
        if rest != "value" and not rest.replace("-", "").isalnum():
            rest = g.rules.add(hint, rest)

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
    return g.rules.add(where.rsplit("/", 1)[-1] or "array", body)


__all__ = ["Writer", "array_rule", "free_object_rule", "object_rule"]
