"""Hostile cases for the app's chat history (issue 18): two apps opening one new history at once.

Finding 6: an opener read the schema version and the tables as two snapshots, so a second app
finishing its setup in between made a healthy fresh file look "damaged" (it was moved aside while
the other app kept writing into it), and the switch to WAL failed at once (SQLITE_BUSY) while the
other app held its setup transaction, falling back to an unsaved history in memory.
``opening._meeting_point`` is where the tests put the second app, so each window is forced, not hoped for.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.chat_history import db_path_fixture  # noqa: F401 (fixture)
from tui.chatstore import SCHEMA_VERSION, ChatStore, opening

ROOT = Path(__file__).resolve().parents[1]


def _leftovers(db_path: Path) -> list[str]:
    """Files beside the history other than its own (a copy set aside shows up here)."""
    own = {db_path.name, f"{db_path.name}-wal", f"{db_path.name}-shm", f"{db_path.name}-journal"}
    return sorted(p.name for p in db_path.parent.iterdir() if p.name not in own)


def _journal_mode(db_path: Path) -> str:
    raw = sqlite3.connect(db_path)
    try:
        return str(raw.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        raw.close()


def test_a_second_app_opening_between_the_checks_finds_no_damage(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second app opens the same new file while the first sits between its two schema reads.

    It either finishes there (the race of finding 6) or waits for the first app's opening
    transaction (``"lock"``); the first app goes on only then, so no interleaving is left to chance.
    """
    db_path.parent.mkdir(parents=True)
    first = threading.current_thread()
    opened: list[tuple[ChatStore, str | None]] = []
    second_waits = threading.Event()  # the second app has opened, or waits for the first's transaction

    def second_app() -> None:
        try:
            opened.append(ChatStore.open_or_fresh(db_path))
        finally:
            second_waits.set()

    second = threading.Thread(target=second_app)

    def meet(where: str) -> None:
        here = threading.current_thread()
        if here is first and where == "checks" and second.ident is None:
            second.start()
            second_waits.wait()
        elif here is second and where == "lock":
            second_waits.set()

    monkeypatch.setattr(opening, "_meeting_point", meet)
    store, warning = ChatStore.open_or_fresh(db_path)
    second.join()
    assert opened, "the second app did not open"
    other, other_warning = opened[0]
    try:
        assert (warning, other_warning) == (None, None)
        assert store.path == other.path == db_path
        assert _leftovers(db_path) == []
        chat = store.create("m", title="from the first app")
        other.add_message(chat.id, "user", "from the second app")
        assert [m.content for m in store.messages(chat.id)] == ["from the second app"]
        assert store.schema_version == other.schema_version == SCHEMA_VERSION
    finally:
        store.close()
        other.close()
    assert _journal_mode(db_path) == "wal"
    with ChatStore.open(db_path) as reopened:
        assert [c.title for c in reopened.conversations()] == ["from the first app"]


def test_the_switch_to_wal_waits_while_another_app_sets_the_file_up(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another app holds its setup transaction at the first try to switch to WAL, and ends it at the next."""
    db_path.parent.mkdir(parents=True)
    other_app = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    tries: list[str] = []

    def meet(where: str) -> None:
        if where != "wal":
            return
        tries.append(where)
        if len(tries) == 1:
            other_app.execute("BEGIN IMMEDIATE")  # SQLite answers the switch SQLITE_BUSY at once
        elif len(tries) == 2:
            other_app.execute("COMMIT")

    monkeypatch.setattr(opening, "_meeting_point", meet)
    try:
        store, warning = ChatStore.open_or_fresh(db_path)
    finally:
        if other_app.in_transaction:
            other_app.execute("ROLLBACK")
        other_app.close()
    with store:
        assert warning is None
        assert store.path == db_path
        chat = store.create("m", title="saved")
    assert len(tries) == 2
    assert _journal_mode(db_path) == "wal"
    with ChatStore.open(db_path) as reopened:
        assert [c.title for c in reopened.conversations()] == [chat.title]
    assert _leftovers(db_path) == []


OPENER = """
import sys
from pathlib import Path
from tui.chatstore import ChatStore
print("ready", flush=True)
sys.stdin.readline()
store, warning = ChatStore.open_or_fresh(Path(sys.argv[1]))
store.create("m", title=sys.argv[2])
print(repr(warning), store.path, flush=True)
store.close()
"""


def test_two_processes_opening_one_new_history_share_it(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    apps = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(db_path), name],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    for app in apps:
        assert app.stdout is not None
        assert app.stdout.readline().strip() == "ready"
    for app in apps:  # both start opening together
        assert app.stdin is not None
        app.stdin.write("go\n")
        app.stdin.flush()
    outputs = [app.communicate(timeout=60)[0] for app in apps]
    assert [app.returncode for app in apps] == [0, 0], outputs
    assert outputs == [f"None {db_path}\n"] * 2
    assert _leftovers(db_path) == []
    assert _journal_mode(db_path) == "wal"
    with ChatStore.open(db_path) as store:
        assert sorted(c.title for c in store.conversations()) == ["first", "second"]
