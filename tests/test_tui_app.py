"""The full-screen app, driven by Textual's Pilot on the tiny fixtures and the fake Hub."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest

from engine import Engine, Machine
from tests.support.chat_app import sync, until
from tests.support.fake_hub import FakeHub
from tests.support.pilot import settle
from tests.support.tiny_gguf import write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
HOSTILE = "[bold]x[/bold]\x1b]0;pwned\x07"
TOOLS_TEMPLATE = (
    "{% if tools %}{{ tools | tojson }}{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}"
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tui-repos")
    return {
        "Q8_0": write_tiny_gguf(d / "Tiny-Q8_0.gguf", quant="Q8_0")[0],
        "Q4_0": write_tiny_gguf(d / "Tiny-Q4_0.gguf", quant="Q4_0")[0],
        "hostile": write_tiny_gguf(d / "Evil-Q8_0.gguf", quant="Q8_0", license=HOSTILE, seed=3)[0],
        "big": write_tiny_gguf(d / "Big-Q8_0.gguf", quant="Q8_0", pad_bytes=40 * 1000 * 1000, seed=4)[0],
        "tools": write_tiny_gguf(d / "Tools-Q8_0.gguf", chat_template=TOOLS_TEMPLATE, seed=5)[0],
    }


@pytest.fixture
def hub(files: dict[str, Path]):
    with FakeHub() as fake, fake.patch_endpoint():
        fake.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": files["Q8_0"], "Tiny-Q4_0.gguf": files["Q4_0"]})
        fake.add_repo("acme/Evil-GGUF", {"Evil-Q8_0.gguf": files["hostile"]})
        fake.add_repo("acme/Big-GGUF", {"Big-Q8_0.gguf": files["big"]})
        fake.add_repo("acme/Tools-GGUF", {"Tools-Q8_0.gguf": files["tools"]})
        yield fake


@pytest.fixture
def engine(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the chat history
    engine = Engine(machine=lambda: CPU_BOX)
    yield engine
    engine.close()


def make_app(engine: Engine, **kwargs):
    from tui.app import LlamadeckApp

    return LlamadeckApp(engine, **kwargs)


def table_keys(app, selector: str = "#models") -> list[str]:
    from textual.widgets import DataTable

    table = app.query_one(selector, DataTable)
    return [row.key.value for row in table.ordered_rows]


# -- Models -----------------------------------------------------------------------


@sync
async def test_models_are_listed_with_their_columns(engine: Engine) -> None:
    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.pull("acme/Tiny-GGUF:Q4_0")
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert table_keys(app) == ["hf.co/acme/Tiny-GGUF:Q4_0", "hf.co/acme/Tiny-GGUF:Q8_0"]
        from textual.widgets import DataTable

        table = app.query_one("#models", DataTable)
        row = [str(c) for c in table.get_row("hf.co/acme/Tiny-GGUF:Q8_0")]
        assert row[1] == "Q8_0" and row[3] == "0.1M" and row[5] == "just now"


@sync
async def test_filter_as_you_type_and_sort(engine: Engine) -> None:
    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.pull("acme/Evil-GGUF")
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", "e", "v", "i")
        await pilot.pause()
        assert table_keys(app) == ["hf.co/acme/Evil-GGUF:Q8_0"]
        await pilot.press("escape", "ctrl+a")  # back to the table
        app.query_one("#filter").value = ""
        await pilot.pause()
        assert len(table_keys(app)) == 2
        await pilot.press("S")  # reverse the name order
        await pilot.pause()
        assert table_keys(app) == ["hf.co/acme/Tiny-GGUF:Q8_0", "hf.co/acme/Evil-GGUF:Q8_0"]


@sync
async def test_store_problems_are_rows_marked_damaged(engine: Engine) -> None:
    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.copy("acme/Tiny-GGUF:Q8_0", "broken")
    (engine.home / "manifests" / "library" / "broken" / "latest.json").write_text("{not json")
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        from textual.widgets import DataTable

        table = app.query_one("#models", DataTable)
        kinds = {row.key.value: str(table.get_row(row.key)[1]) for row in table.ordered_rows}
        assert kinds == {"hf.co/acme/Tiny-GGUF:Q8_0": "Q8_0", "broken:latest": "damaged"}
        table.move_cursor(row=table.get_row_index("broken:latest"))
        await pilot.press("i")  # no details for a damaged manifest: its problem instead
        await settle(app, pilot)
        assert any("broken:latest" in n.message for n in app._notifications)


@sync
async def test_delete_asks_first_and_cancel_keeps_the_model(engine: Engine) -> None:
    engine.pull("acme/Tiny-GGUF:Q8_0")
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("d")
        await pilot.pause()
        from tui.screens.confirm import ConfirmScreen

        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        await settle(app, pilot)
        assert [m.reference for m in engine.list_models()] == ["hf.co/acme/Tiny-GGUF:Q8_0"]
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await settle(app, pilot)
        assert engine.list_models() == [] and table_keys(app) == []


@sync
async def test_copy_asks_a_name(engine: Engine) -> None:
    engine.pull("acme/Tiny-GGUF:Q8_0")
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("c")
        await pilot.pause()
        await pilot.press(*"mine", "enter")
        await settle(app, pilot)
        assert "mine:latest" in [m.reference for m in engine.list_models()]
        assert "mine:latest" in table_keys(app)


@sync
async def test_an_engine_error_is_a_notification_not_a_traceback(engine: Engine) -> None:
    engine.pull("acme/Tiny-GGUF:Q8_0")
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("c")
        await pilot.pause()
        await pilot.press(*"../[red]x", "enter")
        await settle(app, pilot)
        [note] = list(app._notifications)
        assert note.severity == "error" and "[red]x" in note.message and not note.markup


@sync
async def test_details_show_hostile_strings_as_text(engine: Engine) -> None:
    engine.pull("acme/Evil-GGUF")
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("i")
        await settle(app, pilot)
        from textual.widgets import Static

        from tui.screens.details import DetailsScreen

        assert isinstance(app.screen, DetailsScreen)
        shown = str(app.screen.query_one("#details", Static).render())
        assert "[bold]x[/bold]\\x1b]0;pwned\\x07" in shown
        assert "\x1b" not in shown and "\x07" not in shown
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DetailsScreen)


@sync
async def test_details_list_the_capabilities_the_api_and_the_cli_show(engine: Engine) -> None:
    engine.pull("acme/Tools-GGUF")
    app = make_app(engine)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("i")
        await settle(app, pilot)
        from textual.widgets import Static

        shown = str(app.screen.query_one("#details", Static).render())
        assert engine.show("hf.co/acme/Tools-GGUF:Q8_0").capabilities == ("completion", "tools")
        assert "capabilities    completion, tools\n" in shown


@sync
async def test_pull_with_variant_choice_and_progress(engine: Engine) -> None:
    from textual.widgets import DataTable

    from tui.screens.pull import EngineEvent, PullScreen

    seen: list = []
    app = make_app(engine)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, PullScreen)
        await pilot.press(*"acme/Tiny-GGUF", "enter")
        await until(pilot, lambda: app.screen.stage == "variants")
        variants = app.screen.query_one("#variants", DataTable)
        keys = [r.key.value for r in variants.ordered_rows]
        assert set(keys) == {"Q8_0", "Q4_0"}
        recommended = keys[variants.cursor_row]
        assert recommended == next(v.quant for v in engine.variants("acme/Tiny-GGUF") if v.recommended)
        other = next(k for k in keys if k != recommended)
        await pilot.press("down" if keys.index(other) > variants.cursor_row else "up", "enter")
        await until(pilot, lambda: not isinstance(app.screen, PullScreen))
        await settle(app, pilot)
        assert [m.reference for m in engine.list_models()] == [f"hf.co/acme/Tiny-GGUF:{other}"]
        assert f"hf.co/acme/Tiny-GGUF:{other}" in table_keys(app)
        assert any(isinstance(m, EngineEvent) for m in seen)


@sync
async def test_cancel_a_pull_with_escape_keeps_the_partial(engine: Engine, hub: FakeHub, files) -> None:
    from engine.store.model_store import Store
    from tui.screens.pull import PullScreen

    hub.fault("Big-Q8_0.gguf", "slow", rate=4_000_000)
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        await pilot.press(*"acme/Big-GGUF", "enter")
        await until(pilot, lambda: app.screen.stage == "variants")
        await pilot.press("enter")
        partials = Store().partial
        await until(pilot, lambda: any(p.stat().st_size > 0 for p in partials.glob("*.partial")))
        bar = app.screen.query_one("#bar")
        await until(pilot, lambda: (bar.progress or 0) > 0)
        assert "/s" in str(app.screen.query_one("#figures").render())
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, PullScreen))
        await settle(app, pilot)
        [partial] = partials.glob("*.partial")
        assert 0 < partial.stat().st_size < files["big"].stat().st_size
        assert engine.list_models() == []
        assert any("partial download is kept" in n.message for n in app._notifications)


@sync
async def test_quitting_while_a_model_downloads_asks_first(engine: Engine, hub: FakeHub) -> None:
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.pull import PullScreen

    hub.fault("Big-Q8_0.gguf", "slow", rate=1_000_000)
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        await pilot.press(*"acme/Big-GGUF", "enter")
        await until(pilot, lambda: app.screen.stage == "variants")
        await pilot.press("enter")
        await until(pilot, lambda: (app.screen.query_one("#bar").progress or 0) > 0)
        await pilot.press("ctrl+q")  # q is a letter in the dialog; ctrl+q reaches the app
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "downloading" in str(app.screen.question)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, PullScreen) and app.screen.stage == "pulling"  # it goes on
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, PullScreen))
        await pilot.press("q")  # nothing runs now: q quits at once
    assert app.return_code == 0


@sync
async def test_verify_shows_progress_and_the_result(engine: Engine) -> None:
    from tui.screens.verify import Verified, VerifyScreen

    engine.pull("acme/Tiny-GGUF:Q8_0")
    seen: list = []
    app = make_app(engine)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await settle(app, pilot)
        await pilot.press("v")
        await until(pilot, lambda: any(isinstance(m, Verified) for m in seen))
        await pilot.pause()
        assert isinstance(app.screen, VerifyScreen)
        assert "hf.co/acme/Tiny-GGUF:Q8_0: ok" in str(app.screen.query_one("#result").render())
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, VerifyScreen)


# -- Sessions, Logs, themes, help -----------------------------------------------


@sync
async def test_sessions_show_a_loaded_model_and_unload_it(engine: Engine) -> None:
    engine.pull("acme/Tiny-GGUF:Q8_0")
    list(engine.generate("hf.co/acme/Tiny-GGUF:Q8_0", "hello", options={"num_predict": 2}, keep_alive=300))
    app = make_app(engine, refresh_interval=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: table_keys(app, "#sessions") == ["hf.co/acme/Tiny-GGUF:Q8_0"])
        from textual.widgets import DataTable

        row = [str(c) for c in app.query_one("#sessions", DataTable).get_row("hf.co/acme/Tiny-GGUF:Q8_0")]
        assert row[2] == "0/" + row[2].split("/")[1] and row[7] == "idle" and row[9].startswith(("4:", "5:"))
        await pilot.press("u")
        await until(pilot, lambda: table_keys(app, "#sessions") == [])
        assert engine.loaded() == []


@sync
async def test_logs_show_the_apps_log_and_the_engines_when_offered(engine: Engine) -> None:
    class LoggingEngine(Engine):
        lines = ["llama: one", "llama: two"]

        def logs(self) -> list[str]:
            return list(self.lines)

    logged = LoggingEngine(machine=lambda: CPU_BOX)
    app = make_app(logged, refresh_interval=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        from textual.widgets import Log

        log = app.query_one("#log", Log)
        await until(pilot, lambda: "llama: two" in log.lines)
        LoggingEngine.lines = ["llama: two", "llama: three\x1b[31m"]
        await until(pilot, lambda: any("three" in line for line in log.lines))
        assert log.lines.count("llama: two") == 1 and "llama: three\\x1b[31m" in log.lines
        app.report(RuntimeError("boom"))
        await until(pilot, lambda: any("internal error" in line for line in log.lines))


@sync
async def test_theme_switch_is_saved_to_config_toml(engine: Engine, tmp_path: Path) -> None:
    config = tmp_path / "config" / "llamadeck" / "config.toml"
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == "llamadeck-dark"
        assert {"llamadeck-dark", "llamadeck-light", "llamadeck-high-contrast"} <= set(app.our_themes)
        await pilot.press("t")
        await pilot.pause()
        assert app.theme != "llamadeck-dark"
    assert tomllib.loads(config.read_text())["theme"] == app.theme
    again = make_app(engine)
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert again.theme == app.theme


@sync
async def test_the_same_error_twice_is_one_notification(engine: Engine) -> None:
    from tui.chatstore import ChatStoreError

    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        locked = "cannot save chat history: the database is locked"
        app.report(ChatStoreError(locked))
        app.report(ChatStoreError(locked))  # a send's two writes, both refused
        app.report(OSError(28, "No space left on device"))
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert messages.count(locked) == 1 and "No space left on device" in messages


@sync
async def test_a_theme_that_is_not_installed_is_named_in_the_logs(engine: Engine, tmp_path: Path) -> None:
    from textual.widgets import Log

    config = tmp_path / "config" / "llamadeck" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('theme = "no-such-theme"\n')
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == "llamadeck-dark"
        await pilot.press("4")
        log = app.query_one("#log", Log)
        await until(pilot, lambda: any("'no-such-theme'" in line for line in log.lines))


@sync
async def test_a_bad_theme_file_never_stops_the_app(engine: Engine, tmp_path: Path) -> None:
    from tui.themes import SHIPPED

    mine = tmp_path / "config" / "llamadeck" / "themes"
    mine.mkdir(parents=True)
    (mine / "broken.toml").write_text("name = [")
    (mine / "badcolor.toml").write_text('name = "x"\nprimary = "not-a-colour"\n')
    (mine / "mine.toml").write_text('name = "mine"\nprimary = "#ff0000"\ndark = false\n')
    (mine / "badvar.toml").write_text(
        'name = "badvar"\nprimary = "#ff0000"\n[variables]\nblock-cursor-background = "}}}"\n'
    )
    app = make_app(engine, theme_folders=(SHIPPED, mine))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "mine" in app.our_themes and "x" not in app.our_themes
        assert "badvar" not in app.our_themes  # its CSS variable would stop the app when applied
        assert any("skipped" in n.message for n in app._notifications)


@sync
async def test_help_lists_the_keys(engine: Engine) -> None:
    from tui.screens.help import HelpScreen

    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(f"{k} {d}" for _, keys in app.help_sections() for k, d in keys)
        for word in ("Pull", "Delete", "Copy", "Details", "Verify", "Unload", "Theme", "Quit"):
            assert word in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


@sync
async def test_every_action_is_in_the_command_palette(engine: Engine) -> None:
    app = make_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for title in (
            "Pull model",
            "Delete model",
            "Copy model",
            "Model details",
            "Verify model",
            "Unload model",
            "Show Sessions",
            "Help",
            "Theme: llamadeck-light",
        ):
            assert title in titles


# -- screenshots ------------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@sync
async def test_screenshots_of_each_tab(engine: Engine, size: tuple[int, int], tmp_path: Path) -> None:
    """SVGs to look at: in $LLAMADECK_SCREENSHOTS when set, else in the test's temp dir."""
    import os

    shots = Path(os.environ.get("LLAMADECK_SCREENSHOTS") or tmp_path)
    engine.pull("acme/Tiny-GGUF:Q8_0")
    engine.pull("acme/Evil-GGUF")
    list(engine.generate("hf.co/acme/Tiny-GGUF:Q8_0", "hi", options={"num_predict": 2}, keep_alive=300))
    app = make_app(engine, refresh_interval=0.2)
    shots.mkdir(parents=True, exist_ok=True)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        for key, tab in (("1", "models"), ("2", "sessions"), ("4", "logs"), ("3", "chat")):
            await pilot.press(key)
            await asyncio.sleep(0.4)
            await pilot.pause()
            path = app.save_screenshot(f"{tab}-{size[0]}x{size[1]}.svg", str(shots))
            assert Path(path).stat().st_size > 1000
        await pilot.press("escape", "1", "p", *"acme/Tiny-GGUF", "enter")  # esc leaves the chat input
        await until(pilot, lambda: app.screen.stage == "variants")
        app.save_screenshot(f"pull-{size[0]}x{size[1]}.svg", str(shots))
        await pilot.press("escape", "f1")
        await pilot.pause()
        app.save_screenshot(f"help-{size[0]}x{size[1]}.svg", str(shots))
        await pilot.press("escape", "home", "i")  # Evil-GGUF sorts first: its hostile license
        await settle(app, pilot)
        app.save_screenshot(f"details-{size[0]}x{size[1]}.svg", str(shots))
        await pilot.press("escape", "t")
        await pilot.pause()
        app.save_screenshot(f"models-{app.theme}-{size[0]}x{size[1]}.svg", str(shots))
