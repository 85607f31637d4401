"""File locks shared between llamadeck processes, safe to delete when nobody holds them.

``fcntl.flock`` on a file in ``locks/``. Two things ``filelock`` does not give us:

- the wait is bounded by a ``CancelToken`` (a Textual worker or an HTTP request
  must be able to give up), polling a few times a second;
- a lock file may be removed by ``prune`` while nobody holds it. A process that
  opened the old file and then got the lock would hold a lock on a deleted
  inode while a newcomer locks a fresh file, so after locking we check that the
  path still names the inode we locked, and start over when it does not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.cancel import NEVER, CancelToken

_POLL_SECONDS = 0.2


class FileLock:
    """An exclusive, non-reentrant lock on one file path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free right now; never waits."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.path):
                self._fd = fd
                return True
            os.close(fd)  # pruned between our open and our lock: lock the new file instead

    def acquire(
        self,
        *,
        cancel: CancelToken = NEVER,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        """Wait for the lock; ``on_wait`` is called once if it is not free at once.

        Raises ``Cancelled`` (through ``cancel.check``) when the token is cancelled while waiting.
        """
        if self.try_acquire():
            return
        if on_wait is not None:
            on_wait()
        while True:
            cancel.check()
            if self.try_acquire():
                return
            cancel.wait(_POLL_SECONDS)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def unlink_while_held(self) -> None:
        """Delete the lock file; only while holding it, so nobody else is inside."""
        if self._fd is None:
            raise RuntimeError("unlink_while_held needs the lock")
        self.path.unlink(missing_ok=True)

    @contextmanager
    def hold(
        self, *, cancel: CancelToken = NEVER, on_wait: Callable[[], None] | None = None
    ) -> Iterator[None]:
        self.acquire(cancel=cancel, on_wait=on_wait)
        try:
            yield
        finally:
            self.release()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)
