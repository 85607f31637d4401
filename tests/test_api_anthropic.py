"""Anthropic's Messages API on a real uvicorn, driven by the real ``anthropic`` SDK (httpx for raw shapes).

The model is the chain GGUF that says ``Checking.<tool_call>{...get_weather...}</tool_call>``
by rote (``tests/support/caller_gguf.py``): without tools that is its text,
with the ``get_weather`` tool a call, so text, tool calls, stop sequences and
max_tokens all have answers known in advance.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import pytest

from api.anthropic import events
from api.anthropic_request import read_messages_request
from engine import Engine, Generation, LlamadeckError, Machine, Token
from tests.support.api_server import running_api
from tests.support.caller_gguf import SAID, WEATHER, write_caller_gguf
from tests.support.fake_hub import FakeHub

MODEL = "hf.co/acme/Caller-GGUF:F32"
SAYS = "".join(SAID)
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS: Any = [{"name": "get_weather", "description": "The weather in a city", "input_schema": WEATHER}]
CALL = {"city": "Paris"}


SHORT: Any = {  # bounded, so a reply always ends within max_tokens
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "maximum": 9}},
    "required": ["city", "days"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_caller_gguf(tmp_path_factory.mktemp("api") / "Caller-F32.gguf")


@pytest.fixture
def server(model_file: Path) -> Iterator[str]:
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Caller-GGUF", {"Caller-F32.gguf": model_file})
        engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
        engine.pull("acme/Caller-GGUF")
    try:
        with running_api(engine) as base_url:
            yield base_url
    finally:
        engine.close()


@pytest.fixture
def client(server: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server, api_key="unused", max_retries=0)


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` of each server-sent event; the name must match the data's type."""
    events = []
    for chunk in text.split("\n\n"):
        if not chunk:
            continue
        name_line, data_line = chunk.split("\n")
        name, data = name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))
        assert name_line.startswith("event: ") and data["type"] == name, chunk
        events.append((name, data))
    return events


# text ------------------------------------------------------------------------------


def test_a_message_answers_text_with_stop_reason_and_usage(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=MODEL, max_tokens=64, messages=ASK, extra_body={"temperature": 0})
    assert reply.type == "message" and reply.role == "assistant" and reply.model == MODEL
    assert reply.id.startswith("msg_")
    assert [(b.type, getattr(b, "text", None)) for b in reply.content] == [("text", SAYS)]
    assert reply.stop_reason == "end_turn" and reply.stop_sequence is None
    assert reply.usage.output_tokens == len(SAID)
    assert reply.usage.input_tokens > 0 and reply.usage.cache_creation_input_tokens == 0


def test_max_tokens_cuts_the_reply_short(client: anthropic.Anthropic) -> None:
    sampling = {"temperature": 0.5, "top_k": 1, "top_p": 0.5}  # not in this SDK's signature any more
    reply = client.messages.create(model=MODEL, max_tokens=2, messages=ASK, extra_body=sampling)
    assert reply.content[0].type == "text" and reply.content[0].text == "".join(SAID[:2])
    assert reply.stop_reason == "max_tokens" and reply.usage.output_tokens == 2


def test_a_stop_sequence_ends_the_reply_and_is_named(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(
        model=MODEL, max_tokens=64, messages=ASK, stop_sequences=["nothing", "<tool_"]
    )
    assert reply.content[0].type == "text" and reply.content[0].text == "Checking."
    assert reply.stop_reason == "stop_sequence" and reply.stop_sequence == "<tool_"
    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=ASK, stop_sequences=["<tool_"]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "<tool_"


def test_streaming_gives_the_same_message_through_the_sdk(client: anthropic.Anthropic) -> None:
    whole = client.messages.create(model=MODEL, max_tokens=64, messages=ASK)
    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=ASK, metadata={"user_id": "u"}
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == SAYS and len(texts) > 1
    assert [(b.type, b.text) for b in final.content if b.type == "text"] == [("text", SAYS)]
    assert len(final.content) == len(whole.content) and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(SAID)
    total = final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0)
    assert total == whole.usage.input_tokens + (whole.usage.cache_read_input_tokens or 0)


def test_the_event_stream_is_anthropics(server: str) -> None:
    body = {"model": MODEL, "max_tokens": 64, "messages": ASK, "stream": True}
    response = httpx.post(f"{server}/v1/messages", json=body, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] > 0
    assert events[2][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert {d["type"] for d in deltas} == {"text_delta"} and "".join(d["text"] for d in deltas) == SAYS
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == len(SAID)
    assert (
        delta["usage"]["input_tokens"] + delta["usage"]["cache_read_input_tokens"]
        == start["usage"]["input_tokens"]
    )


def test_a_failure_after_the_first_token_is_an_error_event() -> None:
    async def failing() -> AsyncIterator[Generation]:
        yield Token("Check")
        raise LlamadeckError("llama_decode failed")

    async def streamed() -> str:
        return "".join([event async for event in events({"id": "msg_1"}, 5, failing())])

    names = [name for name, _ in sse_events(asyncio.run(streamed()))]
    assert names == ["message_start", "ping", "content_block_start", "content_block_delta", "error"]
    error = sse_events(asyncio.run(streamed()))[-1][1]
    assert error == {"type": "error", "error": {"type": "api_error", "message": "llama_decode failed"}}


# the request as the engine sees it -------------------------------------------------------


def prompt_tokens(server: str, messages: list[dict[str, Any]], tools: Any = None) -> int:
    """What the same conversation costs through Ollama's /api/chat: the prompt the template made."""
    reply = ollama.Client(host=server).chat(MODEL, messages=messages, tools=tools, options={"num_predict": 1})
    return reply.prompt_eval_count or 0


def anthropic_prompt_tokens(client: anthropic.Anthropic, **request: Any) -> int:
    reply = client.messages.create(model=MODEL, max_tokens=1, **request)
    return reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0)


def test_system_as_a_string_or_blocks_and_history_render_as_ollamas_messages(
    server: str, client: anthropic.Anthropic
) -> None:
    history: Any = [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    same = [
        {"role": "system", "content": "Be brief.\nAnswer in French."},
        {"role": "user", "content": "Hi\nthere"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    expected = prompt_tokens(server, same)
    assert (
        anthropic_prompt_tokens(client, messages=history, system="Be brief.\nAnswer in French.") == expected
    )
    blocks: Any = [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}]
    assert anthropic_prompt_tokens(client, messages=history, system=blocks) == expected
    assert anthropic_prompt_tokens(client, messages=history) == prompt_tokens(server, same[1:])


def test_tool_use_and_tool_result_blocks_become_calls_and_tool_messages() -> None:
    data = {
        "model": MODEL,
        "max_tokens": 8,
        "tools": TOOLS,
        "messages": [
            *ASK,
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "The user wants weather.", "signature": "x"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": CALL},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Thanks."},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "sunny"}],
                    },
                ],
            },
        ],
    }
    chat = read_messages_request(data)
    assert chat.messages[1:] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "thinking": "The user wants weather.",
            "tool_calls": [{"id": "toolu_1", "function": {"name": "get_weather", "arguments": CALL}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "user", "content": "Thanks."},
    ]
    assert chat.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER,
            },
        }
    ]
    assert chat.options == {"num_predict": 8} and not chat.stream


# tools -------------------------------------------------------------------------------


def test_the_models_call_is_a_tool_use_block(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=MODEL, max_tokens=64, messages=ASK, tools=TOOLS)
    assert reply.stop_reason == "tool_use"
    text, call = reply.content
    assert text.type == "text" and text.text == "Checking."
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == CALL and call.id
    none = client.messages.create(
        model=MODEL, max_tokens=64, messages=ASK, tools=TOOLS, tool_choice={"type": "none"}
    )
    assert [b.type for b in none.content] == ["text"] and none.stop_reason == "end_turn"
    # forced (Ollama only accepts it): a call of that tool, whatever the model would say; a tool with
    # bounded arguments, so the call always ends within max_tokens
    bounded: Any = [{"name": "get_weather", "description": "The weather", "input_schema": SHORT}]
    forced = client.messages.create(
        model=MODEL,
        max_tokens=2000,
        messages=ASK,
        tools=bounded,
        extra_body={"temperature": 0},
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert forced.stop_reason == "tool_use"
    (call,) = [b for b in forced.content if b.type == "tool_use"]
    assert call.name == "get_weather" and set(call.input) == {"city", "days"}


def test_a_streamed_call_is_an_input_json_delta_and_the_sdk_rebuilds_it(
    server: str, client: anthropic.Anthropic
) -> None:
    with client.messages.stream(model=MODEL, max_tokens=64, messages=ASK, tools=TOOLS) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use"]
    call = final.content[1]
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == CALL
    body = {"model": MODEL, "max_tokens": 64, "messages": ASK, "tools": TOOLS, "stream": True}
    events = sse_events(httpx.post(f"{server}/v1/messages", json=body, timeout=30).text)
    starts = [data for name, data in events if name == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1]
    block = starts[1]["content_block"]
    assert block["id"].startswith("call_") and call.id.startswith("call_")
    assert block == {"type": "tool_use", "id": block["id"], "name": "get_weather", "input": {}}
    (partial,) = [d["delta"] for n, d in events if n == "content_block_delta" and d["index"] == 1]
    assert partial["type"] == "input_json_delta" and json.loads(partial["partial_json"]) == CALL
    assert [d["index"] for n, d in events if n == "content_block_stop"] == [0, 1]


def test_a_tool_round_trip(client: anthropic.Anthropic) -> None:
    first = client.messages.create(model=MODEL, max_tokens=64, messages=ASK, tools=TOOLS)
    call = next(b for b in first.content if b.type == "tool_use")
    history: Any = [
        *ASK,
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 °C"}],
        },
    ]
    second = client.messages.create(model=MODEL, max_tokens=64, messages=history, tools=TOOLS)
    assert second.stop_reason == "tool_use"  # the model says its call again, by rote
    error_result: Any = [
        *history[:2],
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "is_error": True}]},
    ]
    assert (
        client.messages.create(model=MODEL, max_tokens=1, messages=error_result).stop_reason == "max_tokens"
    )


# errors ------------------------------------------------------------------------------


def test_an_unknown_model_is_not_found_error(client: anthropic.Anthropic, server: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="nobody/nothing", max_tokens=8, messages=ASK)
    assert caught.value.status_code == 404
    response = httpx.post(
        f"{server}/v1/messages", json={"model": "nothing", "max_tokens": 8, "messages": ASK}
    )
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error" and body["error"]["message"]


def test_output_config_format_constrains_the_reply(client: anthropic.Anthropic) -> None:
    """Even this model, which says one call by rote, answers in the schema: a grammar picks its tokens."""
    reply = client.messages.create(
        model=MODEL,
        max_tokens=2000,  # a bounded schema: it always ends, with all the blanks a grammar allows
        messages=ASK,
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": SHORT}}, "temperature": 0},
    )
    (block,) = [b for b in reply.content if b.type == "text"]
    data = json.loads(block.text)
    assert set(data) == {"city", "days"} and isinstance(data["days"], int) and data["days"] <= 9
    with pytest.raises(anthropic.BadRequestError, match="not"):
        client.messages.create(
            model=MODEL,
            max_tokens=8,
            messages=ASK,
            extra_body={"output_config": {"format": {"type": "json_schema", "schema": {"not": {}}}}},
        )


def test_tool_choice_any_forces_a_call(client: anthropic.Anthropic) -> None:
    tool: Any = {"name": "weather", "description": "the weather", "input_schema": SHORT}
    reply = client.messages.create(
        model=MODEL,
        max_tokens=2000,  # greedy, this model takes all the blanks a grammar allows between JSON tokens
        messages=ASK,
        tools=[tool],
        tool_choice={"type": "any"},
        extra_body={"temperature": 0},
    )
    calls = [b for b in reply.content if b.type == "tool_use"]
    assert len(calls) == 1, reply.content
    assert calls[0].name == "weather" and isinstance(calls[0].input, dict)
    assert reply.stop_reason == "tool_use"


def test_what_is_not_built_yet_is_a_clear_400(client: anthropic.Anthropic) -> None:
    document: Any = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    }
    refused: list[tuple[dict[str, Any], str]] = [
        ({"messages": [{"role": "user", "content": [document]}]}, "document content"),  # images: vision tests
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tools"),
    ]
    for fields, words in refused:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(model=MODEL, max_tokens=8, messages=ASK, extra_body=fields)
        assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        assert words in caught.value.message and "not supported yet" in caught.value.message
    ok = client.messages.create(
        model=MODEL,
        max_tokens=1,
        messages=ASK,
        thinking={"type": "disabled"},
        extra_body={"output_config": {"effort": "low"}},  # disabled wins over the effort, as in Ollama
    )
    assert ok.stop_reason == "max_tokens"


def test_wrong_paths_and_methods_answer_in_anthropics_shape(server: str) -> None:
    for method, path, status, kind in (
        ("GET", "/v1/messages", 405, "invalid_request_error"),
        ("POST", "/v1/messages/count_tokens", 404, "not_found_error"),
    ):
        response = httpx.request(method, f"{server}{path}", json={})
        assert response.status_code == status
        assert response.json() == {
            "type": "error",
            "error": {"type": kind, "message": response.json()["error"]["message"]},
        }


OK: dict[str, Any] = {"model": MODEL, "max_tokens": 4, "messages": ASK}
BAD_FIELDS: list[dict[str, Any]] = [
    {"model": None},
    {"model": 5},
    {"model": ""},
    {"max_tokens": None},
    {"max_tokens": 0},
    {"max_tokens": -1},
    {"max_tokens": True},
    {"max_tokens": "8"},
    {"max_tokens": 1.5},
    {"messages": []},
    {"messages": {"role": "user"}},
    {"messages": ["hi"]},
    {"messages": [{"role": "system", "content": "x"}]},
    {"messages": [{"role": "tool", "content": "x"}]},
    {"messages": [{"role": "user", "content": 5}]},
    {"messages": [{"role": "user", "content": [5]}]},
    {"messages": [{"role": "user", "content": [{"text": "no type"}]}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": ["x"]}]}]},
    {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
    {"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]}]},
    {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f"}]}]},
    {
        "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": "x"}]}
        ]
    },
    {"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
    {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": 5}]}]},
    {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "a", "content": [{"type": "image"}]}],
            }
        ]
    },
    {"messages": [{"role": "user", "content": "hi \ud800"}]},
    {"system": 5},
    {"system": [{"type": "image"}]},
    {"system": [{"type": "text"}]},
    {"tools": "get_weather"},
    {"tools": [5]},
    {"tools": [{"name": ""}]},
    {"tools": [{"name": "f", "input_schema": "object"}]},
    {"tools": [{"name": "f", "description": 5}]},
    {"tool_choice": "auto"},
    {"tool_choice": {"type": "tool", "name": "nope"}},
    {"stop_sequences": "x"},
    {"stop_sequences": [1]},
    {"stop_sequences": [""]},
    {"stop_sequences": ["x"] * 1000},
    {"temperature": "hot"},
    {"temperature": -1},
    {"top_p": 2},
    {"top_k": 1.5},
    {"thinking": "on"},
    {"thinking": {"type": "sometimes"}},
    {"thinking": {"type": "enabled", "budget_tokens": "lots"}},
    {"thinking": {"type": "enabled", "budget_tokens": -1}},
    {"thinking": {"type": "adaptive", "display": "hidden"}},
    {"output_config": {"effort": "extreme"}},
    {"output_config": {"effort": 3}},
    {"messages": [{"role": "user", "content": [{"type": "thinking", "thinking": "x", "signature": ""}]}]},
    {"messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": 5}]}]},
    {"stream": "yes"},
    {"output_config": "high"},
]


@pytest.mark.parametrize("fields", BAD_FIELDS, ids=[json.dumps(f)[:60] for f in BAD_FIELDS])
def test_a_field_of_the_wrong_kind_is_invalid_request_error(server: str, fields: dict[str, Any]) -> None:
    for stream in (False, True):
        body = {**OK, "stream": stream, **fields}
        response = httpx.post(f"{server}/v1/messages", content=json.dumps(body).encode(), timeout=30)
        assert response.status_code == 400, (fields, response.text[:300])
        error = response.json()
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        assert isinstance(error["error"]["message"], str) and error["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"", 400, "invalid_request_error"),
        (b"{", 400, "invalid_request_error"),
        (b"[]", 400, "invalid_request_error"),
        (b'{"model": "x", "max_tokens": 1e400}', 400, "invalid_request_error"),
        (b'{"model": "x", "temperature": NaN}', 400, "invalid_request_error"),
        (b'{"messages": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400, "invalid_request_error"),
        (b'{"messages": [' + b"{}," * 300_000 + b"{}]}", 413, "request_too_large"),
    ],
    ids=["empty", "cut", "array", "huge number", "nan", "deep", "too many values"],
)
def test_hostile_bodies_are_4xx_in_anthropics_shape(server: str, body: bytes, status: int, kind: str) -> None:
    response = httpx.post(f"{server}/v1/messages", content=body, timeout=30)
    assert response.status_code == status, response.text[:300]
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == kind


def test_a_huge_system_prompt_or_a_message_past_the_context_is_a_clear_400(server: str) -> None:
    huge = {**OK, "system": "x" * (5 << 20)}
    response = httpx.post(f"{server}/v1/messages", json=huge, timeout=60)
    assert response.status_code == 400 and "system" in response.json()["error"]["message"]
    blocks = [{"type": "text", "text": "word"}] * 20_000
    many = {**OK, "max_tokens": 1, "messages": [{"role": "user", "content": blocks}]}
    response = httpx.post(f"{server}/v1/messages", json=many, timeout=60)
    assert response.status_code == 400 and "context" in response.json()["error"]["message"]
