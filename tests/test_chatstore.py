"""The Chat tab's conversation store: real SQLite files in tmp_path, no mocks."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.chatstore import (
    MIGRATIONS,
    SCHEMA_VERSION,
    ChatStore,
    ChatStoreError,
    DamagedChatStore,
    NewerChatStore,
    default_chat_db,
    title_from,
)

ROOT = Path(__file__).resolve().parents[1]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "llamadeck" / "chats.db"


@pytest.fixture
def store(db_path: Path):
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


# --- locations and titles ------------------------------------------------------------------------


def test_default_chat_db_follows_xdg_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_chat_db() == tmp_path / "xdg" / "llamadeck" / "chats.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_chat_db() == tmp_path / "home" / ".local" / "share" / "llamadeck" / "chats.db"


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("How do I sort a dict?", "How do I sort a dict?"),
        ("\n\n   first real line  \nsecond", "first real line"),
        ("tabs\tand   spaces", "tabs and spaces"),
        ("x" * 48, "x" * 48),
        ("x" * 49, "x" * 47 + "…"),
        ("word " * 20, ("word " * 10).strip()[:47].rstrip() + "…"),
        ("", "New chat"),
        ("  \n \t\n", "New chat"),
        ("nul\x00inside\x1b[31m", "nul inside [31m"),
        ("日本語のタイトル" * 10, ("日本語のタイトル" * 10)[:47] + "…"),
    ],
)
def test_title_from_takes_the_first_line_trimmed_to_48(text: str, title: str) -> None:
    assert title_from(text) == title
    assert len(title_from(text)) <= 48


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


# --- conversations -------------------------------------------------------------------------------


def test_create_and_get_a_conversation(store: ChatStore) -> None:
    chat = store.create("gemma3:270m", system="Be brief.", parameters={"temperature": 0.7, "top_k": 40})
    assert chat.title == "New chat" and chat.model == "gemma3:270m" and chat.system == "Be brief."
    assert chat.parameters == {"temperature": 0.7, "top_k": 40}
    assert ISO_UTC.match(chat.created) and chat.created == chat.updated
    assert store.get(chat.id) == chat


def test_get_of_a_deleted_conversation_is_a_chatstore_error(store: ChatStore) -> None:
    chat = store.create("m")
    store.delete(chat.id)
    with pytest.raises(ChatStoreError, match=f"chat {chat.id} no longer exists"):
        store.get(chat.id)
    store.delete(chat.id)  # deleting what is gone is fine


def test_rename_and_update_settings(store: ChatStore) -> None:
    chat = store.create("m", system="old system", parameters={"temperature": 0.1})
    store.rename(chat.id, "Renamed")
    store.update_settings(chat.id, model="other")
    got = store.get(chat.id)
    assert (got.title, got.model, got.system, got.parameters) == (
        "Renamed",
        "other",
        "old system",
        {"temperature": 0.1},
    )
    assert got.updated > chat.updated
    store.update_settings(chat.id, parameters={"seed": 7})
    assert store.get(chat.id).parameters == {"seed": 7} and store.get(chat.id).system == "old system"
    store.update_settings(chat.id, system=None)
    assert store.get(chat.id).system is None
    store.update_settings(chat.id, system="new")
    assert store.get(chat.id).system == "new"


def test_changes_to_a_missing_conversation_are_chatstore_errors(store: ChatStore) -> None:
    with pytest.raises(ChatStoreError, match="no longer exists"):
        store.rename(999, "x")
    with pytest.raises(ChatStoreError, match="no longer exists"):
        store.update_settings(999, model="x")
    with pytest.raises(ChatStoreError, match="no longer exists"):
        store.add_message(999, "user", "x")
    with pytest.raises(ChatStoreError, match="no longer exists"):
        store.begin_reply(999)
    assert store.messages(999) == []


def test_parameters_that_are_not_json_are_refused(store: ChatStore) -> None:
    with pytest.raises(ValueError, match="JSON"):
        store.create("m", parameters={"callback": object()})
    assert store.conversations() == []


def test_most_recently_updated_first(store: ChatStore) -> None:
    a = store.create("m", title="a")
    b = store.create("m", title="b")
    c = store.create("m", title="c")
    assert [x.title for x in store.conversations()] == ["c", "b", "a"]
    store.add_message(a.id, "user", "bump")
    assert [x.title for x in store.conversations()] == ["a", "c", "b"]
    store.rename(b.id, "b2")
    assert [x.title for x in store.conversations()] == ["b2", "a", "c"]
    assert c.id == store.conversations()[-1].id


def test_delete_removes_the_messages_too(store: ChatStore) -> None:
    chat = store.create("m")
    store.add_message(chat.id, "user", "hello")
    store.delete(chat.id)
    count = store._connection().execute("SELECT count(*) FROM messages").fetchone()[0]
    assert count == 0 and store.conversations() == []


# --- search --------------------------------------------------------------------------------------


@pytest.fixture
def searchable(store: ChatStore) -> ChatStore:
    titled = store.create("m", title="Python Sorting")
    store.add_message(titled.id, "user", "nothing special")
    body = store.create("m", title="Other")
    store.add_message(body.id, "user", "the discount is 50% off_today")
    store.add_message(body.id, "assistant", "ÄRGER über Straße")
    store.create("m", title="path C:\\temp")
    store.create("m", title="plain 50 percent")
    return store


@pytest.mark.parametrize(
    ("search", "titles"),
    [
        ("", ["plain 50 percent", "path C:\\temp", "Other", "Python Sorting"]),
        ("sorting", ["Python Sorting"]),
        ("PYTHON", ["Python Sorting"]),
        ("nothing SPECIAL", ["Python Sorting"]),
        ("50%", ["Other"]),  # % is literal, not "50 then anything"
        ("%", ["Other"]),
        ("off_today", ["Other"]),
        ("_", ["Other"]),  # _ is literal, not "any one character"
        ("o_f", []),
        ("\\temp", ["path C:\\temp"]),
        ("ärger", ["Other"]),  # Unicode case folding, not ASCII-only LIKE
        ("STRASSE", ["Other"]),
        ("missing", []),
        ("'; DROP TABLE conversations; --", []),
    ],
)
def test_search_matches_title_or_any_message_literally_ignoring_case(
    searchable: ChatStore, search: str, titles: list[str]
) -> None:
    assert [c.title for c in searchable.conversations(search)] == titles


def test_search_finds_text_after_a_nul_character(store: ChatStore) -> None:
    chat = store.create("m")
    store.add_message(chat.id, "user", "before\x00after-the-nul")
    assert [c.id for c in store.conversations("after-the-nul")] == [chat.id]
    assert [c.id for c in store.conversations("E\x00AFT")] == [chat.id]
    assert store.conversations("e\x00x") == []


# --- messages and replies ------------------------------------------------------------------------


def test_messages_come_back_in_order_with_their_fields(store: ChatStore) -> None:
    chat = store.create("m")
    first = store.add_message(chat.id, "system", "sys")
    second = store.add_message(chat.id, "user", "hi")
    third = store.add_message(chat.id, "assistant", "yo", status="error", stats={"tokens": 3, "tps": 12.5})
    assert store.messages(chat.id) == [first, second, third]
    assert third.stats == {"tokens": 3.0, "tps": 12.5} and third.status == "error"
    assert ISO_UTC.match(first.created)


def test_a_wrong_role_or_status_is_a_bug(store: ChatStore) -> None:
    chat = store.create("m")
    with pytest.raises(ValueError, match="role"):
        store.add_message(chat.id, "robot", "x")
    with pytest.raises(ValueError, match="status"):
        store.add_message(chat.id, "user", "x", status="done")
    reply = store.begin_reply(chat.id)
    with pytest.raises(ValueError, match="status"):
        store.finish_reply(reply, "x", status="streaming")
    assert [m.id for m in store.messages(chat.id)] == [reply]


def test_a_reply_streams_then_finishes(store: ChatStore) -> None:
    chat = store.create("m")
    store.add_message(chat.id, "user", "count")
    reply = store.begin_reply(chat.id)
    last = store.messages(chat.id)[-1]
    assert (last.id, last.role, last.content, last.status) == (reply, "assistant", "", "streaming")
    store.update_reply(reply, "1 2")
    assert store.messages(chat.id)[-1].content == "1 2"
    store.finish_reply(reply, "1 2 3", status="complete", stats={"tokens_per_second": 41.5, "tokens": 3})
    done = store.messages(chat.id)[-1]
    assert (done.content, done.status, done.stats) == (
        "1 2 3",
        "complete",
        {"tokens_per_second": 41.5, "tokens": 3},
    )
    assert store.get(chat.id).updated >= done.created


@pytest.mark.parametrize("status", ["complete", "stopped", "error"])
def test_a_late_update_after_the_finish_changes_nothing(store: ChatStore, status: str) -> None:
    chat = store.create("m")
    reply = store.begin_reply(chat.id)
    store.finish_reply(reply, "final", status=status)
    store.update_reply(reply, "fin")  # a throttle timer that fired after the end
    m = store.messages(chat.id)[-1]
    assert (m.content, m.status) == ("final", status)


def test_parameters_keep_any_text(store: ChatStore) -> None:
    params = {"stop": ["\x00", "</s>", "🦙", "half \ud800"], "nested": {"a": [1, 2.5, None, True]}}
    chat = store.create("m", parameters=params)
    expected = {**params, "stop": ["\x00", "</s>", "🦙", "half \ufffd"]}
    assert chat.parameters == expected == store.get(chat.id).parameters


@pytest.mark.parametrize("status", ["stopped", "interrupted", "error", "complete"])
def test_finish_reply_records_how_it_ended(store: ChatStore, status: str) -> None:
    chat = store.create("m")
    reply = store.begin_reply(chat.id)
    store.finish_reply(reply, "partial", status=status)
    assert store.messages(chat.id)[-1].status == status


def test_updating_a_reply_whose_chat_was_deleted_is_a_chatstore_error(store: ChatStore) -> None:
    chat = store.create("m")
    reply = store.begin_reply(chat.id)
    store.delete(chat.id)
    with pytest.raises(ChatStoreError, match=f"message {reply} no longer exists"):
        store.update_reply(reply, "late")
    with pytest.raises(ChatStoreError, match="no longer exists"):
        store.finish_reply(reply, "late", status="complete")


def test_delete_from_drops_this_message_and_later_ones_only(store: ChatStore) -> None:
    chat = store.create("m")
    other = store.create("m")
    ids = [store.add_message(chat.id, role, t).id for role, t in [("user", "a"), ("assistant", "b")] * 2]
    keep = store.add_message(other.id, "user", "other chat")
    store.delete_from(ids[1])
    assert [m.content for m in store.messages(chat.id)] == ["a"]
    assert store.messages(other.id) == [keep]
    store.delete_from(ids[1])  # already gone: nothing happens
    store.delete_from(ids[0])
    assert store.messages(chat.id) == []
    assert store.get(chat.id).id == chat.id  # the conversation stays


def test_a_streaming_reply_left_by_a_crash_becomes_interrupted(db_path: Path) -> None:
    store = ChatStore.open(db_path)
    chat = store.create("m")
    reply = store.begin_reply(chat.id)
    store.update_reply(reply, "what came before the crash")
    store._connection().close()  # the app dies: no finish_reply
    with ChatStore.open(db_path) as again:
        m = again.messages(chat.id)[-1]
        assert (m.status, m.content) == ("interrupted", "what came before the crash")


def test_a_live_reply_marked_interrupted_by_a_second_app_recovers(db_path: Path) -> None:
    with ChatStore.open(db_path) as first:
        chat = first.create("m")
        reply = first.begin_reply(chat.id)
        with ChatStore.open(db_path) as second:  # opens while the first streams
            assert second.messages(chat.id)[-1].status == "interrupted"
            first.update_reply(reply, "more")
            assert second.messages(chat.id)[-1].status == "streaming"
            first.finish_reply(reply, "more, done", status="complete")
            assert second.messages(chat.id)[-1].status == "complete"


# --- text kept verbatim, hostile rows ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "",
        "nul\x00inside\x00",
        "emoji 🦙👩‍👩‍👧 RTL \u202e שלום combining é",
        "\r\n\t\x1b[31mansi\x1b[0m",
        "x" * (1 << 20),
        "🦙" * (1 << 18),
        "'); DROP TABLE messages; --",
    ],
    ids=["plain", "empty", "nul", "unicode", "control", "1MB", "1MB-emoji", "sql"],
)
def test_text_is_stored_verbatim(db_path: Path, text: str) -> None:
    with ChatStore.open(db_path) as store:
        chat = store.create(text or "m", title=text, system=text)
        store.add_message(chat.id, "user", text)
        reply = store.begin_reply(chat.id)
        store.finish_reply(reply, text + text, status="complete")
    with ChatStore.open(db_path) as store:
        got = store.get(chat.id)
        assert (got.title, got.system) == (text, text)
        assert [m.content for m in store.messages(chat.id)] == [text, text + text]


def test_lone_surrogates_become_replacement_characters(store: ChatStore) -> None:
    chat = store.create("m", title="bad \ud800 title")
    store.add_message(chat.id, "user", "half \udfff pair")
    assert store.get(chat.id).title == "bad \ufffd title"
    assert store.messages(chat.id)[0].content == "half \ufffd pair"
    assert store.conversations("\ud800") == store.conversations("\ufffd") != []


def test_hostile_rows_written_by_another_tool_never_break_reading(db_path: Path) -> None:
    with ChatStore.open(db_path) as store:
        good = store.create("m", title="good")
        store.add_message(good.id, "user", "fine")
    raw = sqlite3.connect(db_path, isolation_level=None)
    now = "2026-11-25T00:00:00.000000+00:00"
    rows = [
        (b"\xff\xfe bad utf8", "m", None, "{not json", now, now),
        ("list params", 42, b"\xc3", "[1, 2]", now, now),
        ("deep", "m", None, "[" * 100_000 + "]" * 100_000, now, 12345),
    ]
    for row in rows:
        raw.execute(
            "INSERT INTO conversations (title, model, system, parameters, created, updated)"
            " VALUES (?,?,?,?,?,?)",
            row,
        )
    for content, status, stats in [
        (b"\x80\x81 invalid", "complete", "nope"),
        (12345, "weird-status", '{"tps": "fast", "ok": 1.5, "flag": true}'),
        (b"blob with needle", "complete", "[1]"),
    ]:
        raw.execute(
            "INSERT INTO messages (conversation_id, role, content, status, stats, created)"
            " VALUES (?,?,?,?,?,?)",
            (good.id, "user", content, status, stats, now),
        )
    raw.close()
    with ChatStore.open(db_path) as store:
        listed = store.conversations()
        assert len(listed) == 4
        by_model = {c.title: c for c in listed}
        assert by_model["\ufffd\ufffd bad utf8"].parameters == {}
        assert by_model["list params"].parameters == {} and by_model["list params"].model == "42"
        assert by_model["list params"].system == "\ufffd"
        assert by_model["deep"].parameters == {}
        messages = store.messages(good.id)
        assert [m.content for m in messages][1:] == ["\ufffd\ufffd invalid", "12345", "blob with needle"]
        assert [m.stats for m in messages][1:] == [None, {"ok": 1.5}, None]
        assert [c.id for c in store.conversations("needle")] == [good.id]
        assert [c.title for c in store.conversations("bad utf8")] == ["\ufffd\ufffd bad utf8"]
        assert "invalid" in store.export_markdown(good.id)


# --- concurrency ---------------------------------------------------------------------------------


def test_many_threads_share_one_store(store: ChatStore) -> None:
    chats = [store.create("m", title=f"chat {i}") for i in range(4)]

    def work(n: int) -> None:
        chat = chats[n % 4]
        for i in range(25):
            store.add_message(chat.id, "user", f"{n}-{i}")
            reply = store.begin_reply(chat.id)
            store.update_reply(reply, "part")
            store.finish_reply(reply, f"reply {n}-{i}", status="complete")
            store.conversations("reply")
            store.messages(chat.id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    contents = [m.content for c in chats for m in store.messages(c.id)]
    assert len(contents) == 8 * 25 * 2
    assert {f"{n}-{i}" for n in range(8) for i in range(25)} <= set(contents)
    assert all(m.status == "complete" for c in chats for m in store.messages(c.id))


def test_two_stores_on_one_file_see_each_other(db_path: Path) -> None:
    with ChatStore.open(db_path) as a, ChatStore.open(db_path) as b:
        chat = a.create("m", title="shared")
        assert b.get(chat.id).title == "shared"
        for i in range(20):
            (a if i % 2 else b).add_message(chat.id, "user", str(i))
        assert [m.content for m in a.messages(chat.id)] == [str(i) for i in range(20)]
        reply = a.begin_reply(chat.id)
        a.update_reply(reply, "visible while streaming")
        assert b.messages(chat.id)[-1].content == "visible while streaming"
        b.delete(chat.id)
        with pytest.raises(ChatStoreError, match="no longer exists"):
            a.finish_reply(reply, "too late", status="complete")


WRITER = """
import sys
from pathlib import Path
from tui.chatstore import ChatStore
store = ChatStore.open(Path(sys.argv[1]))
chat_id = int(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
for i in range(150):
    reply = store.begin_reply(chat_id)
    store.finish_reply(reply, f"child {i}", status="complete")
store.close()
"""


def test_a_second_process_writes_at_the_same_time(db_path: Path) -> None:
    with ChatStore.open(db_path) as store:
        chat = store.create("m")
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path), str(chat.id)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        for i in range(150):
            store.add_message(chat.id, "user", f"parent {i}")
        assert child.wait(timeout=60) == 0
        contents = [m.content for m in store.messages(chat.id)]
    assert sorted(contents) == sorted(
        [f"parent {i}" for i in range(150)] + [f"child {i}" for i in range(150)]
    )
    assert [c for c in contents if c.startswith("child")] == [f"child {i}" for i in range(150)]


def test_a_write_waits_for_another_programs_transaction(store: ChatStore, db_path: Path) -> None:
    chat = store.create("m")
    other = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    store.add_message(chat.id, "user", "after the wait")
    assert time.monotonic() - started >= 0.4
    release.join()
    other.close()
    assert store.messages(chat.id)[-1].content == "after the wait"


# --- migrations ----------------------------------------------------------------------------------


def test_every_schema_version_has_one_step() -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS) == 2


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
        assert store.schema_version == 2
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
    with pytest.raises(NewerChatStore, match=r"newer llamadeck \(schema 9, this one reads up to 2\)") as info:
        ChatStore.open(db_path)
    assert "\n" not in str(info.value)
    assert digest(db_path) == before
    assert not db_path.with_name("chats.db-wal").exists()


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
    raw.execute("PRAGMA user_version = 5")
    raw.close()
    with pytest.raises(NewerChatStore, match="schema 5"):
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
    raw.execute("PRAGMA user_version = 3")
    raw.close()
    before = digest(db_path)
    store, warning = ChatStore.open_or_fresh(db_path)
    with store:
        assert store.path is None
        chat = store.create("m")
        store.add_message(chat.id, "user", "kept in memory")
        assert [m.content for m in store.messages(chat.id)] == ["kept in memory"]
    assert warning == (
        f"chat history {db_path} was written by a newer llamadeck (schema 3, this one reads up to 2); "
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


# --- export --------------------------------------------------------------------------------------


def test_export_markdown_is_a_readable_transcript(store: ChatStore) -> None:
    chat = store.create(
        "gemma3:270m", title="Sorting\nthings", system="Be brief.", parameters={"temperature": 0.2}
    )
    store.add_message(chat.id, "user", "How do I sort?")
    store.add_message(
        chat.id, "assistant", "Use `sorted()`.", stats={"tokens_per_second": 41.25, "tokens": 12}
    )
    store.add_message(chat.id, "user", "And reversed?")
    store.add_message(chat.id, "assistant", "Pass reverse=", status="stopped")
    store.add_message(chat.id, "user", "Again")
    store.add_message(chat.id, "assistant", "", status="interrupted")
    store.add_message(chat.id, "assistant", "boom", status="error")
    got = store.get(chat.id)
    assert store.export_markdown(chat.id) == (
        "# Sorting things\n"
        "\n"
        "- Model: `gemma3:270m`\n"
        f"- Created: {got.created}\n"
        f"- Updated: {got.updated}\n"
        '- Parameters: `{"temperature": 0.2}`\n'
        "\n"
        "## System prompt\n"
        "\n"
        "Be brief.\n"
        "\n"
        "## User\n"
        "\n"
        "How do I sort?\n"
        "\n"
        "## Assistant\n"
        "\n"
        "Use `sorted()`.\n"
        "\n"
        "<sub>tokens per second: 41.2, tokens: 12</sub>\n"
        "\n"
        "## User\n"
        "\n"
        "And reversed?\n"
        "\n"
        "## Assistant\n"
        "\n"
        "Pass reverse=\n"
        "\n"
        "*(reply stopped by the user)*\n"
        "\n"
        "## User\n"
        "\n"
        "Again\n"
        "\n"
        "## Assistant\n"
        "\n"
        "*(reply interrupted: llamadeck closed before it finished)*\n"
        "\n"
        "## Assistant\n"
        "\n"
        "boom\n"
        "\n"
        "*(reply failed)*\n"
    )


def test_export_of_a_bare_chat_and_of_a_missing_one(store: ChatStore) -> None:
    chat = store.create("m", title="")
    text = store.export_markdown(chat.id)
    assert text.startswith("# New chat\n\n- Model: `m`\n") and "System prompt" not in text
    assert "Parameters" not in text
    with pytest.raises(ChatStoreError, match="no longer exists"):
        store.export_markdown(999)


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


# --- more edges ----------------------------------------------------------------------------------


def test_a_failed_write_changes_nothing(store: ChatStore) -> None:
    chat = store.create("old-model", parameters={"seed": 1})
    with pytest.raises(ValueError, match="JSON"):
        store.update_settings(chat.id, model="new-model", parameters={"bad": {1, 2}})
    assert store.get(chat.id) == chat  # the model change went with the failed transaction


def test_an_empty_file_becomes_a_new_history(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.touch()
    with ChatStore.open(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION and store.conversations() == []


def test_a_database_marked_by_another_application_is_not_taken_over(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA application_id = 1234")
    raw.close()
    with pytest.raises(DamagedChatStore, match="another application's database"):
        ChatStore.open(db_path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300), data=st.data())
def test_any_text_round_trips_and_any_piece_of_it_finds_it(
    store: ChatStore, text: str, data: st.DataObject
) -> None:
    chat = store.create("m")
    message = store.add_message(chat.id, "user", text)
    assert store.messages(chat.id) == [message] and message.content == text
    start = data.draw(st.integers(0, len(text) - 1))
    piece = text[start : data.draw(st.integers(start + 1, len(text)))]
    assert chat.id in [c.id for c in store.conversations(piece)]
    if piece.upper().casefold() == piece.casefold():  # not so for a few letters, e.g. "ı".upper() == "I"
        assert chat.id in [c.id for c in store.conversations(piece.upper())]
    store.delete(chat.id)
