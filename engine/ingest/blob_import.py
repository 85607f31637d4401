"""Putting one opened local file into ``blobs/``: hashed, then hard-linked or copied, checked, committed.

The careful part of a local import (a file that changes while read is
refused, a link is checked to be the inode that was hashed, a copy is hashed
again as written, a damaged stored copy is replaced) in one place, shared by
``import_gguf`` and ``import_file``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from pathlib import Path

from engine.cancel import CancelToken
from engine.errors import Cancelled, DiskFull, IntegrityError
from engine.events import EventSink, Status
from engine.ingest.local_source import Part
from engine.store.files import os_error
from engine.store.gguf_io import verify_structure
from engine.store.manifest import ModelFile
from engine.store.model_store import Store
from engine.store.transfer import CHUNK, HashingFile, ProgressMeter
from engine.units import format_size


def hash_part(part: Part, sink: EventSink, cancel: CancelToken) -> str:
    """sha256 of the open file; IntegrityError when it changed size or time meanwhile."""
    digest = hashlib.sha256()
    meter = ProgressMeter(sink, "importing", part.label, part.info.st_size)
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    offset = 0
    while True:
        cancel.check()
        try:
            n = os.preadv(part.fd, [buffer], offset)
        except OSError as error:
            raise IntegrityError(f"cannot read {part.label}: {error.strerror}") from None
        if not n:
            break
        digest.update(view[:n])
        offset += n
        meter.advance(n)
    meter.finish()
    if offset != part.info.st_size or not part.unchanged():
        raise IntegrityError(
            f"{part.label} changed while it was read: nothing imported; try again once nothing writes it"
        )
    return digest.hexdigest()


def _same_inode(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def store_blob(store: Store, part: Part, *, link: bool, sink: EventSink, cancel: CancelToken) -> bool:
    """Make sure ``blobs/sha256-<sha256>`` holds the part (hold its lock); True when this call stored it."""
    blob = store.blob_path(part.sha256)
    try:
        existing: os.stat_result | None = os.lstat(blob)
    except FileNotFoundError:
        existing = None
    except OSError as error:
        raise os_error(error, "cannot use the blob", blob) from error
    regular = existing is not None and stat.S_ISREG(existing.st_mode)
    if (
        regular
        and existing is not None
        and (_same_inode(existing, part.info) or _sound(store, part, sink, cancel))
    ):
        sink(Status(f"{part.label}: already in the store"))
        return False
    if existing is not None and not stat.S_ISDIR(existing.st_mode):
        blob.unlink(missing_ok=True)  # damaged, or a symlink someone put there: never written through
    partial = store.prepare_partial(part.sha256)
    partial.unlink(
        missing_ok=True
    )  # a download of the same bytes in progress is superseded: we hold the lock
    try:
        how = "linked" if link and _link(part, partial) else _copy(store, part, partial, sink, cancel)
        if part.is_model:
            verify_structure(partial, label=part.label)
        store.commit_blob(partial, part.sha256)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    sink(Status(f"{part.label}: {how} into the store"))
    return True


def _sound(store: Store, part: Part, sink: EventSink, cancel: CancelToken) -> bool:
    """Whether a stored blob of the same digest still hashes to it (pulling again is how users repair)."""
    from engine.store.verify import check_blob

    problem = check_blob(store, ModelFile(part.name, part.sha256, part.info.st_size), sink, cancel)
    if problem is not None:
        sink(Status(f"{part.label}: the stored copy is damaged; replacing it"))
    return problem is None


def _link(part: Part, partial: Path) -> bool:
    """Hard-link the file that was hashed to ``partial``; False when the file system will not.

    The path is linked (``/proc/self/fd`` links are refused across mounts in
    some sandboxes) and the link's inode compared with the open file's, so a
    file renamed over the source meanwhile is never the one stored.
    """
    try:
        os.link(os.path.realpath(part.path), partial)
    except OSError:
        return False  # EXDEV, EPERM (protected_hardlinks), EMLINK, no hard links at all: copy instead
    try:
        linked = os.lstat(partial)
    except OSError:
        return False
    if not _same_inode(linked, part.info) or not part.unchanged():
        partial.unlink(missing_ok=True)
        if not part.unchanged():
            raise IntegrityError(f"{part.label} changed while it was imported: nothing imported; try again")
        return False
    return True


def _copy(store: Store, part: Part, partial: Path, sink: EventSink, cancel: CancelToken) -> str:
    """Copy the open file into ``partial``, hashing again as it goes; IntegrityError if the bytes differ."""
    free = shutil.disk_usage(store.partial).free
    if part.info.st_size > free:
        raise DiskFull(
            f"not enough disk space in {store.home} to copy {part.label}: "
            f"need {format_size(part.info.st_size)}, "
            f"{format_size(free)} free; nothing changed"
        )
    meter = ProgressMeter(sink, "copying", part.label, part.info.st_size)
    try:
        out = HashingFile(partial, meter)
    except OSError as error:
        raise os_error(error, "cannot write", partial) from error
    try:
        offset = 0
        while True:
            cancel.check()
            data = os.pread(part.fd, CHUNK, offset)
            if not data:
                break
            out.write(data)
            offset += len(data)
    except Cancelled:
        out.close()
        raise
    except OSError as error:
        out.close()
        raise os_error(error, f"cannot copy {part.label} to", partial) from error
    except BaseException:
        out.close()
        raise
    meter.finish()
    try:
        digest = out.finish()
    except OSError as error:
        raise os_error(error, "cannot write", partial) from error
    if digest != part.sha256 or not part.unchanged():
        raise IntegrityError(f"{part.label} changed while it was copied: nothing imported; try again")
    return "copied"


__all__ = ["hash_part", "store_blob"]
