"""Reasoning through OpenAI's Responses API: the real ``openai`` client on a real uvicorn and llama.cpp.

The models are the chain GGUFs of ``tests/support/said_gguf.py`` that say a
thinking reply token by token. What a client sees is what Ollama's
``openai/responses.go`` sends: a ``reasoning`` output item before the message
(its text as the summary and, in plain text, as ``encrypted_content``),
streamed as the reasoning summary events, ``reasoning_tokens`` in the usage,
and a ``reasoning`` input item brought back as the next assistant turn's
reasoning.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import openai
import pytest

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.said_gguf import (
    ANSWER,
    MIDDLE,
    THINKER,
    THINKING,
    add_said_models,
)

ASK = "What is the capital of France?"
ASKED: Any = [{"role": "user", "content": ASK}]
WEATHER: Any = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]


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
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def said(output: list[Any]) -> list[tuple[str, str]]:
    """Each output item's type and its text (the reasoning summary, the message, the call's name)."""
    items = []
    for item in output:
        if item.type == "reasoning":
            items.append(("reasoning", "".join(s.text for s in item.summary)))
        elif item.type == "message":
            items.append(("message", "".join(p.text for p in item.content if p.type == "output_text")))
        elif item.type == "function_call":
            items.append(("function_call", item.name))
    return items


# the reply -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["thinker", "control", "harmony"])
def test_the_reasoning_is_an_item_before_the_message(client: openai.OpenAI, model: str) -> None:
    reply = client.responses.create(model=model, input=ASK, reasoning={"effort": "high"}, temperature=0)
    assert said(reply.output) == [("reasoning", THINKING), ("message", ANSWER)]
    reasoning = reply.output[0]
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert reasoning.encrypted_content == THINKING  # plain text, as Ollama sends it
    assert reply.output_text == ANSWER and reply.status == "completed"
    usage = reply.usage
    assert usage is not None and 0 < usage.output_tokens_details.reasoning_tokens < usage.output_tokens


def test_reasoning_tokens_count_the_reasoning_as_it_came(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="control", input=ASK, temperature=0)  # the model's default: thinks
    assert reply.usage is not None and reply.usage.output_tokens == len(THINKER.pieces)
    assert reply.usage.output_tokens_details.reasoning_tokens == 2  # two pieces; the tags hidden


def test_effort_none_turns_thinking_off(client: openai.OpenAI) -> None:
    # the template closes an empty reasoning block, after which this model answers at once
    reply = client.responses.create(model="thinker", input=ASK, reasoning={"effort": "none"})
    assert said(reply.output) == [("message", ANSWER)]
    assert reply.usage is not None and reply.usage.output_tokens_details.reasoning_tokens == 0


def test_a_stream_tells_the_reasoning_as_ollama_does_then_the_message(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="control", input=ASK, temperature=0, stream=True))
    kinds = [e.type for e in events]
    thoughts = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    texts = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(thoughts) == THINKING and len(thoughts) == 2 and "".join(texts) == ANSWER
    assert [k for k in kinds if not k.endswith(".delta")] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [(e.output_index, e.item.type) for e in added] == [(0, "reasoning"), (1, "message")]
    done = next(e for e in events if e.type == "response.reasoning_summary_text.done")
    assert done.text == THINKING and done.output_index == 0 and done.summary_index == 0
    completed = events[-1].response
    assert said(completed.output) == [("reasoning", THINKING), ("message", ANSWER)]
    assert completed.usage is not None and completed.usage.output_tokens_details.reasoning_tokens == 2


def test_the_sdks_stream_helper_rebuilds_the_same_response(client: openai.OpenAI) -> None:
    whole = client.responses.create(model="harmony", input=ASK, temperature=0)
    with client.responses.stream(model="harmony", input=ASK, temperature=0) as stream:
        reasoning = "".join(e.delta for e in stream if e.type == "response.reasoning_summary_text.delta")
        final = stream.get_final_response()
    assert reasoning == THINKING
    assert said(final.output) == said(whole.output) == [("reasoning", THINKING), ("message", ANSWER)]
    assert final.output_text == ANSWER


def test_a_harmony_call_after_reasoning_is_a_function_call_item(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="caller", input=ASK, tools=WEATHER, temperature=0)
    assert said(reply.output) == [("reasoning", THINKING), ("function_call", "get_weather")]
    call = reply.output[1]
    assert call.type == "function_call" and call.arguments == '{"city": "Paris"}'
    with client.responses.stream(model="caller", input=ASK, tools=WEATHER, temperature=0) as stream:
        final = stream.get_final_response()
    assert said(final.output) == said(reply.output)


# what is asked -------------------------------------------------------------------------------


def test_the_effort_reaches_the_template_as_ollamas_think_level(server: str, client: openai.OpenAI) -> None:
    ollamas = ollama.Client(host=server)
    prompts = {}
    for effort, level in (("minimal", "low"), ("low", "low"), ("medium", "medium"), ("high", "high")):
        reply = client.responses.create(
            model="harmony", input=ASK, reasoning={"effort": effort}, max_output_tokens=1
        )
        same = ollamas.chat("harmony", messages=ASKED, think=level, options={"num_predict": 1})  # type: ignore[arg-type]
        assert reply.usage is not None and reply.usage.input_tokens == same.prompt_eval_count
        prompts[effort] = reply.usage.input_tokens
    assert len({prompts["low"], prompts["medium"], prompts["high"]}) == 3  # the level is in the prompt


def test_effort_on_a_model_that_cannot_think_is_ollamas_400(server: str, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="plain", input=ASK, reasoning={"effort": "low"})
    assert '"plain" does not support thinking' in str(refused.value)
    reply = client.responses.create(model="plain", input=ASK, reasoning={"effort": "none"})
    assert said(reply.output) == [("message", MIDDLE.text)]
    body = {"model": "plain", "input": ASK, "reasoning": {"effort": "high"}, "stream": True}
    answer = httpx.post(f"{server}/v1/responses", json=body, timeout=30)
    assert answer.status_code == 400 and "does not support thinking" in answer.json()["error"]["message"]


# reasoning in the input ----------------------------------------------------------------------


def test_a_reasoning_item_sent_back_is_the_next_assistant_turns_reasoning(
    server: str, client: openai.OpenAI
) -> None:
    first = client.responses.create(model="gothink", input=ASKED, temperature=0)
    assert said(first.output) == [("reasoning", THINKING), ("message", ANSWER)]
    history: Any = [*ASKED, *first.output, *ASKED]
    second = client.responses.create(model="gothink", input=history, max_output_tokens=1)
    same = ollama.Client(host=server).chat(
        "gothink",
        messages=[*ASKED, {"role": "assistant", "content": ANSWER, "thinking": THINKING}, *ASKED],
        options={"num_predict": 1},
    )
    assert second.usage is not None and second.usage.input_tokens == same.prompt_eval_count
    without: Any = [*ASKED, first.output[1], *ASKED]
    third = client.responses.create(model="gothink", input=without, max_output_tokens=1)
    assert third.usage is not None and third.usage.input_tokens < second.usage.input_tokens
