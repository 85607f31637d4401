"""Opening the chat history: where it lives, the file it makes, its schema and the migrations at open."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.chat_history import db_path_fixture, digest, make_v1, make_v2, make_v3, store_fixture  # noqa: F401 (fixtures)
from tui.chatstore import (
    MIGRATIONS,
    SCHEMA_VERSION,
    ChatStore,
    ChatStoreError,
    NewerChatStore,
    default_chat_db,
)


def test_default_chat_db_follows_xdg_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_chat_db() == tmp_path / "xdg" / "llamadeck" / "chats.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_chat_db() == tmp_path / "home" / ".local" / "share" / "llamadeck" / "chats.db"


# --- opening -------------------------------------------------------------------------------------


def test_open_creates_directories_a_private_file_in_wal_mode(db_path: Path) -> None:
    with ChatStore.open(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        assert store.path == db_path
    assert db_path.is_file()
    assert db_path.stat().st_mode & 0o777 == 0o600
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_each_connection_has_foreign_keys_and_a_busy_timeout(store: ChatStore) -> None:
    db = store._connection()
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_reopening_keeps_everything(db_path: Path) -> None:
    with ChatStore.open(db_path) as store:
        chat = store.create("m", title="Kept", system="sys", parameters={"temperature": 0.5, "stop": ["\n"]})
        store.add_message(chat.id, "user", "hello")
    with ChatStore.open(db_path) as store:
        assert store.get(chat.id) == chat.__class__(
            **{**chat.__dict__, "updated": store.get(chat.id).updated}
        )
        assert [m.content for m in store.messages(chat.id)] == ["hello"]


def test_a_closed_store_says_so(db_path: Path) -> None:
    store = ChatStore.open(db_path)
    store.close()
    store.close()  # twice is fine
    with pytest.raises(ChatStoreError, match="closed"):
        store.conversations()


# --- migrations ----------------------------------------------------------------------------------


def test_every_schema_version_has_one_step() -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS) == 6


def test_step_to_v1_creates_the_initial_schema(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    make_v1(path)
    raw = sqlite3.connect(path)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    columns = [r[1] for r in raw.execute("PRAGMA table_info(messages)")]
    raw.close()
    assert {"conversations", "messages"} <= tables
    assert "stats" not in columns


def test_step_v1_to_v2_adds_stats_and_indexes_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    make_v1(path)
    with ChatStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        (chat,) = store.conversations()
        assert (chat.title, chat.model, chat.system, chat.parameters) == (
            "Old chat",
            "gemma3:270m",
            "Be brief.",
            {"temperature": 0.2},
        )
        assert chat.updated == "2026-11-01T10:05:00.000000+00:00"
        hi, hel = store.messages(chat.id)
        assert (hi.content, hi.stats) == ("Hi", None)
        assert (hel.content, hel.status) == ("Hel", "interrupted")  # the v1 app died mid-reply
        store.finish_reply(store.begin_reply(chat.id), "new", status="complete", stats={"tps": 9.0})
        assert store.messages(chat.id)[-1].stats == {"tps": 9.0}
        db = store._connection()
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"messages_by_conversation", "conversations_by_updated"} <= indexes
        plan = " ".join(
            str(r) for r in db.execute("EXPLAIN QUERY PLAN SELECT * FROM messages WHERE conversation_id = 1")
        )
        assert "messages_by_conversation" in plan


def test_step_v2_to_v3_adds_drafts_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    make_v2(path)
    raw = sqlite3.connect(path)
    assert "draft" not in [r[1] for r in raw.execute("PRAGMA table_info(conversations)")]
    raw.close()
    with ChatStore.open(path) as store:
        assert store.schema_version >= 3
        (chat,) = store.conversations()
        assert (chat.title, chat.updated) == ("Old chat", "2026-11-01T10:05:00.000000+00:00")
        hi, hel = store.messages(chat.id)
        assert (hi.content, hel.content, hel.status) == ("Hi", "Hel", "complete")
        assert hel.stats == {"tokens_per_second": 9.5}
        assert store.drafts() == {} and store.state("anything") is None
        store.save_drafts({chat.id: "half a thought", None: "a new chat's"})
        assert store.drafts() == {chat.id: "half a thought", None: "a new chat's"}
        assert store.get(chat.id).updated == chat.updated  # a draft does not move the chat up the list
    with ChatStore.open(path) as again:
        assert again.drafts() == {1: "half a thought", None: "a new chat's"}


def test_step_v3_to_v4_adds_the_reply_format_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    make_v3(path)
    with ChatStore.open(path) as store:
        assert store.schema_version >= 4
        (chat,) = store.conversations()
        assert (chat.title, chat.parameters, chat.format) == ("Old chat", {"temperature": 0.2}, None)
        assert store.drafts() == {chat.id: "half a thought"}
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        store.update_settings(chat.id, format=schema)
        assert store.get(chat.id).format == schema
        assert store.create("m", format="json").format == "json"
    with ChatStore.open(path) as again:
        assert again.get(chat.id).format == schema
        again.update_settings(chat.id, format=None)
        assert again.get(chat.id).format is None


def test_two_apps_upgrading_one_file_at_once_agree(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    make_v1(path)
    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: ChatStore.open(path), range(4)))
    try:
        assert {s.schema_version for s in stores} == {SCHEMA_VERSION}
        assert [m.content for m in stores[0].messages(1)] == ["Hi", "Hel"]
    finally:
        for s in stores:
            s.close()


def test_a_newer_schema_is_refused_and_left_untouched(db_path: Path) -> None:
    with ChatStore.open(db_path) as store:
        store.create("m", title="from the future")
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA journal_mode = DELETE")
    raw.execute("PRAGMA user_version = 9")
    raw.close()
    before = digest(db_path)
    with pytest.raises(NewerChatStore, match=r"newer llamadeck \(schema 9, this one reads up to 6\)") as info:
        ChatStore.open(db_path)
    assert "\n" not in str(info.value)
    assert digest(db_path) == before
    assert not db_path.with_name("chats.db-wal").exists()


def test_an_empty_file_becomes_a_new_history(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.touch()
    with ChatStore.open(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION and store.conversations() == []
