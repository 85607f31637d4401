"""Tool calls end to end, through a model that calls a tool by rote (the parser itself: test_toolcalls.py).

The model is the chain GGUF of ``tests/support/caller_gguf.py``: llama.cpp
really generates ``Checking.<tool_call>{"name":"get_weather",...}</tool_call>``
token by token and the real ``ollama`` and ``openai`` clients read the answer
from a real uvicorn.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from api.openai_request import chat_messages
from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.caller_gguf import SAID, WEATHER, write_caller_gguf
from tests.support.fake_hub import FakeHub

# end to end: a model that calls get_weather by rote -----------------------------------

CALLER = "hf.co/acme/Caller-GGUF:F32"
TOOLS: Any = [  # Any: the openai client's TypedDicts are not what a test needs to spell
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "The weather in a city", "parameters": WEATHER},
    }
]
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def caller_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_caller_gguf(tmp_path_factory.mktemp("api") / "Caller-F32.gguf")


@pytest.fixture
def server(caller_file: Path) -> Iterator[str]:
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Caller-GGUF", {"Caller-F32.gguf": caller_file})
        engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
        engine.pull("acme/Caller-GGUF")
    try:
        with running_api(engine) as base_url:
            yield base_url
    finally:
        engine.close()


def test_the_model_says_its_call_as_text_without_tools(server: str) -> None:
    reply = ollama.Client(host=server).chat(CALLER, messages=ASK, options={"temperature": 0})
    assert reply.message.content == "".join(SAID) and not reply.message.tool_calls
    other = [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]
    reply = ollama.Client(host=server).chat(CALLER, messages=ASK, tools=other, options={"temperature": 0})
    assert reply.message.content == "".join(SAID) and not reply.message.tool_calls  # not a tool it was given


def test_ollama_chat_returns_the_call(server: str) -> None:
    reply = ollama.Client(host=server).chat(CALLER, messages=ASK, tools=TOOLS, options={"temperature": 0})
    assert reply.message.content == "Checking."
    (call,) = reply.message.tool_calls or []
    assert call.function.name == "get_weather" and dict(call.function.arguments) == {"city": "Paris"}
    assert reply.done_reason == "stop"


def test_ollama_chat_streams_text_then_the_call_in_a_chunk_with_empty_content(server: str) -> None:
    body = {"model": CALLER, "messages": ASK, "tools": TOOLS, "options": {"temperature": 0}}
    lines = httpx.post(f"{server}/api/chat", json=body, timeout=30).text.splitlines()
    chunks = [json.loads(line) for line in lines]
    assert chunks[0]["message"] == {"role": "assistant", "content": "Checking."}
    assert chunks[1]["message"]["content"] == "" and not chunks[1]["done"]
    (call,) = chunks[1]["message"]["tool_calls"]
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}
    assert call["id"].startswith("call_")
    assert len(chunks) == 3 and chunks[2]["done"] and chunks[2]["eval_count"] == len(SAID)
    streamed = list(ollama.Client(host=server).chat(CALLER, messages=ASK, tools=TOOLS, stream=True))
    assert [c.message.tool_calls[0].function.name for c in streamed if c.message.tool_calls] == [
        "get_weather"
    ]


def test_a_reply_cut_short_gives_its_text(server: str) -> None:
    options = {"temperature": 0, "num_predict": 3}
    reply = ollama.Client(host=server).chat(CALLER, messages=ASK, tools=TOOLS, options=options)
    assert reply.message.content == "".join(SAID[:3]) and not reply.message.tool_calls
    assert reply.done_reason == "length"
    chunks = list(
        ollama.Client(host=server).chat(CALLER, messages=ASK, tools=TOOLS, options=options, stream=True)
    )
    assert "".join(c.message.content or "" for c in chunks) == "".join(SAID[:3])


def test_openai_chat_returns_the_call(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model=CALLER, messages=ASK, tools=TOOLS, temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking."
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    cut = client.chat.completions.create(model=CALLER, messages=ASK, tools=TOOLS, temperature=0, max_tokens=3)
    assert cut.choices[0].finish_reason == "length" and not cut.choices[0].message.tool_calls


def test_openai_streams_the_call_as_a_delta(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(model=CALLER, messages=ASK, tools=TOOLS, temperature=0, stream=True)
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert content == "Checking."
    (call,) = calls
    assert call.index == 0 and call.id and call.id.startswith("call_") and call.type == "function"
    assert call.function is not None and call.function.name == "get_weather"
    assert json.loads(call.function.arguments or "") == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    with client.chat.completions.stream(model=CALLER, messages=ASK, tools=TOOLS, temperature=0) as stream:
        final = stream.get_final_completion()
    (accumulated,) = final.choices[0].message.tool_calls or []
    assert accumulated.function.name == "get_weather"


def test_history_with_calls_in_either_shape_and_tool_results(server: str) -> None:
    called = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    history: Any = [
        *ASK,
        {"role": "assistant", "content": "", "tool_calls": called},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 °C"},
    ]
    converted = chat_messages({"messages": history})  # as the template gets them
    assert converted[1]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert converted[2] == {"role": "tool", "content": "sunny, 21 °C", "tool_name": "get_weather"}
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model=CALLER, messages=history, tools=TOOLS, temperature=0)
    assert reply.choices[0].message.tool_calls
    for calls in (called, [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]):
        body = {
            "model": CALLER,
            "stream": False,
            "tools": TOOLS,
            "messages": [
                *ASK,
                {"role": "assistant", "content": "", "tool_calls": calls},
                {"role": "tool", "tool_name": "get_weather", "content": "sunny"},
            ],
        }
        answer = httpx.post(f"{server}/api/chat", json=body, timeout=30)
        assert answer.status_code == 200 and answer.json()["message"]["tool_calls"]
