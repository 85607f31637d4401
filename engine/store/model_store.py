"""The model store: content-addressed blobs, one manifest per model name.

Layout under ``LLAMADECK_HOME`` (default ``$XDG_DATA_HOME/llamadeck``)::

    blobs/sha256-<hex>                        GGUF files, named by their sha256
    manifests/hf.co/<org>/<repo>/<tag>.json   models pulled from Hugging Face
    manifests/library/<name>/<tag>.json       local names (imports, copies)
    partial/sha256-<hex>.partial              downloads in progress, kept for resume
    views/<view id>/                          split models: their part names, symlinked to blobs
    locks/                                    file locks shared by all processes

Two names for one file share one blob. Every write is atomic (temp file in
the same directory, fsync, rename), so a crash leaves either the old or the
new state, never a torn file.

A manifest's *path* is its name: ``rm tiny2`` removes the file at tiny2's
path, whatever name is written inside it. Garbage collection deletes a blob
only when nothing on disk could still name it: the digests inside a damaged
or newer manifest count as in use, and a manifest that cannot be read at all
(or a symlink, which we never follow) stops collection altogether.

The store is a directory anyone can edit, so nothing here follows a symlink
it did not make: a symlink, FIFO or directory where a manifest, partial
download or lock belongs is reported (or replaced, never written through),
and cleaning up removes only what the store itself made.

``Store`` is the one entry point; the work is done beside it, one job a module:
``manifest_files`` (a name's manifest file: path, write, read, list, remove),
``split_views`` (the directories of links a split model is loaded from),
``cleanup`` (garbage collection and pruning) and ``files`` (atomic writes,
reads that never follow a symlink, OS errors as one line).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.errors import IntegrityError, InvalidInput, LlamadeckError
from engine.store import cleanup, manifest_files, split_views
from engine.store.cleanup import Collection, PruneReport
from engine.store.files import READ_FLAGS, file_kind, fsync_dir, in_the_way, not_a_directory, os_error
from engine.store.locks import FileLock
from engine.store.manifest import SHA256, Manifest, ModelFile
from engine.store.manifest_files import StoreEntry
from engine.store.refs import ModelRef


def default_home() -> Path:
    """``LLAMADECK_HOME``, else the XDG data directory."""
    if home := os.environ.get("LLAMADECK_HOME"):
        return Path(home).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "llamadeck"


def check_sha256(sha256: str) -> str:
    if not SHA256.fullmatch(sha256):
        raise IntegrityError(f"not a sha256 digest: {sha256[:80]!r}")
    return sha256


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
        """Refuse a store whose directories are not directories, before reading or writing anything.

        The home and each directory in it that exists must be a directory
        (a symlink to one is fine); a file, a dangling symlink or a symlink
        loop there is named in one line. ``views`` is judged where it is used
        (``split_view``): only a split model needs it.
        """
        if problem := not_a_directory(self.home):
            raise InvalidInput(
                f"the model store {self.home} is {problem}, not a directory: "
                "set LLAMADECK_HOME to a directory"
            )
        for directory in (self.blobs, self.manifests_dir, self.partial, self.locks):
            if problem := not_a_directory(directory):
                raise InvalidInput(
                    f"the model store's {directory.name} directory {directory} is {problem}, "
                    "not a directory: move it out of the way"
                )

    def ensure(self) -> None:
        self.check_home()
        for directory in (self.blobs, self.manifests_dir, self.partial, self.locks):
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise LlamadeckError(
                    f"cannot create the model store at {self.home}: {in_the_way(directory)}"
                ) from None
            except OSError as error:
                where = Path(error.filename) if error.filename else directory
                raise os_error(error, "cannot create the model store directory", where) from error

    def secret_key(self) -> bytes:
        """The store's random key (``<home>/secret.key``, mode 0600), created on first use.

        Raises LlamadeckError naming the file when it cannot be read or made.
        """
        path = self.home / "secret.key"
        for _ in range(2):
            try:
                with open(path, "rb") as file:
                    key = file.read(256)
                if len(key) >= 32:
                    return key
                raise LlamadeckError(f"{path} is damaged (too short): delete it and run again")
            except FileNotFoundError:
                pass
            except OSError as error:
                raise os_error(error, "cannot read the store's key", path) from error
            self.ensure()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue  # another process made it meanwhile: read theirs
            except OSError as error:
                raise os_error(error, "cannot make the store's key", path) from error
            with os.fdopen(fd, "wb") as file:
                file.write(secrets.token_bytes(32))
                file.flush()
                os.fsync(file.fileno())
        raise LlamadeckError(f"cannot read the store's key {path}")

    # blobs -----------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / f"sha256-{check_sha256(sha256)}"

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def touch_blob(self, sha256: str) -> bool:
        """Whether the blob is here; when it is, its grace period restarts (a client means to name it).

        Under the blob's lock when free, so garbage collection never judges it
        old just as a client is told it need not upload it; a pull holding the
        lock will name it anyway.
        """
        path = self.blob_path(sha256)
        if not path.is_file():
            return False
        lock = self.blob_lock(sha256)
        try:
            if not lock.try_acquire():
                return self.has_blob(sha256)
        except LlamadeckError:  # the lock cannot be taken (a read-only store): nothing collects it either
            return self.has_blob(sha256)
        try:
            if not path.is_file():
                return False
            with contextlib.suppress(OSError):  # a read-only store: the blob is here all the same
                os.utime(path, follow_symlinks=False)
            return True
        finally:
            lock.release()

    def partial_path(self, sha256: str) -> Path:
        return self.partial / f"sha256-{check_sha256(sha256)}.partial"

    def prepare_partial(self, sha256: str) -> Path:
        """The partial download's path, safe to open for appending: never a way out of the store.

        A symlink, FIFO, socket or device in its place is removed (only the
        link, never what it points at), so the download starts afresh; a
        directory there is an IntegrityError naming it. A regular file is
        kept: it is the download to resume.
        """
        path = self.partial_path(sha256)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return path
        except OSError as error:
            raise os_error(error, "cannot use the partial download", path) from error
        if stat.S_ISREG(mode):
            return path
        if stat.S_ISDIR(mode):
            raise IntegrityError(
                f"cannot download into {path}: a directory is in its place; move it away and pull again"
            )
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as error:
            raise os_error(error, f"cannot remove the {file_kind(mode)} in place of", path) from error
        return path

    def commit_blob(self, source: Path, sha256: str) -> Path:
        """Move a verified file into the blob store (same file system: a rename).

        ``source`` must be a regular file (a symlink is refused, never read
        through); whatever is at the blob path is replaced, never followed.
        Raises IntegrityError, DiskFull or LlamadeckError naming the path at fault.
        """
        target = self.blob_path(sha256)
        try:
            mode = os.lstat(source).st_mode
        except OSError as error:
            raise os_error(error, "cannot read the download", source) from error
        if not stat.S_ISREG(mode):
            kind = file_kind(mode)
            raise IntegrityError(f"cannot store {source}: a {kind}, not a download llamadeck wrote")
        try:
            fd = os.open(source, READ_FLAGS)
        except OSError as error:
            raise os_error(error, "cannot read the download", source) from error
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IntegrityError(f"cannot store {source}: not a regular file")
            os.fsync(fd)
        finally:
            os.close(fd)
        if os.path.isdir(target) and not os.path.islink(target):
            raise IntegrityError(f"cannot store the blob {target}: a directory is in its place; move it away")
        try:
            os.replace(source, target)
            fsync_dir(self.blobs)
        except OSError as error:
            raise os_error(error, "cannot store the blob", target) from error
        return target

    def blob_lock(self, sha256: str) -> FileLock:
        """Held by whoever downloads or imports this blob, until its manifest is written."""
        return FileLock(self.locks / f"sha256-{check_sha256(sha256)}.lock")

    def store_lock(self) -> FileLock:
        """Serialises manifest changes with garbage collection and pruning."""
        return FileLock(self.locks / "store.lock")

    # split-model views -----------------------------------------------------

    def view_path(self, files: Sequence[ModelFile]) -> Path:
        """Where the view of these parts lives (``views/<view_id>``); see ``split_view``."""
        return self.views / split_views.view_id(files)

    def split_view(self, files: Sequence[ModelFile]) -> Path:
        """The first part's path in a directory of links named like the parts, made fresh as needed."""
        return split_views.split_view(self, files)

    # manifests -------------------------------------------------------------

    def manifest_path(self, ref: ModelRef) -> Path:
        """Where a reference's manifest lives (the check is on the text of the path)."""
        return manifest_files.manifest_path(self, ref)

    def ref_for_path(self, path: Path) -> ModelRef | None:
        """The reference a manifest path stands for; None for a file where no manifest belongs."""
        return manifest_files.ref_for_path(self, path)

    def save(self, manifest: Manifest) -> None:
        """Record a manifest; IntegrityError for one ``load`` would call damaged, DiskFull when full."""
        manifest_files.save(self, manifest)

    def load(self, ref: ModelRef) -> Manifest | None:
        """The manifest stored under ``ref``; None when there is none (NewerStore, IntegrityError)."""
        return manifest_files.load(self, ref)

    def entry(self, path: Path) -> StoreEntry | None:
        """Read and judge one manifest file; None when it does not exist."""
        return manifest_files.read_entry(self, path)

    def entries(self) -> list[StoreEntry]:
        """Every manifest-like thing under ``manifests/``, usable or not."""
        return manifest_files.entries(self)

    def manifests(self) -> Iterator[Manifest]:
        """Every usable manifest; the others are in ``problems()``."""
        return manifest_files.manifests(self)

    def problems(self) -> list[StoreEntry]:
        """Manifests that are damaged, misnamed, unreadable or written by a newer llamadeck."""
        return manifest_files.problems(self)

    def remove_manifest(self, ref: ModelRef) -> bool:
        """Remove whatever is at ``ref``'s manifest path (a link, never its target); False when nothing is."""
        return manifest_files.remove_manifest(self, ref)

    # cleaning up -----------------------------------------------------------

    def blobs_in_use(self) -> tuple[set[str], Path | None]:
        """Every digest a file under ``manifests/`` names, and the first file that stops collection."""
        return cleanup.blobs_in_use(self)

    def collect_garbage(
        self, *, only: set[str] | frozenset[str] | None = None, older_than: float = 0.0
    ) -> Collection:
        """Delete blobs nothing names (of ``only``, untouched ``older_than`` s); call with ``store_lock``."""
        return cleanup.collect_garbage(self, only=only, older_than=older_than)

    def prune(self, *, older_than: float = 0.0) -> PruneReport:
        """Remove partial downloads and lock files no live process holds; call with ``store_lock`` held."""
        return cleanup.prune(self, older_than=older_than)
