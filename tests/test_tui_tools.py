"""Tool calls and reasoning in the Chat tab, under Pilot, with real tiny models (issue 21).

A chat whose settings offer ``get_weather`` asks the caller model
(``tests/support/caller_gguf.py``, which says ``Checking.<tool_call>{...}`` by
rote): the reply shows "Checking." and the call as a call, both are kept in
the chat history and shown again when the app opens the chat anew; a tool's
result in the history shows as the result and goes back to the model with
the call. A thinking model's reasoning is kept too and comes back folded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Machine
from tests.support.caller_gguf import WEATHER, write_caller_gguf
from tests.support.chat_app import RecordingEngine, make_app, pane, ready, send, stored, sync, until, views
from tests.support.said_gguf import ANSWER, THINK_TEMPLATE, THINKER, THINKING, write_said_gguf
from tui.widgets.chat_thinking import ThinkingView
from tui.widgets.chat_tools import ToolCallView, ToolResultView

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
CALL_ARGUMENTS = {"city": "Paris"}


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingEngine]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    engine = RecordingEngine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    engine.create("caller", f"FROM {write_caller_gguf(tmp_path / 'caller.gguf')}\n")
    engine.create(
        "thinker", f"FROM {write_said_gguf(tmp_path / 'thinker.gguf', THINKER, template=THINK_TEMPLATE)}\n"
    )
    yield engine
    engine.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "llamadeck" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[parameters]\nnum_predict = 32\ntemperature = 0\n", encoding="utf-8")
    return path


def calls_shown(app) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    return [(c.call_name, c.arguments) for v in views(app) for c in v.query(ToolCallView)]


@sync
async def test_a_tool_call_shows_as_a_call_and_comes_back_on_reopening(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import TextArea

    from tui.screens.chat_settings import ChatSettingsScreen
    from tui.widgets.chat_input import ChatInput

    app = make_app(engine, tmp_path, config, chat_model="caller")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        app.query_one(ChatInput).focus()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ChatSettingsScreen))
        app.screen.query_one("#tools", TextArea).load_text(json.dumps(TOOLS))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, ChatSettingsScreen))
        await send(app, pilot, "What is the weather in Paris?")
        assert engine.calls[-1]["tools"] == TOOLS
        assert views(app)[-1].content == "Checking."  # the call is out of the text
        assert calls_shown(app) == [("get_weather", CALL_ARGUMENTS)]
        user, reply = stored(app)
        assert reply.content == "Checking." and reply.status == "complete"
        (call,) = reply.tool_calls
        assert call["function"]["name"] == "get_weather" and call["function"]["arguments"] == CALL_ARGUMENTS
        chat_id = pane(app).chat.id
        # the tool's answer, as a client of the history would add it: shown as the result
        app.chat_store.add_message(chat_id, "tool", '{"temperature": 21}', tool_name="get_weather")
    again = make_app(engine, tmp_path, config)  # a new app on the same history
    async with again.run_test(size=(100, 30)) as pilot:
        await ready(again, pilot)
        pane(again).open_chat(chat_id)
        await until(pilot, lambda: len(views(again)) == 3)
        assert calls_shown(again) == [("get_weather", CALL_ARGUMENTS)]
        (result,) = views(again)[-1].query(ToolResultView)
        assert result.title == "result · get_weather"
        assert '"temperature": 21' in str(result.query_one(".tool-json").render())
        await send(again, pilot, "And tomorrow?")
        turns = engine.calls[-1]["messages"]
        assert turns[1]["tool_calls"] == [call]  # the call and its result go back to the model
        assert turns[2] == {"role": "tool", "content": '{"temperature": 21}', "tool_name": "get_weather"}
        text = again.chat_store.export_markdown(chat_id)
        assert "**Tool call:** `get_weather`" in text and "## Tool result: `get_weather`" in text


@sync
async def test_the_reasoning_is_kept_and_comes_back_folded(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model="thinker")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "What is the capital of France?")
        reply = stored(app)[-1]
        assert reply.content.strip() == ANSWER and reply.thinking.strip() == THINKING
        chat_id = pane(app).chat.id
    again = make_app(engine, tmp_path, config)
    async with again.run_test(size=(100, 30)) as pilot:
        await ready(again, pilot)
        pane(again).open_chat(chat_id)
        await until(pilot, lambda: len(views(again)) == 2)
        thinking = views(again)[-1].thinking
        assert isinstance(thinking, ThinkingView) and thinking.collapsed
        assert thinking.text.strip() == THINKING
        thinking.collapsed = False  # unfolded: the reasoning is there to read
        await pilot.pause()
        assert THINKING in str(thinking.query_one(".thinking-text").render())
