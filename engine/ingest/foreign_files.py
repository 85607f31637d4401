"""Reading other tools' model folders as hostile input: listings, symlinks, small files, the GGUF magic.

Every scanner of discovery (``ollama_store``, ``gguf_folders``) reads through
these few functions, so the rules are kept in one place: listings are bounded,
symlinks are followed only where they stay inside the scanned folder, files
are opened without following links or blocking, and a problem comes back as a
note (a string), never as an exception.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_MAX_ENTRIES = 10_000  # per directory listed: a folder with more is not one of these tools'


def real_dir(path: Path) -> Path | None:
    """The folder with symlinks resolved (a symlinked models folder is common), or None."""
    try:
        real = Path(os.path.realpath(path))
        return real if stat.S_ISDIR(os.stat(real).st_mode) else None
    except (OSError, ValueError):
        return None


def listing(directory: Path) -> list[os.DirEntry[str]]:
    """A directory's entries, sorted, at most ``_MAX_ENTRIES``; empty when it cannot be listed."""
    entries: list[os.DirEntry[str]] = []
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                entries.append(entry)
                if len(entries) >= _MAX_ENTRIES:
                    break
    except OSError:
        return []
    return sorted(entries, key=lambda e: e.name)


def is_dir(entry: os.DirEntry[str]) -> bool:
    """A real directory (a symlinked one is never descended into)."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def inside(path: Path, root: Path) -> Path | str:
    """The regular file ``path`` stands for, if it stays inside ``root``; else why not (a note).

    ``root`` has its symlinks resolved. The whole path is resolved, so a
    symlinked folder on the way (``blobs`` pointing elsewhere) counts as well.
    """
    try:
        os.lstat(path)
    except FileNotFoundError:
        return "file missing"
    except OSError as error:
        return f"unreadable ({error.strerror})"
    try:
        real = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        return "a symlink to a file that does not exist"
    except (OSError, RuntimeError) as error:
        return "a symlink loop" if "loop" in str(error).lower() else "a symlink that cannot be followed"
    if not real.is_relative_to(root):
        return "a symlink out of the scanned folder: not followed"
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return "file missing"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return real


def gguf_problem(path: Path) -> str | None:
    """None when ``path`` starts with the GGUF magic; else a note. Never blocks (a FIFO is refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        return f"unreadable ({error.strerror})"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not a regular file"
        magic = os.pread(fd, 4, 0)
    except OSError as error:
        return f"unreadable ({error.strerror})"
    finally:
        os.close(fd)
    if not magic:
        return "an empty file, not a GGUF"
    return None if magic == b"GGUF" else "not a GGUF file"


def total_size(paths: tuple[Path, ...]) -> int:
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except OSError:
            continue
    return total


def read_small(path: Path, limit: int) -> bytes:
    """A small regular file's bytes, never through a symlink, never blocking; ValueError when too large."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > limit:
            raise ValueError(f"larger than {limit >> 10} KiB")
        data = os.pread(fd, limit + 1, 0)
        if len(data) > limit:
            raise ValueError(f"larger than {limit >> 10} KiB")
        return data
    finally:
        os.close(fd)


__all__ = [
    "gguf_problem",
    "inside",
    "is_dir",
    "listing",
    "read_small",
    "real_dir",
    "total_size",
]
