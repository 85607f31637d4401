"""File operations the store shares: atomic writes, directories made and unmade, reads that never
follow a symlink, and an ``OSError`` turned into one line for the user.

The store is a directory anyone can edit, so these helpers never write through
a symlink they did not make, never block on a FIFO, and name the path at fault
when something is in the way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from engine.errors import DiskFull, LlamadeckError

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
SCAN_CHUNK = 1 << 20


def os_error(error: OSError, action: str, path: Path) -> LlamadeckError:
    """An OS failure as one line naming ``path``: DiskFull when space or quota ran out."""
    reason = error.strerror or str(error)
    if error.errno in _NO_SPACE:
        return DiskFull(f"{action} {path}: {reason}; free some space and try again")
    return LlamadeckError(f"{action} {path}: {reason}")


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a torn one.

    Raises DiskFull or LlamadeckError naming ``path`` (or the directory in its
    way); on failure the directories it created for the file are removed again.
    """
    created = make_dirs(path.parent)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    except BaseException as error:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        remove_dirs(created)
        if isinstance(error, OSError):
            raise os_error(error, "cannot write", path) from error
        raise


def make_dirs(directory: Path) -> list[Path]:
    """``mkdir -p`` that names the path in the way; returns what it created, outermost first."""
    missing = []
    for candidate in (directory, *directory.parents):
        if os.path.isdir(candidate):
            break
        missing.append(candidate)
    created: list[Path] = []
    for candidate in reversed(missing):
        try:
            candidate.mkdir()
        except FileExistsError:
            if os.path.isdir(candidate):  # made by someone else meanwhile
                continue
            remove_dirs(created)
            raise LlamadeckError(f"cannot create {directory}: {in_the_way(candidate)}") from None
        except OSError as error:
            remove_dirs(created)
            raise os_error(error, "cannot create", candidate) from error
        created.append(candidate)
    return created


def remove_dirs(created: list[Path]) -> None:
    """Remove directories ``make_dirs`` created, innermost first, if still empty (best effort)."""
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            return


def not_a_directory(path: Path) -> str | None:
    """Why ``path`` cannot be used as a directory (following symlinks), or None (also when missing)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return f"a symlink to {os.readlink(path)!r:.200}, which does not exist"
        return None
    except NotADirectoryError:
        return None  # a parent is in the way: that parent is the one to name
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symlink loop"
        return f"unusable ({error.strerror})"
    return None if stat.S_ISDIR(mode) else f"a {file_kind(mode)}"


def in_the_way(directory: Path) -> str:
    """Which of ``directory`` and its parents stops it from being created, and what it is."""
    for candidate in (*reversed(directory.parents), directory):
        if problem := not_a_directory(candidate):
            return f"{candidate} is {problem}, not a directory"
    return f"{directory} is in the way"


def file_kind(mode: int) -> str:
    """What a stat mode is, as a noun: "file", "directory", "symlink", "FIFO", "socket" or "device"."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file, never through a symlink, never blocking on a FIFO.

    Raises OSError (ELOOP for a symlink) or ValueError (not a regular file, or over ``limit`` bytes).
    """
    fd = os.open(path, READ_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"a {file_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise ValueError(f"larger than {limit >> 20} MiB")
        chunks, size = [], 0
        while chunk := os.read(fd, min(SCAN_CHUNK, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ValueError(f"larger than {limit >> 20} MiB")
        return b"".join(chunks)
    finally:
        os.close(fd)
