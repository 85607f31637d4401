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
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from engine.errors import DiskFull, IntegrityError, InvalidInput, LlamadeckError, NewerStore
from engine.store.locks import FileLock
from engine.store.manifest import MAX_MANIFEST_BYTES, SHA256, Manifest, ManifestError, ModelFile
from engine.store.refs import HUB_HOST, HubRef, LocalRef, ModelRef

LOCAL_NAMESPACE = "library"
_ANY_SHA256 = re.compile(rb"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_BLOB_NAME = re.compile(r"sha256-[0-9a-f]{64}")
# A view's directory name: view_id() now, the first part's short id before (still cleaned up).
_VIEW_NAME = re.compile(r"[0-9a-f]{24}|[0-9a-f]{12}")
_STALE_WORK_SECONDS = 24 * 3600  # an upload or a quantize untouched this long was abandoned
_STALE_TEMP_SECONDS = 3600
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_SCAN_CHUNK = 1 << 20


def default_home() -> Path:
    """``LLAMADECK_HOME``, else the XDG data directory."""
    if home := os.environ.get("LLAMADECK_HOME"):
        return Path(home).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "llamadeck"


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


def check_sha256(sha256: str) -> str:
    if not SHA256.fullmatch(sha256):
        raise IntegrityError(f"not a sha256 digest: {sha256[:80]!r}")
    return sha256


def view_id(files: Sequence[ModelFile]) -> str:
    """The directory name of a split model's view: one digest of every part's link name and sha256.

    Two models share a view only when every part is the same file under the
    same name, so a re-pull with new later parts, or another repo sharing
    only the first part, gets a view of its own.
    """
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{PurePosixPath(file.path).name}\0{file.sha256}\n".encode(errors="surrogatepass"))
    return digest.hexdigest()[:24]


def _part_name(file: ModelFile) -> str:
    """The link name of one part of a split model; refused when it could not be a plain file name."""
    name = PurePosixPath(file.path).name
    try:
        usable = name not in ("", ".", "..") and "\\" not in name and name.isprintable()
        os.fsencode(name)
    except UnicodeError:
        usable = False
    if not usable:
        raise IntegrityError(f"the part {file.path!r:.100} has no usable file name: pull the model again")
    return name


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file, never through a symlink, never blocking on a FIFO.

    Raises OSError (ELOOP for a symlink) or ValueError (not a regular file, or over ``limit`` bytes).
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"a {file_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise ValueError(f"larger than {limit >> 20} MiB")
        chunks, size = [], 0
        while chunk := os.read(fd, min(_SCAN_CHUNK, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ValueError(f"larger than {limit >> 20} MiB")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _digests_in(path: Path) -> set[str]:
    """Every 64-hex string in a regular file, read in chunks (a stray file may be large)."""
    found: set[str] = set()
    fd = os.open(path, _READ_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return found
        tail = b""
        while chunk := os.read(fd, _SCAN_CHUNK):
            window = tail + chunk
            found.update(m.decode().lower() for m in _ANY_SHA256.findall(window))
            tail = window[-64:]
    finally:
        os.close(fd)
    return found


@dataclass(frozen=True)
class StoreEntry:
    """One file under ``manifests/``: the model it stands for, or why it cannot be used."""

    path: Path
    ref: ModelRef | None  # what the path names; None for a file where no manifest belongs
    manifest: Manifest | None  # None when damaged, newer or misnamed
    problem: str | None = None
    newer: bool = False  # written by a newer llamadeck: left alone
    removable: bool = True  # False when ``rm`` cannot remove it (it lies behind a symlinked directory)

    @property
    def reference(self) -> str:
        return str(self.ref) if self.ref is not None else str(self.path)

    @property
    def removable_as(self) -> str | None:
        """The reference ``llamadeck rm`` takes to remove this entry; None when only deleting it by hand can.

        A file whose path names no model (``Latest.json``, ``stray.json``, a
        name with spaces) has no reference: ``rm`` refuses any path.
        """
        return str(self.ref) if self.ref is not None and self.removable else None

    @property
    def repair(self) -> str | None:
        """What to do about a problem entry, in one phrase; None for a newer llamadeck's (not ours)."""
        if self.manifest is not None or self.newer:
            return None
        if self.removable_as is not None:
            return f"remove it with llamadeck rm {self.removable_as}"
        return f"delete {self.path} by hand: no model name stands for it, so llamadeck rm cannot"


@dataclass(frozen=True)
class Collection:
    """What garbage collection removed, or which manifest stopped it."""

    removed: tuple[str, ...]  # sha256 of the blobs deleted
    blocked_by: Path | None = None  # a manifest that could not be read: nothing was deleted
    blocked_because: str | None = None  # why, e.g. "a symlink, which llamadeck does not follow"


@dataclass(frozen=True)
class PruneReport:
    partials: int  # abandoned partial downloads removed
    locks: int  # lock files nobody held, removed
    freed: int  # bytes


@dataclass(frozen=True)
class _Found:
    """One thing under ``manifests/``, as ``lstat`` sees it (never through a symlink)."""

    path: Path
    mode: int
    error: OSError | None = None  # a directory that could not be listed, or an lstat that failed


@dataclass
class _InUse:
    blobs: set[str] = field(default_factory=set)
    views: set[str] = field(default_factory=set)  # view ids of usable split models
    blocked_by: Path | None = None
    because: str | None = None


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
            fd = os.open(source, _READ_FLAGS)
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
        return self.views / view_id(files)

    def split_view(self, files: Sequence[ModelFile]) -> Path:
        """The first part's path in a directory of links named like the parts, made fresh as needed.

        llama.cpp finds ``X-00002-of-00003.gguf`` next to the first part, so
        each part gets a symlink of its own name to its blob. A link that is
        missing or points elsewhere is replaced atomically (a new link under a
        temp name, then a rename). ``views`` must be a real directory: a
        symlink there is refused, never written through.
        """
        names = [_part_name(f) for f in files]
        if len(set(names)) != len(names):
            raise IntegrityError(f"two parts of a split model share a file name ({', '.join(names)[:200]})")
        self._views_dir()
        view = self.view_path(files)
        try:
            view.mkdir()
        except FileExistsError:
            pass
        except OSError as error:
            raise os_error(error, "cannot create the split-model directory", view) from error
        try:
            mode = os.lstat(view).st_mode
        except OSError as error:
            raise os_error(error, "cannot use the split-model directory", view) from error
        if not stat.S_ISDIR(mode):
            raise IntegrityError(
                f"the split-model directory {view} is a {file_kind(mode)}, not a directory llamadeck made: "
                "remove it"
            )
        for file, name in zip(files, names, strict=True):
            link = view / name
            target = os.path.abspath(self.blob_path(file.sha256))
            with contextlib.suppress(OSError):
                if os.readlink(link) == target:
                    continue
            tmp = view / f".{name}.{secrets.token_hex(6)}.tmp"
            try:
                os.symlink(target, tmp)
                os.replace(tmp, link)
            except OSError as error:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise os_error(error, "cannot link the split model's part", link) from error
        return view / names[0]

    def _views_dir(self) -> None:
        """Make ``views/`` if missing; refuse anything but a real directory there (never write through it)."""
        try:
            self.views.mkdir(exist_ok=True)
        except OSError as error:
            if not isinstance(error, FileExistsError):
                raise os_error(error, "cannot create the split-model directory", self.views) from error
        try:
            mode = os.lstat(self.views).st_mode
        except OSError as error:
            raise os_error(error, "cannot use the split-model directory", self.views) from error
        if not stat.S_ISDIR(mode):
            raise IntegrityError(
                f"the split-model directory {self.views} is a {file_kind(mode)}, "
                "not a directory llamadeck made: llamadeck does not write through it; remove it"
            )

    # manifests -------------------------------------------------------------

    def manifest_path(self, ref: ModelRef) -> Path:
        """Where a reference's manifest lives. Refs are valid by construction; the check is a backstop.

        The check is on the text of the path: symlinks are not resolved (they
        are judged where the file is read or written).
        """
        if isinstance(ref, HubRef):
            if ref.quant is None:
                raise InvalidInput(f"{ref} names no quant, so no single manifest")
            org, repo = ref.repo.split("/")
            path = self.manifests_dir / HUB_HOST / org / repo / f"{ref.quant}.json"
        else:
            path = self.manifests_dir / LOCAL_NAMESPACE / ref.name / f"{ref.tag}.json"
        if not Path(os.path.normpath(path)).is_relative_to(os.path.normpath(self.manifests_dir)):
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
            return ref if self.manifest_path(ref) == path else None
        except LlamadeckError:
            return None

    def _symlinked_parent(self, path: Path) -> Path | None:
        """The first directory between ``manifests/`` and ``path`` that is a symlink, if any."""
        try:
            parts = path.relative_to(self.manifests_dir).parts
        except ValueError:
            return None
        current = self.manifests_dir
        for part in parts[:-1]:
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except OSError:
                return None
            if stat.S_ISLNK(mode):
                return current
        return None

    def save(self, manifest: Manifest) -> None:
        """Record a manifest, after checking that reading it back will accept it.

        Raises IntegrityError ("cannot record …") for a manifest ``load`` would
        call damaged (a licence over 1 MiB, a count past 2**63 - 1, …), and
        DiskFull or LlamadeckError naming the path when the write fails.
        """
        path = self.manifest_path(manifest.ref)
        try:
            data = manifest.to_json()
            Manifest.from_json(data)
        except ManifestError as error:
            raise IntegrityError(f"cannot record {manifest.reference}: {error}") from error
        except (TypeError, ValueError, RecursionError) as error:
            why = f"not storable as JSON ({error})"
            raise IntegrityError(f"cannot record {manifest.reference}: {why}") from error
        if self.ref_for_path(path) != manifest.ref:
            raise IntegrityError(f"cannot record {manifest.reference}: {path} would not read back as it")
        if (link := self._symlinked_parent(path)) is not None:
            raise IntegrityError(
                f"cannot record {manifest.reference} at {path}: {link} is a symlink, "
                "not a directory llamadeck made; delete it by hand"
            )
        atomic_write(path, data)

    def load(self, ref: ModelRef) -> Manifest | None:
        """The manifest stored under ``ref``; None when there is none.

        Raises NewerStore for a manifest a newer llamadeck wrote and
        IntegrityError for a damaged one or one whose inner name is not ``ref``.
        """
        self.check_home()
        entry = self.entry(self.manifest_path(ref))
        if entry is None:
            return None
        if entry.manifest is not None:
            return entry.manifest
        if entry.newer:
            raise NewerStore(f"{ref} was {entry.problem}")
        problem = entry.problem or "unusable"
        where = "" if str(entry.path) in problem else f" ({entry.path})"
        raise IntegrityError(f"the manifest of {ref} is damaged{where}: {problem}")

    def entry(self, path: Path) -> StoreEntry | None:
        """Read and judge one manifest file; None when it does not exist.

        Only a regular file is read, never through a symlink and never
        blocking: a symlink, directory, FIFO or device in a manifest's place
        is a problem entry.
        """
        ref = self.ref_for_path(path)
        if (link := self._symlinked_parent(path)) is not None:
            problem = f"it lies behind {link}, a symlink, not a directory llamadeck made"
            return StoreEntry(path, ref, None, problem, removable=False)
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            return StoreEntry(path, ref, None, f"cannot be read ({error.strerror})")
        here = f"{path} is" if ref is not None else "it is"
        if stat.S_ISLNK(mode):
            return StoreEntry(path, ref, None, f"{here} a symlink, not a manifest llamadeck wrote")
        if stat.S_ISDIR(mode):
            return StoreEntry(path, ref, None, f"{here} a directory, not a manifest llamadeck wrote")
        if not stat.S_ISREG(mode):
            return StoreEntry(path, ref, None, f"{here} a {file_kind(mode)}, not a regular file")
        if ref is None:
            return StoreEntry(path, None, None, "a file where no manifest belongs")
        try:
            raw = read_regular(path, MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            return None
        except OSError as error:
            return StoreEntry(path, ref, None, f"cannot be read ({error.strerror})")
        except ValueError as error:
            return StoreEntry(path, ref, None, f"{here} {error}: not a manifest")
        try:
            manifest = Manifest.from_json(raw)
        except ManifestError as error:
            return StoreEntry(path, ref, None, str(error), newer=error.newer)
        if manifest.ref != ref:
            return StoreEntry(path, ref, None, f"it names {manifest.reference} but is stored as {ref}")
        return StoreEntry(path, ref, manifest)

    def _walk(self) -> list[_Found]:
        """Everything under ``manifests/``, sorted, never descending into a symlink."""
        found: list[_Found] = []
        pending = [self.manifests_dir]
        while pending:
            directory = pending.pop()
            try:
                with os.scandir(directory) as listing:
                    children = list(listing)
            except FileNotFoundError:
                continue
            except OSError as error:
                found.append(_Found(directory, stat.S_IFDIR, error))
                continue
            for child in children:
                path = Path(child.path)
                try:
                    mode = child.stat(follow_symlinks=False).st_mode
                except FileNotFoundError:
                    continue
                except OSError as error:
                    found.append(_Found(path, 0, error))
                    continue
                found.append(_Found(path, mode))
                if stat.S_ISDIR(mode):
                    pending.append(path)
        return sorted(found, key=lambda f: f.path)

    def entries(self) -> list[StoreEntry]:
        """Every manifest-like thing under ``manifests/``, usable or not.

        That is every ``*.json`` (file, directory, FIFO …), every symlink and
        every directory that cannot be listed; other files (backups, temp
        files) are not entries, though garbage collection reads them.
        """
        self.check_home()
        result = []
        for found in self._walk():
            name = found.path.name
            if found.error is not None:
                ref = self.ref_for_path(found.path)
                result.append(StoreEntry(found.path, ref, None, f"cannot be read ({found.error.strerror})"))
            elif (stat.S_ISLNK(found.mode) or (name.endswith(".json") and not name.startswith("."))) and (
                entry := self.entry(found.path)
            ) is not None:
                result.append(entry)
        return result

    def manifests(self) -> Iterator[Manifest]:
        """Every usable manifest; the others are in ``problems()``."""
        for entry in self.entries():
            if entry.manifest is not None:
                yield entry.manifest

    def problems(self) -> list[StoreEntry]:
        """Manifests that are damaged, misnamed, unreadable or written by a newer llamadeck."""
        return [e for e in self.entries() if e.manifest is None]

    def remove_manifest(self, ref: ModelRef) -> bool:
        """Remove whatever is at ``ref``'s manifest path; False when nothing is.

        A symlink there is removed, never its target; a directory is removed
        with what is in it (symlinks inside are removed, not followed). A
        manifest behind a symlinked directory is refused (IntegrityError).
        """
        path = self.manifest_path(ref)
        if (link := self._symlinked_parent(path)) is not None:
            raise IntegrityError(
                f"cannot remove {ref}: {link} is a symlink, not a directory llamadeck made; delete it by hand"
            )
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as error:
            raise os_error(error, f"cannot remove {ref}:", path) from error
        try:
            if stat.S_ISDIR(mode):
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            return False
        except OSError as error:
            where = Path(error.filename) if error.filename else path
            raise os_error(error, f"cannot remove {ref}:", where) from error
        self._prune_empty_dirs(path.parent)
        return True

    def _prune_empty_dirs(self, directory: Path) -> None:
        """Remove the now empty directories above a removed manifest; best effort, never an error."""
        while directory != self.manifests_dir and directory.is_relative_to(self.manifests_dir):
            try:
                directory.rmdir()  # fails on a directory that is not empty, a symlink or immutable
            except OSError:
                return
            directory = directory.parent

    # garbage collection ----------------------------------------------------

    def _in_use(self) -> _InUse:
        """Every digest a file under ``manifests/`` names, the live views, and the first file that stops GC.

        A usable manifest names its files. For anything else there (damaged,
        newer, misnamed, a stray backup) every 64-hex string in its bytes
        counts: we cannot know which of them a future reader would need. A
        symlink or a file or directory that cannot be read stops collection.
        """
        self.check_home()
        use = _InUse()
        for found in self._walk():
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
                entry = self.entry(path)
                if entry is not None and entry.manifest is not None:
                    use.blobs.update(f.sha256 for f in entry.manifest.files)
                    use.blobs.update(f.sha256 for f in entry.manifest.config.adapters)  # LoRA blobs
                    if len(entry.manifest.files) > 1:
                        use.views.add(view_id(entry.manifest.files))
                    continue
            try:
                use.blobs.update(_digests_in(path))
            except FileNotFoundError:
                continue
            except OSError as error:
                use.blocked_by, use.because = path, f"it cannot be read ({error.strerror})"
                return use
        return use

    def blobs_in_use(self) -> tuple[set[str], Path | None]:
        """Every digest a file under ``manifests/`` names, and the first file that stops collection."""
        use = self._in_use()
        return use.blobs, use.blocked_by

    def collect_garbage(self) -> Collection:
        """Delete blobs nothing names, and views no usable manifest needs; call with ``store_lock`` held.

        A blob whose lock another process holds is mid-pull and stays.
        """
        use = self._in_use()
        if use.blocked_by is not None:
            return Collection((), use.blocked_by, use.because)
        removed = []
        for blob in sorted(self.blobs.glob("sha256-*")) if self.blobs.is_dir() else []:
            sha256 = blob.name.removeprefix("sha256-")
            if sha256 in use.blobs or not SHA256.fullmatch(sha256):
                continue
            try:
                if stat.S_ISDIR(os.lstat(blob).st_mode):
                    continue  # not a blob llamadeck wrote
            except OSError:
                continue
            lock = self.blob_lock(sha256)
            if not lock.try_acquire():
                continue
            try:
                blob.unlink(missing_ok=True)
                removed.append(sha256)
            except OSError:
                continue  # immutable or read-only: it stays, and is not counted as freed
            finally:
                lock.release()
        self._remove_stale_views(use.views)
        return Collection(tuple(removed))

    def _remove_stale_views(self, live: set[str]) -> None:
        """Drop the views (split models) no usable manifest needs: only what the store made.

        That is a directory named like a view id holding nothing but symlinks
        to ``blobs/sha256-…``. A user's directory, a symlink (``views`` itself
        or one inside it) or anything else is left alone and never followed:
        everything is done through directory descriptors opened with O_NOFOLLOW.
        """
        try:
            views_fd = os.open(self.views, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return  # missing, a symlink or not a directory: not ours to clean
        try:
            for name in sorted(os.listdir(views_fd)):
                if name not in live and _VIEW_NAME.fullmatch(name):
                    _remove_view(views_fd, name)
        finally:
            os.close(views_fd)

    def prune(self, *, older_than: float = 0.0) -> PruneReport:
        """Remove partial downloads and lock files that no live process holds; call with ``store_lock``.

        ``older_than`` (seconds) spares recent partials, so ``rm`` does not
        throw away a download the user interrupted an hour ago and means to resume.
        A symlink in ``partial/`` is removed (the link only); a directory stays.
        """
        now = time.time()
        partials = freed = 0
        for partial in sorted(self.partial.glob("sha256-*.partial")) if self.partial.is_dir() else []:
            sha256 = partial.name.removeprefix("sha256-").removesuffix(".partial")
            try:
                info = os.lstat(partial)
            except OSError:
                continue
            if not SHA256.fullmatch(sha256) or not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                continue
            size = info.st_size if stat.S_ISREG(info.st_mode) else 0
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime < older_than and not self.has_blob(sha256):
                continue
            lock = self.blob_lock(sha256)
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
        for path in sorted(self.locks.glob("sha256-*.lock")) if self.locks.is_dir() else []:
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
        self._remove_stale_temp_files(now)
        freed += self._remove_stale_work(now)
        return PruneReport(partials, locks, freed)

    def _remove_stale_work(self, now: float) -> int:
        """Uploads (``upload-*.partial``) and ``create`` working folders a crash left: untouched for a day."""
        freed = 0
        for path in sorted(self.partial.glob("upload-*.partial")) if self.partial.is_dir() else []:
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime > _STALE_WORK_SECONDS:
                    path.unlink()
                    freed += info.st_size
        for folder in sorted(self.partial.glob("create-*")) if self.partial.is_dir() else []:
            with contextlib.suppress(OSError):
                if not stat.S_ISDIR(os.lstat(folder).st_mode):
                    continue
                inside = [os.lstat(entry) for entry in folder.iterdir()]
                newest = max([os.lstat(folder).st_mtime, *(i.st_mtime for i in inside)])
                if now - newest > _STALE_WORK_SECONDS:
                    shutil.rmtree(folder)
                    freed += sum(i.st_size for i in inside if stat.S_ISREG(i.st_mode) and i.st_nlink == 1)
        return freed

    def _remove_stale_temp_files(self, now: float) -> None:
        """Temp files of atomic writes a crash left behind (``.<name>.<random>.tmp``): regular files only."""
        if not self.manifests_dir.is_dir():
            return
        for found in self._walk():
            name = found.path.name
            temp = name.startswith(".") and name.endswith(".tmp")
            if temp and found.error is None and stat.S_ISREG(found.mode):
                try:
                    if now - os.lstat(found.path).st_mtime > _STALE_TEMP_SECONDS:
                        found.path.unlink()
                except OSError:
                    continue


def _remove_view(views_fd: int, name: str) -> None:
    """Remove ``views/<name>`` if it is a real directory of symlinks into ``blobs/`` (best effort)."""
    try:
        view_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=views_fd)
    except OSError:
        return  # a symlink, a file or gone
    try:
        links = os.listdir(view_fd)
        for link in links:
            if not stat.S_ISLNK(os.lstat(link, dir_fd=view_fd).st_mode):
                return
            target = PurePosixPath(os.readlink(link, dir_fd=view_fd))
            if target.parent.name != "blobs" or not _BLOB_NAME.fullmatch(target.name):
                return
        for link in links:
            os.unlink(link, dir_fd=view_fd)
    except OSError:
        return
    finally:
        os.close(view_fd)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=views_fd)
