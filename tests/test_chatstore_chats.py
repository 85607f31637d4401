"""Conversations: create, rename, settings, order, delete, search, titles and the Markdown export."""

from __future__ import annotations

import pytest

from tests.support.chat_history import ISO_UTC, db_path_fixture, store_fixture  # noqa: F401 (fixtures)
from tui.chatstore import (
    ChatStore,
    ChatStoreError,
    title_from,
)


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


def test_a_failed_write_changes_nothing(store: ChatStore) -> None:
    chat = store.create("old-model", parameters={"seed": 1})
    with pytest.raises(ValueError, match="JSON"):
        store.update_settings(chat.id, model="new-model", parameters={"bad": {1, 2}})
    assert store.get(chat.id) == chat  # the model change went with the failed transaction
