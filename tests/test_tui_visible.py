"""State a user can see: the serve address, loaded models, an empty search, where a screenshot went,
notifications clear of the message box, and Ctrl+Z (the real suspend is in tests/test_tui_tmux.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.support.chat_app import (
    TINY,
    RecordingEngine,
    make_app,
    ready,
    seeded,
    sync,
    until,
)

# -- the chat search ------------------------------------------------------------------------------


@sync
async def test_a_search_with_no_match_says_so_and_esc_brings_every_chat_back(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import OptionList, Static

    seeded(tmp_path / "chats.db", ("Apples", [("user", "red")]), ("Pears", [("user", "green")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "escape", "slash", *"zzz")
        await pilot.pause()
        listing = app.query_one("#chat-list", OptionList)
        empty = app.query_one("#chat-list-empty", Static)
        assert listing.option_count == 0 and empty.display
        assert str(empty.render()).startswith("no chat matches “zzz”")
        await pilot.press("enter")  # the search applied: focus on the (empty) list
        await pilot.pause()
        assert app.focused is listing
        await pilot.press("escape")  # from the list too, esc first clears the search
        await pilot.pause()
        assert app.query_one("#chat-search").value == "" and listing.option_count == 2
        assert not empty.display and app.focused is listing
        await pilot.press("escape")  # then leaves the list
        assert app.focused is not listing


@sync
async def test_with_no_chats_the_list_says_how_to_start_one(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import Static

    from tui.widgets.chat_list import NO_CHATS

    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        await pilot.pause()
        empty = app.query_one("#chat-list-empty", Static)
        assert empty.display and str(empty.render()) == NO_CHATS


# -- models in memory, the serve address --------------------------------------------------------


@sync
async def test_loaded_models_are_marked_and_the_mark_goes_when_unloaded(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import DataTable

    def name_cell() -> str:
        return str(app.query_one("#models", DataTable).get_row(TINY)[0])

    app = make_app(engine, tmp_path, config, refresh_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.query_one("#models", DataTable).row_count == 1)
        assert name_cell() == f"  {TINY}"
        loading = threading.Thread(target=engine.load, args=(TINY,))
        loading.start()
        await until(pilot, lambda: not loading.is_alive())
        await until(pilot, lambda: name_cell() == f"● {TINY}")
        engine.unload(TINY)
        await until(pilot, lambda: name_cell() == f"  {TINY}")


@pytest.mark.parametrize(("size", "own_line"), [((120, 40), False), ((60, 20), False), ((40, 12), True)])
@sync
async def test_the_serve_address_stays_in_sight_at_the_top(
    engine: RecordingEngine, tmp_path: Path, config: Path, size: tuple[int, int], own_line: bool
) -> None:
    from textual.widgets import Tabs

    from tui.widgets.serve_address import ServeAddress

    app = make_app(engine, tmp_path, config, serve_url="http://127.0.0.1:11434")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        badge = app.query_one(ServeAddress)
        tabs = app.query_one(Tabs)
        assert str(badge.render()) == "API 127.0.0.1:11434"
        assert badge.region.y == 0 and badge.region.right == size[0]
        if own_line:  # no room beside the tabs: a line of its own above them
            assert tabs.region.y == 1
        else:  # on the tab row, right of the last tab
            assert tabs.region.y == 0
            assert badge.region.x >= max(tab.region.right for tab in tabs.query("Tab"))


@sync
async def test_without_serve_there_is_no_address(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from tui.widgets.serve_address import ServeAddress

    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert not app.query(ServeAddress)


# -- notifications, screenshots, ctrl+z ------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (40, 12)])
@sync
async def test_notifications_leave_the_message_box_clear(
    engine: RecordingEngine, tmp_path: Path, config: Path, size: tuple[int, int]
) -> None:
    from textual.widgets._toast import Toast

    from tui.widgets.chat_input import ChatInput

    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=size, notifications=True) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        for n in range(3):
            app.notify(f"notice {n}: " + "a long line that wraps " * 3, timeout=30)
        await until(pilot, lambda: len(app.screen.query(Toast)) == 3)
        await pilot.pause(0.3)
        box = app.query_one(ChatInput).region
        app.save_screenshot(f"toasts-{size[0]}x{size[1]}.svg", str(tmp_path))

        def toast_at(x: int, y: int) -> bool:
            widget = app.screen.get_widget_at(x, y)[0]
            return isinstance(widget, Toast) or isinstance(widget.parent, Toast)

        assert any(toast_at(x, y) for x in range(size[0]) for y in range(box.y))  # shown, above the box
        assert not any(toast_at(x, y) for x in range(box.x, box.right) for y in range(box.y, box.bottom))


@sync
async def test_a_screenshot_into_a_missing_folder_makes_it_and_says_where(
    engine: RecordingEngine, tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/Downloads, as on a fresh server
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no user-dirs.dirs
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        saved = app.deliver_screenshot()  # what the palette's "Screenshot" runs
        assert saved is not None and Path(saved).parent == home / "Downloads"
        assert Path(saved).read_text(encoding="utf-8").startswith("<svg")
        await pilot.pause()
        [note] = [n for n in app._notifications if n.title == "Screenshot"]
        assert note.message == f"saved the screenshot to {saved} (created {home / 'Downloads'})"


@sync
async def test_a_screenshot_where_no_folder_can_be_made_goes_to_the_current_one(
    engine: RecordingEngine, tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        saved = app.deliver_screenshot("shot.svg", str(blocker / "shots"))
        assert saved == str(here / "shot.svg") and Path(saved).exists()
        await pilot.pause()
        [note] = [n for n in app._notifications if n.title == "Screenshot"]
        assert "\n" not in note.message and note.severity == "information"
        assert note.message.startswith(f"saved the screenshot to {here / 'shot.svg'} ({blocker / 'shots'}: ")


@sync
async def test_ctrl_z_undoes_in_the_box_where_the_app_cannot_suspend(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from tui.widgets.chat_input import ChatInput

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:  # headless: the driver cannot suspend
        await ready(app, pilot)
        assert app.check_action("suspend_process", ()) is False
        await pilot.press(*"hello")
        assert app.query_one(ChatInput).text == "hello"
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert app.is_running and app.query_one(ChatInput).text == ""
        await pilot.press(*"hi", "ctrl+underscore")  # readline's undo, wherever ctrl+z suspends
        await pilot.pause()
        assert app.query_one(ChatInput).text == ""
