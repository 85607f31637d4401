"""No key press loses typed text: a draft per chat, kept across chat switches, edits, deletes and restarts,
written to the chat history off the event loop. (The keys themselves: tests/test_tui_keys.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.chat_app import (
    TINY,
    RecordingEngine,
    last_status,
    make_app,
    pane,
    ready,
    seeded,
    send,
    sync,
    until,
)
from tui.chatstore import ChatStore


def box(app):
    from tui.widgets.chat_input import ChatInput

    return app.query_one(ChatInput)


def header(app) -> str:
    return str(app.query_one("#chat-header").content)


async def typed(pilot, text: str) -> None:
    await pilot.press(*["space" if c == " " else c for c in text])


async def switch_to(app, pilot, chat_id: int) -> None:
    """Pick a chat in the list, as a user does: the list, the chat, Enter."""
    from textual.widgets import OptionList

    listing = app.query_one("#chat-list", OptionList)
    listing.focus()
    ids = [listing.get_option_at_index(i).id for i in range(listing.option_count)]
    listing.highlighted = ids.index(str(chat_id))
    await pilot.press("enter")
    await pilot.pause()
    assert pane(app).chat.id == chat_id and app.focused is box(app)


def saved(path: Path) -> dict[int | None, str]:
    with ChatStore.open(path) as store:
        return store.drafts()


@sync
async def test_each_chat_keeps_its_draft_across_switches(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    a, b = seeded(tmp_path / "chats.db", ("A", [("user", "hi")]), ("B", [("user", "yo")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        assert pane(app).chat.id == b
        await typed(pilot, "for B")
        await switch_to(app, pilot, a)
        assert box(app).text == ""
        await typed(pilot, "for A")
        await pilot.press("ctrl+n")
        assert box(app).text == ""
        await typed(pilot, "for a new chat")
        await switch_to(app, pilot, b)
        assert box(app).text == "for B"
        await switch_to(app, pilot, a)
        assert box(app).text == "for A"
        await pilot.press("ctrl+n")
        assert box(app).text == "for a new chat"
        want = {a: "for A", b: "for B", None: "for a new chat"}
        await until(pilot, lambda: saved(tmp_path / "chats.db") == want)


@sync
async def test_drafts_and_the_open_chat_survive_a_restart(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    a, b = seeded(tmp_path / "chats.db", ("A", [("user", "hi")]), ("B", [("user", "yo")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "ctrl+n")
        await typed(pilot, "unsent, new")
        await switch_to(app, pilot, a)
        await typed(pilot, "unsent, in A")
    # closed at once: what the timer had not written yet is written on the way out
    assert saved(tmp_path / "chats.db") == {a: "unsent, in A", None: "unsent, new"}
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        assert pane(app).chat.id == a and box(app).text == "unsent, in A"  # where it was left
        assert box(app).cursor_location == (0, len("unsent, in A"))
        await pilot.press("ctrl+n")
        assert box(app).text == "unsent, new"


@sync
async def test_a_new_chats_draft_goes_with_its_first_message(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await typed(pilot, "hello")
        await pilot.press("enter")
        await until(pilot, lambda: pane(app).generation is None and last_status(app) == "complete")
        chat = pane(app).chat.id
        assert box(app).text == ""
    assert saved(tmp_path / "chats.db") == {}
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        assert pane(app).chat.id == chat and box(app).text == ""  # the chat it became reopens


@sync
async def test_an_edit_puts_the_draft_aside_and_its_banner_goes_when_done(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "frist")
        box(app).focus()
        await typed(pilot, "my draft")
        await pilot.press("escape", "e")
        assert box(app).text == "frist" and "Editing" in str(box(app).border_title)
        assert "editing" in header(app)
        await pilot.press("escape")  # cancelled: the draft is back, the banner gone
        assert box(app).text == "my draft" and pane(app).editing is None
        assert "Editing" not in str(box(app).border_title) and "editing" not in header(app)
        await pilot.press("escape", "e", "ctrl+u")
        await typed(pilot, "first")
        await pilot.press("enter")  # sent: the draft is back, the banner gone
        await until(pilot, lambda: pane(app).generation is None and last_status(app) == "complete")
        sent = [m.content for m in app.chat_store.messages(pane(app).chat.id) if m.role == "user"]
        assert sent == ["first"]
        assert box(app).text == "my draft" and pane(app).editing is None
        assert "Editing" not in str(box(app).border_title) and "editing" not in header(app)
        chat = pane(app).chat.id
        await pilot.press("escape", "e", "ctrl+n")  # another chat: the edit ends there
        assert pane(app).editing is None and box(app).text == ""
        assert "Editing" not in str(box(app).border_title) and "editing" not in header(app)
        await switch_to(app, pilot, chat)
        assert box(app).text == "my draft" and "Editing" not in str(box(app).border_title)


@sync
async def test_a_walk_through_history_keeps_the_draft_when_the_chat_changes(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    a, b = seeded(tmp_path / "chats.db", ("A", [("user", "sent in A")]), ("B", [("user", "sent in B")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        await typed(pilot, "mine")
        await pilot.press("up")
        assert box(app).text == "sent in B"
        await switch_to(app, pilot, a)
        await switch_to(app, pilot, b)
        assert box(app).text == "mine"
        await pilot.press("up", "up", "ctrl+e")
        await typed(pilot, " again")  # a recalled message, changed: kept too
        await switch_to(app, pilot, a)
        await switch_to(app, pilot, b)
        assert box(app).text == "mine\nsent in A again"


@sync
async def test_deleting_the_open_chat_keeps_what_was_typed_for_it(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    seeded(tmp_path / "chats.db", ("Keep", [("user", "a")]), ("Gone", [("user", "b")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        await typed(pilot, "half a thought")
        await pilot.press("escape", "ctrl+d", "y")
        await pilot.pause()
        assert pane(app).chat is None and box(app).text == "half a thought"


@sync
async def test_drafts_are_written_off_the_event_loop(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    """Another program holds the history's write lock: typing goes on; the draft lands once it lets go."""
    [chat] = seeded(tmp_path / "chats.db", ("A", [("user", "hi")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        other = sqlite3.connect(tmp_path / "chats.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the write lock, held
        try:
            await typed(pilot, "typed while")
            pane(app).save_drafts()  # as the timer does: the writer starts and waits for the lock
            await until(pilot, lambda: pane(app).drafts._writing)
            await typed(pilot, " locked")  # keys still arrive: nothing on the event loop waits
            assert box(app).text == "typed while locked"
        finally:
            other.execute("COMMIT")
            other.close()
        await until(pilot, lambda: saved(tmp_path / "chats.db").get(chat) == "typed while locked")
        assert not [n for n in app._notifications if n.severity == "error"]


@sync
async def test_a_draft_that_cannot_be_saved_at_quit_is_said_after_the_app(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    """The history stays locked while the app closes: the draft's loss is one line after the screen
    is gone (run_app prints ``exit_notes`` on stderr), not a log line nobody sees."""
    seeded(tmp_path / "chats.db", ("A", [("user", "hi")]))
    app = make_app(engine, tmp_path, config)
    other = sqlite3.connect(tmp_path / "chats.db", isolation_level=None)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(app, pilot)
            await pilot.press("3")
            await typed(pilot, "never saved")
            other.execute("BEGIN IMMEDIATE")  # held while the app closes
        assert len(app.exit_notes) == 1 and "unsent drafts not saved" in app.exit_notes[0]
    finally:
        other.close()
