"""The Chat tab's conversations: switching, searching, renaming, deleting, copying, exporting."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Engine
from tests.support.chat_app import (
    TINY,
    RecordingEngine,
    make_app,
    pane,
    ready,
    seeded,
    send,
    stored,
    sync,
    until,
    views,
)


@sync
async def test_switching_chats_reloads_messages_and_passes_their_key(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import OptionList

    older, newer = seeded(
        tmp_path / "chats.db",
        ("Older chat", [("user", "one"), ("assistant", "uno")]),
        ("Newer chat", [("user", "two"), ("assistant", "dos"), ("user", "three"), ("assistant", "tres")]),
    )
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        await pilot.pause()
        assert app.query_one("#tabs").active == "tab-chat"
        assert pane(app).chat.id == newer  # the latest chat opens
        assert [v.content for v in views(app)] == ["two", "dos", "three", "tres"]
        listing = app.query_one("#chat-list", OptionList)
        assert [listing.get_option_at_index(i).id for i in range(listing.option_count)] == [
            str(newer),
            str(older),
        ]
        listing.focus()
        listing.highlighted = 1
        await pilot.press("enter")
        await pilot.pause()
        assert pane(app).chat.id == older
        assert [v.content for v in views(app)] == ["one", "uno"]
        await send(app, pilot, "again")
        assert engine.calls[-1]["conversation"] == str(older)
        assert [m["content"] for m in engine.calls[-1]["messages"]] == ["one", "uno", "again"]


@sync
async def test_search_filters_the_list(engine: Engine, tmp_path: Path, config: Path) -> None:
    from textual.widgets import OptionList

    seeded(
        tmp_path / "chats.db",
        ("Apples", [("user", "red fruit")]),
        ("Bananas", [("user", "yellow fruit")]),
        ("Cherries", [("user", "small and red")]),
    )
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "escape", "slash")
        await pilot.pause()
        assert app.focused is app.query_one("#chat-search")
        listing = app.query_one("#chat-list", OptionList)
        assert listing.option_count == 3
        await pilot.press(*"banan")
        await pilot.pause()
        assert listing.option_count == 1 and "Bananas" in str(listing.get_option_at_index(0).prompt)
        app.query_one("#chat-search").value = "RED"  # titles and messages, any case
        await pilot.pause()
        assert listing.option_count == 2
        await pilot.press("enter")
        assert app.focused is listing


@sync
async def test_rename_a_chat(engine: Engine, tmp_path: Path, config: Path) -> None:
    from tui.screens.rename import RenameScreen

    [chat_id] = seeded(tmp_path / "chats.db", ("Old title", [("user", "hi")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "f2")
        await pilot.pause()
        assert isinstance(app.screen, RenameScreen)
        app.screen.query_one("#title").value = "  Brand   new [b]title[/b] "
        await pilot.press("enter")
        await pilot.pause()
        assert app.chat_store.get(chat_id).title == "Brand new [b]title[/b]"
        assert pane(app).chat.title == "Brand new [b]title[/b]"


@sync
async def test_delete_asks_first(engine: Engine, tmp_path: Path, config: Path) -> None:
    from tui.screens.confirm import ConfirmScreen

    keep, gone = seeded(tmp_path / "chats.db", ("Keep", [("user", "a")]), ("Gone", [("user", "b")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "escape", "ctrl+d")  # outside the box (in it, ctrl+d deletes a character)
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert [c.id for c in app.chat_store.conversations()] == [gone, keep]
        await pilot.press("ctrl+d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert [c.id for c in app.chat_store.conversations()] == [keep]
        assert pane(app).chat is None and views(app) == []  # a new chat in its place


@sync
async def test_copy_a_message_and_the_last_code_block(engine: Engine, tmp_path: Path, config: Path) -> None:
    reply = "Here:\n\n```python\nprint('hi')\n```\n\nand more text"
    seeded(tmp_path / "chats.db", ("Code", [("user", "show me code"), ("assistant", reply)]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "escape")  # from the input to the messages
        await pilot.press("y")
        await pilot.pause()
        assert app.copied == [reply]  # no selection: the last reply
        await pilot.press("Y")
        await pilot.pause()
        assert app.copied[-1] == "print('hi')\n"
        await pilot.press("up", "up", "y")  # select the user's message
        await pilot.pause()
        assert app.copied[-1] == "show me code"
        await pilot.press("escape", "Y")  # unselect: the newest code block again
        await pilot.pause()
        assert app.copied[-1] == "print('hi')\n" and len(app.copied) == 4
        assert not [n for n in app._notifications if n.severity == "error"]  # no local clipboard: quiet


@sync
async def test_export_writes_markdown_and_asks_before_overwriting(
    engine: Engine, tmp_path: Path, config: Path
) -> None:
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.export import ExportScreen

    seeded(tmp_path / "chats.db", ("Exported: a/b", [("user", "question"), ("assistant", "answer")]))
    target = tmp_path / "out" / "chat.md"
    target.parent.mkdir()
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        assert app.screen.query_one("#path").value == str(Path.home() / "Exported- a-b.md")
        app.screen.query_one("#path").value = str(target)
        await pilot.press("enter")
        await until(pilot, lambda: target.exists())
        text = target.read_text(encoding="utf-8")
        assert text.startswith("# Exported: a/b") and "question" in text and "answer" in text
        target.write_text("mine", encoding="utf-8")
        await pilot.press("ctrl+o")
        await pilot.pause()
        app.screen.query_one("#path").value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert target.read_text(encoding="utf-8") == "mine"
        assert [p.name for p in target.parent.iterdir()] == ["chat.md"]  # no temp file left


def test_export_writes_through_symlinks_keeps_modes_and_refuses_devices(tmp_path: Path) -> None:
    import os
    import stat

    from tui.screens.export import write_atomically

    target = tmp_path / "notes.md"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.md"
    link.symlink_to(target.name)
    write_atomically(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    for bad in (fifo, Path("/dev/null"), tmp_path):
        with pytest.raises(OSError):
            write_atomically(bad, "x")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISCHR(Path("/dev/null").stat().st_mode)
    assert not list(tmp_path.glob(".*.tmp"))


@sync
async def test_a_damaged_history_starts_with_a_warning(engine: Engine, tmp_path: Path, config: Path) -> None:
    db = tmp_path / "chats.db"
    db.write_bytes(b"this is not a database" * 100)
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.pause()
        warnings = [n for n in app._notifications if n.severity == "warning"]
        assert warnings and "damaged" in warnings[0].message
        assert list(tmp_path.glob("chats.db.damaged-*"))
        await send(app, pilot, "still works")
        assert [m.status for m in stored(app)] == ["complete", "complete"]
