"""The tool-call parser: each format models write, what stays text, and streaming split anywhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Done, Generation, Token
from engine.runtime import toolcalls
from engine.runtime.toolcalls import (
    LIMIT,
    ToolCall,
    ToolCallParser,
    as_template_call,
    parse_tool_calls,
    tool_call_pieces,
    tool_names,
)
from engine.runtime.toolcalls import _json_end as scan_json_end

NAMES = ["get_weather", "get_time"]
WEATHER = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
TIME = '{"name": "get_time", "parameters": {"zone": "Europe/Paris"}}'


def parse(text: str, names: list[str] = NAMES) -> tuple[str, list[tuple[str, dict[str, object]]]]:
    content, calls = parse_tool_calls(names, text)
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
    content, calls = parse_tool_calls(NAMES, text)
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
    call = parse_tool_calls(NAMES, text)[1][0]
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


def test_a_long_call_is_read_once_and_an_endless_one_is_text(monkeypatch: pytest.MonkeyPatch) -> None:
    scanned: list[int] = []  # characters the JSON scanner walks on each call: counted, not timed

    def counting_scan(text: str, start: int, resume: tuple[int, int, bool, bool] | None = None):  # type: ignore[no-untyped-def]
        scanned.append(len(text) - (resume[0] if resume else start))
        return scan_json_end(text, start, resume)

    monkeypatch.setattr(toolcalls, "_json_end", counting_scan)
    big = "x" * 50_000
    text = f'<tool_call>{{"name": "get_weather", "arguments": {{"city": "{big}"}}}}</tool_call>'
    pieces = fed(text, list(range(0, len(text), 3)))
    assert len(scanned) > 1_000 and sum(scanned) < 2 * len(text)  # linear: read once, not once per piece
    assert [(p.name, p.arguments) for p in pieces if isinstance(p, ToolCall)] == [
        ("get_weather", {"city": big})
    ]
    endless = '{"name": "get_weather", "arguments": {"city": "' + "y" * (LIMIT + 10)
    parser = ToolCallParser(NAMES)
    released = parser.feed(endless[: LIMIT // 2]) + parser.feed(endless[LIMIT // 2 :])
    assert "".join(p for p in released if isinstance(p, str)) == endless  # not held back for ever


def test_a_generation_stream_becomes_text_and_calls_then_its_done() -> None:
    done = Done("stop", 1, 3, 0.0, 0.0, 0.0)
    said = ["Checking.<tool", "_call>", WEATHER, "</tool_call>"]

    async def stream() -> AsyncIterator[Generation]:
        for text in said:
            yield Token(text)
        yield done

    async def collect() -> list[object]:
        return [piece async for piece in tool_call_pieces(stream(), NAMES)]

    text, call, end = asyncio.run(collect())
    assert text == "Checking." and isinstance(call, ToolCall) and call.name == "get_weather"
    assert end is done


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
    whole_content, whole_calls = parse_tool_calls(NAMES, text)
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
