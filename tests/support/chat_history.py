"""Shared by the chat history's tests (tests/test_chatstore_*.py): a history file in tmp_path, an open
store on it, and an old schema written exactly as it was.

The fixtures are named with ``name=`` so a test module imports them without shadowing its parameters.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui.chatstore import MIGRATIONS, ChatStore

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


@pytest.fixture(name="db_path")
def db_path_fixture(tmp_path: Path) -> Path:
    return tmp_path / "data" / "llamadeck" / "chats.db"


@pytest.fixture(name="store")
def store_fixture(db_path: Path) -> Iterator[ChatStore]:
    s = ChatStore.open(db_path)
    yield s
    s.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_v1(path: Path) -> None:
    """A chat history exactly as schema 1 wrote it, with one conversation of two messages."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO conversations (title, model, system, parameters, created, updated) VALUES "
        "('Old chat', 'gemma3:270m', 'Be brief.', '{\"temperature\": 0.2}', "
        "'2026-11-01T10:00:00.000000+00:00', '2026-11-01T10:05:00.000000+00:00')"
    )
    db.execute(
        "INSERT INTO messages (conversation_id, role, content, status, created) VALUES "
        "(1, 'user', 'Hi', 'complete', '2026-11-01T10:00:00.000000+00:00'),"
        "(1, 'assistant', 'Hel', 'streaming', '2026-11-01T10:00:01.000000+00:00')"
    )
    db.execute("COMMIT")
    db.close()


def make_v2(path: Path) -> None:
    """A chat history exactly as schema 2 wrote it: ``make_v1``'s, upgraded by the step to 2, and a reply
    with stats."""
    make_v1(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    MIGRATIONS[1](db)
    db.execute("PRAGMA user_version = 2")
    db.execute("UPDATE messages SET status = 'complete', stats = '{\"tokens_per_second\": 9.5}' WHERE id = 2")
    db.execute("COMMIT")
    db.close()


def make_v3(path: Path) -> None:
    """A chat history exactly as schema 3 wrote it: ``make_v2``'s, upgraded by the step to 3, with a draft."""
    make_v2(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    MIGRATIONS[2](db)
    db.execute("PRAGMA user_version = 3")
    db.execute("UPDATE conversations SET draft = 'half a thought' WHERE id = 1")
    db.execute("COMMIT")
    db.close()


def make_v4(path: Path) -> None:
    """A chat history as schema 4 wrote it: ``make_v3``'s, upgraded by the step to 4, with a format."""
    make_v3(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    MIGRATIONS[3](db)
    db.execute("PRAGMA user_version = 4")
    db.execute("""UPDATE conversations SET format = '"json"' WHERE id = 1""")
    db.execute("COMMIT")
    db.close()


def make_v5(path: Path) -> None:
    """A chat history as schema 5 wrote it: ``make_v4``'s, upgraded by the step to 5, with a reasoning."""
    make_v4(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    MIGRATIONS[4](db)
    db.execute("PRAGMA user_version = 5")
    db.execute("UPDATE messages SET thinking = 'hmm' WHERE id = 2")
    db.execute("COMMIT")
    db.close()
