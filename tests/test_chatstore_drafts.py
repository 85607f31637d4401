"""The chat history keeps what was typed and not sent: a draft per chat, the new chat's, the app's state,
and the sent messages the message box walks with Up and Down."""

from __future__ import annotations

from pathlib import Path

from tests.support.chat_history import db_path_fixture, store_fixture  # noqa: F401 (fixtures)
from tui.chatstore import ChatStore


def test_a_draft_per_chat_and_one_for_the_new_chat_survive_reopening(db_path: Path) -> None:
    with ChatStore.open(db_path) as store:
        a, b = store.create("m", title="A"), store.create("m", title="B")
        store.save_drafts({a.id: "first line\nsecond line", b.id: "", None: "not sent anywhere yet"})
        assert store.drafts() == {a.id: "first line\nsecond line", None: "not sent anywhere yet"}
    with ChatStore.open(db_path) as again:
        assert again.drafts() == {a.id: "first line\nsecond line", None: "not sent anywhere yet"}
        again.save_drafts({a.id: "", None: ""})  # sent, or rubbed out: nothing kept
        assert again.drafts() == {}


def test_a_draft_leaves_the_chat_list_order_alone(store: ChatStore) -> None:
    old, _ = store.create("m", title="old"), store.create("m", title="new")
    store.save_drafts({old.id: "typing in the old chat"})
    assert [c.title for c in store.conversations()] == ["new", "old"]
    assert store.get(old.id).updated == old.updated


def test_a_draft_goes_with_its_chat_and_a_chat_deleted_meanwhile_is_skipped(store: ChatStore) -> None:
    chat, other = store.create("m"), store.create("m")
    store.save_drafts({chat.id: "draft"})
    store.delete(chat.id)
    assert store.drafts() == {}
    store.save_drafts({chat.id: "late save for a deleted chat", other.id: "kept"})
    assert store.drafts() == {other.id: "kept"}


def test_drafts_keep_any_text_verbatim(store: ChatStore) -> None:
    chat = store.create("m")
    text = "NUL \x00, escape \x1b[2J, emoji 🦙, a lone surrogate \ud800 and 100k of x" + "x" * 100_000
    store.save_drafts({chat.id: text, None: "[bold]not markup[/bold]"})
    kept = store.drafts()
    assert kept[chat.id] == text.replace("\ud800", "\ufffd")
    assert kept[None] == "[bold]not markup[/bold]"


def test_state_is_kept_replaced_and_forgotten(db_path: Path) -> None:
    with ChatStore.open(db_path) as store:
        assert store.state("open") is None
        store.set_state("open", "3")
        store.set_state("open", "new")
    with ChatStore.open(db_path) as again:
        assert again.state("open") == "new"
        again.set_state("open", None)
        assert again.state("open") is None


def test_sent_messages_are_the_users_over_every_chat_oldest_first_without_repeats(store: ChatStore) -> None:
    a, b = store.create("m"), store.create("m")
    for chat, role, text in [
        (a, "user", "one"),
        (a, "assistant", "a reply is not history"),
        (b, "user", "two"),
        (b, "user", "two"),  # sent twice in a row: once in the history, as a shell keeps it
        (a, "user", ""),
        (a, "user", "three"),
        (b, "user", "one"),
    ]:
        store.add_message(chat.id, role, text)
    assert store.sent_messages() == ["one", "two", "three", "one"]
    assert store.sent_messages(limit=2) == ["three", "one"]
