"""A load held still and let go: a test makes llama.cpp's log file a FIFO nobody reads, so a model's worker
blocks at its first log line, mid-load (``held_log``); reading it lets it go."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.support.workers import workers_of_this_test


def release(fifo: Path) -> None:
    """Read ``fifo`` in a daemon thread until its last writer (the worker) exits: held loads go on."""

    def read() -> None:
        with open(fifo, "rb") as pipe:
            while pipe.read(1 << 16):
                pass

    threading.Thread(target=read, daemon=True).start()


def held_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make llama.cpp's log file (``$XDG_STATE_HOME/llamadeck/llama.log``) a FIFO: a worker that starts
    loading blocks at its first log line until the test lets it go (unlinks the FIFO) or kills it."""
    state = tmp_path / "state"
    (state / "llamadeck").mkdir(parents=True)
    fifo = state / "llamadeck" / "llama.log"
    os.mkfifo(fifo)
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return fifo


def let_go(thread: threading.Thread, fifo: Path) -> None:
    """Join the loading thread; if a held worker is still blocked (a bug), open the FIFO so it goes on
    rather than hang the suite, then fail."""
    thread.join(120)
    if thread.is_alive():
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        thread.join()
        os.close(reader)
        raise AssertionError("the held load was never ended by the test")


def wait_for_worker() -> int:
    """The pid of this test's worker once it exists (it blocks in its load until killed): a child of
    this process with this test's ``LLAMADECK_HOME`` (``tests.support.workers``)."""
    for _ in range(6000):  # ten minutes at most
        if found := workers_of_this_test(parent=os.getpid()):
            return found[0]
        time.sleep(0.1)
    raise AssertionError("no worker started")
