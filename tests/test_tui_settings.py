"""Settings: config.toml (read robustly, saved atomically), the settings dialog, and reloading a model."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from engine import Engine
from tests.support.chat_app import sync, until
from tests.test_tui_app import engine, files, hub, make_app, settle  # noqa: F401 - fixtures
from tui.config import (
    Config,
    SettingError,
    config_dir,
    format_parameter_lines,
    keep_alive_seconds,
    parse_parameter_lines,
)

TINY = "hf.co/acme/Tiny-GGUF:Q8_0"


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "llamadeck" / "config.toml"


# -- keep-alive and parameters ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300.0), ("1h30m", 5400.0), ("1m30s", 90.0), ("90", 90.0), ("0", 0.0), ("-1", -1.0),
     ("-5m", -1.0), (" 2h ", 7200.0), ("500ms", 0.5), (".5h", 1800.0)],
)  # fmt: skip
def test_keep_alive_takes_ollamas_durations(text: str, seconds: float) -> None:
    assert keep_alive_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "--1", "5 m", "inf", "nan", "1e3", "m5"])
def test_keep_alive_refuses_anything_else_with_the_syntax(text: str) -> None:
    with pytest.raises(SettingError, match="5m, 1h30m"):
        keep_alive_seconds(text)


def test_parameter_lines_round_trip_with_stops() -> None:
    text = "# mine\ntemperature 0.7\n\nnum_ctx 8192\nstop <|im_end|>\nstop </s>\nseed 42"
    parsed = parse_parameter_lines(text)
    assert parsed == {"temperature": 0.7, "num_ctx": 8192, "stop": ["<|im_end|>", "</s>"], "seed": 42}
    assert parse_parameter_lines(format_parameter_lines(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("temprature 0.7", ("line 1: unknown option 'temprature'", "did you mean temperature?")),
        ("top_p 2", ("line 1: top_p must be a number from 0 to 1",)),
        ("temperature 0.5\nnum_ctx 1.5", ("line 2: num_ctx must be a whole number",)),
        ("seed", ("line 1: write a name and a value",)),
        ("temperature nan", ("line 1: temperature must be a number",)),
        ("kv_cache_type q9", ("line 1: kv_cache_type must be",)),
    ],
)
def test_bad_parameters_are_one_line_naming_the_line(text: str, words: tuple[str]) -> None:
    with pytest.raises(SettingError) as caught:
        parse_parameter_lines(text)
    assert all(w in str(caught.value) for w in words) and "\n" not in str(caught.value)


def test_good_parameters_pass_the_engines_checker() -> None:
    text = "temperature 0.7\nnum_ctx 8192\ntop_p 0.9\nseed 42\nstop </s>\nkv_cache_type q8_0"
    expected = {"temperature": 0.7, "num_ctx": 8192, "top_p": 0.9, "seed": 42, "stop": ["</s>"]}
    assert parse_parameter_lines(text) == expected | {"kv_cache_type": "q8_0"}


# -- config.toml -----------------------------------------------------------------------


def test_settings_are_saved_and_read_back(config_home: Path) -> None:
    config = Config(
        theme="llamadeck-light",
        default_model=TINY,
        parameters={"temperature": 0.2, "num_ctx": 4096, "stop": ["</s>"]},
        keep_alive="1h",
        store="~/models",
    )
    config.save()
    assert config_home.is_file() and not list(config_home.parent.glob("*.tmp"))
    data = tomllib.loads(config_home.read_text())
    assert data["parameters"] == {"temperature": 0.2, "num_ctx": 4096, "stop": ["</s>"]}
    assert Config.load() == config
    assert config_home.parent == config_dir()


def test_a_bad_value_is_dropped_with_a_log_line_never_a_crash(
    config_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_home.parent.mkdir(parents=True)
    config_home.write_text(
        'theme = "llamadeck-light"\nkeep_alive = "soon"\ndefault_model = 3\nstore = "~/m"\n'
        "[parameters]\ntemprature = 0.5\n"
    )
    with caplog.at_level(logging.WARNING, logger="llamadeck.tui"):
        config = Config.load()
    assert config == Config(theme="llamadeck-light", store="~/m")  # the rest: defaults
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert (
        "keep_alive ignored" in logged
        and "default_model ignored" in logged
        and "parameters ignored" in logged
    )


def test_a_broken_file_gives_the_defaults(config_home: Path) -> None:
    config_home.parent.mkdir(parents=True)
    config_home.write_text("theme = [unclosed")
    assert Config.load() == Config()


def test_unknown_keys_are_kept_on_save(config_home: Path) -> None:
    config_home.parent.mkdir(parents=True)
    config_home.write_text('keymap = { "app.quit" = "ctrl+q" }\nfuture = 1\ntheme = "llamadeck-light"\n')
    config = Config.load()
    config.keep_alive = "10m"
    config.save()
    data = tomllib.loads(config_home.read_text())
    assert data["keymap"] == {"app.quit": "ctrl+q"} and data["future"] == 1 and data["keep_alive"] == "10m"


def test_the_store_setting_yields_to_llamadeck_home(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config(store="~/models")
    assert config.store_home() is None  # conftest sets LLAMADECK_HOME
    monkeypatch.delenv("LLAMADECK_HOME")
    assert config.store_home() == Path("~/models").expanduser()
    assert Config().store_home() is None


def test_a_store_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SettingError, match="^the store location '.*file' is a file, not a folder$"):
        Config(store=str(tmp_path / "file")).check()


# -- the settings dialog -----------------------------------------------------------------


async def open_settings(app, pilot):
    from tui.screens.settings import SettingsScreen

    await settle(app, pilot)
    app.push_screen(SettingsScreen(app.engine, app.config, app.config_path))
    await settle(app, pilot)
    assert isinstance(app.screen, SettingsScreen)
    return app.screen


@sync
async def test_settings_dialog_saves_to_config_toml(engine: Engine, config_home: Path) -> None:  # noqa: F811
    from textual.widgets import Input, Select

    engine.pull("acme/Tiny-GGUF:Q8_0")
    app = make_app(engine)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_settings(app, pilot)
        screen.query_one("#theme", Select).value = "llamadeck-light"
        await pilot.pause()
        assert app.theme == "llamadeck-light"  # previewed at once
        models = screen.query_one("#default_model", Select)
        await until(pilot, lambda: TINY in [value for _, value in models._options])
        models.value = TINY
        screen.query_one("#p-temperature", Input).value = "0.3"
        screen.query_one("#p-num_ctx", Input).value = "4096"
        screen.query_one("#p-keep_alive", Input).value = "1h"
        screen.query_one("#store", Input).value = "~/elsewhere"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.screen is not screen
        assert any("next start" in n.message for n in app._notifications)
    data = tomllib.loads(config_home.read_text())
    assert data["theme"] == "llamadeck-light" and data["default_model"] == TINY
    assert data["parameters"] == {"temperature": 0.3, "num_ctx": 4096}
    again = Config.load()
    assert (again.keep_alive, again.store, keep_alive_seconds(again.keep_alive)) == (
        "1h",
        "~/elsewhere",
        3600,
    )
    assert app.config == again  # the app's own copy: a later theme switch keeps these
    assert engine.settings.keep_alive == 3600  # every load's default from now on, the API's too (--serve)


@sync
async def test_settings_dialog_refuses_bad_values_and_writes_nothing(
    engine: Engine,  # noqa: F811
    config_home: Path,
) -> None:
    from textual.widgets import Input, Static

    app = make_app(engine)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_settings(app, pilot)
        screen.query_one("#p-keep_alive", Input).value = "soon"
        await pilot.press("ctrl+s")
        await pilot.pause()
        error = str(screen.query_one("#error", Static).render())
        assert error.startswith("Keep loaded for (keep_alive) must be a duration") and app.screen is screen
        screen.query_one("#p-keep_alive", Input).value = "5m"
        screen.query_one("#p-temperature", Input).value = "hot"
        await pilot.press("ctrl+s")
        await pilot.pause()
        error = str(screen.query_one("#error", Static).render())
        assert error.startswith("Temperature (temperature) must be a number") and app.screen is screen
        assert not config_home.exists()
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not screen and not config_home.exists()


@sync
async def test_cancel_puts_the_theme_back(engine: Engine) -> None:  # noqa: F811
    from textual.widgets import Select

    app = make_app(engine)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_settings(app, pilot)
        before = app.theme
        screen.query_one("#theme", Select).value = "llamadeck-high-contrast"
        await pilot.pause()
        assert app.theme == "llamadeck-high-contrast"
        screen.action_cancel()
        await pilot.pause()
        assert app.theme == before


# -- reload with other settings -----------------------------------------------------------


@sync
async def test_reload_with_another_context_changes_what_is_loaded(engine: Engine) -> None:  # noqa: F811
    from textual.widgets import Input, TabbedContent

    from tui.screens.reload import ReloadScreen

    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.load(TINY, options={"num_ctx": 256, "num_parallel": 1}, keep_alive=300)
    assert [(m.context, m.slots) for m in engine.loaded()] == [(256, 1)]
    app = make_app(engine, refresh_interval=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        app.query_one("#tabs", TabbedContent).active = "tab-sessions"
        app.query_one("#sessions").focus()
        await until(pilot, lambda: app.query_one("#sessions").row_count == 1)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReloadScreen))
        screen = app.screen
        assert screen.query_one("#p-num_ctx", Input).value == "256"
        assert screen.query_one("#p-num_parallel", Input).value == "1"
        screen.query_one("#p-num_ctx", Input).value = "512"
        screen.query_one("#p-num_parallel", Input).value = "2"
        await pilot.press("enter", "enter", "enter")  # enter moves down the rows; on the last it reloads
        await until(pilot, lambda: [(m.context, m.slots) for m in engine.loaded()] == [(512, 2)], timeout=60)
        await settle(app, pilot)
        assert any("reloaded" in n.message for n in app._notifications)


@sync
async def test_reload_refuses_a_bad_value_in_the_dialog(engine: Engine) -> None:  # noqa: F811
    from textual.widgets import Input, Static

    from tui.screens.reload import ReloadScreen

    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.load(TINY, options={"num_ctx": 256}, keep_alive=300)
    [row] = engine.loaded()
    app = make_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(ReloadScreen(row))
        await pilot.pause()
        screen = app.screen
        screen.query_one("#p-num_ctx", Input).value = "0"
        await pilot.press("ctrl+s")
        await pilot.pause()
        error = str(screen.query_one("#error", Static).render())
        assert "Context (num_ctx) must be a whole number ≥ 1" in error
        assert app.screen is screen
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not screen
    assert [m.context for m in engine.loaded()] == [256]
