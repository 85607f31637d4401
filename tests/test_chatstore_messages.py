"""Messages and replies: order, streaming, finishing, deleting from one on; text verbatim; hostile rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.chat_history import ISO_UTC, db_path_fixture, store_fixture  # noqa: F401 (fixtures)
from tui.chatstore import (
    ChatStore,
    ChatStoreError,
)

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
