"""The llama.cpp worker processes a test started: found in /proc by their command line and environment.

A worker inherits its engine's environment, so a test's own ``LLAMADECK_HOME``
(each test has one) tells its workers from those of an earlier test's engine
that was never closed.
"""

from __future__ import annotations

import os
from pathlib import Path

_COMMAND = b"engine.runtime.worker.child"


def workers_of_this_test(parent: int | None = None) -> list[int]:
    """Worker pids started under this test's ``LLAMADECK_HOME`` (children of ``parent`` when given)."""
    mark = b"LLAMADECK_HOME=" + os.environ["LLAMADECK_HOME"].encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if _COMMAND not in (entry / "cmdline").read_bytes():
                continue
            if parent is not None and (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] != str(
                parent
            ):
                continue
            environ = (entry / "environ").read_bytes() + b"\0"
        except OSError:  # gone meanwhile
            continue
        if mark in environ:
            found.append(int(entry.name))
    return found
