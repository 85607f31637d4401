"""OpenAI's Responses API (``/v1/responses``) on a real uvicorn, driven by the real ``openai`` client.

The model is the chain GGUF that says ``Checking.<tool_call>{...}</tool_call>``
by rote (``tests/test_api_tools.py``), here with a chat template that writes
the tools, the calls and the tool names into the prompt: a Responses request
and the chat completion it stands for must then make a prompt of the same
length (``usage.input_tokens`` against ``usage.prompt_tokens``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import zstandard

from api.limits import MAX_MESSAGES, MAX_TOOLS
from api.responses_input import chat_of
from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.caller_gguf import SAID, caller_vocab
from tests.support.chain_gguf import write_chain_gguf
from tests.support.fake_hub import FakeHub
from tests.test_api_tools import TOOLS

MODEL = "hf.co/acme/Caller-GGUF:F32"
ASK = "What is the weather in Paris?"
TEMPLATE = (
    "{% if tools %}<|im_start|>system\n{{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}{% if m.tool_name %} {{ m.tool_name }}{% endif %}\n"
    "{{ m.content }}{% if m.tool_calls %}{{ m.tool_calls | tojson }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
FUNCTION: Any = {  # the Responses shape of test_api_tools.TOOLS: flat
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": TOOLS[0]["function"]["parameters"],
}


def part(kind: str, text: str) -> dict[str, str]:
    return {"type": kind, "text": text}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tokens = caller_vocab()[0]
    ids = [tokens.index(piece) for piece in SAID]
    chain = dict(zip(ids, ids[1:], strict=False)) | {ids[-1]: 2}
    root = tmp_path_factory.mktemp("responses")
    path = write_chain_gguf(
        root / "Caller-F32.gguf", chain, default=ids[0], vocab=caller_vocab(), chat_template=TEMPLATE
    )
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Caller-GGUF", {"Caller-F32.gguf": path})
        engine = Engine(root / "store", machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
        engine.pull("acme/Caller-GGUF")
    try:
        with running_api(engine) as base_url:
            yield base_url
    finally:
        engine.close()


@pytest.fixture
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


# text ------------------------------------------------------------------------------


def test_a_reply_comes_as_one_message_with_usage(client: openai.OpenAI) -> None:
    reply = client.responses.create(model=MODEL, input=ASK, temperature=0)
    assert reply.object == "response" and reply.id.startswith("resp_") and reply.model == MODEL
    assert reply.status == "completed" and reply.incomplete_details is None and reply.error is None
    assert reply.output_text == "".join(SAID) and reply.store is False
    (item,) = reply.output
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert [part.type for part in item.content] == ["output_text"]
    usage = reply.usage
    assert usage is not None and usage.output_tokens == len(SAID) and usage.input_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_a_reply_cut_by_max_output_tokens_is_incomplete(client: openai.OpenAI) -> None:
    reply = client.responses.create(model=MODEL, input=ASK, temperature=0, max_output_tokens=3)
    assert reply.status == "incomplete" and reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_output_tokens" and reply.max_output_tokens == 3
    assert reply.output_text == "".join(SAID[:3]) and reply.output[0].status == "incomplete"
    assert reply.usage is not None and reply.usage.output_tokens == 3
    events = list(client.responses.create(model=MODEL, input=ASK, max_output_tokens=3, stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details is not None
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "".join(SAID[:3])


def test_a_stream_tells_every_step_in_order(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input=ASK, temperature=0, stream=True))
    kinds = [e.type for e in events]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert [k for k in kinds if k != "response.output_text.delta"] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert (
        kinds.index("response.output_text.done") - kinds.index("response.content_part.added")
        == len(deltas) + 1
    )
    assert "".join(deltas) == "".join(SAID) and [e.sequence_number for e in events] == list(
        range(len(events))
    )
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    completed = events[-1].response
    assert completed.status == "completed" and completed.output_text == "".join(SAID)
    assert completed.usage is not None and completed.usage.output_tokens == len(SAID)
    with client.responses.stream(model=MODEL, input=ASK, temperature=0) as stream:
        streamed = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert streamed == final.output_text == "".join(SAID)


def test_the_raw_stream_is_named_server_sent_events(server: str) -> None:
    body = {"model": MODEL, "input": ASK, "stream": True, "max_output_tokens": 2}
    response = httpx.post(f"{server}/v1/responses", json=body, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    for event in response.text.split("\n\n")[:-1]:
        name, data = event.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        assert json.loads(data[len("data: ") :])["type"] == name[len("event: ") :]


def test_input_items_make_the_prompt_the_chat_messages_make(client: openai.OpenAI) -> None:
    said = [part("input_text", "Hi "), part("input_text", "there")]
    items: Any = [
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user", "content": said},
        {"type": "message", "role": "assistant", "content": [part("output_text", "Hello.")]},
        {"role": "user", "content": ASK},
    ]  # fmt: skip
    reply = client.responses.create(
        model=MODEL, instructions="You are terse.", input=items, max_output_tokens=1
    )
    messages: Any = [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": ASK},
    ]
    chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1)
    assert reply.usage is not None and chat.usage is not None
    assert reply.usage.input_tokens == chat.usage.prompt_tokens
    shorter = client.responses.create(model=MODEL, input=items[1:], max_output_tokens=1)
    assert shorter.usage is not None and shorter.usage.input_tokens < reply.usage.input_tokens


# tools -----------------------------------------------------------------------------


def test_a_call_comes_as_a_function_call_item_after_the_text(client: openai.OpenAI) -> None:
    reply = client.responses.create(model=MODEL, input=ASK, tools=[FUNCTION], temperature=0)
    assert reply.status == "completed" and [i.type for i in reply.output] == ["message", "function_call"]
    message, call = reply.output
    assert message.type == "message" and reply.output_text == "Checking."
    assert call.type == "function_call" and call.status == "completed" and call.name == "get_weather"
    assert call.call_id.startswith("call_") and call.id and call.id.startswith("fc_")
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert reply.tools[0].type == "function" and reply.tools[0].name == "get_weather"


def test_a_streamed_call_comes_with_its_arguments(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(model=MODEL, input=ASK, tools=[FUNCTION], temperature=0, stream=True)
    )
    kinds = [e.type for e in events if e.type != "response.output_text.delta"]
    assert kinds[kinds.index("response.output_item.done") + 1 :] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert json.loads(done.arguments) == {"city": "Paris"} and done.output_index == 1
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.item.type for e in added] == ["message", "function_call"]
    with client.responses.stream(model=MODEL, input=ASK, tools=[FUNCTION], temperature=0) as stream:
        final = stream.get_final_response()
    assert [i.type for i in final.output] == ["message", "function_call"]
    assert final.output[1].type == "function_call" and final.output[1].name == "get_weather"


def test_a_call_and_its_output_go_back_as_the_chat_history_does(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input=ASK, tools=[FUNCTION], temperature=0)
    call = first.output[1]
    assert call.type == "function_call"
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 °C"}
    history: Any = [
        {"role": "user", "content": ASK},
        *[item.model_dump(exclude_none=True) for item in first.output],  # replayed, as Codex does
        result,
    ]
    second = client.responses.create(model=MODEL, input=history, tools=[FUNCTION], max_output_tokens=1)
    called = {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    messages: Any = [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": "Checking.", "tool_calls": [called]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21 °C"},
    ]
    chat = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, max_tokens=1)
    assert second.usage is not None and chat.usage is not None
    assert second.usage.input_tokens == chat.usage.prompt_tokens
    without = client.responses.create(model=MODEL, input=history[:1], tools=[FUNCTION], max_output_tokens=1)
    assert without.usage is not None and without.usage.input_tokens < second.usage.input_tokens


def test_items_become_the_chat_the_templates_take() -> None:
    call = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'}
    chat = chat_of(
        {
            "input": [
                {"role": "user", "content": ASK},
                {"type": "reasoning", "summary": [], "encrypted_content": "They want weather."},
                {"type": "message", "role": "assistant", "content": [part("output_text", "Checking.")]},
                call,
                {"role": "assistant", "content": "One moment."},  # replayed between a call and its output
                {"type": "function_call_output", "call_id": "c1", "output": [part("input_text", "sunny")]},
            ],
            "tools": [{"type": "namespace", "name": "meteo", "tools": [FUNCTION]}],
            "temperature": 0.5,
            "max_output_tokens": 9,
            "reasoning": {"effort": "minimal"},
        }
    )
    assert chat.messages == [
        {"role": "user", "content": ASK},
        {
            "role": "assistant",
            "content": "Checking.\nOne moment.",
            "thinking": "They want weather.",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    assert chat.tools is not None and [t["function"]["name"] for t in chat.tools] == ["meteo.get_weather"]
    assert chat.options == {"temperature": 0.5, "num_predict": 9} and chat.think == "low"
    assert chat_of({"input": "hi", "tools": [FUNCTION], "tool_choice": "none"}).tools is None


# what is accepted, what is refused -------------------------------------------------


def test_settings_ollama_ignores_are_accepted_and_echoed(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model=MODEL,
        input=ASK,
        store=True,
        include=["reasoning.encrypted_content"],
        reasoning={"effort": "none", "summary": "auto"},  # this model cannot think: "none" only
        text={"format": {"type": "text"}, "verbosity": "low"},
        metadata={"who": "test"},
        parallel_tool_calls=False,
        truncation="auto",
        max_output_tokens=2,
    )
    assert reply.store is False and reply.metadata == {"who": "test"} and reply.truncation == "auto"
    assert reply.reasoning is not None and reply.reasoning.effort == "none"
    assert reply.text is not None and reply.text.format is not None and reply.text.format.type == "text"


def test_text_format_json_schema_constrains_the_reply(client: openai.OpenAI) -> None:
    """Even this model, which says one thing by rote, answers in the schema: a grammar picks its tokens."""
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 8},
            "rank": {"type": "integer", "minimum": 1, "maximum": 99},
        },
        "required": ["city", "rank"],
        "additionalProperties": False,
    }
    reply = client.responses.create(
        model=MODEL,
        input=ASK,
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
        max_output_tokens=2000,  # a bounded schema: it always ends, with all the blanks a grammar allows
        temperature=0,
    )
    assert reply.status == "completed", reply.incomplete_details
    data = json.loads(reply.output_text)
    assert set(data) == {"city", "rank"} and isinstance(data["rank"], int) and data["rank"] >= 1
    assert (
        reply.text is not None and reply.text.format is not None and reply.text.format.type == "json_schema"
    )


def test_a_forced_tool_choice_makes_the_reply_a_call(client: openai.OpenAI) -> None:
    bounded: Any = {  # arguments that always end within max_output_tokens
        **FUNCTION,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 8}},
            "required": ["city"],
            "additionalProperties": False,
        },
    }
    reply = client.responses.create(
        model=MODEL,
        input=ASK,
        tools=[bounded],
        tool_choice={"type": "function", "name": FUNCTION["name"]},
        max_output_tokens=2000,  # greedy, this model takes all the blanks a grammar allows
        temperature=0,
    )
    calls = [item for item in reply.output if item.type == "function_call"]
    assert len(calls) == 1, reply.output and calls[0].name == FUNCTION["name"]
    assert isinstance(json.loads(calls[0].arguments), dict)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"previous_response_id": "resp_1"}, "does not store responses"),
    ({"conversation": "conv_1"}, "send the whole conversation"),
    ({"background": True}, "background"),
    (
        {"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object", "not": {}}}}},
        "not",
    ),
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": "object"}}}, "JSON schema object"),
    ({"text": "json"}, "text must be an object"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"reasoning": "high"}, "reasoning must be an object"),
    ({"reasoning": {"effort": "low"}}, "does not support thinking"),  # as Ollama: no relaxing here
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:x"}]}]}, "image"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "file inputs"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]}, "text must be a string"),
    ({"input": [{"role": "user", "content": {"text": "hi"}}]}, "content must be a string or a list"),
    ({"input": [{"role": "tool", "content": "hi"}]}, "role must be one of"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
    ({"input": [{"content": "no role"}]}, "must have a type"),
    ({"input": [7]}, "must be an object"),
    ({"input": [{"type": "function_call", "call_id": "c"}]}, "name must be a non-empty string"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}, "output must be a string"),
    ({"input": []}, "at least one message"),
    ({"input": 5}, "input must be a string or a list"),
    ({"input": [{"role": "user", "content": "x"}] * (MAX_MESSAGES + 1)}, "input items"),
    ({"tools": [{"type": "web_search"}]}, "'web_search' are not supported"),
    ({"tools": [{"type": "function"}]}, "name must be a non-empty string"),
    ({"tools": {"type": "function"}}, "tools must be a list"),
    ({"tools": [{"type": "namespace", "name": "n", "tools": [FUNCTION] * (MAX_TOOLS + 1)}]}, "at most"),
    ({"tools": [FUNCTION], "tool_choice": {"type": "function", "name": "nowhere"}}, "nowhere"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"max_output_tokens": "8"}, "max_output_tokens"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"stream": "yes"}, "stream must be true or false"),
    ({"instructions": ["x"]}, "instructions must be a string"),
    ({"model": ""}, "model is required"),
]


@pytest.mark.parametrize(("fields", "words"), BAD)
def test_what_cannot_be_served_is_a_400_that_says_why(
    server: str, fields: dict[str, Any], words: str
) -> None:
    body = {"model": MODEL, "input": ASK, "max_output_tokens": 2, **fields}
    response = httpx.post(f"{server}/v1/responses", json=body, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and words in error["message"], error


def test_an_unknown_model_is_404_and_the_client_raises(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope:latest", input=ASK)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input=ASK, previous_response_id="resp_123")
    assert "previous_response_id" in caught.value.message


def test_deep_or_huge_bodies_are_4xx(server: str) -> None:
    nested: Any = FUNCTION
    for _ in range(70):
        nested = {"type": "namespace", "name": "n", "tools": [nested]}
    for body, status in (
        (json.dumps({"model": MODEL, "input": ASK, "tools": [nested]}).encode(), 400),
        (b'{"model": "m", "input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),
        (b'{"model": "m", "input": "' + b"x" * (17 << 20) + b'"}', 413),
    ):
        response = httpx.post(f"{server}/v1/responses", content=body, timeout=30)
        assert response.status_code == status and response.json()["error"]["message"]


# compressed bodies -----------------------------------------------------------------


def zstd(body: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(body)


def test_a_zstd_body_as_codex_sends_it_is_served(server: str) -> None:
    body = json.dumps({"model": MODEL, "input": ASK, "temperature": 0}).encode()
    headers = {"content-type": "application/json", "content-encoding": "zstd"}
    response = httpx.post(f"{server}/v1/responses", content=zstd(body), headers=headers, timeout=30)
    assert response.status_code == 200 and response.json()["output"][0]["content"][0]["text"] == "".join(SAID)


@pytest.mark.parametrize(
    ("content", "encoding", "status", "words"),
    [
        (zstd(b'{"model": "m", "input": "' + b"x" * (40 << 20) + b'"}'), "zstd", 413, "larger than 16 MiB"),
        (b"not zstd at all", "zstd", 400, "does not decompress"),
        (zstd(b'{"model": "m", "input": "x"}')[:-4], "zstd", 400, "invalid JSON"),  # cut short
        (gzip.compress(b'{"model": "m", "input": "x"}'), "gzip", 415, "zstd"),
    ],
)
def test_a_body_that_inflates_too_far_or_not_at_all_is_a_4xx(
    server: str, content: bytes, encoding: str, status: int, words: str
) -> None:
    headers = {"content-type": "application/json", "content-encoding": encoding}
    response = httpx.post(f"{server}/v1/responses", content=content, headers=headers, timeout=30)
    assert response.status_code == status and words in response.json()["error"]["message"]
