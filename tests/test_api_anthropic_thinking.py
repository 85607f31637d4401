"""Thinking through Anthropic's Messages API: the real ``anthropic`` SDK on a real uvicorn and llama.cpp.

The models are the chain GGUFs of ``tests/support/said_gguf.py`` that say a
thinking reply token by token (``<think>`` tags as plain or control tokens,
gpt-oss's harmony channels, a harmony tool call) and one that cannot think.
What a client sees is Anthropic's: a ``thinking`` block before the ``text``
(streamed as ``thinking_delta``s in a block of its own), ``thinking`` asked of
a model that cannot think relaxed away as Ollama does, and the thinking blocks
of earlier turns rendered again as the turn's reasoning.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import pytest

from api.anthropic_request import read_messages_request
from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.said_gguf import (
    ANSWER,
    MIDDLE,
    THINKING,
    add_said_models,
)
from tests.test_api_anthropic import sse_events

ASK: Any = [{"role": "user", "content": "What is the capital of France?"}]
ENABLED: Any = {"type": "enabled", "budget_tokens": 2048}
WEATHER: Any = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("said")
    engine = Engine(folder / "store", machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    add_said_models(engine, folder)
    try:
        with running_api(engine) as base_url:
            yield base_url
    finally:
        engine.close()


@pytest.fixture
def client(server: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server, api_key="unused", max_retries=0)


def blocks(message: anthropic.types.Message) -> list[tuple[str, str]]:
    """Each block's type and its text (the thinking, the text, or the call's name)."""
    said = []
    for block in message.content:
        if block.type == "thinking":
            said.append(("thinking", block.thinking))
        elif block.type == "text":
            said.append(("text", block.text))
        elif block.type == "tool_use":
            said.append(("tool_use", block.name))
    return said


def input_tokens(message: anthropic.types.Message) -> int:
    return message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)


# the reply -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["thinker", "control", "harmony"])
def test_the_reasoning_is_a_thinking_block_before_the_text(client: anthropic.Anthropic, model: str) -> None:
    reply = client.messages.create(model=model, max_tokens=64, messages=ASK, thinking=ENABLED)
    assert blocks(reply) == [("thinking", THINKING), ("text", ANSWER)]
    thinking = reply.content[0]
    assert thinking.type == "thinking" and thinking.signature == ""  # Ollama signs nothing
    assert reply.stop_reason == "end_turn" and reply.usage.output_tokens > 0


def test_adaptive_or_no_thinking_leaves_it_to_the_model_and_disabled_turns_it_off(
    client: anthropic.Anthropic,
) -> None:
    for thinking in ({"type": "adaptive"}, None):
        extra: Any = {"thinking": thinking} if thinking else {}
        reply = client.messages.create(model="thinker", max_tokens=64, messages=ASK, **extra)
        assert blocks(reply) == [("thinking", THINKING), ("text", ANSWER)]
    # the template closes an empty reasoning block, after which this model answers at once
    off = client.messages.create(model="thinker", max_tokens=64, messages=ASK, thinking={"type": "disabled"})
    assert blocks(off) == [("text", ANSWER)]


def test_the_sdk_streams_the_thinking_then_the_text(client: anthropic.Anthropic) -> None:
    whole = client.messages.create(model="control", max_tokens=64, messages=ASK, thinking=ENABLED)
    with client.messages.stream(model="control", max_tokens=64, messages=ASK, thinking=ENABLED) as stream:
        seen = list(stream)
        final = stream.get_final_message()
    thoughts = [e.thinking for e in seen if e.type == "thinking"]
    texts = [e.text for e in seen if e.type == "text"]
    assert "".join(thoughts) == THINKING and len(thoughts) == 2  # as the tokens came
    assert "".join(texts) == ANSWER
    assert blocks(final) == blocks(whole) == [("thinking", THINKING), ("text", ANSWER)]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == whole.usage.output_tokens
    assert final.content[0].type == "thinking" and final.content[0].signature == ""


def test_the_event_stream_opens_a_thinking_block_then_a_text_block(server: str) -> None:
    body = {"model": "thinker", "max_tokens": 64, "messages": ASK, "thinking": ENABLED, "stream": True}
    events = sse_events(httpx.post(f"{server}/v1/messages", json=body, timeout=30).text)
    shape = [(name, data.get("index")) for name, data in events if name != "content_block_delta"]
    assert shape == [
        ("message_start", None),
        ("ping", None),
        ("content_block_start", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert starts == [{"type": "thinking", "thinking": "", "signature": ""}, {"type": "text", "text": ""}]
    deltas = [data for name, data in events if name == "content_block_delta"]
    assert {(d["index"], d["delta"]["type"]) for d in deltas} == {(0, "thinking_delta"), (1, "text_delta")}
    assert "".join(d["delta"].get("thinking", "") for d in deltas) == THINKING
    assert "".join(d["delta"].get("text", "") for d in deltas) == ANSWER
    assert not any(d["delta"]["type"] == "signature_delta" for d in deltas)  # Ollama sends none


def test_display_omitted_keeps_the_block_and_leaves_out_the_thinking(
    server: str, client: anthropic.Anthropic
) -> None:
    omitted: Any = {**ENABLED, "display": "omitted"}
    reply = client.messages.create(model="thinker", max_tokens=64, messages=ASK, thinking=omitted)
    assert blocks(reply) == [("thinking", ""), ("text", ANSWER)]
    body = {"model": "thinker", "max_tokens": 64, "messages": ASK, "thinking": omitted, "stream": True}
    events = sse_events(httpx.post(f"{server}/v1/messages", json=body, timeout=30).text)
    deltas = [data["delta"]["type"] for name, data in events if name == "content_block_delta"]
    assert "thinking_delta" not in deltas and "text_delta" in deltas


def test_a_harmony_call_after_reasoning_is_a_tool_use_block(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model="caller", max_tokens=64, messages=ASK, tools=WEATHER)
    assert blocks(reply) == [("thinking", THINKING), ("tool_use", "get_weather")]
    assert reply.stop_reason == "tool_use" and reply.content[1].type == "tool_use"
    assert reply.content[1].input == {"city": "Paris"}
    with client.messages.stream(model="caller", max_tokens=64, messages=ASK, tools=WEATHER) as stream:
        final = stream.get_final_message()
    assert blocks(final) == blocks(reply) and final.stop_reason == "tool_use"


# what thinking is asked ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "think"),
    [
        ({}, None),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, True),
        ({"thinking": {"type": "adaptive"}}, None),
        ({"thinking": {"type": "disabled"}}, False),
        ({"thinking": {"type": "between_tools"}}, False),
        ({"output_config": {"effort": "low"}}, "low"),
        ({"output_config": {"effort": " XHigh "}}, "high"),  # Ollama's anthropic layer: xhigh is high
        ({"output_config": {"effort": "max"}, "thinking": {"type": "adaptive"}}, "max"),
        ({"output_config": {"effort": "medium"}, "thinking": ENABLED}, "medium"),  # Ollama: true
        ({"output_config": {"effort": "high"}, "thinking": {"type": "disabled"}}, False),
        ({"output_config": {"effort": ""}}, None),
    ],
)
def test_thinking_and_effort_become_ollamas_think(fields: dict[str, Any], think: object) -> None:
    chat = read_messages_request({"model": "m", "max_tokens": 8, "messages": ASK, **fields})
    assert chat.think == think


def test_the_effort_reaches_the_template_as_ollamas_think_level(
    server: str, client: anthropic.Anthropic
) -> None:
    ollamas = ollama.Client(host=server)
    prompts = {}
    for effort, level in (("low", "low"), ("medium", "medium"), ("high", "high"), ("xhigh", "high")):
        reply = client.messages.create(
            model="harmony", max_tokens=1, messages=ASK, extra_body={"output_config": {"effort": effort}}
        )
        same = ollamas.chat("harmony", messages=ASK, think=level, options={"num_predict": 1})  # type: ignore[arg-type]
        prompts[effort] = input_tokens(reply)
        assert prompts[effort] == same.prompt_eval_count
    assert len({prompts["low"], prompts["medium"], prompts["high"]}) == 3  # the level is in the prompt


def test_a_model_that_cannot_think_answers_without_thinking_as_ollama_relaxes_it(
    server: str, client: anthropic.Anthropic
) -> None:
    for fields in ({"thinking": ENABLED}, {"extra_body": {"output_config": {"effort": "high"}}}):
        reply = client.messages.create(model="plain", max_tokens=64, messages=ASK, **fields)
        assert blocks(reply) == [("text", MIDDLE.text)] and reply.stop_reason == "end_turn"
    with client.messages.stream(model="plain", max_tokens=64, messages=ASK, thinking=ENABLED) as stream:
        assert "".join(stream.text_stream) == MIDDLE.text
    with pytest.raises(ollama.ResponseError) as refused:  # Ollama's own route still refuses it
        ollama.Client(host=server).chat("plain", messages=ASK, think=True)
    assert refused.value.status_code == 400
    with pytest.raises(anthropic.NotFoundError):  # relaxing looks the model up: an unknown one is a 404
        client.messages.create(model="nope", max_tokens=8, messages=ASK, thinking=ENABLED)


# thinking in the history ---------------------------------------------------------------------


def test_thinking_blocks_of_earlier_turns_are_rendered_as_their_reasoning(
    server: str, client: anthropic.Anthropic
) -> None:
    first = client.messages.create(model="gothink", max_tokens=64, messages=ASK, thinking=ENABLED)
    assert blocks(first) == [("thinking", THINKING), ("text", ANSWER)]
    history: Any = [*ASK, {"role": "assistant", "content": first.content}, *ASK]
    second = client.messages.create(model="gothink", max_tokens=1, messages=history)
    same = ollama.Client(host=server).chat(
        "gothink",
        messages=[*ASK, {"role": "assistant", "content": ANSWER, "thinking": THINKING}, *ASK],
        options={"num_predict": 1},
    )
    assert input_tokens(second) == same.prompt_eval_count
    without: Any = [*ASK, {"role": "assistant", "content": ANSWER}, *ASK]
    assert input_tokens(client.messages.create(model="gothink", max_tokens=1, messages=without)) < (
        input_tokens(second)
    )


def test_thinking_blocks_are_the_assistant_messages_thinking() -> None:
    turn = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "First.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}},
            {"type": "thinking", "thinking": "Second.", "signature": "sig"},
        ],
    }
    only: Any = {"role": "assistant", "content": [{"type": "thinking", "thinking": "Alone."}]}
    chat = read_messages_request({"model": "m", "max_tokens": 8, "messages": [*ASK, turn, only]})
    assert chat.messages[1:] == [
        {
            "role": "assistant",
            "content": "",
            "thinking": "First.\nSecond.",
            "tool_calls": [{"id": "t1", "function": {"name": "get_weather", "arguments": {}}}],
        },
        {"role": "assistant", "content": "", "thinking": "Alone."},  # kept, as Ollama keeps it
    ]
