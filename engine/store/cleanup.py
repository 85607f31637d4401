"""Cleaning the store up: garbage collection of blobs and views, pruning of what interrupted work left.

Garbage collection deletes a blob only when nothing on disk could still name
it: the digests inside a damaged or newer manifest count as in use, and a
manifest that cannot be read at all (or a symlink, which we never follow)
stops collection altogether. ``rm`` collects only the blobs its manifest
named (``only``), as Ollama's delete does: a blob no manifest names may be a
client's upload about to be named by ``/api/create``, so it is collected only
by ``prune`` (and the server's start), and only once ``UNUSED_BLOB_GRACE``
has passed since it was last written, uploaded again or asked for. Pruning
removes partial downloads and lock files no live process holds, and the
uploads, ``create`` folders and temp files a crash left. Both remove only
what the store itself made; call them with ``Store.store_lock`` held.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import LlamadeckError
from engine.store.files import READ_FLAGS, SCAN_CHUNK
from engine.store.locks import FileLock
from engine.store.manifest import SHA256
from engine.store.manifest_files import StoreEntry, read_entry, walk
from engine.store.split_views import remove_stale_views, view_id

if TYPE_CHECKING:
    from engine.store.model_store import Store

_ANY_SHA256 = re.compile(rb"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_STALE_WORK_SECONDS = 24 * 3600  # an upload or a quantize untouched this long was abandoned
_STALE_TEMP_SECONDS = 3600
# an unnamed blob untouched this long is a leftover, not an upload about to be named: the day that
# abandoned uploads and ``create`` folders get, so a client uploading and creating across a restart,
# a slow create or a pause overnight keeps its blob; leftovers wait at most a day more
UNUSED_BLOB_GRACE = _STALE_WORK_SECONDS


@dataclass(frozen=True)
class Collection:
    """What garbage collection removed, or which manifest stopped it."""

    removed: tuple[str, ...]  # sha256 of the blobs deleted
    blocked_by: Path | None = None  # a manifest that could not be read: nothing was deleted
    blocked_because: str | None = None  # why, e.g. "a symlink, which llamadeck does not follow"
    freed: int = 0  # bytes of the blobs deleted
    young: int = 0  # unnamed blobs kept because they are younger than the grace period
    young_bytes: int = 0


@dataclass(frozen=True)
class PruneReport:
    partials: int  # abandoned partial downloads removed
    locks: int  # lock files nobody held, removed
    freed: int  # bytes
    blobs: int = 0  # unused blobs removed (untouched for UNUSED_BLOB_GRACE)
    young_blobs: int = 0  # unused blobs kept: younger than UNUSED_BLOB_GRACE, a client may name them yet
    young_bytes: int = 0


@dataclass
class _InUse:
    blobs: set[str] = field(default_factory=set)
    views: set[str] = field(default_factory=set)  # view ids of usable split models
    blocked_by: Path | None = None
    because: str | None = None


def _digests_in(path: Path) -> set[str]:
    """Every 64-hex string in a regular file, read in chunks (a stray file may be large)."""
    found: set[str] = set()
    fd = os.open(path, READ_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return found
        tail = b""
        while chunk := os.read(fd, SCAN_CHUNK):
            window = tail + chunk
            found.update(m.decode().lower() for m in _ANY_SHA256.findall(window))
            tail = window[-64:]
    finally:
        os.close(fd)
    return found


def _in_use(store: Store) -> _InUse:
    """Every digest a file under ``manifests/`` names, the live views, and the first file that stops GC.

    A usable manifest names its files. For anything else there (damaged,
    newer, misnamed, a stray backup) every 64-hex string in its bytes
    counts: we cannot know which of them a future reader would need. A
    symlink or a file or directory that cannot be read stops collection.
    """
    store.check_home()
    use = _InUse()
    for found in walk(store):
        path, mode = found.path, found.mode
        if found.error is not None:
            use.blocked_by, use.because = path, f"it cannot be read ({found.error.strerror})"
            return use
        if stat.S_ISDIR(mode):
            continue
        if stat.S_ISLNK(mode):
            use.blocked_by, use.because = path, "it is a symlink, which llamadeck does not follow"
            return use
        if not stat.S_ISREG(mode):
            continue  # a FIFO, socket or device holds no digests
        if path.suffix == ".json" and not path.name.startswith("."):
            entry = read_entry(store, path)
            if entry is not None and entry.manifest is not None:
                use.blobs.update(
                    f.sha256 for f in entry.manifest.blob_files
                )  # weights, LoRA, draft, projector
                if len(entry.manifest.files) > 1:
                    use.views.add(view_id(entry.manifest.files))
                draft = entry.manifest.config.draft
                if draft is not None and len(draft.files) > 1:  # a split draft model is loaded through a view
                    use.views.add(view_id(draft.files))
                continue
        try:
            use.blobs.update(_digests_in(path))
        except FileNotFoundError:
            continue
        except OSError as error:
            use.blocked_by, use.because = path, f"it cannot be read ({error.strerror})"
            return use
    return use


def blobs_in_use(store: Store) -> tuple[set[str], Path | None]:
    """Every digest a file under ``manifests/`` names, and the first file that stops collection."""
    use = _in_use(store)
    return use.blobs, use.blocked_by


def digests_named_by(entry: StoreEntry) -> set[str]:
    """The blobs a manifest names (Manifest.blob_files); if damaged or newer, every digest in it.

    A symlink or anything but a regular file names nothing (it is never followed).
    """
    if entry.manifest is not None:
        return {f.sha256 for f in entry.manifest.blob_files}
    try:
        return _digests_in(entry.path) if stat.S_ISREG(os.lstat(entry.path).st_mode) else set()
    except OSError:
        return set()


def collect_garbage(
    store: Store, *, only: set[str] | frozenset[str] | None = None, older_than: float = 0.0
) -> Collection:
    """Delete blobs nothing names, and views no usable manifest needs; call with ``store_lock`` held.

    ``only`` limits it to those digests (``rm``: the blobs of the manifest it
    removed); ``older_than`` (seconds) spares blobs written or touched since.
    A blob whose lock another process holds is mid-pull and stays.
    """
    use = _in_use(store)
    if use.blocked_by is not None:
        return Collection((), use.blocked_by, use.because)
    now = time.time()
    removed = []
    freed = young = young_bytes = 0
    for blob in sorted(store.blobs.glob("sha256-*")) if store.blobs.is_dir() else []:
        sha256 = blob.name.removeprefix("sha256-")
        if sha256 in use.blobs or not SHA256.fullmatch(sha256) or (only is not None and sha256 not in only):
            continue
        try:
            if stat.S_ISDIR(os.lstat(blob).st_mode):
                continue  # not a blob llamadeck wrote
        except OSError:
            continue
        lock = store.blob_lock(sha256)
        if not lock.try_acquire():
            continue
        try:
            info = os.lstat(blob)  # under the lock: an upload of it again, or a HEAD, touched it first
            if now - info.st_mtime < older_than:
                young, young_bytes = young + 1, young_bytes + info.st_size
                continue
            blob.unlink()
            removed.append(sha256)
            freed += info.st_size if info.st_nlink == 1 else 0
        except OSError:
            continue  # gone already, immutable or read-only: not counted as freed
        finally:
            lock.release()
    remove_stale_views(store, use.views)
    return Collection(tuple(removed), freed=freed, young=young, young_bytes=young_bytes)


def prune(store: Store, *, older_than: float = 0.0) -> PruneReport:
    """Remove partial downloads and lock files that no live process holds; call with ``store_lock``.

    ``older_than`` (seconds) spares recent partials, so ``rm`` does not
    throw away a download the user interrupted an hour ago and means to resume.
    A symlink in ``partial/`` is removed (the link only); a directory stays.
    """
    now = time.time()
    partials = freed = 0
    for partial in sorted(store.partial.glob("sha256-*.partial")) if store.partial.is_dir() else []:
        sha256 = partial.name.removeprefix("sha256-").removesuffix(".partial")
        try:
            info = os.lstat(partial)
        except OSError:
            continue
        if not SHA256.fullmatch(sha256) or not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
            continue
        size = info.st_size if stat.S_ISREG(info.st_mode) else 0
        if stat.S_ISREG(info.st_mode) and now - info.st_mtime < older_than and not store.has_blob(sha256):
            continue
        lock = store.blob_lock(sha256)
        if not lock.try_acquire():
            continue  # a pull is writing it
        try:
            partial.unlink(missing_ok=True)
            partials, freed = partials + 1, freed + size
        except OSError:
            continue
        finally:
            lock.release()
    locks = 0
    for path in sorted(store.locks.glob("sha256-*.lock")) if store.locks.is_dir() else []:
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.lstat(path).st_mode):
                continue
        lock = FileLock(path)
        try:
            if not lock.try_acquire():
                continue
        except LlamadeckError:
            continue
        try:
            lock.unlink_while_held()
            locks += 1
        except OSError:
            continue
        finally:
            lock.release()
    _remove_stale_temp_files(store, now)
    freed += _remove_stale_work(store, now)
    return PruneReport(partials, locks, freed)


def _remove_stale_work(store: Store, now: float) -> int:
    """Uploads (``upload-*.partial``) and ``create`` working folders a crash left: untouched for a day."""
    freed = 0
    for path in sorted(store.partial.glob("upload-*.partial")) if store.partial.is_dir() else []:
        with contextlib.suppress(OSError):
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > _STALE_WORK_SECONDS:
                path.unlink()
                freed += info.st_size
    for folder in sorted(store.partial.glob("create-*")) if store.partial.is_dir() else []:
        with contextlib.suppress(OSError):
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                continue
            inside = [os.lstat(entry) for entry in folder.iterdir()]
            newest = max([os.lstat(folder).st_mtime, *(i.st_mtime for i in inside)])
            if now - newest > _STALE_WORK_SECONDS:
                shutil.rmtree(folder)
                freed += sum(i.st_size for i in inside if stat.S_ISREG(i.st_mode) and i.st_nlink == 1)
    return freed


def _remove_stale_temp_files(store: Store, now: float) -> None:
    """Temp files of atomic writes a crash left behind (``.<name>.<random>.tmp``): regular files only."""
    if not store.manifests_dir.is_dir():
        return
    for found in walk(store):
        name = found.path.name
        temp = name.startswith(".") and name.endswith(".tmp")
        if temp and found.error is None and stat.S_ISREG(found.mode):
            try:
                if now - os.lstat(found.path).st_mtime > _STALE_TEMP_SECONDS:
                    found.path.unlink()
            except OSError:
                continue
