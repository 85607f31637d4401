"""Tool calls: the parser as a unit, then end to end through a model that calls a tool by rote.

The end-to-end model is the chain GGUF of ``tests/support/chain_gguf.py`` (greedy
after token t picks a fixed next token) with a vocabulary whose last entries
are the pieces of a Qwen-style call, so llama.cpp really generates
``Checking.<tool_call>{"name":"get_weather",...}</tool_call>`` token by token
and the real ``ollama`` and ``openai`` clients read the answer from a real
uvicorn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.openai import chat_messages
from api.tool_calls import LIMIT, ToolCall, ToolCallParser, as_template_call, parse_all, tool_names
from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.chain_gguf import write_chain_gguf
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import tiny_vocab

NAMES = ["get_weather", "get_time"]
WEATHER = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
TIME = '{"name": "get_time", "parameters": {"zone": "Europe/Paris"}}'


def parse(text: str, names: list[str] = NAMES) -> tuple[str, list[tuple[str, dict[str, object]]]]:
    content, calls = parse_all(names, text)
    return content, [(c.name, c.arguments) for c in calls]


def fed(text: str, cuts: list[int], names: list[str] = NAMES) -> list[str | ToolCall]:
    """The pieces of ``text`` fed in the parts that ``cuts`` make."""
    parser = ToolCallParser(names)
    bounds = [0, *sorted(cuts), len(text)]
    out: list[str | ToolCall] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        out += parser.feed(text[a:b])
    return out + parser.finish()


# the formats -----------------------------------------------------------------------

PARIS = [("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize(
    "text",
    [
        WEATHER,  # Llama 3.1/3.2, bare
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        f"<|python_tag|>{WEATHER}",  # Llama
        f"<tool_call>\n{WEATHER}\n</tool_call>",  # Qwen, Hermes
        f"[TOOL_CALLS] [{WEATHER}]",  # Mistral
        f"[TOOL_CALLS]{WEATHER}",
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',  # Mistral, newer
        f"```json\n{WEATHER}\n```",
        f"```\n{WEATHER}\n```",
        f"[{WEATHER}]",
        '{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}',
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',  # arguments as a JSON string
        f"\n\n  {WEATHER}  \n",
    ],
)
def test_each_format_is_a_call_and_leaves_no_text(text: str) -> None:
    assert parse(text) == ("", PARIS)


def test_mistral_names_its_calls_before_their_arguments() -> None:
    text = '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}'
    assert parse(text) == ("", [*PARIS, ("get_time", {})])
    for other in (
        "[TOOL_CALLS]get_wetter[ARGS]{}",
        "[TOOL_CALLS]get_time[ARGS][1]",
        "[TOOL_CALLS]get_time[ARGS]",
    ):
        assert parse(other) == (other, [])


def test_a_call_without_arguments_has_empty_arguments() -> None:
    assert parse('<tool_call>{"name": "get_time"}</tool_call>') == ("", [("get_time", {})])


def test_text_around_a_call_stays_text() -> None:
    text = f"Let me check the weather.\n<tool_call>\n{WEATHER}\n</tool_call>\nOne moment."
    assert parse(text) == ("Let me check the weather.\n\nOne moment.", PARIS)
    assert parse(f"Sure: {WEATHER} done") == ("Sure:  done", PARIS)


def test_several_calls_in_order_with_their_indices() -> None:
    text = f"<tool_call>\n{WEATHER}\n</tool_call>\n<tool_call>\n{TIME}\n</tool_call>\n"
    content, calls = parse_all(NAMES, text)
    assert content == ""
    assert [(c.index, c.name, c.arguments) for c in calls] == [
        (0, "get_weather", {"city": "Paris"}),
        (1, "get_time", {"zone": "Europe/Paris"}),
    ]
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)
    assert parse(f"[TOOL_CALLS] [{WEATHER}, {TIME}]") == parse(text)  # one list, the same two calls


def test_unicode_in_arguments_and_text() -> None:
    text = 'Météo ☀️ <tool_call>{"name": "get_weather", "arguments": {"city": "東京 «Zürich»"}}</tool_call> ✓'
    assert parse(text) == ("Météo ☀️  ✓", [("get_weather", {"city": "東京 «Zürich»"})])
    call = parse_all(NAMES, text)[1][0]
    assert json.loads(call.openai()["function"]["arguments"]) == {"city": "東京 «Zürich»"}


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>',  # not one of the tools
        '{"name": "get_weathers", "arguments": {}}',
        '[{"name": "get_weather", "arguments": {}}, {"name": "nope", "arguments": {}}]',  # all or nothing
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"</tool_call>',  # malformed
        '<tool_call>{"name": "get_weather", "arguments": {"city": Paris}}</tool_call>',
        '{"name": "get_weather", "arguments": [1, 2]}',  # arguments not an object
        '{"name": "get_weather", "arguments": "not json"}',
        "<tool_call>get_weather(city='Paris')</tool_call>",
        "```python\nprint({'name': 'get_weather'})\n```",
        '{"name": "get_weather", "arguments": {"city": "Paris"}',  # cut short: the reply ended
        "a < b and c > d, x = [1, 2] or {y: 1}, `code` and ``` and [TOOL",
        "<tool_call>",
        "",
    ],
)
def test_anything_else_stays_text_exactly(text: str) -> None:
    assert parse(text) == (text, [])
    assert "".join(p for p in fed(text, list(range(1, len(text)))) if isinstance(p, str)) == text


def test_without_tools_nothing_is_a_call() -> None:
    assert parse(WEATHER, []) == (WEATHER, [])


def test_openai_and_ollama_shapes() -> None:
    call = ToolCall("get_weather", {"city": "Paris"}, 1, "call_abc")
    assert call.ollama() == {
        "id": "call_abc",
        "function": {"index": 1, "name": "get_weather", "arguments": {"city": "Paris"}},
    }
    assert call.openai() == {
        "id": "call_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    assert call.openai(streamed=True)["index"] == 1


def test_tool_names_and_history_calls() -> None:
    tools = [{"type": "function", "function": {"name": "a"}}, {"name": "b"}, {"function": {}}, "x"]
    assert tool_names(tools) == {"a", "b"}
    openai_shape = {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": '{"x": 1}'}}
    assert as_template_call(openai_shape)["function"] == {"name": "a", "arguments": {"x": 1}}  # type: ignore[index]
    ollama_shape = {"function": {"name": "a", "arguments": {"x": 1}}}
    assert as_template_call(ollama_shape) == ollama_shape
    assert as_template_call({"function": {"name": "a", "arguments": "oops"}}) == {
        "function": {"name": "a", "arguments": "oops"}
    }


# streaming: held back while it could be a call, released as soon as it cannot -------


def test_plain_text_streams_at_once() -> None:
    parser = ToolCallParser(NAMES)
    assert parser.feed("Hello") == ["Hello"]
    assert parser.feed(" world, x = {1: 2} and [3]") == [" world, x = {1: 2} and [3]"]
    assert parser.feed("!") == ["!"]
    assert parser.finish() == []


def test_a_possible_call_is_held_then_released_as_text() -> None:
    parser = ToolCallParser(NAMES)
    assert parser.feed("Use <") == ["Use"]  # the space waits with the tag that might follow
    assert parser.feed("tool_") == []
    assert parser.feed("cell> now") == [" <tool_cell> now"]
    assert parser.feed(' {"na') == []
    assert parser.feed('me": "get_') == []  # get_weather or get_time, maybe
    assert parser.feed("wet") == [' {"name": "get_wet']  # neither: JSON, but no call
    assert parser.feed('", "age": 3}') == ['", "age": 3}']
    assert parser.feed(' {"type": "object"') == []  # {"type": "function", "function": {...}} maybe
    assert parser.feed("}") == [' {"type": "object"}']
    assert parser.feed("```") == []
    assert parser.feed("py") == ["```py"]
    assert parser.finish() == []


def test_a_call_is_emitted_as_soon_as_it_is_complete() -> None:
    parser = ToolCallParser(NAMES)
    assert parser.feed("Checking.") == ["Checking."]
    assert parser.feed("<tool_call>") == []
    assert parser.feed('{"name":"get_weather","arguments":{"city":"Paris"}}') == []  # </tool_call> may follow
    (call,) = parser.feed("</tool_call>")
    assert isinstance(call, ToolCall) and (call.name, call.arguments, call.index) == PARIS[0] + (0,)
    parser = ToolCallParser(NAMES)
    (call,) = parser.feed(WEATHER)  # bare: nothing closes it
    assert isinstance(call, ToolCall)


def test_a_long_call_is_read_once_and_an_endless_one_is_text() -> None:
    big = "x" * 50_000
    text = f'<tool_call>{{"name": "get_weather", "arguments": {{"city": "{big}"}}}}</tool_call>'
    started = time.perf_counter()
    pieces = fed(text, list(range(0, len(text), 3)))
    assert time.perf_counter() - started < 5  # linear: read once, not once per piece
    assert [(p.name, p.arguments) for p in pieces if isinstance(p, ToolCall)] == [
        ("get_weather", {"city": big})
    ]
    endless = '{"name": "get_weather", "arguments": {"city": "' + "y" * (LIMIT + 10)
    parser = ToolCallParser(NAMES)
    released = parser.feed(endless[: LIMIT // 2]) + parser.feed(endless[LIMIT // 2 :])
    assert "".join(p for p in released if isinstance(p, str)) == endless  # not held back for ever


TEXTS = [
    f"Let me check.\n<tool_call>\n{WEATHER}\n</tool_call>\n<tool_call>{TIME}</tool_call>\nDone ✓",
    f"[TOOL_CALLS] [{WEATHER}, {TIME}]",
    f"<|python_tag|>{WEATHER}",
    f"Here:\n```json\n{WEATHER}\n```\nand {TIME} and {{nothing}} <tool_call>oops</tool_call>",
    'Not a call: {"name": "other", "arguments": {}} nor <tool_call>{"name": "get_time", "arguments": 1}',
    'Québec → {"name": "get_weather", "arguments": {"city": "Québec \\"QC\\" }{"}} fin',
    '[TOOL_CALLS]get_time[ARGS]{"zone": "UTC"} so [TOOL_CALLS]get_wet[ARGS]{} or [TOOL_CALLS]get_time[ARGS]',
    '{"type": "function", "function": {"name": "get_time"}} {"name": "get_',
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TEXTS), st.data())
def test_where_the_stream_splits_never_matters(text: str, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    pieces = fed(text, cuts)
    content = "".join(p for p in pieces if isinstance(p, str))
    calls = [(p.name, p.arguments, p.index) for p in pieces if isinstance(p, ToolCall)]
    whole_content, whole_calls = parse_all(NAMES, text)
    assert content == whole_content
    assert calls == [(c.name, c.arguments, c.index) for c in whole_calls]


ALPHABET = st.sampled_from(list('{}[]"\\:, \n`<>|_/abcdeg') + ["<tool_call>", "</tool_call>", "```json", "é"])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join), st.data())
def test_text_that_holds_no_call_comes_back_exactly(text: str, data: st.DataObject) -> None:
    # no "f" in the alphabet: the tool "f" can never be named, so nothing is a call
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    pieces = fed(text, cuts, ["f"])
    texts = [p for p in pieces if isinstance(p, str)]
    assert len(texts) == len(pieces) and "".join(texts) == text


# end to end: a model that calls get_weather by rote -----------------------------------

CALLER = "hf.co/acme/Caller-GGUF:F32"
SAID = [
    "Checking.",
    "<tool_call>",
    '{"name":"',
    "get_weather",
    '","arguments":',
    '{"city":"Paris"}}',
    "</tool_call>",
]
TOOLS: Any = [  # Any: the openai client's TypedDicts are not what a test needs to spell
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


def caller_vocab() -> tuple[list[str], list[float], list[int]]:
    """The tiny vocabulary with its last filler tokens replaced by the pieces the model says."""
    tokens, scores, types = tiny_vocab()
    for k, piece in enumerate(SAID):
        tokens[len(tokens) - 1 - k] = piece
    return tokens, scores, types


@pytest.fixture(scope="module")
def caller_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokens = caller_vocab()[0]
    ids = [tokens.index(piece) for piece in SAID]
    chain = dict(zip(ids, ids[1:], strict=False)) | {ids[-1]: 2}  # then </s>
    path = tmp_path_factory.mktemp("api") / "Caller-F32.gguf"
    # every other token (the prompt's last) leads to the first piece
    return write_chain_gguf(path, chain, default=ids[0], vocab=caller_vocab())


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
