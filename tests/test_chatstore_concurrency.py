"""Several threads, stores and processes on one chat history at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.chat_history import db_path_fixture, store_fixture  # noqa: F401 (fixtures)
from tui.chatstore import (
    ChatStore,
    ChatStoreError,
)

ROOT = Path(__file__).resolve().parents[1]


# --- concurrency ---------------------------------------------------------------------------------


def test_many_threads_share_one_store(store: ChatStore) -> None:
    chats = [store.create("m", title=f"chat {i}") for i in range(4)]

    def work(n: int) -> None:
        chat = chats[n % 4]
        for i in range(25):
            store.add_message(chat.id, "user", f"{n}-{i}")
            reply = store.begin_reply(chat.id)
            store.update_reply(reply, "part")
            store.finish_reply(reply, f"reply {n}-{i}", status="complete")
            store.conversations("reply")
            store.messages(chat.id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    contents = [m.content for c in chats for m in store.messages(c.id)]
    assert len(contents) == 8 * 25 * 2
    assert {f"{n}-{i}" for n in range(8) for i in range(25)} <= set(contents)
    assert all(m.status == "complete" for c in chats for m in store.messages(c.id))


def test_two_stores_on_one_file_see_each_other(db_path: Path) -> None:
    with ChatStore.open(db_path) as a, ChatStore.open(db_path) as b:
        chat = a.create("m", title="shared")
        assert b.get(chat.id).title == "shared"
        for i in range(20):
            (a if i % 2 else b).add_message(chat.id, "user", str(i))
        assert [m.content for m in a.messages(chat.id)] == [str(i) for i in range(20)]
        reply = a.begin_reply(chat.id)
        a.update_reply(reply, "visible while streaming")
        assert b.messages(chat.id)[-1].content == "visible while streaming"
        b.delete(chat.id)
        with pytest.raises(ChatStoreError, match="no longer exists"):
            a.finish_reply(reply, "too late", status="complete")


WRITER = """
import sys
from pathlib import Path
from tui.chatstore import ChatStore
store = ChatStore.open(Path(sys.argv[1]))
chat_id = int(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
for i in range(150):
    reply = store.begin_reply(chat_id)
    store.finish_reply(reply, f"child {i}", status="complete")
store.close()
"""


def test_a_second_process_writes_at_the_same_time(db_path: Path) -> None:
    with ChatStore.open(db_path) as store:
        chat = store.create("m")
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path), str(chat.id)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        for i in range(150):
            store.add_message(chat.id, "user", f"parent {i}")
        assert child.wait(timeout=60) == 0
        contents = [m.content for m in store.messages(chat.id)]
    assert sorted(contents) == sorted(
        [f"parent {i}" for i in range(150)] + [f"child {i}" for i in range(150)]
    )
    assert [c for c in contents if c.startswith("child")] == [f"child {i}" for i in range(150)]


def test_a_write_waits_for_another_programs_transaction(store: ChatStore, db_path: Path) -> None:
    chat = store.create("m")
    other = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    store.add_message(chat.id, "user", "after the wait")
    assert time.monotonic() - started >= 0.4
    release.join()
    other.close()
    assert store.messages(chat.id)[-1].content == "after the wait"
