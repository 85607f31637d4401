"""The model store: content-addressed blobs, one manifest per model name.

Layout under ``LLAMADECK_HOME`` (default ``$XDG_DATA_HOME/llamadeck``)::

    blobs/sha256-<hex>                    GGUF files, named by their sha256
    manifests/hf.co/<org>/<repo>/<tag>.json   models pulled from Hugging Face
    manifests/library/<name>/<tag>.json   local names (imports, copies)
    partial/sha256-<hex>.partial          downloads in progress, kept for resume
    views/<id>/                           split models: their part names, symlinked to blobs
    locks/                                file locks shared by all processes

Two names for one file share one blob. Every write is atomic (temp file in
the same directory, fsync, rename), so a crash leaves either the old or the
new state, never a torn file. Blobs are removed only when no manifest names
them and no pull holds their lock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from engine.errors import IntegrityError, InvalidReference, LlamadeckError
from engine.model import ModelShape

SCHEMA = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,95}")
LOCAL_NAMESPACE = "library"


def default_home() -> Path:
    """``LLAMADECK_HOME``, else the XDG data directory."""
    if home := os.environ.get("LLAMADECK_HOME"):
        return Path(home).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "llamadeck"


@dataclass(frozen=True)
class ModelFile:
    """One GGUF file of a model (several for a split model, in part order)."""

    path: str  # the file's name at its source, e.g. "Q8_0/Model-Q8_0-00001-of-00002.gguf"
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """Everything the store knows of one model name."""

    name: str  # "hf.co/org/repo" or a local name such as "gemma3"
    tag: str  # "Q4_K_M", "270m", "latest"
    source: str  # where the bytes came from: a Hub repo or a package
    revision: str | None  # the Hub commit the files were taken from
    files: tuple[ModelFile, ...]
    quant: str | None
    architecture: str
    parameters: int
    context_length: int
    created: str  # ISO 8601, UTC
    shape: ModelShape | None = None  # from the header at pull time, so show needs no GGUF parse
    size_label: str | None = None
    template: str | None = None  # Jinja chat template; None means plain completion
    template_source: str | None = None  # "gguf" or why we recorded one ourselves
    license: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def id(self) -> str:
        """Short id of the weights, like Docker's image id: two names of one file share it."""
        return self.files[0].sha256[:12]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        data = {"schema": SCHEMA, **asdict(self)}
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        if data.pop("schema", None) != SCHEMA:
            raise ValueError("unknown manifest schema")
        data["files"] = tuple(ModelFile(**f) for f in data["files"])
        if data.get("shape") is not None:
            data["shape"] = ModelShape(**data["shape"])
        return cls(**data)


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
    if not _SHA256.fullmatch(sha256):
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

    def ensure(self) -> None:
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
        """Serialises manifest changes with garbage collection."""
        return FileLock(self.locks / "store.lock")

    # manifests -------------------------------------------------------------

    def manifest_path(self, name: str, tag: str) -> Path:
        """Where a name's manifest lives; refuses anything that could leave the store."""
        parts = name.split("/")
        if parts[0] == "hf.co" and len(parts) == 3:
            segments = parts
        elif len(parts) == 1:
            segments = [LOCAL_NAMESPACE, name]
        else:
            raise InvalidReference(f"not a storable model name: {name[:100]!r}")
        for segment in [*segments, tag]:
            if not _SEGMENT.fullmatch(segment) or ".." in segment:
                raise InvalidReference(f"not a storable model name: {name[:100]!r}:{tag[:100]!r}")
        path = self.manifests_dir.joinpath(*segments, f"{tag}.json")
        if not path.resolve().is_relative_to(self.manifests_dir.resolve()):
            raise InvalidReference(f"not a storable model name: {name[:100]!r}")
        return path

    def save(self, manifest: Manifest) -> None:
        atomic_write(self.manifest_path(manifest.name, manifest.tag), manifest.to_json())

    def load(self, name: str, tag: str) -> Manifest | None:
        path = self.manifest_path(name, tag)
        try:
            return Manifest.from_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as error:
            raise IntegrityError(f"the manifest of {name}:{tag} is damaged ({path}): {error}") from error

    def manifests(self) -> Iterator[Manifest]:
        """Every readable manifest; damaged ones are reported by ``damaged_manifests``."""
        for path in sorted(self.manifests_dir.rglob("*.json")):
            try:
                yield Manifest.from_json(path.read_bytes())
            except (OSError, ValueError, TypeError, KeyError):
                continue

    def damaged_manifests(self) -> list[Path]:
        damaged = []
        for path in sorted(self.manifests_dir.rglob("*.json")):
            try:
                Manifest.from_json(path.read_bytes())
            except (OSError, ValueError, TypeError, KeyError):
                damaged.append(path)
        return damaged

    def remove_manifest(self, name: str, tag: str) -> bool:
        path = self.manifest_path(name, tag)
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

    def collect_garbage(self) -> list[str]:
        """Delete blobs no manifest names; call with ``store_lock`` held.

        A blob whose lock another process holds is mid-pull and stays.
        """
        referenced = {f.sha256 for m in self.manifests() for f in m.files}
        removed = []
        for blob in sorted(self.blobs.glob("sha256-*")):
            sha256 = blob.name.removeprefix("sha256-")
            if sha256 in referenced or not _SHA256.fullmatch(sha256):
                continue
            lock = self.blob_lock(sha256)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                blob.unlink(missing_ok=True)
                removed.append(sha256)
            finally:
                lock.release()
        self._remove_stale_views(referenced)
        return removed

    def _remove_stale_views(self, referenced: set[str]) -> None:
        """Drop the symlink directories (split models) of weights no manifest names any more."""
        views = self.home / "views"
        if not views.is_dir():
            return
        live = {sha[:12] for sha in referenced}
        for view in views.iterdir():
            if view.name not in live:
                shutil.rmtree(view, ignore_errors=True)
