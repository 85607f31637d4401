"""The model store: content-addressed blobs, one manifest per model name.

Layout under ``LLAMADECK_HOME`` (default ``$XDG_DATA_HOME/llamadeck``)::

    blobs/sha256-<hex>                        GGUF files, named by their sha256
    manifests/hf.co/<org>/<repo>/<tag>.json   models pulled from Hugging Face
    manifests/library/<name>/<tag>.json       local names (imports, copies)
    partial/sha256-<hex>.partial              downloads in progress, kept for resume
    views/<id>/                               split models: their part names, symlinked to blobs
    locks/                                    file locks shared by all processes

Two names for one file share one blob. Every write is atomic (temp file in
the same directory, fsync, rename), so a crash leaves either the old or the
new state, never a torn file.

A manifest's *path* is its name: ``rm tiny2`` removes the file at tiny2's
path, whatever name is written inside it. Garbage collection deletes a blob
only when nothing on disk could still name it: the digests inside a damaged
or newer manifest count as in use, and a manifest that cannot be read at all
stops collection altogether.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import IntegrityError, InvalidInput, LlamadeckError, NewerStore
from engine.locks import FileLock
from engine.manifest import SHA256, Manifest, ManifestError
from engine.refs import HUB_HOST, HubRef, LocalRef, ModelRef

LOCAL_NAMESPACE = "library"
_ANY_SHA256 = re.compile(rb"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_STALE_TEMP_SECONDS = 3600


def default_home() -> Path:
    """``LLAMADECK_HOME``, else the XDG data directory."""
    if home := os.environ.get("LLAMADECK_HOME"):
        return Path(home).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "llamadeck"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def check_sha256(sha256: str) -> str:
    if not SHA256.fullmatch(sha256):
        raise IntegrityError(f"not a sha256 digest: {sha256[:80]!r}")
    return sha256


@dataclass(frozen=True)
class StoreEntry:
    """One file under ``manifests/``: the model it stands for, or why it cannot be used."""

    path: Path
    ref: ModelRef | None  # what the path names; None for a file where no manifest belongs
    manifest: Manifest | None  # None when damaged, newer or misnamed
    problem: str | None = None
    newer: bool = False  # written by a newer llamadeck: left alone

    @property
    def reference(self) -> str:
        return str(self.ref) if self.ref is not None else str(self.path)


@dataclass(frozen=True)
class Collection:
    """What garbage collection removed, or which manifest stopped it."""

    removed: tuple[str, ...]  # sha256 of the blobs deleted
    blocked_by: Path | None = None  # a manifest that could not be read: nothing was deleted


@dataclass(frozen=True)
class PruneReport:
    partials: int  # abandoned partial downloads removed
    locks: int  # lock files nobody held, removed
    freed: int  # bytes


class Store:
    """Blobs, manifests, partial downloads and locks under one home directory."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.blobs = self.home / "blobs"
        self.manifests_dir = self.home / "manifests"
        self.partial = self.home / "partial"
        self.locks = self.home / "locks"
        self.views = self.home / "views"

    def check_home(self) -> None:
        """Refuse a home that is not a directory, before reading or writing anything."""
        for directory in (self.home, self.manifests_dir, self.blobs):
            if directory.exists() and not directory.is_dir():
                raise InvalidInput(
                    f"the model store {directory} is not a directory: set LLAMADECK_HOME to a directory"
                )

    def ensure(self) -> None:
        self.check_home()
        try:
            for directory in (self.blobs, self.manifests_dir, self.partial, self.locks):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LlamadeckError(f"cannot create the model store at {self.home}: {error.strerror}") from error

    # blobs -----------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / f"sha256-{check_sha256(sha256)}"

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def partial_path(self, sha256: str) -> Path:
        return self.partial / f"sha256-{check_sha256(sha256)}.partial"

    def commit_blob(self, source: Path, sha256: str) -> Path:
        """Move a verified file into the blob store (same file system: a rename)."""
        target = self.blob_path(sha256)
        with open(source, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(source, target)
        fsync_dir(self.blobs)
        return target

    def blob_lock(self, sha256: str) -> FileLock:
        """Held by whoever downloads or imports this blob, until its manifest is written."""
        return FileLock(self.locks / f"sha256-{check_sha256(sha256)}.lock")

    def store_lock(self) -> FileLock:
        """Serialises manifest changes with garbage collection and pruning."""
        return FileLock(self.locks / "store.lock")

    # manifests -------------------------------------------------------------

    def manifest_path(self, ref: ModelRef) -> Path:
        """Where a reference's manifest lives. Refs are valid by construction; the check is a backstop."""
        if isinstance(ref, HubRef):
            if ref.quant is None:
                raise InvalidInput(f"{ref} names no quant, so no single manifest")
            org, repo = ref.repo.split("/")
            path = self.manifests_dir / HUB_HOST / org / repo / f"{ref.quant}.json"
        else:
            path = self.manifests_dir / LOCAL_NAMESPACE / ref.name / f"{ref.tag}.json"
        if not path.resolve().is_relative_to(self.manifests_dir.resolve()):
            raise InvalidInput(f"not a storable model name: {str(ref)[:100]!r}")
        return path

    def ref_for_path(self, path: Path) -> ModelRef | None:
        """The reference a manifest path stands for; None for a file where no manifest belongs."""
        try:
            parts = path.relative_to(self.manifests_dir).parts
        except ValueError:
            return None
        if path.suffix != ".json":
            return None
        tag = path.stem
        ref: ModelRef
        try:
            if len(parts) == 4 and parts[0] == HUB_HOST:
                ref = HubRef(f"{parts[1]}/{parts[2]}", tag)
            elif len(parts) == 3 and parts[0] == LOCAL_NAMESPACE:
                ref = LocalRef(parts[1], tag)
            else:
                return None
        except LlamadeckError:
            return None
        return ref if self.manifest_path(ref) == path else None

    def save(self, manifest: Manifest) -> None:
        atomic_write(self.manifest_path(manifest.ref), manifest.to_json())

    def load(self, ref: ModelRef) -> Manifest | None:
        """The manifest stored under ``ref``; None when there is none.

        Raises NewerStore for a manifest a newer llamadeck wrote and
        IntegrityError for a damaged one or one whose inner name is not ``ref``.
        """
        entry = self.entry(self.manifest_path(ref))
        if entry is None:
            return None
        if entry.manifest is not None:
            return entry.manifest
        if entry.newer:
            raise NewerStore(f"{ref} was {entry.problem}")
        raise IntegrityError(f"the manifest of {ref} is damaged ({entry.path}): {entry.problem}")

    def entry(self, path: Path) -> StoreEntry | None:
        """Read and judge one manifest file; None when it does not exist."""
        ref = self.ref_for_path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            return StoreEntry(path, ref, None, f"cannot be read ({error.strerror})")
        if ref is None:
            return StoreEntry(path, None, None, "a file where no manifest belongs")
        try:
            manifest = Manifest.from_json(raw)
        except ManifestError as error:
            return StoreEntry(path, ref, None, str(error), newer=error.newer)
        if manifest.ref != ref:
            return StoreEntry(path, ref, None, f"it names {manifest.reference} but is stored as {ref}")
        return StoreEntry(path, ref, manifest)

    def _manifest_files(self) -> list[Path]:
        self.check_home()
        if not self.manifests_dir.is_dir():
            return []
        return sorted(p for p in self.manifests_dir.rglob("*.json") if not p.name.startswith("."))

    def entries(self) -> list[StoreEntry]:
        """Every file under ``manifests/``, usable or not."""
        return [e for p in self._manifest_files() if (e := self.entry(p)) is not None]

    def manifests(self) -> Iterator[Manifest]:
        """Every usable manifest; the others are in ``problems()``."""
        for entry in self.entries():
            if entry.manifest is not None:
                yield entry.manifest

    def problems(self) -> list[StoreEntry]:
        """Manifests that are damaged, misnamed, unreadable or written by a newer llamadeck."""
        return [e for e in self.entries() if e.manifest is None]

    def remove_manifest(self, ref: ModelRef) -> bool:
        path = self.manifest_path(ref)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self._prune_empty_dirs(path.parent)
        return True

    def _prune_empty_dirs(self, directory: Path) -> None:
        root = self.manifests_dir.resolve()
        while directory.resolve() != root and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent

    # garbage collection ----------------------------------------------------

    def blobs_in_use(self) -> tuple[set[str], Path | None]:
        """Every digest a file under ``manifests/`` names, and the first file that could not be read.

        A usable manifest names its files. For anything else there (damaged,
        newer, misnamed, a stray backup) every 64-hex string in its bytes
        counts: we cannot know which of them a future reader would need.
        """
        used: set[str] = set()
        if not self.manifests_dir.is_dir():
            return used, None
        for path in sorted(self.manifests_dir.rglob("*")):
            if path.is_dir():
                continue
            entry = self.entry(path) if path.suffix == ".json" and not path.name.startswith(".") else None
            if entry is not None and entry.manifest is not None:
                used.update(f.sha256 for f in entry.manifest.files)
                continue
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError:
                return used, path
            used.update(m.decode().lower() for m in _ANY_SHA256.findall(raw))
        return used, None

    def collect_garbage(self) -> Collection:
        """Delete blobs nothing names; call with ``store_lock`` held.

        A blob whose lock another process holds is mid-pull and stays.
        """
        used, blocked = self.blobs_in_use()
        if blocked is not None:
            return Collection((), blocked)
        removed = []
        for blob in sorted(self.blobs.glob("sha256-*")) if self.blobs.is_dir() else []:
            sha256 = blob.name.removeprefix("sha256-")
            if sha256 in used or not SHA256.fullmatch(sha256):
                continue
            lock = self.blob_lock(sha256)
            if not lock.try_acquire():
                continue
            try:
                blob.unlink(missing_ok=True)
                removed.append(sha256)
            finally:
                lock.release()
        self._remove_stale_views(used)
        return Collection(tuple(removed))

    def _remove_stale_views(self, used: set[str]) -> None:
        """Drop the symlink directories (split models) of weights no manifest names any more."""
        if not self.views.is_dir():
            return
        live = {sha[:12] for sha in used}
        for view in self.views.iterdir():
            if view.name not in live:
                shutil.rmtree(view, ignore_errors=True)

    def prune(self, *, older_than: float = 0.0) -> PruneReport:
        """Remove partial downloads and lock files that no live process holds; call with ``store_lock``.

        ``older_than`` (seconds) spares recent partials, so ``rm`` does not
        throw away a download the user interrupted an hour ago and means to resume.
        """
        now = time.time()
        partials = freed = 0
        for partial in sorted(self.partial.glob("sha256-*.partial")) if self.partial.is_dir() else []:
            sha256 = partial.name.removeprefix("sha256-").removesuffix(".partial")
            if not SHA256.fullmatch(sha256) or not partial.is_file():
                continue
            stat = partial.stat()
            if now - stat.st_mtime < older_than and not self.has_blob(sha256):
                continue
            lock = self.blob_lock(sha256)
            if not lock.try_acquire():
                continue  # a pull is writing it
            try:
                partial.unlink(missing_ok=True)
                partials, freed = partials + 1, freed + stat.st_size
            finally:
                lock.release()
        locks = 0
        for path in sorted(self.locks.glob("sha256-*.lock")) if self.locks.is_dir() else []:
            lock = FileLock(path)
            if not lock.try_acquire():
                continue
            try:
                lock.unlink_while_held()
                locks += 1
            finally:
                lock.release()
        self._remove_stale_temp_files(now)
        return PruneReport(partials, locks, freed)

    def _remove_stale_temp_files(self, now: float) -> None:
        """Temp files of atomic writes a crash left behind (``.<name>.<random>.tmp``)."""
        if not self.manifests_dir.is_dir():
            return
        for tmp in self.manifests_dir.rglob(".*.tmp"):
            try:
                if tmp.is_file() and now - tmp.stat().st_mtime > _STALE_TEMP_SECONDS:
                    tmp.unlink()
            except OSError:
                continue
