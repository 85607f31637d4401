"""Structured outputs and forced tool calls through a real uvicorn, with the clients people use.

The model is the random tiny GGUF: left alone it writes gibberish, so every
reply that parses and validates here does so because of the grammar. A
second copy carries a Qwen-style template (tools rendered into the prompt,
calls written as ``<tool_call>...</tool_call>``) to check that a forced call
takes the template's format and that ``tool_choice: "none"`` renders no tools.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import instructor
import jsonschema
import ollama
import openai
import pydantic
import pytest

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import CHAT_TEMPLATE, write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
MODEL = "hf.co/acme/Tiny-GGUF:Q8_0"
QWENISH = "hf.co/acme/Qwenish-GGUF:Q8_0"
QWEN_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nYou may call these tools: {{ tools | tojson }}. "
    'Write a call as <tool_call>{"name": ..., "arguments": ...}</tool_call><|im_end|>\n{% endif %}'
    + CHAT_TEMPLATE
)
SAMPLED: dict[str, Any] = {"temperature": 1.0, "seed": 7, "num_predict": 1500}
ASK: Any = [{"role": "user", "content": "Tell me about a person, in JSON."}]


class Pet(pydantic.BaseModel):
    kind: Literal["cat", "dog"]
    age: int = pydantic.Field(ge=0, le=30)


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=1, max_length=12)
    age: int = pydantic.Field(ge=0, le=120)
    score: float = pydantic.Field(gt=0, le=1)
    pets: list[Pet] = pydantic.Field(max_length=2)
    nickname: str | None = pydantic.Field(default=None, max_length=8)


WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 12},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
        },
    },
}
CLOCK: Any = {
    "type": "function",
    # no arguments at all: with extra properties allowed, random sampling on a random model may write
    # keys and values until max_tokens (the reply is then cut, as it should be, but not a call)
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
    },
}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("structured")
    return {
        "tiny": write_tiny_gguf(directory / "Tiny-Q8_0.gguf")[0],
        "qwenish": write_tiny_gguf(directory / "Qwenish-Q8_0.gguf", chat_template=QWEN_TEMPLATE)[0],
    }


@pytest.fixture(scope="module")
def server(model_files: dict[str, Path]) -> Iterator[str]:
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model_files["tiny"]})
        hub.add_repo("acme/Qwenish-GGUF", {"Qwenish-Q8_0.gguf": model_files["qwenish"]})
        engine = Engine(machine=lambda: CPU_BOX)
        engine.pull("acme/Tiny-GGUF")
        engine.pull("acme/Qwenish-GGUF")
    try:
        with running_api(engine) as base_url:
            yield base_url
    finally:
        engine.close()


@pytest.fixture
def oai(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def test_ollama_chat_with_a_schema_answers_json_that_validates(server: str) -> None:
    reply = ollama.Client(host=server).chat(
        MODEL, messages=ASK, format=Person.model_json_schema(), options=SAMPLED
    )
    assert reply.done_reason == "stop"
    Person.model_validate_json(reply.message.content or "")


def test_ollama_generate_streams_a_schemas_json(server: str) -> None:
    schema = {
        "type": "array",
        "items": {"type": "integer", "minimum": -5, "maximum": 5},
        "minItems": 2,
        "maxItems": 4,
    }
    chunks = list(
        ollama.Client(host=server).generate(MODEL, "Numbers:", format=schema, options=SAMPLED, stream=True)
    )
    assert chunks[-1].done_reason == "stop"
    jsonschema.validate(json.loads("".join(c.response for c in chunks)), schema)


def test_format_json_is_a_json_object(server: str) -> None:
    reply = ollama.Client(host=server).generate(MODEL, "An object:", format="json", options=SAMPLED)
    assert reply.response.startswith("{")
    if reply.done_reason == "stop":  # any object: a random model may write one past num_predict
        assert isinstance(json.loads(reply.response), dict)


def test_a_schema_that_cannot_be_enforced_is_a_400_naming_it(server: str, oai: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}}
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=server).chat(MODEL, messages=ASK, format=schema)
    assert caught.value.status_code == 400 and "pattern" in caught.value.error and "zip" in caught.value.error
    strict: Any = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "array", "maxItems": 100000}},
    }
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model=MODEL, messages=ASK, response_format=strict)
    assert "maxItems" in refused.value.message and "1000" in refused.value.message


def test_openai_json_object_and_json_schema(oai: openai.OpenAI) -> None:
    extra = {"seed": 3, "max_tokens": 1500, "temperature": 1.0}
    loose = oai.chat.completions.create(
        model=MODEL, messages=ASK, response_format={"type": "json_object"}, **extra
    )
    assert (loose.choices[0].message.content or "").startswith("{")
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "maximum": 0}},
        "required": ["ok", "n"],
    }
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    reply = oai.chat.completions.create(model=MODEL, messages=ASK, response_format=response_format, **extra)
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)


def test_the_openai_clients_parse_gets_a_model_instance(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.parse(
        model=MODEL, messages=ASK, response_format=Person, seed=5, temperature=1.0
    )
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person)


def test_openai_completions_take_a_response_format_and_streams_keep_it(server: str) -> None:
    schema = {"type": "object", "properties": {"word": {"enum": ["yes", "no"]}}, "required": ["word"]}
    body = {"model": MODEL, "prompt": "Answer:", "seed": 2, "temperature": 1.0, "max_tokens": 200}
    body["response_format"] = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    whole = httpx.post(f"{server}/v1/completions", json=body, timeout=60).json()
    assert json.loads(whole["choices"][0]["text"])["word"] in ("yes", "no")
    lines = httpx.post(f"{server}/v1/completions", json=body | {"stream": True}, timeout=60).text.splitlines()
    pieces = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    text = "".join(p["choices"][0]["text"] for p in pieces if p["choices"])
    assert text == whole["choices"][0]["text"]


def test_max_tokens_cutting_a_constrained_reply_is_reported_as_length(oai: openai.OpenAI) -> None:
    schema: Any = {"type": "json_schema", "json_schema": {"name": "p", "schema": Person.model_json_schema()}}
    reply = oai.chat.completions.create(
        model=MODEL, messages=ASK, response_format=schema, max_tokens=5, seed=1
    )
    assert reply.choices[0].finish_reason == "length" and reply.usage and reply.usage.completion_tokens == 5


def arguments_of(reply: Any) -> tuple[str, dict[str, Any]]:
    (call,) = reply.choices[0].message.tool_calls
    return call.function.name, json.loads(call.function.arguments)


@pytest.mark.parametrize("model", [MODEL, QWENISH])
def test_tool_choice_required_is_a_valid_call_of_one_of_the_tools(oai: openai.OpenAI, model: str) -> None:
    reply = oai.chat.completions.create(
        model=model,
        messages=ASK,
        tools=[WEATHER, CLOCK],
        tool_choice="required",
        seed=4,
        temperature=1.0,
        max_tokens=800,
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    name, arguments = arguments_of(reply)
    tool = WEATHER if name == "get_weather" else CLOCK
    jsonschema.validate(arguments, tool["function"]["parameters"])


def test_a_named_tool_choice_calls_that_tool(oai: openai.OpenAI) -> None:
    choice: Any = {"type": "function", "function": {"name": "get_weather"}}
    reply = oai.chat.completions.create(
        model=QWENISH,
        messages=ASK,
        tools=[CLOCK, WEATHER],
        tool_choice=choice,
        seed=9,
        temperature=1.0,
        max_tokens=800,
    )
    name, arguments = arguments_of(reply)
    assert name == "get_weather" and 1 <= arguments["days"] <= 7 and len(arguments["city"]) <= 12


def test_a_forced_call_streams_as_one_tool_call_delta(oai: openai.OpenAI) -> None:
    choice: Any = {"type": "function", "function": {"name": "get_weather"}}
    chunks = list(
        oai.chat.completions.create(
            model=QWENISH,
            messages=ASK,
            tools=[WEATHER],
            tool_choice=choice,
            seed=9,
            temperature=1.0,
            stream=True,
        )
    )
    calls = [c for chunk in chunks for choice_ in chunk.choices for c in choice_.delta.tool_calls or []]
    assert [c.function.name for c in calls if c.function] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_renders_no_tools(oai: openai.OpenAI) -> None:
    plain = oai.chat.completions.create(model=QWENISH, messages=ASK, max_tokens=1, seed=1)
    with_tools = oai.chat.completions.create(
        model=QWENISH, messages=ASK, tools=[WEATHER], max_tokens=1, seed=1
    )
    none = oai.chat.completions.create(
        model=QWENISH, messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=1, seed=1
    )
    assert plain.usage and with_tools.usage and none.usage
    assert none.usage.prompt_tokens == plain.usage.prompt_tokens < with_tools.usage.prompt_tokens


def test_a_forced_tool_choice_that_names_no_tool_of_the_request_is_a_400(oai: openai.OpenAI) -> None:
    choice: Any = {"type": "function", "function": {"name": "launch"}}
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER], tool_choice=choice)
    assert "launch" in caught.value.message


def test_instructor_in_tools_mode_gets_a_valid_model(server: str) -> None:
    client = instructor.from_openai(
        openai.OpenAI(base_url=f"{server}/v1", api_key="unused"), mode=instructor.Mode.TOOLS
    )
    person = client.chat.completions.create(
        model=MODEL,
        response_model=Person,
        messages=ASK,
        max_retries=0,
        seed=6,
        temperature=1.0,
        max_tokens=1500,
    )
    assert isinstance(person, Person)


def test_instructor_in_json_schema_mode_gets_a_valid_model(server: str) -> None:
    client = instructor.from_openai(
        openai.OpenAI(base_url=f"{server}/v1", api_key="unused"), mode=instructor.Mode.JSON_SCHEMA
    )
    pet = client.chat.completions.create(
        model=MODEL, response_model=Pet, messages=ASK, max_retries=0, seed=8, temperature=1.0, max_tokens=400
    )
    assert isinstance(pet, Pet)
