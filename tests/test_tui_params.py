"""The one parameter editor (issue 21, finding 7): the same rows, keys and words in chat settings,
Settings and Reload; the value in effect with where it comes from; the header naming a chat's own.

Under Pilot with the real engine and a tiny model whose Modelfile sets a temperature.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import from_environment
from tests.support.chat_app import (
    TINY,
    RecordingEngine,
    make_app,
    pane,
    ready,
    recording_engine,
    short_replies,
    sync,
    tiny_file,
    until,
)
from tui.widgets.param_editor import ParamError, check_value, overrides_text

WARM = "warm:latest"


@pytest.fixture
def engine(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RecordingEngine]:
    with recording_engine(tmp_path_factory, tmp_path, monkeypatch) as engine:
        engine.create("warm", f"FROM {tiny_file(tmp_path_factory)}\nPARAMETER temperature 0.3\n")
        yield engine


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return short_replies(tmp_path)  # [parameters] num_predict = 6, seed = 1


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("num_parallel", "x", "Slots (num_parallel) must be a whole number from 0 to 256, not 'x'"),
        ("temperature", "-1", "Temperature (temperature) must be a number ≥ 0, not '-1'"),
        ("num_ctx", "0", "Context (num_ctx) must be a whole number ≥ 1, not '0'"),
        ("keep_alive", "soon", "Keep loaded for (keep_alive) must be a duration"),
    ],
)
def test_a_refusal_names_the_parameter_as_its_row_does(name: str, text: str, words: str) -> None:
    with pytest.raises(ParamError) as refused:
        check_value(name, text)
    assert str(refused.value).startswith(words) and "\n" not in str(refused.value)


def test_values_are_the_engines_and_a_blank_field_inherits() -> None:
    assert check_value("temperature", " 0.2 ") == 0.2
    assert check_value("num_ctx", "8192") == 8192
    assert check_value("stop", "User:\n\nEND") == ["User:", "END"]
    assert check_value("keep_alive", "1h") == "1h"
    assert check_value("seed", "") is None and check_value("stop", "\n") is None


def test_the_header_names_the_overrides() -> None:
    assert overrides_text({"temperature": 0.2, "num_ctx": 8192}) == "temperature 0.2 · num_ctx 8192"
    assert overrides_text({"stop": ["User:", "END"]}) == 'stop "User:" "END"'
    assert overrides_text({}) == ""


def effect(screen, name: str) -> str:
    return str(screen.query_one(f"#e-{name}").render())


@sync
async def test_chat_settings_show_what_is_in_effect_and_where_it_comes_from(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import Input, TextArea

    from tui.screens.chat_settings import ChatSettingsScreen
    from tui.widgets.chat_header import ChatHeader
    from tui.widgets.chat_input import ChatInput

    app = make_app(engine, tmp_path, config, chat_model=WARM)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        app.query_one(ChatInput).focus()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ChatSettingsScreen))
        screen = app.screen
        # the model's Modelfile, the Settings' [parameters], the engine's own default
        await until(pilot, lambda: effect(screen, "temperature") == f"in effect 0.3 · {WARM}'s Modelfile")
        assert effect(screen, "num_predict") == "in effect 6 · settings"
        assert effect(screen, "top_k") == "in effect 40 · built in"
        temperature = screen.query_one("#p-temperature", Input)
        assert temperature.placeholder.startswith(f"0.3 ({WARM}'s Modelfile)")
        temperature.focus()
        await pilot.press("0", ".", "2")
        assert effect(screen, "temperature") == "in effect 0.2 · this chat"
        await pilot.press("ctrl+r")  # inherit again
        assert temperature.value == "" and effect(screen, "temperature").endswith("Modelfile")
        await pilot.press("0", ".", "2", "enter")  # enter moves to the next row
        assert screen.focused is screen.query_one("#p-top_p")
        stop = screen.query_one("#p-stop", TextArea)
        stop.focus()
        await pilot.press("U", "s", "e", "r", ":", "ctrl+j", "E", "N", "D")
        assert stop.text == "User:\nEND"  # ctrl+j: a new line; enter would have moved on
        await pilot.press("enter")  # the last row: saves
        await until(pilot, lambda: app.screen is not screen)
        assert pane(app).parameters == {"temperature": 0.2, "stop": ["User:", "END"]}
        app.query_one(ChatInput).focus()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ChatSettingsScreen))
        again = app.screen
        assert again.query_one("#p-stop", TextArea).text == "User:\nEND"  # one a line, as typed
        again.query_one("#p-stop", TextArea).focus()
        await pilot.press("ctrl+r", "escape")  # esc leaves without saving, from any row
        await until(pilot, lambda: app.screen is not again)
        assert pane(app).parameters == {"temperature": 0.2, "stop": ["User:", "END"]}
        header = str(app.query_one(ChatHeader).render())
        assert 'temperature 0.2 · stop "User:" "END"' in header and "parameter(s)" not in header


@sync
async def test_reload_and_settings_use_the_same_rows_and_words(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import Input, Static

    from tui.screens.reload import ReloadScreen
    from tui.screens.settings import SettingsScreen

    engine.load(TINY, options={"num_ctx": 256, "num_parallel": 1}, keep_alive=300)
    [row] = engine.loaded()
    # OLLAMA_KEEP_ALIVE wins over config.toml's keep_alive: the Settings row says so
    engine.configure(from_environment({"OLLAMA_KEEP_ALIVE": "2h"}, {"keep_alive": "5m"}))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        app.push_screen(ReloadScreen(row))
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#p-num_parallel", Input).value == "1"
        assert effect(screen, "num_parallel") == "in effect 1 · this reload"
        screen.query_one("#p-num_parallel", Input).value = "x"
        await pilot.press("ctrl+s")
        await pilot.pause()
        error = str(screen.query_one("#error", Static).render())
        assert error == "Slots (num_parallel) must be a whole number from 0 to 256, not 'x'"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not screen
        app.push_screen(SettingsScreen(app.engine, app.config, app.config_path))
        await pilot.pause()
        screen = app.screen
        assert effect(screen, "keep_alive") == "in effect 2h · OLLAMA_KEEP_ALIVE"
        assert effect(screen, "num_predict") == "in effect 6 · settings"
        await pilot.press("escape")
    assert [m.slots for m in engine.loaded()] == [1]


def test_a_keep_alive_in_seconds_is_written_as_a_duration() -> None:
    from tui.widgets.param_editor import duration_text

    assert [duration_text(s) for s in (7200, 5400, 90, 0, -1, 0.5)] == [
        "2h",
        "1h30m",
        "1m30s",
        "0",
        "-1",
        "0.5",
    ]
