"""Thinking models end to end: the real ``ollama`` and ``openai`` clients on a real uvicorn and llama.cpp.

Each model is a chain GGUF (``tests/support/said_gguf.py``) that says a thinking
reply token by token: ``<think>`` reasoning ``</think>`` then the answer (its
tags as plain tokens, or as control tokens llama.cpp must be told to show), a
reply that starts inside the reasoning (DeepSeek-R1's template opens it), and
gpt-oss's harmony channels. What a client sees is the reasoning in
``thinking`` / ``reasoning`` and the answer alone in ``content``.
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

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.said_gguf import (
    ANSWER,
    GO_THINK_TEMPLATE,
    HARMONY,
    HARMONY_CALL,
    HARMONY_TEMPLATE,
    MIDDLE,
    R1,
    R1_TEMPLATE,
    THINK_TEMPLATE,
    THINKER,
    THINKER_CONTROL,
    THINKING,
    write_said_gguf,
)

ASK: Any = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}
THINKERS = ["thinker", "control", "r1", "gothink", "harmony"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("said")
    return {
        "thinker": write_said_gguf(folder / "thinker.gguf", THINKER, template=THINK_TEMPLATE),
        "control": write_said_gguf(folder / "control.gguf", THINKER_CONTROL, template=THINK_TEMPLATE),
        "r1": write_said_gguf(folder / "r1.gguf", R1, template=R1_TEMPLATE),
        "harmony": write_said_gguf(folder / "harmony.gguf", HARMONY, template=HARMONY_TEMPLATE),
        "caller": write_said_gguf(folder / "caller.gguf", HARMONY_CALL, template=HARMONY_TEMPLATE),
        "plain": write_said_gguf(folder / "plain.gguf", MIDDLE, template=None),
    }


@pytest.fixture
def server(files: dict[str, Path]) -> Iterator[str]:
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    for name, path in files.items():
        engine.create(name, f"FROM {path}\n")
    engine.create("gothink", f'FROM {files["thinker"]}\nTEMPLATE """{GO_THINK_TEMPLATE}"""\n')
    try:
        with running_api(engine) as base_url:
            yield base_url
    finally:
        engine.close()


# /api/chat -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", THINKERS)
def test_ollama_chat_gives_the_reasoning_apart_from_the_answer(server: str, model: str) -> None:
    reply = ollama.Client(host=server).chat(model, messages=ASK, think=True, options=GREEDY)
    assert reply.message.thinking == THINKING
    assert reply.message.content == ANSWER
    assert reply.done_reason == "stop"


@pytest.mark.parametrize("model", ["thinker", "harmony"])
def test_a_model_that_thinks_thinks_when_think_is_left_out(server: str, model: str) -> None:
    reply = ollama.Client(host=server).chat(model, messages=ASK, options=GREEDY)
    assert (reply.message.thinking, reply.message.content) == (THINKING, ANSWER)


def test_the_reasoning_streams_first_then_the_answer(server: str) -> None:
    chunks = list(ollama.Client(host=server).chat("control", messages=ASK, think=True, stream=True))
    thoughts = [c.message.thinking for c in chunks if c.message.thinking]
    answers = [c.message.content for c in chunks if c.message.content]
    assert "".join(thoughts) == THINKING and "".join(answers) == ANSWER
    assert len(thoughts) == 2  # as the tokens came, the tags held back, never shown
    first_answer = next(i for i, c in enumerate(chunks) if c.message.content)
    assert all(not c.message.thinking for c in chunks[first_answer:])
    assert chunks[-1].done and chunks[-1].eval_count == len(THINKER.pieces)


def test_think_false_leaves_the_reply_as_the_model_wrote_it(server: str) -> None:
    reply = ollama.Client(host=server).chat("thinker", messages=ASK, think=False, options=GREEDY)
    # the template closed an empty reasoning block, after which this model answers at once
    assert reply.message.thinking is None and reply.message.content == ANSWER


def test_levels_reach_the_template_and_max_is_high_for_harmony(server: str) -> None:
    client = ollama.Client(host=server)
    for level in ("low", "medium", "high", "max"):
        reply = client.chat("harmony", messages=ASK, think=level, options=GREEDY)
        assert (reply.message.thinking, reply.message.content) == (THINKING, ANSWER)
        reply = client.chat("gothink", messages=ASK, think=level, options=GREEDY)
        assert reply.message.thinking == THINKING


def test_a_model_that_cannot_think_refuses_think_in_ollamas_words(server: str) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=server).chat("plain", messages=ASK, think=True)
    assert refused.value.status_code == 400 and refused.value.error == '"plain" does not support thinking'
    body = {"model": "plain", "prompt": "Hi", "think": "high", "stream": False}
    answer = httpx.post(f"{server}/api/generate", json=body, timeout=30)
    assert answer.status_code == 400 and answer.json() == {"error": '"plain" does not support thinking'}
    reply = ollama.Client(host=server).chat("plain", messages=ASK, think=False, options=GREEDY)
    assert reply.message.content == MIDDLE.text  # false is no request to think: it stands


@pytest.mark.parametrize(
    ("think", "error"),
    [
        ("huge", 'invalid think value: "huge" (must be "high", "medium", "low", "max", true, or false)'),
        (3, 'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'),
    ],
)
def test_a_bad_think_value_is_a_400(server: str, think: object, error: str) -> None:
    for route, extra in (("/api/chat", {"messages": ASK}), ("/api/generate", {"prompt": "Hi"})):
        body = {"model": "thinker", "think": think, "stream": False, **extra}
        answer = httpx.post(f"{server}{route}", json=body, timeout=30)
        assert answer.status_code == 400 and answer.json() == {"error": error}


def test_earlier_reasoning_in_the_history_is_accepted(server: str) -> None:
    history = [*ASK, {"role": "assistant", "content": ANSWER, "thinking": THINKING}, *ASK]
    reply = ollama.Client(host=server).chat("gothink", messages=history, options=GREEDY)
    assert (reply.message.thinking, reply.message.content) == (THINKING, ANSWER)


def test_reasoning_passes_by_the_tool_call_parser(server: str) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]
    client = ollama.Client(host=server)
    reply = client.chat("control", messages=ASK, tools=tools, options=GREEDY)
    assert (reply.message.thinking, reply.message.content, reply.message.tool_calls) == (
        THINKING,
        ANSWER,
        None,
    )
    chunks = list(client.chat("control", messages=ASK, tools=tools, stream=True, options=GREEDY))
    assert "".join(c.message.thinking or "" for c in chunks) == THINKING
    assert "".join(c.message.content for c in chunks) == ANSWER
    completion = openai.OpenAI(base_url=f"{server}/v1", api_key="unused").chat.completions.create(
        model="control", messages=ASK, tools=tools, temperature=0
    )
    assert (completion.choices[0].message.model_extra or {}).get("reasoning") == THINKING


def test_a_harmony_tool_call_comes_back_as_a_tool_call(server: str) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    reply = ollama.Client(host=server).chat("caller", messages=ASK, tools=tools, options=GREEDY)
    assert reply.message.thinking == THINKING and not reply.message.content
    (call,) = reply.message.tool_calls or []
    assert call.function.name == "get_weather" and dict(call.function.arguments) == {"city": "Paris"}
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused")
    choice = client.chat.completions.create(model="caller", messages=ASK, tools=tools, temperature=0).choices[
        0
    ]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert choice.message.tool_calls[0].function.arguments == '{"city": "Paris"}'


# /api/generate -------------------------------------------------------------------------------


def test_ollama_generate_gives_thinking_and_response(server: str) -> None:
    client = ollama.Client(host=server)
    reply = client.generate("r1", "What is the capital of France?", think=True, options=GREEDY)
    assert (reply.thinking, reply.response) == (THINKING, ANSWER)
    lines = httpx.post(
        f"{server}/api/generate",
        json={"model": "harmony", "prompt": "Capital of France?", "options": GREEDY},
        timeout=30,
    ).text.splitlines()
    chunks = [json.loads(line) for line in lines]
    assert "".join(c.get("thinking", "") for c in chunks) == THINKING
    assert "".join(c["response"] for c in chunks) == ANSWER
    assert all("thinking" not in c for c in chunks if c["response"])  # omitted when empty, as Ollama


# /v1/chat/completions ------------------------------------------------------------------------


def test_openai_chat_returns_reasoning_on_the_message(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused")
    completion = client.chat.completions.create(model="thinker", messages=ASK, temperature=0)
    message = completion.choices[0].message
    assert message.content == ANSWER
    assert (message.model_extra or {}).get("reasoning") == THINKING
    completion = client.chat.completions.create(
        model="thinker", messages=ASK, temperature=0, reasoning_effort="none"
    )
    message = completion.choices[0].message
    assert message.content == ANSWER and "reasoning" not in (message.model_extra or {})


def test_openai_stream_sends_reasoning_deltas_before_the_content(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused")
    stream = client.chat.completions.create(
        model="harmony", messages=ASK, temperature=0, stream=True, reasoning_effort="high"
    )
    deltas = [chunk.choices[0].delta for chunk in stream if chunk.choices]
    reasoning = "".join((d.model_extra or {}).get("reasoning", "") for d in deltas)
    assert reasoning == THINKING and "".join(d.content or "" for d in deltas) == ANSWER


def test_openai_effort_is_mapped_as_ollama_maps_it(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    for effort in ("minimal", "low", "medium", "high", "xhigh"):
        completion = client.chat.completions.create(
            model="gothink", messages=ASK, temperature=0, reasoning_effort=effort
        )
        assert (completion.choices[0].message.model_extra or {}).get("reasoning") == THINKING
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gothink", messages=ASK, reasoning_effort="lots")  # type: ignore[arg-type]
    assert "invalid reasoning value" in str(refused.value)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="plain", messages=ASK, reasoning_effort="high")
    assert '"plain" does not support thinking' in str(refused.value)
