"""What the fake Hub holds: repos whose branches are snapshots of blobs, and the faults a test injects.

Plain data, shaped after what the Hub's JSON reports (git blob ids, LFS pointers, tree entries); the HTTP
side (``fake_hub_http``) turns it into answers and ``FakeHub`` (``fake_hub``) is how a test fills it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LFS_THRESHOLD = 10 * 1024 * 1024
LAST_MODIFIED = "2024-01-01T00:00:00.000Z"
FAULT_KINDS = frozenset({"cut", "corrupt", "status", "slow", "refuse", "stall", "answer", "headers"})
BODY_FAULTS = frozenset({"cut", "corrupt", "slow", "stall"})
STATUS_FAULTS = frozenset({"status", "refuse", "answer"})


@functools.lru_cache(maxsize=256)
def _sha256_of_file(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file on disk; size and mtime are part of the cache key so edits are noticed."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """One file of a repo snapshot; ``source`` is served from memory or streamed from disk."""

    path: str
    source: bytes | Path
    size: int
    sha256: str
    oid: str
    lfs: bool
    pointer_size: int

    def etag(self) -> str:
        return f'"{self.sha256 if self.lfs else self.oid}"'


def make_blob(path: str, source: bytes | Path) -> Blob:
    if isinstance(source, bytes):
        size, sha256 = len(source), hashlib.sha256(source).hexdigest()
    else:
        stat = source.stat()
        size, sha256 = stat.st_size, _sha256_of_file(str(source.resolve()), stat.st_size, stat.st_mtime_ns)
    lfs = path.endswith(".gguf") or size > LFS_THRESHOLD
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    if lfs:
        oid = _git_blob_sha1(pointer)
    else:
        oid = _git_blob_sha1(source if isinstance(source, bytes) else source.read_bytes())
    return Blob(path, source, size, sha256, oid, lfs, len(pointer))


@dataclass(frozen=True)
class Snapshot:
    commit: str
    files: dict[str, Blob]
    card_data: dict[str, Any] | None = None

    def directories(self) -> set[str]:
        return {path.rsplit("/", n)[0] for path in self.files for n in range(1, path.count("/") + 1)}

    def tree_oid(self, directory: str) -> str:
        return hashlib.sha1(f"tree {self.commit} {directory}".encode()).hexdigest()

    def entry(self, path: str, expand: bool) -> dict[str, Any]:
        """A tree / paths-info entry, shaped like the Hub's JSON."""
        blob = self.files.get(path)
        if blob is None:
            entry: dict[str, Any] = {"type": "directory", "oid": self.tree_oid(path), "path": path}
        else:
            entry = {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}
            if blob.lfs:
                entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": blob.pointer_size}
            if expand:
                entry["securityFileStatus"] = {"status": "safe", "avScan": None, "pickleImportScan": None}
        if expand:
            entry["lastCommit"] = {"id": self.commit, "title": "Upload files", "date": LAST_MODIFIED}
        return entry

    def listing(self, base: str, recursive: bool) -> list[str] | None:
        """Paths under ``base`` (directories first), or None when ``base`` is not a directory."""
        directories = self.directories()
        if base and base not in directories:
            return None
        prefix = f"{base}/" if base else ""

        def wanted(path: str) -> bool:
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

        return sorted(filter(wanted, directories)) + sorted(filter(wanted, self.files))


@dataclass
class Repo:
    gated: bool
    branches: dict[str, Snapshot]
    downloads: int = 0
    likes: int = 0
    last_modified: str = LAST_MODIFIED

    def snapshot(self, revision: str) -> Snapshot | None:
        if revision in self.branches:
            return self.branches[revision]
        return next((snap for snap in self.branches.values() if snap.commit == revision), None)


@dataclass
class Fault:
    path: str
    kind: str
    times: int | None
    at: int
    code: int
    rate: float
    message: str | None = None
    bare: bool = False
    body: bytes = b""
    content_type: str = "text/html"
    headers: dict[str, str] | None = None
