"""Files the chat history cannot use (damaged, foreign, newer, unreadable); open_or_fresh carries on."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.chat_history import db_path_fixture, digest  # noqa: F401 (fixtures)
from tui.chatstore import (
    SCHEMA_VERSION,
    ChatStore,
    ChatStoreError,
    DamagedChatStore,
    NewerChatStore,
)

# --- damaged, foreign and unusable files ---------------------------------------------------------


def test_a_file_that_is_not_a_database_is_damaged(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is a text file, not SQLite\n" * 100)
    before = digest(db_path)
    with pytest.raises(DamagedChatStore) as info:
        ChatStore.open(db_path)
    assert str(info.value) == f"chat history {db_path} is damaged (file is not a database)"
    assert digest(db_path) == before


def corrupt(db_path: Path) -> bytes:
    """A real history whose pages after the first are trashed; the bytes written."""
    with ChatStore.open(db_path) as store:
        chat = store.create("m")
        for i in range(200):
            store.add_message(chat.id, "user", f"message {i} " * 50)
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA journal_mode = DELETE")  # everything into the main file
    page = raw.execute("PRAGMA page_size").fetchone()[0]
    raw.close()
    data = bytearray(db_path.read_bytes())
    for offset in range(page, len(data) - page, page):
        data[offset : offset + 16] = b"\xa5" * 16
    db_path.write_bytes(bytes(data))
    return bytes(data)


def test_a_corrupted_database_is_damaged_and_left_as_it_was(db_path: Path) -> None:
    data = corrupt(db_path)
    with pytest.raises(DamagedChatStore, match=f"chat history {re.escape(str(db_path))} is damaged") as info:
        ChatStore.open(db_path)
    assert "\n" not in str(info.value)
    assert db_path.read_bytes() == data


def test_open_or_fresh_sets_a_corrupted_database_aside(db_path: Path) -> None:
    data = corrupt(db_path)
    store, warning = ChatStore.open_or_fresh(db_path)
    with store:
        assert store.path == db_path and store.conversations() == []
    assert warning is not None and "moved aside to chats.db.damaged-" in warning
    (aside,) = db_path.parent.glob("chats.db.damaged-*")
    assert aside.read_bytes() == data


def test_odd_characters_in_the_path_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "my chats #1?%20&mode=rw" / "chats ü.db"
    with ChatStore.open(path) as store:
        store.create("m", title="odd")
    with ChatStore.open(path) as store:
        assert [c.title for c in store.conversations()] == ["odd"]
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(NewerChatStore, match="schema 99"):
        ChatStore.open(path)


def test_another_programs_sqlite_file_is_not_taken_over(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE accounts (id INTEGER, balance REAL)")
    raw.commit()
    raw.close()
    before = digest(db_path)
    with pytest.raises(DamagedChatStore, match="an SQLite file, not a chat history"):
        ChatStore.open(db_path)
    assert digest(db_path) == before


def test_a_directory_in_the_way_is_a_clear_error(db_path: Path) -> None:
    db_path.mkdir(parents=True)
    with pytest.raises(ChatStoreError, match="is a directory, not a database file") as info:
        ChatStore.open(db_path)
    assert not isinstance(info.value, DamagedChatStore)


def test_a_file_where_the_directory_should_be_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(ChatStoreError, match=r"cannot create .*blocker for the chat history"):
        ChatStore.open(tmp_path / "blocker" / "chats.db")


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    """Checked as an unprivileged user: root reads any file, so under root the check runs as nobody."""
    folder = tmp_path / "shared"
    folder.mkdir()
    db_path = folder / "chats.db"
    with ChatStore.open(db_path) as store:
        store.create("m")
    db_path.chmod(0o000)
    check = "\n".join(
        [
            "import sys",
            "from pathlib import Path",
            "from tui.chatstore import ChatStore, ChatStoreError, DamagedChatStore",
            "try:",
            "    ChatStore.open(Path(sys.argv[1]))",
            "except DamagedChatStore as e:",
            "    print('DAMAGED', e)",
            "except ChatStoreError as e:",
            "    print(e)",
            "else:",
            "    print('OPENED')",
        ]
    )
    command = [sys.executable, "-c", check, str(db_path)]
    if os.geteuid() == 0:
        for part in (tmp_path, *tmp_path.parents):  # let nobody walk down to the file, and no further
            if part != Path("/"):
                part.chmod(part.stat().st_mode | 0o001)
        folder.chmod(0o777)
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent
        )
        assert result.stdout.strip() == f"cannot open chat history {db_path} (permission denied)", result
    finally:
        db_path.chmod(0o600)


def test_a_name_the_system_refuses_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 300) / "chats.db"
    with pytest.raises(ChatStoreError, match=r"(File name too long)"):
        ChatStore.open(path)
    path = tmp_path / ("y" * 300 + ".db")
    with pytest.raises(ChatStoreError, match=r"cannot open chat history .* \(File name too long\)"):
        ChatStore.open(path)


# --- open_or_fresh -------------------------------------------------------------------------------


def test_open_or_fresh_on_a_good_file_has_no_warning(db_path: Path) -> None:
    store, warning = ChatStore.open_or_fresh(db_path)
    with store:
        assert warning is None and store.path == db_path


def test_open_or_fresh_moves_a_damaged_file_aside_and_starts_anew(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"garbage" * 1000)
    db_path.with_name("chats.db-wal").write_bytes(b"stale wal")
    store, warning = ChatStore.open_or_fresh(db_path)
    with store:
        assert store.path == db_path and store.conversations() == []
        store.create("m")
    assert warning is not None and "\n" not in warning
    match = re.fullmatch(
        rf"chat history {re.escape(str(db_path))} is damaged \(file is not a database\); "
        r"moved aside to (chats\.db\.damaged-\d{8}T\d{6}Z), starting a new one",
        warning,
    )
    assert match, warning
    aside = db_path.with_name(match.group(1))
    assert aside.read_bytes() == b"garbage" * 1000  # never deleted
    assert aside.with_name(aside.name + "-wal").read_bytes() == b"stale wal"
    with ChatStore.open(db_path) as again:
        assert len(again.conversations()) == 1


def test_open_or_fresh_never_overwrites_an_earlier_damaged_copy(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    for n in range(3):
        db_path.write_bytes(f"garbage {n}".encode() * 100)
        store, warning = ChatStore.open_or_fresh(db_path)
        store.close()
        db_path.unlink()
        for side in db_path.parent.glob("chats.db-*"):
            side.unlink()
    asides = sorted(db_path.parent.glob("chats.db.damaged-*"))
    assert len(asides) == 3
    assert {p.read_bytes()[:9] for p in asides} == {b"garbage 0", b"garbage 1", b"garbage 2"}


def test_open_or_fresh_keeps_a_newer_file_and_works_in_memory(db_path: Path) -> None:
    with ChatStore.open(db_path) as store:
        store.create("m")
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    before = digest(db_path)
    store, warning = ChatStore.open_or_fresh(db_path)
    with store:
        assert store.path is None
        chat = store.create("m")
        store.add_message(chat.id, "user", "kept in memory")
        assert [m.content for m in store.messages(chat.id)] == ["kept in memory"]
    assert warning == (
        f"chat history {db_path} was written by a newer llamadeck (schema {SCHEMA_VERSION + 1}, "
        f"this one reads up to {SCHEMA_VERSION}); "
        "update llamadeck to use it: chats in this session will not be saved"
    )
    assert digest(db_path) == before
    assert not list(db_path.parent.glob("*.damaged-*"))


def test_open_or_fresh_with_a_directory_in_the_way_works_in_memory(db_path: Path) -> None:
    db_path.mkdir(parents=True)
    store, warning = ChatStore.open_or_fresh(db_path)
    with store:
        assert store.path is None and store.schema_version == SCHEMA_VERSION
        assert store.create("m").id == 1
    assert (
        warning == f"chat history {db_path} is a directory, not a database file: "
        "chats in this session will not be saved"
    )
    assert db_path.is_dir()


def test_in_memory_store_behaves_like_a_file(tmp_path: Path) -> None:
    with ChatStore.in_memory() as store:
        chat = store.create("m")
        store.add_message(chat.id, "user", "x")
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: store.add_message(chat.id, "user", str(i)), range(40)))
        assert len(store.messages(chat.id)) == 41


def test_a_newer_schema_with_an_unsaved_wal_is_not_checkpointed(db_path: Path, tmp_path: Path) -> None:
    """A newer app's WAL (not yet folded into the file) stays as it is: the refusal writes nothing."""
    with ChatStore.open(db_path) as store:
        store.create("m")
    live = sqlite3.connect(db_path, isolation_level=None)
    live.execute("PRAGMA wal_autocheckpoint = 0")
    live.execute("PRAGMA user_version = 7")
    live.execute("INSERT INTO conversations (title, model, created, updated) VALUES ('w', 'm', 'x', 'x')")
    copy = tmp_path / "copy" / "chats.db"
    copy.parent.mkdir()
    for suffix in ("", "-wal"):  # a snapshot taken while the newer app is running
        copy.with_name("chats.db" + suffix).write_bytes(db_path.with_name("chats.db" + suffix).read_bytes())
    live.close()
    wal = copy.with_name("chats.db-wal")
    before = (digest(copy), digest(wal))
    with pytest.raises(NewerChatStore, match="schema 7"):
        ChatStore.open(copy)
    assert (digest(copy), digest(wal)) == before


def test_a_database_marked_by_another_application_is_not_taken_over(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA application_id = 1234")
    raw.close()
    with pytest.raises(DamagedChatStore, match="another application's database"):
        ChatStore.open(db_path)
