"""Moving bytes while hashing them, with progress events.

Hashing runs on its own thread (hashlib releases the GIL on big buffers), so
a download or an import costs about as much as the bare copy: the sha256 is
ready when the last byte lands instead of needing a second pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine.cancel import NEVER, CancelToken
from engine.errors import Cancelled, IntegrityError
from engine.events import EventSink, Progress

CHUNK = 8 * 1024 * 1024
PULL_CANCELLED = "pull cancelled: the partial download is kept; pull again to resume"
_REPORT_EVERY = 0.1  # seconds between progress events


@dataclass(frozen=True)
class Written:
    """A file this process wrote and hashed while writing it: the digest holds while the file is unchanged.

    ``identity`` is (device, inode, size, mtime in ns) right after the last
    write; an import takes ``sha256`` instead of reading the file again only
    while the file it opens has that identity (``holds_for``).
    """

    sha256: str
    identity: tuple[int, int, int, int]

    @classmethod
    def of(cls, sha256: str, info: os.stat_result) -> Written:
        return cls(sha256, _identity(info))

    def holds_for(self, info: os.stat_result) -> bool:
        return _identity(info) == self.identity


def _identity(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


class ProgressMeter:
    """Turns byte counts into rate-limited Progress events."""

    def __init__(self, sink: EventSink, action: str, file: str, total: int, done: int = 0) -> None:
        self._sink, self.action, self.file, self.total = sink, action, file, total
        self.completed = done
        self._start_done = done
        self._started = time.monotonic()
        self._last = 0.0
        self._reported = -1  # bytes in the last event, so finish() does not repeat it

    def advance(self, n: int) -> None:
        self.completed += n
        now = time.monotonic()
        if now - self._last >= _REPORT_EVERY:
            self._last = now
            self._emit(now)

    def finish(self) -> None:
        if self._reported != self.completed:
            self._emit(time.monotonic())

    def _emit(self, now: float) -> None:
        self._reported = self.completed
        elapsed = max(now - self._started, 1e-6)
        rate = (self.completed - self._start_done) / elapsed
        left = max(self.total - self.completed, 0)
        eta = left / rate if rate > 0 else None
        self._sink(Progress(self.action, self.file, self.completed, self.total, rate, eta))


class BackgroundHasher:
    """sha256 of a byte stream, computed on a second thread.

    Given the descriptor of the file the stream is written to, the same thread
    also pushes the written bytes to disk every ``SYNC_EVERY`` bytes: the disk
    then works while the network does, and the final fsync before a blob is
    committed has little left to do (on these machines a 1 GiB fsync at the
    end cost about 10% of a loopback pull).
    """

    _DONE = b""
    SYNC_EVERY = 128 * 1024 * 1024

    def __init__(self, sync_fd: int | None = None) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=16)  # bounds memory: 16 chunks in flight
        self._sync_fd = sync_fd
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()
        self.hashed = 0

    def _run(self) -> None:
        unsynced = 0
        while (chunk := self._queue.get()) is not self._DONE:
            self._hash.update(chunk)
            unsynced += len(chunk)
            if self._sync_fd is not None and unsynced >= self.SYNC_EVERY:
                unsynced = 0
                with contextlib.suppress(OSError):  # a closed or full file: the final fsync will say so
                    os.fdatasync(self._sync_fd)

    def feed(self, chunk: bytes) -> None:
        if chunk:
            self._queue.put(bytes(chunk))
            self.hashed += len(chunk)

    def hexdigest(self) -> str:
        self._queue.put(self._DONE)
        self._thread.join()
        return self._hash.hexdigest()


def feed_file(hasher: BackgroundHasher, path: Path, limit: int | None = None) -> int:
    """Feed the first ``limit`` bytes of ``path`` (all when None) to ``hasher``."""
    fed = 0
    with open(path, "rb", buffering=0) as f:
        while limit is None or fed < limit:
            want = CHUNK if limit is None else min(CHUNK, limit - fed)
            chunk = f.read(want)
            if not chunk:
                break
            hasher.feed(chunk)
            fed += len(chunk)
    return fed


class HashingFile:
    """A writable file that hashes what is written and reports progress.

    huggingface_hub's ``http_get`` writes through it. It may rewind and
    truncate when a server ignores a Range request; then the hash restarts
    from the bytes that stay.

    Every ``write`` checks ``cancel`` first: a cancelled pull raises
    ``Cancelled`` from inside the download with the file flushed, so what
    arrived is kept for a resume (``close`` then stops the hash thread).
    """

    def __init__(self, path: Path, meter: ProgressMeter, *, cancel: CancelToken = NEVER) -> None:
        self._path = path
        # never through a symlink someone put in the partial's place (the store removes those; this closes
        # the window between that check and this open)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise IntegrityError(f"{path} is not a regular file: remove it and pull again")
        self._file: BinaryIO = os.fdopen(fd, "ab")
        self._meter = meter
        self._cancel = cancel
        self.size = self._file.tell()  # bytes in the file, written or buffered
        self.written: Written | None = None  # set by ``finish``
        self.hasher = BackgroundHasher(self._file.fileno())
        feed_file(self.hasher, path)

    def write(self, data: bytes) -> int:
        if self._cancel.cancelled:
            self._file.flush()
            raise Cancelled(PULL_CANCELLED)
        written = self._file.write(data)
        self.size += written
        self.hasher.feed(data)
        self._meter.advance(len(data))
        return written

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        self._file.flush()
        size = self._file.truncate(size)
        self.size = size
        self.hasher.hexdigest()  # drop the old stream; hash what is left from the start
        self.hasher = BackgroundHasher(self._file.fileno())
        feed_file(self.hasher, self._path, size)
        self._meter.completed = size
        return size

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        """Close without a digest (the download failed); safe to call twice.

        The hash thread stops before the file closes. Bytes the disk refused
        (a full disk) are dropped: what is on disk stays a prefix of the file.
        """
        if self._file.closed:
            return
        self.hasher.hexdigest()
        with contextlib.suppress(OSError):  # the flush failed; the descriptor is closed all the same
            self._file.close()

    def finish(self) -> str:
        """Flush to disk, close, and return the sha256 of everything in the file."""
        self._file.flush()
        digest = self.hasher.hexdigest()
        os.fsync(self._file.fileno())
        self.written = Written.of(digest, os.fstat(self._file.fileno()))
        self._file.close()
        return digest


def hash_file(path: Path, meter: ProgressMeter | None = None, cancel: CancelToken = NEVER) -> str:
    """sha256 of a file, as fast as ``sha256sum``: big reads into one reused buffer.

    ``cancel`` is checked before every 8 MiB read (``Cancelled`` with the token's reason).
    """
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while True:
            cancel.check()
            n = f.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
            if meter is not None:
                meter.advance(n)
    if meter is not None:
        meter.finish()
    return digest.hexdigest()
