"""The chat history's schema 6: images attached to messages, their bytes kept once by content hash."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.support.chat_history import make_v5
from tests.support.images import image_bytes
from tui.chatstore import ChatStore, StoredImage, image

RED, BLUE = image_bytes("PNG", color=(250, 10, 10)), image_bytes("PNG", color=(10, 10, 250))


def _image_rows(path: Path) -> int:
    with sqlite3.connect(path) as raw:
        return int(raw.execute("SELECT count(*) FROM images").fetchone()[0])


def test_step_v5_to_v6_adds_images_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    make_v5(path)
    with ChatStore.open(path) as store:
        assert store.schema_version == 6
        (chat,) = store.conversations()
        hi, hel = store.messages(chat.id)
        assert (hi.content, hel.content, hel.thinking, hi.images) == ("Hi", "Hel", "hmm", ())
        store.add_message(chat.id, "user", "what is this?", images=[image("photo.png", RED)])
    with ChatStore.open(path) as again:
        *_, asked = again.messages(chat.id)
        assert [(i.name, i.data, i.size) for i in asked.images] == [("photo.png", RED, len(RED))]


def test_the_same_image_is_stored_once_and_goes_with_its_last_message(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    with ChatStore.open(path) as store:
        one, two = store.create("m"), store.create("m")
        store.add_message(one.id, "user", "a", images=[image("red.png", RED), image("blue.png", BLUE)])
        kept = store.add_message(two.id, "user", "b", images=[image("again.png", RED)])
        assert [i.name for i in store.messages(one.id)[0].images] == ["red.png", "blue.png"]  # in order
        assert _image_rows(path) == 2
        store.delete(one.id)
        assert _image_rows(path) == 1  # red stays: chat two shows it
        store.delete_from(kept.id)
        assert _image_rows(path) == 0


def test_a_message_and_its_images_are_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    with ChatStore.open(path) as store:
        chat = store.create("m")
        store.add_message(chat.id, "user", "first")
        broken = StoredImage("broken.png", "not bytes")  # type: ignore[arg-type]
        with pytest.raises(TypeError):  # fails after the message row was written: all of it rolls back
            store.add_message(chat.id, "user", "second", images=[image("red.png", RED), broken])
        contents = [m.content for m in store.messages(chat.id)]
    assert contents == ["first"]
    with sqlite3.connect(path) as raw:  # never a link without its bytes nor a message half-kept
        assert raw.execute("SELECT count(*) FROM message_images").fetchone()[0] == 0
        assert raw.execute("SELECT count(*) FROM images").fetchone()[0] == 0


def test_the_export_names_each_image(tmp_path: Path) -> None:
    with ChatStore.open(tmp_path / "chats.db") as store:
        chat = store.create("m")
        store.add_message(chat.id, "user", "what is this?", images=[image("photo.png", RED)])
        text = store.export_markdown(chat.id)
    assert "*Image:* `photo.png`" in text and image("x", RED).sha256[:16] in text
