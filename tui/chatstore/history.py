"""``ChatStore``: one connection behind a lock, its transactions, the conversations and their messages.

How a history opens (checks, migrations, a damaged file set aside) is in
``tui.chatstore.opening``; the class methods that open one delegate there.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import EllipsisType
from typing import Any

from tui.chatstore import images as message_images
from tui.chatstore import opening
from tui.chatstore.export import render_markdown
from tui.chatstore.records import (
    DEFAULT_TITLE,
    FINISHED,
    ROLES,
    STATUSES,
    ChatStoreError,
    Conversation,
    DamagedChatStore,
    StoredImage,
    StoredMessage,
)
from tui.chatstore.rows import (
    CONVERSATION_COLUMNS,
    DAMAGED,
    MESSAGE_COLUMNS,
    as_text,
    conversation_from_row,
    format_from,
    format_to,
    message_from_row,
    objects_from,
    objects_to,
    parameters_from,
    stats_from,
    storable,
    storable_or_none,
    to_json,
)

NEW_CHAT_DRAFT = "draft.new"  # app_state key: the new chat's draft
SENT_HISTORY = 500  # how many sent messages the message box's Up and Down walk through


def _now() -> str:  # the snapshot tests hold the clock still by replacing it here
    return datetime.now(UTC).isoformat(timespec="microseconds")


class ChatStore:
    """Conversations and their messages in one SQLite file (or in memory); see ``tui.chatstore``."""

    def __init__(self, db: sqlite3.Connection, path: Path | None) -> None:
        """Use :meth:`open`, :meth:`open_or_fresh` or :meth:`in_memory`."""
        self._db: sqlite3.Connection | None = db
        self._lock = threading.RLock()
        self.path = path  # None: in memory, nothing is saved

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> ChatStore:
        """The history at ``path``, created (with its directory) if missing and upgraded to this schema.

        Raises :class:`DamagedChatStore` for a file that is not a llamadeck chat
        database or is corrupted, :class:`NewerChatStore` for one from a newer
        llamadeck (left as it was), :class:`ChatStoreError` for anything else
        (a directory in the way, no permission, read-only, locked past 5 s).
        """
        return opening.open_file(cls, path)

    @classmethod
    def in_memory(cls) -> ChatStore:
        """A store that keeps nothing after :meth:`close`: the fallback when no file can be used."""
        return opening.in_memory(cls)

    @classmethod
    def open_or_fresh(cls, path: Path) -> tuple[ChatStore, str | None]:
        """A store for the app whatever state ``path`` is in, and a warning for the user (or None).

        * Damaged (not a database, corrupted, not ours): the file (and its
          ``-wal``/``-shm``) is renamed ``chats.db.damaged-<UTC time>`` beside
          it, never deleted, and a new history starts at ``path``.
        * Anything else that stops :meth:`open` (newer schema, no permission, a
          directory in the way, locked), or a damaged file that cannot be moved:
          nothing is touched and the store is in memory; the warning says that
          chats of this session will not be saved.
        """
        return opening.open_or_fresh(cls, path)

    @property
    def schema_version(self) -> int:
        with self._read() as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the file (checkpointing the WAL when this was its last user); calling it again is fine."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> ChatStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise ChatStoreError("the chat history is closed")
        return self._db

    def _where(self) -> str:
        return "the chat history in memory" if self.path is None else f"chat history {self.path}"

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as error:
                raise self._error("cannot read", error) from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; ``BEGIN IMMEDIATE`` takes the write lock first (waits 5 s for another app)."""
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise self._error("cannot save", error) from None

    def _error(self, action: str, error: sqlite3.Error) -> ChatStoreError:
        name = getattr(error, "sqlite_errorname", "")
        if name in DAMAGED:
            return DamagedChatStore(f"{self._where()} is damaged ({error})")
        if name.startswith("SQLITE_BUSY"):
            return ChatStoreError(f"{action} {self._where()}: it stayed locked by another program for 5 s")
        return ChatStoreError(f"{action} {self._where()}: {error}")

    def _touch(self, db: sqlite3.Connection, conversation_id: int) -> None:
        """Mark a conversation updated; a missing one is a ChatStoreError (rolled back by ``_write``)."""
        cursor = db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (_now(), conversation_id))
        if cursor.rowcount == 0:
            raise _gone(conversation_id)

    # --- conversations ---------------------------------------------------------------------------

    def conversations(self, search: str = "") -> list[Conversation]:
        """All conversations, most recently updated first.

        ``search`` keeps those whose title or any message contains it, ignoring
        case (Unicode case folding); it is a literal substring, so ``%``, ``_``
        and ``\\`` match only themselves.
        """
        needle = storable(search).casefold()
        sql = f"SELECT {CONVERSATION_COLUMNS} FROM conversations c"
        args: tuple[str, ...] = ()
        if needle:
            sql += """ WHERE ld_contains(CAST(c.title AS BLOB), ?1) OR EXISTS (
                SELECT 1 FROM messages m WHERE m.conversation_id = c.id
                AND ld_contains(CAST(m.content AS BLOB), ?1))"""
            args = (needle,)
        sql += " ORDER BY c.updated DESC, c.id DESC"
        with self._read() as db:
            return [conversation_from_row(row) for row in db.execute(sql, args)]

    def get(self, conversation_id: int) -> Conversation:
        """One conversation; a ChatStoreError if it is gone (deleted here or by another app)."""
        with self._read() as db:
            row = db.execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
        if row is None:
            raise _gone(conversation_id)
        return conversation_from_row(row)

    def create(
        self,
        model: str,
        *,
        title: str = DEFAULT_TITLE,
        system: str | None = None,
        parameters: Mapping[str, object] | None = None,
        format: str | Mapping[str, object] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Conversation:
        """A new, empty conversation with ``model`` (settings are the conversation's own)."""
        now = _now()
        params = to_json(parameters or {}, "parameters")
        stored_format = format_to(format)
        stored_tools = objects_to(tools, "tools")
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO conversations"
                " (title, model, system, parameters, created, updated, format, tools)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    storable(title),
                    storable(model),
                    storable_or_none(system),
                    params,
                    now,
                    now,
                    stored_format,
                    stored_tools,
                ),
            )
            new_id = cursor.lastrowid
        assert new_id is not None
        return Conversation(
            id=new_id,
            title=storable(title),
            model=storable(model),
            system=storable_or_none(system),
            parameters=parameters_from(params),
            created=now,
            updated=now,
            format=format_from(stored_format),
            tools=objects_from(stored_tools) or None,
        )

    def rename(self, conversation_id: int, title: str) -> None:
        with self._write() as db:
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (storable(title), conversation_id))
            self._touch(db, conversation_id)

    def update_settings(
        self,
        conversation_id: int,
        *,
        model: str | None = None,
        system: str | None | EllipsisType = ...,
        parameters: Mapping[str, object] | None = None,
        format: str | Mapping[str, object] | None | EllipsisType = ...,
        tools: Sequence[Mapping[str, Any]] | None | EllipsisType = ...,
    ) -> None:
        """Change what is given: ``model`` and ``parameters`` when not None, ``system``, ``format`` and
        ``tools`` when not ``...`` (None removes the system prompt / the reply format / the tools;
        ``parameters`` replaces the whole mapping)."""
        with self._write() as db:
            if model is not None:
                db.execute(
                    "UPDATE conversations SET model = ? WHERE id = ?", (storable(model), conversation_id)
                )
            if not isinstance(system, EllipsisType):
                db.execute(
                    "UPDATE conversations SET system = ? WHERE id = ?",
                    (storable_or_none(system), conversation_id),
                )
            if parameters is not None:
                db.execute(
                    "UPDATE conversations SET parameters = ? WHERE id = ?",
                    (to_json(parameters, "parameters"), conversation_id),
                )
            if not isinstance(format, EllipsisType):
                db.execute(
                    "UPDATE conversations SET format = ? WHERE id = ?", (format_to(format), conversation_id)
                )
            if not isinstance(tools, EllipsisType):
                db.execute(
                    "UPDATE conversations SET tools = ? WHERE id = ?",
                    (objects_to(tools, "tools"), conversation_id),
                )
            self._touch(db, conversation_id)

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation and its messages; one already gone is fine."""
        with self._write() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            message_images.prune(db)

    # --- messages --------------------------------------------------------------------------------

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        """The conversation's messages, oldest first (empty for one that is gone)."""
        with self._read() as db:
            rows = db.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
            return message_images.attach(db, [message_from_row(row) for row in rows])

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        status: str = "complete",
        stats: Mapping[str, float] | None = None,
        tool_name: str | None = None,
        images: Sequence[StoredImage] = (),
    ) -> StoredMessage:
        """Append a message (the conversation becomes the most recently updated); ``tool_name``: the tool
        a ``"tool"`` message gives the result of; ``images`` (``tui.chatstore.images.image``) are kept
        with it, in the same transaction."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {sorted(ROLES)}, not {role!r}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}, not {status!r}")
        now = _now()
        stats_json = None if stats is None else to_json(stats, "stats")
        with self._write() as db:
            self._touch(db, conversation_id)
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, role, content, status, stats, created, tool_name)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    role,
                    storable(content),
                    status,
                    stats_json,
                    now,
                    storable_or_none(tool_name),
                ),
            )
            new_id = cursor.lastrowid
            assert new_id is not None
            kept = message_images.put(db, new_id, images)
        return StoredMessage(
            id=new_id,
            conversation_id=conversation_id,
            role=role,
            content=storable(content),
            status=status,
            stats=stats_from(stats_json),
            created=now,
            tool_name=storable_or_none(tool_name),
            images=kept,
        )

    def begin_reply(self, conversation_id: int) -> int:
        """An empty assistant message with status ``"streaming"``; its id is for update/finish_reply."""
        return self.add_message(conversation_id, "assistant", "", status="streaming").id

    def update_reply(
        self,
        message_id: int,
        content: str,
        *,
        thinking: str = "",
        tool_calls: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Save what has streamed so far (call about once a second, so a crash keeps it): the text,
        the reasoning and the tool calls.

        Sets the status back to ``"streaming"`` if another app, opening, marked
        the reply interrupted. A late call after :meth:`finish_reply` (a timer
        that fired after the end) changes nothing when the reply ended
        complete, stopped or failed.
        """
        with self._write() as db:
            cursor = db.execute(
                "UPDATE messages SET content = ?, thinking = ?, tool_calls = ?, status = 'streaming'"
                " WHERE id = ? AND status IN ('streaming', 'interrupted')",
                (storable(content), storable(thinking), objects_to(tool_calls, "tool calls"), message_id),
            )
            if (
                cursor.rowcount == 0
                and not db.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone()
            ):
                raise _message_gone(message_id)

    def finish_reply(
        self,
        message_id: int,
        content: str,
        *,
        status: str,
        stats: Mapping[str, float] | None = None,
        thinking: str | None = None,
        tool_calls: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """The final text and how it ended: ``"complete"``, ``"stopped"``, ``"interrupted"``, ``"error"``;
        the reasoning and the tool calls too, unless None (kept as last saved)."""
        if status not in FINISHED:
            raise ValueError(f"a finished reply's status is one of {sorted(FINISHED)}, not {status!r}")
        stats_json = None if stats is None else to_json(stats, "stats")
        with self._write() as db:
            row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise _message_gone(message_id)
            db.execute(
                "UPDATE messages SET content = ?, status = ?, stats = ? WHERE id = ?",
                (storable(content), status, stats_json, message_id),
            )
            if thinking is not None:
                db.execute("UPDATE messages SET thinking = ? WHERE id = ?", (storable(thinking), message_id))
            if tool_calls is not None:
                calls = objects_to(tool_calls, "tool calls")
                db.execute("UPDATE messages SET tool_calls = ? WHERE id = ?", (calls, message_id))
            self._touch(db, int(row[0]))

    def delete_from(self, message_id: int) -> None:
        """Delete this message and every later one of its conversation (regenerate, edit and resend).

        A message already gone is fine: nothing happens.
        """
        with self._write() as db:
            row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return
            db.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?", (row[0], message_id))
            message_images.prune(db)
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (_now(), row[0]))

    # --- drafts and the app's state --------------------------------------------------------------

    def drafts(self) -> dict[int | None, str]:
        """Every unsent draft: by conversation id, and the new chat's (in no conversation yet) under None."""
        with self._read() as db:
            rows = db.execute("SELECT id, draft FROM conversations WHERE draft != ''").fetchall()
            new = db.execute("SELECT value FROM app_state WHERE key = ?", (NEW_CHAT_DRAFT,)).fetchone()
        found: dict[int | None, str] = {int(id_): as_text(draft) for id_, draft in rows}
        if new is not None and as_text(new[0]):
            found[None] = as_text(new[0])
        return found

    def save_drafts(self, drafts: Mapping[int | None, str]) -> None:
        """Keep each chat's unsent text ("" for none), the new chat's under None, in one transaction.

        A draft changes nothing else: the chat keeps its place in the list
        (``updated`` stays). A conversation deleted meanwhile is skipped.
        """
        with self._write() as db:
            for conversation_id, text in drafts.items():
                if conversation_id is None:
                    _put_state(db, NEW_CHAT_DRAFT, storable(text) or None)
                else:
                    db.execute(
                        "UPDATE conversations SET draft = ? WHERE id = ?", (storable(text), conversation_id)
                    )

    def state(self, key: str) -> str | None:
        """A value the app keeps between runs (``set_state``), or None."""
        with self._read() as db:
            row = db.execute("SELECT value FROM app_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else as_text(row[0])

    def set_state(self, key: str, value: str | None) -> None:
        """Keep ``value`` under ``key`` between runs (None forgets it)."""
        with self._write() as db:
            _put_state(db, key, None if value is None else storable(value))

    def sent_messages(self, limit: int = SENT_HISTORY) -> list[str]:
        """The user's last ``limit`` messages over every chat, oldest first, repeats in a row dropped:
        the message box's history (Up and Down), as a shell keeps one."""
        with self._read() as db:
            rows = db.execute(
                "SELECT content FROM messages WHERE role = 'user' AND content != '' ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        sent: list[str] = []
        for (content,) in reversed(rows):
            text = as_text(content)
            if not sent or sent[-1] != text:
                sent.append(text)
        return sent

    # --- export ----------------------------------------------------------------------------------

    def export_markdown(self, conversation_id: int) -> str:
        """A readable Markdown transcript: title, model, settings, system prompt, then each message.

        Replies that did not complete carry a note in italics (stopped, interrupted, failed).
        """
        with self._lock:  # one consistent snapshot of the conversation and its messages
            chat = self.get(conversation_id)
            messages = self.messages(conversation_id)
        return render_markdown(chat, messages)


def _put_state(db: sqlite3.Connection, key: str, value: str | None) -> None:
    if value is None:
        db.execute("DELETE FROM app_state WHERE key = ?", (key,))
    else:
        db.execute(
            "INSERT INTO app_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
            (key, value, value),
        )


def _gone(conversation_id: int) -> ChatStoreError:
    return ChatStoreError(f"chat {conversation_id} no longer exists (deleted, maybe in another window)")


def _message_gone(message_id: int) -> ChatStoreError:
    return ChatStoreError(f"message {message_id} no longer exists (its chat was deleted or edited)")
