"""The Chat tab's conversations, kept in SQLite: ``$XDG_DATA_HOME/llamadeck/chats.db``.

One :class:`ChatStore` per app; the TUI calls it from thread workers, and a
second app (or ``llamadeck`` process) may have the same file open, so:

* WAL mode, ``busy_timeout`` of 5 s, foreign keys on; every write is one
  ``BEGIN IMMEDIATE`` transaction (a writer waits for another instead of
  failing half-way), and one connection per store behind a lock
  (``check_same_thread=False``) makes it safe from any thread.
* The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS`
  holds one step per version (oterm's ``store/upgrades``), applied at open in
  one transaction. A database from a newer llamadeck is refused and left
  untouched (not even switched to WAL).
* A reply still ``"streaming"`` when a store opens was cut off by a crash: it
  becomes ``"interrupted"`` with what came kept. (A second app opening while
  the first streams does the same to a live reply; the streaming app's next
  :meth:`ChatStore.update_reply`, about a second later, sets it back.)
* Text is kept verbatim: any Unicode, NUL characters, megabytes. Only lone
  surrogates, which UTF-8 cannot hold, become U+FFFD. Rows a foreign tool wrote
  (bad UTF-8, blobs, broken JSON) read as text or empty settings; they never
  break a listing.

Every failure a user could meet is a :class:`ChatStoreError` with a one-line
message; a wrong ``role`` or ``status`` is a bug and a ``ValueError``.
:meth:`ChatStore.open_or_fresh` is how the app opens its history: it always
gives a store, plus a warning to show when it had to set a damaged file aside
or fall back to memory.

Example::

    store, warning = ChatStore.open_or_fresh(default_chat_db())
    chat = store.create("gemma3:270m")
    store.add_message(chat.id, "user", "Hello")
    reply = store.begin_reply(chat.id)
    store.update_reply(reply, "Hi")
    store.finish_reply(reply, "Hi there!", status="complete", stats={"tokens_per_second": 41.5})
    store.rename(chat.id, title_from("Hello"))
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import EllipsisType

ROLES = frozenset({"system", "user", "assistant", "tool"})
STATUSES = frozenset({"complete", "streaming", "stopped", "interrupted", "error"})
FINISHED = STATUSES - {"streaming"}
DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 48
BUSY_TIMEOUT_S = 5.0
APPLICATION_ID = 0x4C4C4443  # "LLDC": marks a file as a llamadeck chat history

# sqlite3 error names (Python 3.11+ sets ``sqlite_errorname``) that mean the file itself is bad.
_DAMAGED = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})


class ChatStoreError(Exception):
    """The chat history cannot do what was asked; the message is one line for the user."""


class DamagedChatStore(ChatStoreError):
    """The file is not a (llamadeck) SQLite database, or it is corrupted: safe to set aside."""


class NewerChatStore(ChatStoreError):
    """The file was written by a newer llamadeck: left untouched."""


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    model: str
    system: str | None
    parameters: dict[str, object]
    created: str  # ISO 8601, UTC
    updated: str


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: str
    content: str
    status: str  # one of STATUSES
    stats: dict[str, float] | None
    created: str


def default_chat_db() -> Path:
    """``$XDG_DATA_HOME/llamadeck/chats.db`` (``~/.local/share/llamadeck/chats.db`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llamadeck" / "chats.db"


_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def title_from(text: str) -> str:
    """A chat title from its first user message: the first non-blank line, at most 48 characters.

    >>> title_from("  How do I sort a dict by value?\\nI tried sorted().")
    'How do I sort a dict by value?'
    """
    for line in text.splitlines():
        line = _SPACES.sub(" ", _CONTROL.sub(" ", line)).strip()
        if line:
            break
    else:
        return DEFAULT_TITLE
    if len(line) > TITLE_LENGTH:
        line = line[: TITLE_LENGTH - 1].rstrip() + "…"
    return line


# --- schema --------------------------------------------------------------------------------------


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


# MIGRATIONS[n] takes a database from schema n to n + 1 (0 is an empty file).
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2]
SCHEMA_VERSION = len(MIGRATIONS)


# --- helpers -------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(text: str) -> str:
    """``text`` as SQLite can keep it: lone surrogates (not encodable as UTF-8) become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _lenient(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return _lenient(value)
    return "" if value is None else str(value)


def _json(value: Mapping[str, object], what: str) -> str:
    try:
        return _storable(json.dumps(dict(value), ensure_ascii=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be JSON values: {error}") from None


def _parameters(raw: object) -> dict[str, object]:
    try:
        value = json.loads(_text(raw))
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _stats(raw: object) -> dict[str, float] | None:
    if raw is None:
        return None
    try:
        value = json.loads(_text(raw))
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    return {
        str(k): float(v) for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _contains(haystack: object, needle: object) -> bool:
    """The SQL function behind search: a literal, case-folded substring test (``%``/``_`` mean themselves)."""
    if not isinstance(haystack, bytes | str) or not isinstance(needle, str):
        return False
    return needle in _text(haystack).casefold()


def _conversation(row: tuple[object, ...]) -> Conversation:
    id_, title, model, system, parameters, created, updated = row
    return Conversation(
        id=int(id_),  # type: ignore[call-overload]
        title=_text(title),
        model=_text(model),
        system=None if system is None else _text(system),
        parameters=_parameters(parameters),
        created=_text(created),
        updated=_text(updated),
    )


def _message(row: tuple[object, ...]) -> StoredMessage:
    id_, conversation_id, role, content, status, stats, created = row
    return StoredMessage(
        id=int(id_),  # type: ignore[call-overload]
        conversation_id=int(conversation_id),  # type: ignore[call-overload]
        role=_text(role),
        content=_text(content),
        status=_text(status),
        stats=_stats(stats),
        created=_text(created),
    )


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error) or type(error).__name__


_MAGIC = b"SQLite format 3\x00"


def _check_file(path: Path) -> bool:
    """Refuse what SQLite must not be let near; True when there is no file yet.

    A file without SQLite's header is refused before SQLite opens it: SQLite
    would delete a ``-wal`` beside it on closing, and that may hold chats.
    """
    try:
        if path.is_dir():
            raise ChatStoreError(f"chat history {path} is a directory, not a database file")
        if not path.exists():
            return True
        if not path.is_file():
            raise ChatStoreError(f"chat history {path} is not a regular file")
        with path.open("rb") as file:
            header = file.read(len(_MAGIC))
    except PermissionError:
        raise ChatStoreError(f"cannot open chat history {path} (permission denied)") from None
    except OSError as error:
        raise ChatStoreError(f"cannot open chat history {path} ({_reason(error)})") from None
    if header and header != _MAGIC:
        raise DamagedChatStore(f"chat history {path} is damaged (file is not a database)")
    return False


def _newer(path: Path | None, version: int) -> NewerChatStore:
    return NewerChatStore(
        f"chat history {path} was written by a newer llamadeck (schema {version}, "
        f"this one reads up to {SCHEMA_VERSION}); update llamadeck to use it"
    )


def _probe(path: Path) -> None:
    """Refuse a newer schema or a damaged file through a read-only connection.

    Closing the last read-write connection folds the WAL into the file (or
    drops it): a newer llamadeck's file, or a damaged one about to be set
    aside, must be left exactly as it was.
    """
    try:
        probe = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error:
        return  # the read-write open says what is wrong
    try:
        version = int(probe.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise _newer(path, version)
        problems = [_text(row[0]) for row in probe.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.Error as error:
        if getattr(error, "sqlite_errorname", "") in _DAMAGED:
            raise DamagedChatStore(f"chat history {path} is damaged ({error})") from None
        return
    finally:
        probe.close()
    if problems != ["ok"]:
        raise DamagedChatStore(f"chat history {path} is damaged ({problems[0]})")


def _aside_name(path: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while candidate.exists() or candidate.with_name(candidate.name + "-wal").exists():
        n += 1
        candidate = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    return candidate


_CONVERSATION_COLUMNS = "id, title, model, system, parameters, created, updated"
_MESSAGE_COLUMNS = "id, conversation_id, role, content, status, stats, created"


class ChatStore:
    """Conversations and their messages in one SQLite file (or in memory); see the module docstring."""

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
        path = Path(path).expanduser()
        new = _check_file(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise ChatStoreError(
                f"cannot create {path.parent} for the chat history: {_reason(error)}"
            ) from None
        if not new:
            _probe(path)
        try:
            db = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise _open_error(path, error) from None
        store = cls(db, path)
        try:
            store._setup()
            if new:
                with suppress(OSError):
                    path.chmod(0o600)  # chats are private
        except BaseException as error:
            db.close()
            if isinstance(error, sqlite3.Error):
                raise _open_error(path, error) from None
            raise
        return store

    @classmethod
    def in_memory(cls) -> ChatStore:
        """A store that keeps nothing after :meth:`close`: the fallback when no file can be used."""
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        store = cls(db, None)
        store._setup()
        return store

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
        path = Path(path).expanduser()
        try:
            return cls.open(path), None
        except DamagedChatStore as error:
            damaged = str(error)
            try:
                aside = _aside_name(path)
                os.replace(path, aside)
                for suffix in ("-wal", "-shm", "-journal"):
                    side = path.with_name(path.name + suffix)
                    if side.exists():
                        os.replace(side, aside.with_name(aside.name + suffix))
            except OSError as move_error:
                return cls.in_memory(), (
                    f"{damaged}; could not move it aside ({_reason(move_error)}): "
                    "chats in this session will not be saved"
                )
            moved = f"{damaged}; moved aside to {aside.name}"
            try:
                return cls.open(path), f"{moved}, starting a new one"
            except ChatStoreError as fresh_error:
                return cls.in_memory(), f"{moved}; {fresh_error}: chats in this session will not be saved"
        except ChatStoreError as error:
            return cls.in_memory(), f"{error}: chats in this session will not be saved"

    def _setup(self) -> None:
        db = self._connection()
        db.text_factory = _lenient  # foreign bad UTF-8 reads as U+FFFD instead of failing the listing
        db.create_function("ld_contains", 2, _contains, deterministic=True)
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        db.execute("PRAGMA foreign_keys = ON")
        # Read-only checks first: a newer or damaged file must not be modified, not even switched to WAL.
        version = self._version_check()
        if version < SCHEMA_VERSION:
            self._foreign_check(version)
        db.execute("PRAGMA journal_mode = WAL")
        if version < SCHEMA_VERSION:
            with self._write() as tx:
                current = self._version_check()  # another app may have upgraded it meanwhile
                self._foreign_check(current)
                for step in MIGRATIONS[current:]:
                    step(tx)
                tx.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        with self._write() as tx:
            tx.execute("UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'")

    def _version_check(self) -> int:
        version = int(self._connection().execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise _newer(self.path, version)
        return version

    def _foreign_check(self, version: int) -> None:
        db = self._connection()
        app_id = int(db.execute("PRAGMA application_id").fetchone()[0])
        if app_id not in (0, APPLICATION_ID):
            raise DamagedChatStore(f"chat history {self.path} is damaged (another application's database)")
        if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise DamagedChatStore(
                f"chat history {self.path} is damaged (an SQLite file, not a chat history)"
            )

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
        if name in _DAMAGED:
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
        needle = _storable(search).casefold()
        sql = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c"
        args: tuple[str, ...] = ()
        if needle:
            sql += """ WHERE ld_contains(CAST(c.title AS BLOB), ?1) OR EXISTS (
                SELECT 1 FROM messages m WHERE m.conversation_id = c.id
                AND ld_contains(CAST(m.content AS BLOB), ?1))"""
            args = (needle,)
        sql += " ORDER BY c.updated DESC, c.id DESC"
        with self._read() as db:
            return [_conversation(row) for row in db.execute(sql, args)]

    def get(self, conversation_id: int) -> Conversation:
        """One conversation; a ChatStoreError if it is gone (deleted here or by another app)."""
        with self._read() as db:
            row = db.execute(
                f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
        if row is None:
            raise _gone(conversation_id)
        return _conversation(row)

    def create(
        self,
        model: str,
        *,
        title: str = DEFAULT_TITLE,
        system: str | None = None,
        parameters: Mapping[str, object] | None = None,
    ) -> Conversation:
        """A new, empty conversation with ``model`` (settings are the conversation's own)."""
        now = _now()
        params = _json(parameters or {}, "parameters")
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO conversations (title, model, system, parameters, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (_storable(title), _storable(model), _opt(system), params, now, now),
            )
            new_id = cursor.lastrowid
        assert new_id is not None
        return Conversation(
            id=new_id,
            title=_storable(title),
            model=_storable(model),
            system=_opt(system),
            parameters=_parameters(params),
            created=now,
            updated=now,
        )

    def rename(self, conversation_id: int, title: str) -> None:
        with self._write() as db:
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (_storable(title), conversation_id))
            self._touch(db, conversation_id)

    def update_settings(
        self,
        conversation_id: int,
        *,
        model: str | None = None,
        system: str | None | EllipsisType = ...,
        parameters: Mapping[str, object] | None = None,
    ) -> None:
        """Change what is given: ``model`` and ``parameters`` when not None, ``system`` when not ``...``
        (``system=None`` removes the system prompt; ``parameters`` replaces the whole mapping)."""
        with self._write() as db:
            if model is not None:
                db.execute(
                    "UPDATE conversations SET model = ? WHERE id = ?", (_storable(model), conversation_id)
                )
            if not isinstance(system, EllipsisType):
                db.execute(
                    "UPDATE conversations SET system = ? WHERE id = ?", (_opt(system), conversation_id)
                )
            if parameters is not None:
                db.execute(
                    "UPDATE conversations SET parameters = ? WHERE id = ?",
                    (_json(parameters, "parameters"), conversation_id),
                )
            self._touch(db, conversation_id)

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation and its messages; one already gone is fine."""
        with self._write() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # --- messages --------------------------------------------------------------------------------

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        """The conversation's messages, oldest first (empty for one that is gone)."""
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
        return [_message(row) for row in rows]

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        status: str = "complete",
        stats: Mapping[str, float] | None = None,
    ) -> StoredMessage:
        """Append a message (the conversation becomes the most recently updated)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {sorted(ROLES)}, not {role!r}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}, not {status!r}")
        now = _now()
        stats_json = None if stats is None else _json(stats, "stats")
        with self._write() as db:
            self._touch(db, conversation_id)
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, role, content, status, stats, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, role, _storable(content), status, stats_json, now),
            )
            new_id = cursor.lastrowid
        assert new_id is not None
        return StoredMessage(
            id=new_id,
            conversation_id=conversation_id,
            role=role,
            content=_storable(content),
            status=status,
            stats=_stats(stats_json),
            created=now,
        )

    def begin_reply(self, conversation_id: int) -> int:
        """An empty assistant message with status ``"streaming"``; its id is for update/finish_reply."""
        return self.add_message(conversation_id, "assistant", "", status="streaming").id

    def update_reply(self, message_id: int, content: str) -> None:
        """Save what has streamed so far (call about once a second, so a crash keeps it).

        Sets the status back to ``"streaming"`` if another app, opening, marked
        the reply interrupted. A late call after :meth:`finish_reply` (a timer
        that fired after the end) changes nothing when the reply ended
        complete, stopped or failed.
        """
        with self._write() as db:
            cursor = db.execute(
                "UPDATE messages SET content = ?, status = 'streaming'"
                " WHERE id = ? AND status IN ('streaming', 'interrupted')",
                (_storable(content), message_id),
            )
            if (
                cursor.rowcount == 0
                and not db.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone()
            ):
                raise _message_gone(message_id)

    def finish_reply(
        self, message_id: int, content: str, *, status: str, stats: Mapping[str, float] | None = None
    ) -> None:
        """The final text and how it ended: ``"complete"``, ``"stopped"``, ``"interrupted"``, ``"error"``."""
        if status not in FINISHED:
            raise ValueError(f"a finished reply's status is one of {sorted(FINISHED)}, not {status!r}")
        stats_json = None if stats is None else _json(stats, "stats")
        with self._write() as db:
            row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise _message_gone(message_id)
            db.execute(
                "UPDATE messages SET content = ?, status = ?, stats = ? WHERE id = ?",
                (_storable(content), status, stats_json, message_id),
            )
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
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (_now(), row[0]))

    # --- export ----------------------------------------------------------------------------------

    def export_markdown(self, conversation_id: int) -> str:
        """A readable Markdown transcript: title, model, settings, system prompt, then each message.

        Replies that did not complete carry a note in italics (stopped, interrupted, failed).
        """
        with self._lock:  # one consistent snapshot of the conversation and its messages
            chat = self.get(conversation_id)
            messages = self.messages(conversation_id)
        return render_markdown(chat, messages)


_ROLE_HEADINGS = {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool"}
_STATUS_NOTES = {
    "stopped": "*(reply stopped by the user)*",
    "interrupted": "*(reply interrupted: llamadeck closed before it finished)*",
    "streaming": "*(reply still being written)*",
    "error": "*(reply failed)*",
}


def render_markdown(chat: Conversation, messages: list[StoredMessage]) -> str:
    """The transcript :meth:`ChatStore.export_markdown` gives (a pure function, for tests and previews)."""
    title = _SPACES.sub(" ", _CONTROL.sub(" ", chat.title)).strip() or DEFAULT_TITLE
    lines = [
        f"# {title}",
        "",
        f"- Model: `{chat.model}`",
        f"- Created: {chat.created}",
        f"- Updated: {chat.updated}",
    ]
    if chat.parameters:
        lines.append(f"- Parameters: `{json.dumps(chat.parameters, ensure_ascii=False)}`")
    if chat.system:
        lines += ["", "## System prompt", "", chat.system]
    for message in messages:
        lines += ["", f"## {_ROLE_HEADINGS.get(message.role, message.role.title())}", ""]
        if message.content:
            lines.append(message.content)
        if note := _STATUS_NOTES.get(message.status):
            if message.content:
                lines.append("")
            lines.append(note)
        if message.stats and message.role == "assistant":
            lines += ["", f"<sub>{_format_stats(message.stats)}</sub>"]
    return "\n".join(lines) + "\n"


def _format_stats(stats: dict[str, float]) -> str:
    parts = []
    for key, value in stats.items():
        shown = f"{value:.1f}" if math.isfinite(value) and value != int(value) else f"{value:g}"
        parts.append(f"{key.replace('_', ' ')}: {shown}")
    return ", ".join(parts)


def _opt(text: str | None) -> str | None:
    return None if text is None else _storable(text)


def _gone(conversation_id: int) -> ChatStoreError:
    return ChatStoreError(f"chat {conversation_id} no longer exists (deleted, maybe in another window)")


def _message_gone(message_id: int) -> ChatStoreError:
    return ChatStoreError(f"message {message_id} no longer exists (its chat was deleted or edited)")


def _open_error(path: Path, error: sqlite3.Error) -> ChatStoreError:
    name = getattr(error, "sqlite_errorname", "")
    if name in _DAMAGED:
        return DamagedChatStore(f"chat history {path} is damaged ({error})")
    if name.startswith("SQLITE_READONLY"):
        return ChatStoreError(f"chat history {path} is read-only ({error})")
    if name.startswith("SQLITE_BUSY"):
        return ChatStoreError(f"chat history {path} stayed locked by another program for 5 s")
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        reason = "permission denied" if not os.access(path, os.R_OK | os.W_OK) else str(error)
        return ChatStoreError(f"cannot open chat history {path} ({reason})")
    return ChatStoreError(f"cannot open chat history {path} ({error})")
