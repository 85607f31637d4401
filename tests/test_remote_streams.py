"""A remote reply's tool calls and reasoning, as a local stream has them, against real servers.

The other machine holds the caller model (``tests/support/caller_gguf.py``:
``Checking.<tool_call>{"name":"get_weather",...}`` by rote). Its server parses
the call out (Ollama's ``message.tool_calls``, OpenAI's ``tool_calls`` deltas);
the RemoteEngine gives it back as the model's text, so the parser every front
end runs (the app's ``ReplyPieces``) finds the same call a local engine's
stream gives. A /v1 server then takes the call and its result back in
OpenAI's shape (ids paired), and OpenAI deltas that split a call's arguments
(as vLLM streams them) are put back together. The app's chat, on a /v1-only
server, shows the call in its tool-call view and keeps it, as it does locally.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Done, Engine, Token, connect
from engine.remote.openai_turns import StreamedCalls, openai_messages
from tests.support.api_server import running_api, running_asgi
from tests.support.caller_gguf import WEATHER, write_caller_gguf
from tests.support.chat_app import make_app, ready, send, stored, sync, until, views
from tests.support.partial_servers import ollama_only, openai_only, second_machine
from tests.support.said_gguf import ANSWER, THINK_TEMPLATE, THINKER, THINKING, write_said_gguf
from tui.widgets.chat_tools import ReplyPieces

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
CALLER = "caller:latest"
OPTIONS = {"num_predict": 32, "temperature": 0}


@pytest.fixture
def gpu_box(tmp_path: Path) -> Iterator[Engine]:
    with second_machine(tmp_path) as engine:
        engine.create("caller", f"FROM {write_caller_gguf(tmp_path / 'caller.gguf')}\n")
        yield engine


def pieces_of(events: list[object]) -> tuple[str, list[dict[str, object]]]:
    """What the app's chat makes of a stream: the text shown and the calls (``ReplyPieces``)."""
    pieces = ReplyPieces(TOOLS)
    text = "".join(pieces.feed(e.text)[0] for e in events if isinstance(e, Token))
    return text + pieces.finish()[0], pieces.calls


def called(calls: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(c["function"]["name"], c["function"]["arguments"]) for c in calls]  # type: ignore[index]


def test_local_and_remote_streams_give_the_app_the_same_call(gpu_box: Engine) -> None:
    local = list(gpu_box.chat(CALLER, ASK, tools=TOOLS, options=OPTIONS))
    want = pieces_of(local)
    assert want[0] == "Checking." and called(want[1]) == [("get_weather", {"city": "Paris"})]
    for server in (
        running_api(gpu_box),
        running_asgi(ollama_only(gpu_box)),
        running_asgi(openai_only(gpu_box)),
    ):
        with server as url:
            events = list(connect(url).chat(CALLER, ASK, tools=TOOLS, options=OPTIONS))
        assert isinstance(events[-1], Done) and events[-1].reason == "stop"
        text, calls = pieces_of(events)
        assert (text, called(calls)) == (want[0], called(want[1])), url


def test_without_tools_a_remote_reply_is_the_models_text_as_is(gpu_box: Engine) -> None:
    with running_api(gpu_box) as url:
        events = list(connect(url).chat(CALLER, ASK, options=OPTIONS))
    text = "".join(e.text for e in events if isinstance(e, Token))
    assert text.startswith("Checking.<tool_call>") and "get_weather" in text


def test_a_v1_server_takes_the_call_and_its_result_back_paired_by_id(gpu_box: Engine) -> None:
    with running_asgi(openai_only(gpu_box)) as url:
        remote = connect(url)
        _, calls = pieces_of(list(remote.chat(CALLER, ASK, tools=TOOLS, options=OPTIONS)))
        history = [
            *ASK,
            {"role": "assistant", "content": "Checking.", "tool_calls": calls},
            {"role": "tool", "content": '{"temperature": 21}', "tool_name": "get_weather"},
        ]
        events = list(remote.chat(CALLER, history, tools=TOOLS, options=OPTIONS))
    assert isinstance(events[-1], Done) and events[-1].prompt_tokens > 0
    sent = openai_messages(history)
    (call,) = sent[1]["tool_calls"]
    assert call["id"] == calls[0]["id"] and call["function"]["arguments"] == '{"city": "Paris"}'
    assert sent[2] == {"role": "tool", "content": '{"temperature": 21}', "tool_call_id": call["id"]}


def test_deltas_that_split_a_calls_arguments_come_back_as_one_call() -> None:
    """vLLM's way: the first delta names the call, the next ones carry its arguments' text in pieces."""
    calls = StreamedCalls("vllm-box")
    calls.feed(
        [{"index": 0, "id": "chatcmpl-tool-1", "type": "function", "function": {"name": "get_weather"}}]
    )
    for piece in ('{"ci', 'ty": "Pa', 'ris"}'):
        calls.feed([{"index": 0, "function": {"arguments": piece}}])
    calls.feed(
        [{"index": 1, "id": "x", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]
    )
    pieces = ReplyPieces(TOOLS)
    text, found = pieces.feed(calls.text())
    assert text == "" and called(found) == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert calls.text() == ""  # given once


def test_images_go_to_a_v1_server_as_data_urls() -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    (message,) = openai_messages([{"role": "user", "content": "what is it?", "images": [png]}])
    assert message["content"] == [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]


def test_reasoning_comes_as_thinking_from_each_kind_of_server_and_think_false_turns_it_off(
    gpu_box: Engine, tmp_path: Path
) -> None:
    path = write_said_gguf(tmp_path / "thinker.gguf", THINKER, template=THINK_TEMPLATE)
    gpu_box.create("thinker", f"FROM {path}\n")
    for server in (running_api(gpu_box), running_asgi(openai_only(gpu_box))):
        with server as url:
            remote = connect(url)
            events = list(remote.chat("thinker:latest", ASK, options=OPTIONS))
            plain = list(remote.chat("thinker:latest", ASK, options=OPTIONS, think=False))
        tokens = [e for e in events if isinstance(e, Token)]
        assert "".join(t.thinking for t in tokens).strip() == THINKING, url
        assert "".join(t.text for t in tokens).strip() == ANSWER
        assert not any(e.thinking for e in plain if isinstance(e, Token))


@sync
async def test_the_apps_chat_shows_a_remote_call_as_a_call(gpu_box: Engine, tmp_path: Path) -> None:
    """The app on a /v1-only server (the call comes as OpenAI deltas): the tool-call view, as locally."""
    from textual.widgets import TextArea

    from tui.screens.chat_settings import ChatSettingsScreen
    from tui.widgets.chat_input import ChatInput
    from tui.widgets.chat_tools import ToolCallView

    config = tmp_path / "config" / "llamadeck" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[parameters]\nnum_predict = 32\ntemperature = 0\n", encoding="utf-8")
    with running_asgi(openai_only(gpu_box)) as url:
        app = make_app(connect(url, name="vllm-box"), tmp_path, config, chat_model=CALLER)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(app, pilot)
            app.query_one(ChatInput).focus()
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, ChatSettingsScreen))
            app.screen.query_one("#tools", TextArea).load_text(json.dumps(TOOLS))
            await pilot.press("ctrl+s")
            await until(pilot, lambda: not isinstance(app.screen, ChatSettingsScreen))
            await send(app, pilot, "What is the weather in Paris?")
            assert views(app)[-1].content == "Checking."
            shown = [(c.call_name, c.arguments) for v in views(app) for c in v.query(ToolCallView)]
            assert shown == [("get_weather", {"city": "Paris"})]
            (call,) = stored(app)[-1].tool_calls
            assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}
