"""Letting a held load go on: a test makes llama.cpp's log file a FIFO nobody reads, so a model's worker
blocks at its first log line, mid-load (``tests.test_worker_crash.held_log``); reading it lets it go."""

from __future__ import annotations

import threading
from pathlib import Path


def release(fifo: Path) -> None:
    """Read ``fifo`` in a daemon thread until its last writer (the worker) exits: held loads go on."""

    def read() -> None:
        with open(fifo, "rb") as pipe:
            while pipe.read(1 << 16):
                pass

    threading.Thread(target=read, daemon=True).start()
