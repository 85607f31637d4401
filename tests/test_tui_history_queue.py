"""The Chat tab never waits on SQLite: with the history locked by another program (a real second
connection holding ``BEGIN IMMEDIATE``), keys are handled and typed text appears; released, the writes
that waited land, in order, and the reply follows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chat_app import (
    TINY,
    RecordingEngine,
    make_app,
    pane,
    ready,
    recording_engine,
    send,
    short_replies,
    sync,
    until,
)


@pytest.fixture
def engine(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RecordingEngine]:
    with recording_engine(tmp_path_factory, tmp_path, monkeypatch) as engine:
        yield engine


@sync
async def test_a_locked_history_never_stops_the_keys_and_what_waited_lands_after(
    engine: RecordingEngine, tmp_path: Path
) -> None:
    from tui.widgets.chat_input import ChatInput

    app = make_app(engine, tmp_path, short_replies(tmp_path), chat_model=TINY)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "first")  # a chat in the history, shown
        chat = pane(app).chat
        assert chat is not None
        box = app.query_one(ChatInput)
        box.focus()
        other = sqlite3.connect(tmp_path / "chats.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        try:
            await pilot.press(*"second")
            await pilot.press("enter")  # kept once the lock goes: the history's thread waits for it
            await until(pilot, lambda: pane(app)._saving == "second")
            await pilot.press(*" and more", "ctrl+r")  # typed and handled while the write waits
            assert box.text == "second and more"
            assert pane(app)._saving == "second" and pane(app).generation is None
        finally:
            other.execute("COMMIT")
            other.close()
        await until(pilot, lambda: pane(app)._saving is None and pane(app).generation is None)
        await until(pilot, lambda: len(app.chat_store.messages(chat.id)) == 4)
        messages = app.chat_store.messages(chat.id)
        assert [(m.role, m.content) for m in messages][:3] == [
            ("user", "first"),
            ("assistant", messages[1].content),
            ("user", "second"),
        ]
        assert messages[3].role == "assistant" and messages[3].status == "complete"
        assert box.text == " and more"  # typed after Enter: it stays for the next message
