"""The converted GGUF's bytes on their way to disk: hashed on one thread, pushed to disk on another.

Every blob is on disk before the store records it, and a disk often writes
durably slower than the converter makes bytes (about 108 MB/s on some of
these machines). Left alone, the kernel keeps a few hundred MB dirty in the
page cache until the final fsync, which then waits for all of it. Here each
finished range of ``WRITEBACK_EVERY`` bytes goes to a writeback thread that
starts the disk on it at once (``sync_file_range(SYNC_FILE_RANGE_WRITE)`` on
Linux, ``fdatasync`` elsewhere), so the disk writes while the converter
reads and converts, and the final fsync waits only for the tail and the
device's cache flush. sha256 runs on its own thread (hashlib releases the
GIL on big buffers): reading, converting, hashing and writing overlap, and
the digest is ready when the last byte lands.

    out = Output(path, meter, cancel=cancel)   # the header is in the file already: hashed first
    out.write(piece) ...
    written = out.finish()                     # fsynced; Written(sha256, identity)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.errors import IntegrityError
from engine.store.transfer import BackgroundHasher, ProgressMeter, Written, feed_file

WRITEBACK_EVERY = 16 * 1024 * 1024  # the converter reads in 16 MiB chunks
_PAGE = 4096
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the range's dirty pages, do not wait


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's ``sync_file_range`` (Linux only; Python's ``os`` lacks it), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    return call


_RANGE_SYNC = _sync_file_range()


class _Writeback:
    """A thread that starts the disk on each finished range as soon as it is handed over."""

    _STOP = (-1, -1)

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._ranges: queue.Queue[tuple[int, int]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="writeback", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._ranges.get()) != self._STOP:
            start, length = item
            with contextlib.suppress(OSError):  # only a head start: the final fsync says what failed
                if _RANGE_SYNC is not None:
                    if _RANGE_SYNC(self._fd, start, length, _SYNC_FILE_RANGE_WRITE) != 0:
                        os.fdatasync(self._fd)  # e.g. a file system that refuses it
                else:
                    os.fdatasync(self._fd)

    def push(self, start: int, length: int) -> None:
        self._ranges.put((start, length))

    def stop(self) -> None:
        """Drop the ranges not started yet (the fsync after this writes them) and end the thread."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._ranges.get_nowait()
        self._ranges.put(self._STOP)
        self._thread.join()


class Output:
    """The GGUF being written, appended to after its header: hashed and written back as it grows."""

    def __init__(self, path: Path, meter: ProgressMeter, *, cancel: CancelToken = NEVER) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise IntegrityError(f"{path} is not a regular file")
        self._fd, self._meter, self._cancel = fd, meter, cancel
        self.size = os.fstat(fd).st_size
        self._hasher = BackgroundHasher()
        feed_file(self._hasher, path, self.size)  # the header GGUFWriter wrote: a few MB at most
        self._pushed = 0  # bytes handed to the writeback thread
        self._writeback = _Writeback(fd)
        self._closed = False

    def write(self, data: bytes) -> None:
        self._cancel.check()
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._hasher.feed(data)
        self.size += len(data)
        self._meter.advance(len(data))
        if self.size - self._pushed >= WRITEBACK_EVERY:
            end = (
                self.size - self.size % _PAGE
            )  # whole pages: the one still filling is not put under writeback
            self._writeback.push(self._pushed, end - self._pushed)
            self._pushed = end

    def finish(self) -> Written:
        """Wait until every byte is on disk; the file's digest and identity. Closes the file."""
        self._writeback.stop()
        os.fsync(self._fd)  # the hash thread finishes its backlog meanwhile
        digest = self._hasher.hexdigest()
        written = Written.of(digest, os.fstat(self._fd))
        self._closed = True
        os.close(self._fd)
        return written

    def close(self) -> None:
        """Stop both threads and close without a digest (the conversion failed); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._writeback.stop()
        self._hasher.hexdigest()
        os.close(self._fd)
