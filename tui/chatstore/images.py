"""Images of messages in the chat history: the bytes kept once per sha256, linked to each message.

Written inside the message's own transaction (``ChatStore.add_message``), so a
message never exists without its images nor an image link without its message.
An image no message links to any more (its chat deleted, a message edited
away) is removed in the transaction that unlinked it (``prune``).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence

from tui.chatstore.records import StoredImage, StoredMessage
from tui.chatstore.rows import as_text, storable


def image(name: str, data: bytes) -> StoredImage:
    """An image to attach: its name and bytes, with their hash."""
    return StoredImage(name, bytes(data), hashlib.sha256(data).hexdigest())


def put(db: sqlite3.Connection, message_id: int, images: Sequence[StoredImage]) -> tuple[StoredImage, ...]:
    """Link ``images`` to the message (their bytes stored once); the images as kept."""
    kept = tuple(image(storable(i.name), i.data) for i in images)
    for position, item in enumerate(kept):
        db.execute(
            "INSERT OR IGNORE INTO images (sha256, data, size) VALUES (?, ?, ?)",
            (item.sha256, item.data, item.size),
        )
        db.execute(
            "INSERT INTO message_images (message_id, position, name, sha256) VALUES (?, ?, ?, ?)",
            (message_id, position, item.name, item.sha256),
        )
    return kept


def attach(db: sqlite3.Connection, messages: list[StoredMessage]) -> list[StoredMessage]:
    """``messages`` (of one conversation) with their images read in (one query)."""
    if not messages:
        return messages
    rows = db.execute(
        "SELECT l.message_id, l.name, i.data, l.sha256 FROM message_images l JOIN images i USING (sha256)"
        " JOIN messages m ON m.id = l.message_id WHERE m.conversation_id = ?"
        " ORDER BY l.message_id, l.position",
        (messages[0].conversation_id,),
    ).fetchall()
    found: dict[int, list[StoredImage]] = {}
    for message_id, name, data, sha in rows:
        if isinstance(data, bytes):  # a row another tool damaged is left out
            found.setdefault(int(message_id), []).append(StoredImage(as_text(name), data, as_text(sha)))
    if not found:
        return messages
    from dataclasses import replace

    return [replace(m, images=tuple(found[m.id])) if m.id in found else m for m in messages]


def prune(db: sqlite3.Connection) -> None:
    """Remove the bytes of images no message links to any more."""
    db.execute("DELETE FROM images WHERE sha256 NOT IN (SELECT sha256 FROM message_images)")
