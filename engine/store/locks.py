"""File locks shared between llamadeck processes, safe to delete when nobody holds them.

``fcntl.flock`` on a file in ``locks/``. Two things ``filelock`` does not give us:

- the wait is bounded by a ``CancelToken`` (a Textual worker or an HTTP request
  must be able to give up), polling a few times a second;
- a lock file may be removed by ``prune`` while nobody holds it. A process that
  opened the old file and then got the lock would hold a lock on a deleted
  inode while a newcomer locks a fresh file, so after locking we check that the
  path still names the inode we locked, and start over when it does not.

A lock file is opened without following a symlink and without blocking: a
symlink, FIFO or socket in its place is removed (the link, never its target)
and a fresh file made; a directory there is an error naming it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.errors import LlamadeckError
from engine.store.files import os_error

_POLL_SECONDS = 0.2
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPEN_TRIES = 8


class FileLock:
    """An exclusive, non-reentrant lock on one file path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free right now; never waits.

        Raises LlamadeckError (DiskFull when out of space) naming the path when the file cannot be made.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        while True:
            fd = self._open()
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

    def _open(self) -> int:
        """A descriptor of the lock file, a regular file at ``path`` (made if missing)."""
        for _ in range(_OPEN_TRIES):
            try:
                mode = os.lstat(self.path).st_mode
            except FileNotFoundError:
                mode = stat.S_IFREG
            except OSError as error:
                raise os_error(error, "cannot take the lock", self.path) from error
            if stat.S_ISDIR(mode):
                raise LlamadeckError(f"cannot take the lock {self.path}: a directory is in its place")
            if not stat.S_ISREG(mode):
                self._remove_intruder()
                continue
            try:
                fd = os.open(self.path, _OPEN_FLAGS, 0o644)
            except OSError as error:
                if error.errno == errno.ELOOP:  # became a symlink since the lstat
                    continue
                raise os_error(error, "cannot take the lock", self.path) from error
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
        raise LlamadeckError(f"cannot take the lock {self.path}: something keeps replacing the file")

    def _remove_intruder(self) -> None:
        """Remove a symlink, FIFO or socket where the lock file belongs (never what a link points at)."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as error:
            raise os_error(error, "cannot take the lock", self.path) from error

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
        on_disk = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)
