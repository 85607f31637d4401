"""JSON schema -> GBNF: what each keyword lets through (llama.cpp's grammar engine judges), what is refused.

Texts are fed to a real grammar sampler byte by byte (``tests/support/grammar_oracle.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import pydantic
import pytest

from engine import UnsupportedSchema
from engine.structured import format_grammar, schema_grammar
from engine.structured.gbnf import MAX_GRAMMAR_BYTES
from engine.structured.tools import call_style, forced_names, tool_call_grammar
from tests.support.grammar_oracle import Oracle


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    with Oracle() as judge:
        yield judge


def allowed(oracle: Oracle, schema: Any, texts: list[str]) -> list[str]:
    grammar = schema_grammar(schema)
    return [t for t in texts if oracle.accepts(grammar, t)]


def test_required_properties_come_and_optional_ones_may_in_the_schemas_order(oracle: Oracle) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
        "required": ["b"],
    }
    texts = ['{"b":"x"}', '{"a":1,"b":"x"}', '{"a":1, "b":"x", "c":true}', '{"b":"x","c":false}', "{}"]
    texts += ['{"a":1}', '{"b":"x","a":1}', '{"b":"x",}', '{"b":"x","d":1}', '{"b":1}']
    assert allowed(oracle, schema, texts) == texts[:4]


def test_whitespace_between_tokens_is_allowed_but_bounded(oracle: Oracle) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    texts = ['{\n  "a" : 1\n}', '{ "a": 1 }', '{"a":1}', " " + '{"a":1}', '{"a":' + " " * 30 + "1}"]
    assert allowed(oracle, schema, texts) == texts[:3]


def test_an_object_with_no_properties_takes_any_keys_unless_additional_properties_is_false(
    oracle: Oracle,
) -> None:
    texts = ["{}", '{"x":[1,{"y":null}]}', '{"x":1,"x":2}']
    assert allowed(oracle, {"type": "object"}, texts) == texts
    assert allowed(oracle, {"type": "object", "additionalProperties": False}, texts) == ["{}"]
    typed = {"type": "object", "additionalProperties": {"type": "integer", "maximum": 3}}
    assert allowed(oracle, typed, ['{"a":3,"b":1}', '{"a":4}', '{"a":"x"}']) == ['{"a":3,"b":1}']


def test_arrays_keep_their_item_counts_and_tuples(oracle: Oracle) -> None:
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3}
    texts = ["[1]", "[1, 2,3]", "[]", "[1,2,3,4]", '["a"]']
    assert allowed(oracle, schema, texts) == texts[:2]
    pair = {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "number"}],
        "items": False,
        "minItems": 1,
    }
    assert allowed(oracle, pair, ['["a"]', '["a",1.5]', "[]", '["a",1,2]', "[1]"]) == ['["a"]', '["a",1.5]']


def test_enum_and_const_allow_exactly_their_values(oracle: Oracle) -> None:
    texts = ['"red"', '"blue"', "1", "null", '{"a":[1,2]}', '"green"', '"Red"', "1.0"]
    assert allowed(oracle, {"enum": ["red", "blue", 1, None, {"a": [1, 2]}]}, texts) == texts[:5]
    assert allowed(oracle, {"type": "string", "enum": ["red", 1]}, texts) == ['"red"']  # the type filters
    assert allowed(oracle, {"const": "é"}, ['"é"', '"e"']) == ['"é"']
    assert allowed(oracle, {"enum": ["a"], "nullable": True}, ['"a"', "null"]) == ['"a"', "null"]


def test_strings_keep_their_lengths_counted_in_characters(oracle: Oracle) -> None:
    schema = {"type": "string", "minLength": 2, "maxLength": 3}
    texts = ['"ab"', '"abc"', '"éé"', '"a\\n"', '"\\u00e9b"', '"a"', '"abcd"', '"\\ud83d\\ude00"']
    assert allowed(oracle, schema, texts) == texts[:5]


def test_formats_write_only_valid_values(oracle: Oracle) -> None:
    dates = ['"2024-02-28"', '"1999-12-31"', '"2024-02-30"', '"2024-04-31"', '"0000-01-01"', '"2024-1-1"']
    assert allowed(oracle, {"type": "string", "format": "date"}, dates) == dates[:2]
    times = [
        '"2024-05-06T07:08:09Z"',
        '"2024-05-06T07:08:09.123+02:00"',
        '"2024-05-06T24:00:00Z"',
        '"2024-05-06"',
    ]
    assert allowed(oracle, {"type": "string", "format": "date-time"}, times) == times[:2]
    uuid = ['"123e4567-e89b-12d3-a456-426614174000"', '"123e4567e89b12d3a456426614174000"']
    assert allowed(oracle, {"type": "string", "format": "uuid"}, uuid) == uuid[:1]
    emails = ['"ada@example.org"', '"a.b+c@mail.example.co"', '"ada@"', '"@example.org"', '"ada@localhost"']
    assert allowed(oracle, {"type": "string", "format": "email"}, emails) == emails[:2]


def test_numbers_keep_their_bounds(oracle: Oracle) -> None:
    schema = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
    assert allowed(oracle, schema, ["0.5", "1", "0", "1.5", "-0.5", "1e-3"]) == ["0.5", "1"]
    draft4 = {"type": "integer", "minimum": 0, "exclusiveMinimum": True, "maximum": 3}
    assert allowed(oracle, draft4, ["0", "1", "3", "4"]) == ["1", "3"]
    both = {"type": "integer", "minimum": 0, "exclusiveMinimum": 5}  # the tighter wins
    assert allowed(oracle, both, ["5", "6"]) == ["6"]
    assert allowed(oracle, {"type": "number", "multipleOf": 1, "maximum": 2}, ["2", "1.5", "-4"]) == [
        "2",
        "-4",
    ]


def test_refs_and_recursion(oracle: Oracle) -> None:
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer"},
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["v"],
            }
        },
        "$ref": "#/$defs/Node",
    }
    texts = ['{"v":1}', '{"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]}', '{"v":1,"kids":[{}]}']
    assert allowed(oracle, schema, texts) == texts[:2]
    root_recursion = {"type": "array", "items": {"$ref": "#"}, "maxItems": 2}
    assert allowed(oracle, root_recursion, ["[]", "[[],[[]]]", "[1]"]) == ["[]", "[[],[[]]]"]


def test_any_of_and_a_discriminated_one_of(oracle: Oracle) -> None:
    assert allowed(oracle, {"anyOf": [{"type": "integer"}, {"type": "null"}]}, ["3", "null", '"3"']) == [
        "3",
        "null",
    ]
    pets = {
        "oneOf": [
            {
                "type": "object",
                "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}},
                "required": ["kind"],
            },
            {"type": "object", "properties": {"kind": {"const": "dog"}}, "required": ["kind"]},
        ]
    }
    texts = ['{"kind":"cat","lives":9}', '{"kind":"dog"}', '{"kind":"cow"}']
    assert allowed(oracle, pets, texts) == texts[:2]


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "string", "pattern": "^a+$"}, "pattern"),
        ({"not": {"type": "string"}}, "not"),
        ({"type": "string", "format": "hostname"}, "format 'hostname'"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "number", "multipleOf": 0.5}, "multipleOf 0.5"),
        ({"$ref": "https://example.org/schema.json"}, "only references inside the schema"),
        ({"$ref": "#/$defs/Missing"}, "points at nothing"),
        ({"allOf": [{"type": "object"}, {"required": ["a"]}]}, "allOf of several"),
        ({"oneOf": [{"type": "number"}, {"type": "integer"}]}, "may both match"),
        (
            {
                "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"anyOf": [{"$ref": "#/$defs/A"}]}},
                "$ref": "#/$defs/A",
            },
            "itself",
        ),
        ({"type": "array", "maxItems": 100000}, "maxItems at # of 100000 is past llamadeck's limit of 1000"),
        ({"type": "string", "maxLength": 5000}, "limit of 1000"),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "minProperties": 2}, "minProperties"),
        ({"type": "string", "format": "date", "maxLength": 5}, "outside minLength/maxLength"),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "no integer"),
        ({"if": {}, "then": {}}, "if/then/else"),
        (False, "no value is valid"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "integer"}},
                "required": ["a", "b"],
                "additionalProperties": False,
            },
            "'b' is required",
        ),
    ],
)
def test_what_cannot_be_enforced_is_refused_by_name(schema: Any, named: str) -> None:
    with pytest.raises(UnsupportedSchema, match=named.replace("(", r"\(").replace("$", r"\$")):
        schema_grammar(schema)


def test_annotations_and_unknown_keywords_are_ignored_as_validators_ignore_them(oracle: Oracle) -> None:
    schema = {
        "title": "T",
        "description": "d",
        "type": "integer",
        "x-vendor": 1,
        "examples": [1],
        "default": 2,
    }
    assert allowed(oracle, schema, ["2", '"a"']) == ["2"]


def test_huge_repetitions_grammars_and_nesting_are_refused_not_a_recursion_error() -> None:
    with pytest.raises(UnsupportedSchema, match="limit"):
        schema_grammar(
            {"type": "array", "items": {"type": "string", "maxLength": 100000}, "maxItems": 100000}
        )
    words = {"enum": [f"word number {i} " * 8 for i in range(4000)]}
    with pytest.raises(UnsupportedSchema, match=f"{MAX_GRAMMAR_BYTES // 1024} KiB"):
        schema_grammar(words)
    deep: dict[str, Any] = {"type": "integer"}
    for _ in range(200):
        deep = {"type": "array", "items": deep}
    with pytest.raises(UnsupportedSchema, match="deeper"):
        schema_grammar(deep)


class Address(pydantic.BaseModel):
    street: str = pydantic.Field(max_length=20)
    zip_code: str | None = None


class Person(pydantic.BaseModel):
    name: str
    age: int = pydantic.Field(ge=0, le=150)
    role: Literal["admin", "user"]
    score: float = pydantic.Field(gt=0, lt=1)
    addresses: list[Address] = pydantic.Field(max_length=3)


def test_a_pydantic_models_schema_converts_and_its_instances_pass(oracle: Oracle) -> None:
    schema = Person.model_json_schema()
    person = Person(name="Ada", age=36, role="admin", score=0.5, addresses=[Address(street="Main St")])
    texts = [
        person.model_dump_json(),
        json.dumps(person.model_dump()),
        person.model_dump_json().replace("36", "151"),
    ]
    assert allowed(oracle, schema, texts) == texts[:2]


def test_format_json_is_any_object_and_other_formats_are_refused(oracle: Oracle) -> None:
    grammar = format_grammar("json")
    assert grammar is not None
    assert [t for t in ['{"a":[1,true,"x"]}', "{}", "[1]", '"x"'] if oracle.accepts(grammar, t)] == [
        '{"a":[1,true,"x"]}',
        "{}",
    ]
    assert format_grammar("") is None and format_grammar(None) is None
    with pytest.raises(Exception, match="format must be"):
        format_grammar("yaml")


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 10}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {}}}


def test_a_forced_call_is_written_in_the_templates_format(oracle: Oracle) -> None:
    call = '{"name":"get_weather","arguments":{"city":"Paris"}}'
    grammar = tool_call_grammar([WEATHER, TIME], ["get_weather", "get_time"], None)
    texts = [
        call,
        '{"name": "get_time", "arguments": {}}',
        '{"name":"get_weather","arguments":{}}',
        '{"name":"other","arguments":{}}',
    ]
    assert [t for t in texts if oracle.accepts(grammar, t)] == texts[:2]
    qwen = tool_call_grammar([WEATHER], ["get_weather"], "{% if tools %}<tool_call>{% endif %}")
    assert oracle.accepts(qwen, f"<tool_call>\n{call}\n</tool_call>") and not oracle.accepts(qwen, call)
    mistral = tool_call_grammar([WEATHER], ["get_weather"], "[TOOL_CALLS] {{ tool_calls }}")
    assert oracle.accepts(mistral, f"[TOOL_CALLS] [{call}]")
    llama = tool_call_grammar(
        [WEATHER], ["get_weather"], '<|start_header_id|> {"name": ..., "parameters": ...}'
    )
    assert oracle.accepts(llama, call.replace("arguments", "parameters"))
    assert call_style(None) == "json"


def test_tool_choice_names_a_tool_of_the_request() -> None:
    assert forced_names([WEATHER, TIME], "required") == ["get_weather", "get_time"]
    assert forced_names([WEATHER, TIME], {"type": "function", "function": {"name": "get_time"}}) == [
        "get_time"
    ]
    assert forced_names([WEATHER], "auto") is None and forced_names([WEATHER], "none") is None
    with pytest.raises(Exception, match="not one of the request's tools"):
        forced_names([WEATHER], {"type": "function", "function": {"name": "nope"}})
    with pytest.raises(Exception, match="needs tools"):
        forced_names([], "required")
    with pytest.raises(UnsupportedSchema, match="get_weather.*pattern"):
        bad = {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"c": {"type": "string", "pattern": "x"}}},
            },
        }
        tool_call_grammar([bad], ["get_weather"], None)


def test_enum_values_that_share_beginnings_are_one_prefix_tree(oracle: Oracle) -> None:
    values = ["a", "ab", "abc", "b", 'q"x', "long " * 100]
    schema = {"enum": values}
    texts = [json.dumps(v) for v in values] + ['"ac"', '"abcd"', '""', '"q"']
    assert allowed(oracle, schema, texts) == texts[: len(values)]
    grammar = schema_grammar({"enum": [f"word number {i}" for i in range(3000)]})
    assert grammar.count('"\\"word number ') == 1  # the shared beginning written once, not 3,000 times
