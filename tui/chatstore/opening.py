"""How the chat history opens: where it lives, checks, the schema upgrade, a damaged file set aside.

Everything that happens before the app's first read is here. A read-only probe
comes first: a newer llamadeck's file, or a damaged one about to be set aside,
must be left exactly as it was (not even switched to WAL). Then one
transaction checks the schema again, applies the missing migrations and marks
replies still ``"streaming"`` (cut off by a crash, or live in another app)
``"interrupted"``; a second app opening the file at the same moment waits for
it. Last the file switches to WAL, retried while another app holds it.
``ChatStore.open``, ``ChatStore.in_memory`` and ``ChatStore.open_or_fresh``
call :func:`open_file`, :func:`in_memory` and :func:`open_or_fresh`; each runs
:func:`setup`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tui.chatstore.records import ChatStoreError, DamagedChatStore, NewerChatStore
from tui.chatstore.rows import DAMAGED, as_text, contains, lenient
from tui.chatstore.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    from tui.chatstore.history import ChatStore

BUSY_TIMEOUT_S = 5.0
WAL_PAUSE_S = 0.01  # the first pause before trying the switch to WAL again
WAL_PAUSE_MAX_S = 0.2


def default_chat_db() -> Path:
    """``$XDG_DATA_HOME/llamadeck/chats.db`` (``~/.local/share/llamadeck/chats.db`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llamadeck" / "chats.db"


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
        problems = [as_text(row[0]) for row in probe.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.Error as error:
        if getattr(error, "sqlite_errorname", "") in DAMAGED:
            raise DamagedChatStore(f"chat history {path} is damaged ({error})") from None
        return
    finally:
        probe.close()
    if problems != ["ok"]:
        raise DamagedChatStore(f"chat history {path} is damaged ({_first_problem(problems)})")


def _first_problem(problems: list[str]) -> str:
    """``quick_check``'s first complaint, one line: it gives one row per problem, or one row of
    many lines (``*** in database main ***`` then a line per page: hundreds of them)."""
    lines = [line.strip() for row in problems for line in row.splitlines()]
    lines = [line for line in lines if line and not line.startswith("***")] or ["quick_check failed"]
    more = f"; {len(lines) - 1} more problem(s)" if len(lines) > 1 else ""
    first = lines[0] if len(lines[0]) <= 200 else lines[0][:197] + "..."
    return first + more


def _aside_name(path: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while candidate.exists() or candidate.with_name(candidate.name + "-wal").exists():
        n += 1
        candidate = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    return candidate


def open_file(store_class: type[ChatStore], path: Path) -> ChatStore:
    """``ChatStore.open``: check the file, make its directory, probe it, connect, :func:`setup`."""
    path = Path(path).expanduser()
    new = _check_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise ChatStoreError(f"cannot create {path.parent} for the chat history: {_reason(error)}") from None
    if not new:
        _probe(path)
    try:
        db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise _open_error(path, error) from None
    store = store_class(db, path)
    try:
        setup(store)
        if new:
            with suppress(OSError):
                path.chmod(0o600)  # chats are private
    except BaseException as error:
        db.close()
        if isinstance(error, sqlite3.Error):
            raise _open_error(path, error) from None
        raise
    return store


def in_memory(store_class: type[ChatStore]) -> ChatStore:
    """``ChatStore.in_memory``: a store that keeps nothing after it is closed."""
    db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    store = store_class(db, None)
    setup(store)
    return store


def open_or_fresh(store_class: type[ChatStore], path: Path) -> tuple[ChatStore, str | None]:
    """``ChatStore.open_or_fresh``: :func:`open_file`, else set a damaged file aside, else memory."""
    path = Path(path).expanduser()
    try:
        return open_file(store_class, path), None
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
            return in_memory(store_class), (
                f"{damaged}; could not move it aside ({_reason(move_error)}): "
                "chats in this session will not be saved"
            )
        moved = f"{damaged}; moved aside to {aside.name}"
        try:
            return open_file(store_class, path), f"{moved}, starting a new one"
        except ChatStoreError as fresh_error:
            return in_memory(store_class), f"{moved}; {fresh_error}: chats in this session will not be saved"
    except ChatStoreError as error:
        return in_memory(store_class), f"{error}: chats in this session will not be saved"


def setup(store: ChatStore) -> None:
    """What every open runs: pragmas; one transaction to check, upgrade, mark cut-off replies; WAL.

    The checks (schema version, application id, tables) and the upgrade are
    one ``BEGIN IMMEDIATE`` transaction, so they read one snapshot: a second
    app opening the same new file waits here for the first one's setup and
    then finds a complete schema, never half of one (issue 18 finding 6).
    Nothing is written to a newer or damaged file, nor is it switched to WAL.
    """
    db = store._connection()
    db.text_factory = lenient  # foreign bad UTF-8 reads as U+FFFD instead of failing the listing
    db.create_function("ld_contains", 2, contains, deterministic=True)
    db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    db.execute("PRAGMA foreign_keys = ON")
    _meeting_point("lock")
    db.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for another app's setup or write
    try:
        version = _version_check(store)
        _meeting_point("checks")
        if version < SCHEMA_VERSION:
            _foreign_check(store, version)
            for step in MIGRATIONS[version:]:
                step(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    _switch_to_wal(db)


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode = WAL``, tried again for up to 5 s while another app holds the file.

    SQLite answers the switch SQLITE_BUSY at once, without waiting out
    busy_timeout, while another connection holds a write transaction, such as
    a second app's opening transaction: normal for a moment, so the switch is
    retried after a pause that doubles from 10 ms up to 200 ms. Once one app
    has switched, the file stays in WAL and the others' switch changes nothing.
    """
    pause = WAL_PAUSE_S
    deadline: float | None = None
    while True:
        _meeting_point("wal")
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if not getattr(error, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                raise
            now = time.monotonic()
            deadline = now + BUSY_TIMEOUT_S if deadline is None else deadline
            if now >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, WAL_PAUSE_MAX_S)


def _meeting_point(where: str) -> None:
    """Nothing: where two apps opening one history can meet; tests replace it to force each race.

    ``where``: ``"lock"`` just before the opening transaction (a second app
    waits there for the first), ``"checks"`` inside it between reading the
    schema version and the tables, ``"wal"`` before each try to switch to WAL.
    """


def _version_check(store: ChatStore) -> int:
    version = int(store._connection().execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise _newer(store.path, version)
    return version


def _foreign_check(store: ChatStore, version: int) -> None:
    db = store._connection()
    app_id = int(db.execute("PRAGMA application_id").fetchone()[0])
    if app_id not in (0, APPLICATION_ID):
        raise DamagedChatStore(f"chat history {store.path} is damaged (another application's database)")
    if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise DamagedChatStore(f"chat history {store.path} is damaged (an SQLite file, not a chat history)")


def _open_error(path: Path, error: sqlite3.Error) -> ChatStoreError:
    name = getattr(error, "sqlite_errorname", "")
    if name in DAMAGED:
        return DamagedChatStore(f"chat history {path} is damaged ({error})")
    if name.startswith("SQLITE_READONLY"):
        return ChatStoreError(f"chat history {path} is read-only ({error})")
    if name.startswith("SQLITE_BUSY"):
        return ChatStoreError(f"chat history {path} stayed locked by another program for 5 s")
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        reason = "permission denied" if not os.access(path, os.R_OK | os.W_OK) else str(error)
        return ChatStoreError(f"cannot open chat history {path} ({reason})")
    return ChatStoreError(f"cannot open chat history {path} ({error})")
