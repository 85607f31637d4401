"""A damaged chat history is named in one short line, however many pages SQLite's check complains of.

Found by running the app on a ``chats.db`` with a few pages overwritten by random bytes: ``PRAGMA
quick_check`` answered with one row of a hundred lines ("*** in database main ***", then "Page 16
is never used" ...), and the app's notice printed all of them, covering the whole screen.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from tests.support.chat_history import db_path_fixture  # noqa: F401 (fixture)
from tui.chatstore import ChatStore, DamagedChatStore


def trash_an_index(db_path: Path) -> None:
    """A real history whose message index spans pages, then its root page overwritten with random
    bytes (seeded): SQLite still opens the file, and its check names the root and every page under
    it that nothing reaches any more, one line each."""
    with ChatStore.open(db_path) as store:
        chat = store.create("m")
        for n in range(1500):
            store.add_message(chat.id, "user", f"message {n}")
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA journal_mode = DELETE")  # everything into the main file
    page = raw.execute("PRAGMA page_size").fetchone()[0]
    index = "SELECT rootpage FROM sqlite_master WHERE name = 'messages_by_conversation'"
    (root,) = raw.execute(index).fetchone()
    raw.close()
    data = bytearray(db_path.read_bytes())
    noise = random.Random(21)
    data[(root - 1) * page : root * page] = bytes(noise.randrange(256) for _ in range(page))
    db_path.write_bytes(bytes(data))
    check = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
    [(report,)] = check.execute("PRAGMA quick_check").fetchall()
    check.close()
    assert report.count("\n") > 3, report  # what the notice used to print whole


def test_many_problems_are_one_short_line(db_path: Path) -> None:
    trash_an_index(db_path)
    with pytest.raises(DamagedChatStore) as info:
        ChatStore.open(db_path)
    message = str(info.value)
    assert "\n" not in message and "***" not in message
    assert len(message) < 400, message
    assert message.startswith(f"chat history {db_path} is damaged (")
    assert "btreeInitPage" in message and "more problem(s))" in message


def test_the_notice_after_setting_it_aside_is_one_short_line(db_path: Path) -> None:
    trash_an_index(db_path)
    store, warning = ChatStore.open_or_fresh(db_path)
    store.close()
    assert warning is not None
    assert "\n" not in warning and len(warning) < 500, warning
    assert "moved aside to chats.db.damaged-" in warning
