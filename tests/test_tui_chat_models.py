"""The Chat tab's model and settings: the settings dialog, the model picker, a chat opened on a model."""

from __future__ import annotations

from pathlib import Path

from engine import Engine
from tests.support.chat_app import (
    CPU_BOX,
    TINY,
    RecordingEngine,
    make_app,
    pane,
    ready,
    send,
    sync,
    until,
)


@sync
async def test_chat_settings_set_the_system_prompt_and_parameters(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import TextArea

    from tui.screens.chat_settings import ChatSettingsScreen

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "hi")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ChatSettingsScreen))
        app.screen.query_one("#system", TextArea).load_text("You are terse.")
        app.screen.query_one("#p-temperature").value = "warm"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ChatSettingsScreen)  # not a number: stays open, says why
        assert "Temperature" in str(app.screen.query_one("#error").render())
        app.screen.query_one("#p-temperature").value = "-1"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "temperature" in str(app.screen.query_one("#error").render())  # out of range: says so
        app.screen.query_one("#p-temperature").value = "0.2"
        await pilot.press("ctrl+s")
        await pilot.pause()
        chat = app.chat_store.get(pane(app).chat.id)
        assert chat.system == "You are terse." and chat.parameters["temperature"] == 0.2
        await send(app, pilot, "again")
        call = engine.calls[-1]
        assert call["messages"][0] == {"role": "system", "content": "You are terse."}
        assert call["options"]["temperature"] == 0.2 and call["options"]["num_predict"] == 6


@sync
async def test_model_picker_lists_local_models(engine: Engine, tmp_path: Path, config: Path) -> None:
    from textual.widgets import OptionList

    from tui.screens.model_picker import ModelPickerScreen

    app = make_app(engine, tmp_path, config, chat_model="other:latest")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("escape", "m")
        await until(pilot, lambda: isinstance(app.screen, ModelPickerScreen))
        options = app.screen.query_one("#models", OptionList)
        assert options.option_count == 1 and options.get_option_at_index(0).id == TINY
        await pilot.press("enter")
        await pilot.pause()
        assert pane(app).model == TINY


@sync
async def test_model_picker_says_to_pull_when_there_is_none(
    tmp_path: Path, config: Path, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    empty = Engine(machine=lambda: CPU_BOX)
    app = make_app(empty, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "escape", "m")
        await until(pilot, lambda: app.screen.query("#none"))
        assert "Models tab" in str(app.screen.query_one("#none").render())
        await pilot.press("escape")


@sync
async def test_chat_model_opens_on_the_chat_tab(engine: Engine, tmp_path: Path, config: Path) -> None:
    from tui.widgets.chat_input import ChatInput

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.pause()
        assert app.query_one("#tabs").active == "tab-chat"
        assert isinstance(app.focused, ChatInput)
        assert pane(app).model == TINY and pane(app).chat is None
        assert TINY in str(app.query_one("#chat-header").render())


@sync
async def test_the_models_tab_starts_a_chat_on_the_selected_model(
    engine: Engine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await until(pilot, lambda: app.query_one("#models").row_count == 1)
        await pilot.press("n")
        await pilot.pause()
        assert app.query_one("#tabs").active == "tab-chat"
        assert pane(app).model == TINY and pane(app).chat is None
