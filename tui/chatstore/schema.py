"""The chat history's schema: one migration step per version, kept in ``PRAGMA user_version``.

``MIGRATIONS[n]`` takes a database from schema n to n + 1 (after oterm's
``store/upgrades``); they run when a history opens (``opening.setup``). To
change the schema, append a step and test it in ``tests/test_chatstore_opening.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

APPLICATION_ID = 0x4C4C4443  # "LLDC": marks a file as a llamadeck chat history


def _v1(db: sqlite3.Connection) -> None:
    """The initial schema (llamadeck 0.1)."""
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            model TEXT NOT NULL,
            system TEXT,
            parameters TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL,
            updated TEXT NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete',
            created TEXT NOT NULL)"""
    )


def _v2(db: sqlite3.Connection) -> None:
    """Reply statistics (tokens/s, counts) beside each message; indexes for the list and one chat."""
    db.execute("ALTER TABLE messages ADD COLUMN stats TEXT")
    db.execute("CREATE INDEX messages_by_conversation ON messages(conversation_id, id)")
    db.execute("CREATE INDEX conversations_by_updated ON conversations(updated DESC, id DESC)")
    db.execute("CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming'")


def _v3(db: sqlite3.Connection) -> None:
    """Drafts: each chat's unsent text beside it, and a small key-value table for the app's own state
    (the new chat's draft, which is in no conversation yet, and the chat open when the app closed)."""
    db.execute("ALTER TABLE conversations ADD COLUMN draft TEXT NOT NULL DEFAULT ''")
    db.execute("CREATE TABLE app_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def _v4(db: sqlite3.Connection) -> None:
    """A chat's reply format (Ollama's ``format``): NULL for free text, else JSON: ``"json"`` or a schema."""
    db.execute("ALTER TABLE conversations ADD COLUMN format TEXT")


def _v5(db: sqlite3.Connection) -> None:
    """A reply's reasoning and tool calls beside its text, the tool a result message answers for, and a
    chat's tools (Ollama's ``tools`` list, JSON; NULL for none): all came back empty on reopening before."""
    db.execute("ALTER TABLE messages ADD COLUMN thinking TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE messages ADD COLUMN tool_calls TEXT")  # JSON: Ollama's message.tool_calls
    db.execute("ALTER TABLE messages ADD COLUMN tool_name TEXT")
    db.execute("ALTER TABLE conversations ADD COLUMN tools TEXT")


def _v6(db: sqlite3.Connection) -> None:
    """Images attached to messages: the bytes once per content hash (``images``), and which message
    shows which, in order and under the name it was attached by (``message_images``). Both live in the
    database, so a message and its images are written in one transaction (a kill mid-write leaves
    neither) and a copied ``chats.db`` carries its pictures."""
    db.execute(
        """CREATE TABLE images (
            sha256 TEXT PRIMARY KEY,
            data BLOB NOT NULL,
            size INTEGER NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE message_images (
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL REFERENCES images(sha256),
            PRIMARY KEY (message_id, position))"""
    )
    db.execute("CREATE INDEX message_images_by_image ON message_images(sha256)")


# MIGRATIONS[n] takes a database from schema n to n + 1 (0 is an empty file).
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]
SCHEMA_VERSION = len(MIGRATIONS)
