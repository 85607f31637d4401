"""Loopback fake of the Hugging Face Hub HTTP API, driven by the real ``huggingface_hub`` client in tests.

Stdlib only: a ``ThreadingHTTPServer`` in a daemon thread, HTTP/1.1 keep-alive, ephemeral port on 127.0.0.1.
It answers the requests ``huggingface_hub`` 2.x makes for:

* ``HfApi.model_info`` / ``repo_info``: ``GET /api/models/{repo}[/revision/{rev}]?blobs=true``
* ``HfApi.list_repo_tree``: ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=..&expand=..``
* ``HfApi.get_paths_info``: ``POST /api/models/{repo}/paths-info/{rev}`` (form or JSON body)
* ``hf_hub_download``, ``get_hf_file_metadata``, ``http_get``, ``HfFileSystem.open``:
  ``HEAD`` / ``GET /{repo}/resolve/{rev}/{path}``, with ``Range`` (206 + ``Content-Range``)
* ``HfApi.list_models`` and the search box: ``GET /api/models?search=..&filter=gguf&sort=downloads&limit=..``
  over the repos held (``search`` a case-insensitive substring of the id; ``filter`` tags, ``gguf`` when the
  main branch holds a ``.gguf``; ``sort`` by ``downloads``, ``likes``, ``lastModified`` or ``createdAt``,
  descending, or ascending with ``direction=1``; ``expand`` keeps only the fields named, with ``id``/``_id``).
  Each repo's ``downloads`` and ``likes`` are ``add_repo``'s, ``lastModified`` its ``last_modified``.

Files are served directly (no redirect to a CDN) and Xet is never advertised, so downloads always take the
plain HTTP path of ``huggingface_hub``. A file is LFS when its name ends in ``.gguf`` or it is over 10 MiB.
A revision may be the branch name given to ``add_repo`` or the commit sha it returned. As on the real Hub, a
gated repo's metadata (info, tree, paths-info) stays public; only resolve wants ``Authorization: Bearer <any
token>`` and answers 401 with ``X-Error-Code: GatedRepo`` (``GatedRepoError`` in the client) without one.

Usage::

    with FakeHub() as hub, hub.patch_endpoint():
        commit = hub.add_repo("acme/tiny-GGUF", {"README.md": b"# hi\\n", "tiny.gguf": Path("tiny.gguf")})
        path = hf_hub_download("acme/tiny-GGUF", "tiny.gguf", cache_dir=tmp_path)
        assert hub.bytes_served["tiny.gguf"] == Path("tiny.gguf").stat().st_size

``patch_endpoint()`` is needed because ``huggingface_hub`` reads ``HF_ENDPOINT`` once, at import, into both
``constants.ENDPOINT`` and ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` (the latter builds every ``hf_hub_url``).
It patches the variable and both constants and restores them on exit. Create ``HfApi`` / ``HfFileSystem``
objects inside the block (they copy the endpoint when built), or pass ``endpoint=hub.url`` explicitly.
``isolated_hf_env(path)`` keeps the client off the machine's token and cache, and disables telemetry and Xet.

Faults, ``hub.fault(path, kind, times=None, ...)``, hit the resolve requests of one in-repo file path, or
every request when ``path == "*"``; ``times`` is how many requests they affect (``None``: all of them).

* ``"refuse"``: close the connection without any response (client: ``httpx2.RemoteProtocolError``).
* ``"status"``, ``code=N``: answer HTTP ``N``; 404 carries ``X-Error-Code: EntryNotFound``, 401 ``GatedRepo``.
  ``message=TEXT`` replaces the reason (``{"error": TEXT}`` in the body; ``X-Error-Message`` gets it with CR
  dropped and LF as a space, as a header cannot carry them); ``bare=True`` sends no body and no error headers.
* ``"cut"``, ``at=N``: headers promise the whole length, ``N`` body bytes follow, then the connection is
  closed (client: ``httpx2.RemoteProtocolError``, which ``http_get`` retries by resuming with a ``Range``).
* ``"corrupt"``: same length and headers (ETag still the true hash), first byte of every 1 MiB chunk flipped.
* ``"slow"``, ``rate=B``: the body is throttled to ``B`` bytes per second.
* ``"stall"``, ``at=N``: headers promise the whole length, ``N`` body bytes follow, then silence: the
  connection stays open until the hub stops (the client sees a read timeout).
* ``"answer"``, ``body=B``, ``content_type=T``: answer 200 with ``B`` instead (with ``path == "*"`` the API
  calls too: a captive portal's HTML, a server that is not the Hub).
* ``"headers"``, ``headers={...}``: the GET resolve response carries these headers, replacing ours (a
  ``Content-Range`` a proxy mangled).

``refuse``, ``status`` and ``answer`` apply to HEAD and GET; the body faults (``cut``, ``corrupt``, ``slow``,
``stall``) only to responses with a body, so the HEAD of ``hf_hub_download`` does not use up a ``times=1`` cut
meant for its GET.

A repo's model card metadata (``cardData`` in ``model_info``) is ``add_repo(..., card_data={...})``;
``hub.rewrite_info(repo, rewrite)`` passes the ``model_info`` JSON of that repo through ``rewrite`` (the
object to send instead, or raw bytes), for answers the real Hub never gives.

Counters: ``hub.bytes_served`` maps an in-repo file path to the body bytes written by GET resolve requests
(a ``Counter``: unknown paths read 0); ``hub.requests`` lists ``(method, unquoted path without query)``;
``hub.reset_counts()`` clears both.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, unquote

LFS_THRESHOLD = 10 * 1024 * 1024
_CHUNK = 1024 * 1024
_SENDFILE_CHUNK = 8 * 1024 * 1024
_LAST_MODIFIED = "2024-01-01T00:00:00.000Z"
_FAULT_KINDS = frozenset({"cut", "corrupt", "status", "slow", "refuse", "stall", "answer", "headers"})
_BODY_FAULTS = frozenset({"cut", "corrupt", "slow", "stall"})
_STATUS_FAULTS = frozenset({"status", "refuse", "answer"})
_ERROR_CODES = {401: "GatedRepo", 404: "EntryNotFound"}
_GATED_MESSAGE = "Access to model {repo} is restricted. You must be authenticated to access it."
_TRUE = frozenset({"true", "1", "True"})


@functools.lru_cache(maxsize=256)
def _sha256_of_file(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file on disk; size and mtime are part of the cache key so edits are noticed."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class _Blob:
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


def _make_blob(path: str, source: bytes | Path) -> _Blob:
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
    return _Blob(path, source, size, sha256, oid, lfs, len(pointer))


@dataclass(frozen=True)
class _Snapshot:
    commit: str
    files: dict[str, _Blob]
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
            entry["lastCommit"] = {"id": self.commit, "title": "Upload files", "date": _LAST_MODIFIED}
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
class _Repo:
    gated: bool
    branches: dict[str, _Snapshot]
    downloads: int = 0
    likes: int = 0
    last_modified: str = _LAST_MODIFIED

    def snapshot(self, revision: str) -> _Snapshot | None:
        if revision in self.branches:
            return self.branches[revision]
        return next((snap for snap in self.branches.values() if snap.commit == revision), None)


@dataclass
class _Fault:
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


class _HubError(Exception):
    """Raised by route handlers to answer an error status with the Hub's error headers."""

    def __init__(
        self, status: int, message: str, error_code: str | None, commit: str | None = None, bare: bool = False
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.error_code, self.commit = status, message, error_code, commit
        self.bare = bare


class FakeHub:
    """Loopback fake of the Hugging Face Hub; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._faults: list[_Fault] = []
        self._served: Counter[str] = Counter()
        self._requests: list[tuple[str, str]] = []
        self._rewrites: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # wakes stalled responses when the hub stops

    def start(self) -> FakeHub:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-hub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @contextmanager
    def patch_endpoint(self) -> Iterator[str]:
        """Point ``huggingface_hub`` at this server (env var and import-time constants); yields the URL."""
        from huggingface_hub import constants

        with ExitStack() as stack:
            stack.enter_context(mock.patch.dict(os.environ, {"HF_ENDPOINT": self.url}))
            stack.enter_context(mock.patch.object(constants, "ENDPOINT", self.url))
            template = self.url + "/{repo_id}/resolve/{revision}/{filename}"
            stack.enter_context(mock.patch.object(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template))
            yield self.url

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes | Path],
        *,
        revision: str = "main",
        commit: str | None = None,
        gated: bool = False,
        card_data: dict[str, Any] | None = None,
        downloads: int = 0,
        likes: int = 0,
        last_modified: str = _LAST_MODIFIED,
    ) -> str:
        """Add (or replace) branch ``revision`` of a model repo; returns its 40-hex commit sha.

        ``files`` maps in-repo paths to bytes or to a file on disk (streamed, never read whole; its SHA-256 is
        computed once per path/size/mtime). ``commit`` defaults to a sha derived from the content. ``gated``
        applies to the whole repo (the last call wins). ``card_data`` is the model card's metadata
        (``cardData`` in ``model_info``), e.g. ``{"license": "mit"}``. ``downloads``, ``likes`` and
        ``last_modified`` (ISO 8601) are what ``model_info`` and the search (``GET /api/models``) report.
        """
        if repo_id.count("/") != 1:
            raise ValueError(f"repo_id must be 'namespace/name', got {repo_id!r}")
        blobs = {path: _make_blob(path, source) for path, source in files.items()}
        if commit is None:
            listing = "".join(f"{path}\0{blob.oid}\0" for path, blob in sorted(blobs.items()))
            commit = hashlib.sha1(f"{repo_id}\0{revision}\0{listing}".encode()).hexdigest()
        elif len(commit) != 40 or set(commit) - set("0123456789abcdef"):
            raise ValueError(f"commit must be 40 lowercase hex digits, got {commit!r}")
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo(gated, {}))
            repo.gated = gated
            repo.downloads, repo.likes, repo.last_modified = downloads, likes, last_modified
            repo.branches[revision] = _Snapshot(commit, blobs, card_data)
        return commit

    def rewrite_info(self, repo_id: str, rewrite: Callable[[dict[str, Any]], Any] | None) -> None:
        """Send ``rewrite(info)`` (JSON, or raw bytes) instead of ``model_info``'s JSON for ``repo_id``.

        ``rewrite`` gets a fresh copy of the JSON object every time; ``None`` goes back to the real thing.
        """
        with self._lock:
            if rewrite is None:
                self._rewrites.pop(repo_id, None)
            else:
                self._rewrites[repo_id] = rewrite

    def fault(
        self,
        path: str,
        kind: str,
        *,
        times: int | None = None,
        at: int = 0,
        code: int = 500,
        rate: float = 1024 * 1024,
        message: str | None = None,
        bare: bool = False,
        body: bytes = b"",
        content_type: str = "text/html",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Inject a fault for the resolve requests of in-repo file ``path`` (``"*"``: every request)."""
        if kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(_FAULT_KINDS)}")
        if rate <= 0 or at < 0 or (times is not None and times < 1):
            raise ValueError("rate must be > 0, at >= 0 and times >= 1 (or None)")
        if kind == "headers" and not headers:
            raise ValueError("a 'headers' fault needs headers={...}")
        fault = _Fault(path, kind, times, at, code, rate, message, bare, body, content_type, headers)
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str | None, kinds: frozenset[str]) -> _Fault | None:
        """First fault of one of ``kinds`` matching ``path``, using up one of its ``times``."""
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.path in ("*", path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    @property
    def bytes_served(self) -> Counter[str]:
        with self._lock:
            return Counter(self._served)

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._requests)

    def reset_counts(self) -> None:
        with self._lock:
            self._served.clear()
            self._requests.clear()

    def _count_served(self, path: str, size: int) -> None:
        with self._lock:
            self._served[path] += size

    def _log(self, method: str, path: str) -> None:
        with self._lock:
            self._requests.append((method, path))

    def _track(self, connection: socket.socket, active: bool) -> None:
        with self._lock:
            (self._connections.add if active else self._connections.discard)(connection)

    def _lookup(self, repo_id: str, revision: str) -> tuple[_Repo, _Snapshot]:
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                raise _HubError(404, "Repository not found", "RepoNotFound")
            snapshot = repo.snapshot(revision)
        if snapshot is None:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo, snapshot


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: FakeHub) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are part of the game; anything else is a bug worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.hub._track(self.connection, active=True)

    def finish(self) -> None:
        self.server.hub._track(self.connection, active=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log."""

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_GET

    def _dispatch(self) -> None:
        hub = self.server.hub
        raw_path, _, self._query = self.path.partition("?")
        self._body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hub._log(self.command, unquote(raw_path))
        segments = raw_path.strip("/").split("/")
        is_resolve = len(segments) >= 5 and segments[2] == "resolve"
        self._fault_path = unquote("/".join(segments[4:])) if is_resolve else None
        try:
            fault = hub._take_fault(self._fault_path, _STATUS_FAULTS)
            if fault is not None and fault.kind == "refuse":
                self.close_connection = True
                return
            if fault is not None and fault.kind == "answer":
                self._send_raw(fault.body, fault.content_type)
                return
            try:
                if fault is not None:
                    message = fault.message if fault.message is not None else f"Injected HTTP {fault.code}"
                    raise _HubError(fault.code, message, _ERROR_CODES.get(fault.code), bare=fault.bare)
                if is_resolve:
                    self._resolve(f"{unquote(segments[0])}/{unquote(segments[1])}", unquote(segments[3]))
                elif segments == ["api", "models"] and self.command == "GET":
                    self._search()
                elif segments[:2] == ["api", "models"] and len(segments) >= 4:
                    self._api(f"{unquote(segments[2])}/{unquote(segments[3])}", segments[4:])
                else:
                    raise _HubError(404, "Not Found", None)
            except _HubError as error:
                self._send_error(error)
        except ConnectionError:
            self.close_connection = True

    def _api(self, repo_id: str, rest: list[str]) -> None:
        match [self.command, *rest]:
            case ["GET"]:
                self._model_info(repo_id, "main")
            case ["GET", "revision", revision]:
                self._model_info(repo_id, unquote(revision))
            case ["GET", "tree", revision, *path]:
                self._tree(repo_id, unquote(revision), unquote("/".join(path)))
            case ["POST", "paths-info", revision]:
                self._paths_info(repo_id, unquote(revision))
            case _:
                raise _HubError(404, "Not Found", None)

    def _query_flag(self, name: str) -> bool:
        return parse_qs(self._query).get(name, ["false"])[-1] in _TRUE

    def _model_info(self, repo_id: str, revision: str) -> None:
        repo, snapshot = self.server.hub._lookup(repo_id, revision)
        blobs = self._query_flag("blobs")
        siblings = [
            _sibling(blob, blobs) for blob in sorted(snapshot.files.values(), key=lambda blob: blob.path)
        ]
        info = {
            "_id": snapshot.commit[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": snapshot.commit,
            "lastModified": repo.last_modified,
            "createdAt": _LAST_MODIFIED,
            "private": False,
            "gated": "auto" if repo.gated else False,
            "disabled": False,
            "downloads": repo.downloads,
            "likes": repo.likes,
            "tags": ["gguf"] if any(path.endswith(".gguf") for path in snapshot.files) else [],
            "siblings": siblings,
            "spaces": [],
            "usedStorage": sum(blob.size for blob in snapshot.files.values()),
        }
        if snapshot.card_data is not None:
            info["cardData"] = json.loads(json.dumps(snapshot.card_data))
        with self.server.hub._lock:
            rewrite = self.server.hub._rewrites.get(repo_id)
        if rewrite is None:
            self._send_json(info)
            return
        answer = rewrite(info)
        if isinstance(answer, bytes):
            self._send_raw(answer, "application/json")
        else:
            self._send_json(answer)

    def _search(self) -> None:
        """``GET /api/models``: the repos held, filtered, sorted and cut as the Hub's list endpoint does."""
        query = parse_qs(self._query)
        search = query.get("search", [""])[-1].lower()
        tags = set(query.get("filter", []))
        key = {"createdAt": "createdAt", "lastModified": "lastModified", "likes": "likes"}.get(
            query.get("sort", ["downloads"])[-1], "downloads"
        )
        ascending = query.get("direction", ["-1"])[-1] == "1"
        limit = query.get("limit", [""])[-1]
        expand = query.get("expand", [])
        with self.server.hub._lock:
            repos = {
                repo_id: repo for repo_id, repo in self.server.hub._repos.items() if "main" in repo.branches
            }
        found = []
        for repo_id, repo in repos.items():
            snapshot = repo.branches["main"]
            repo_tags = ["gguf"] if any(path.endswith(".gguf") for path in snapshot.files) else []
            if search not in repo_id.lower() or not tags <= set(repo_tags):
                continue
            item = {
                "_id": snapshot.commit[:24],
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "likes": repo.likes,
                "downloads": repo.downloads,
                "trendingScore": 0,
                "private": False,
                "gated": "auto" if repo.gated else False,
                "tags": repo_tags,
                "library_name": "gguf" if repo_tags else None,
                "createdAt": _LAST_MODIFIED,
                "lastModified": repo.last_modified,
            }
            found.append(item)
        found.sort(key=lambda item: (item[key], item["id"]), reverse=not ascending)
        if limit.isdigit():
            found = found[: int(limit)]
        if expand:
            found = [{k: v for k, v in item.items() if k in {"_id", "id", *expand}} for item in found]
        self._send_json(found)

    def _tree(self, repo_id: str, revision: str, path: str) -> None:
        _, snapshot = self.server.hub._lookup(repo_id, revision)
        paths = snapshot.listing(path, recursive=self._query_flag("recursive"))
        if paths is None:
            raise _HubError(404, f"{path} does not exist on {revision}", "EntryNotFound", snapshot.commit)
        expand = self._query_flag("expand")
        self._send_json([snapshot.entry(item, expand) for item in paths])

    def _paths_info(self, repo_id: str, revision: str) -> None:
        _, snapshot = self.server.hub._lookup(repo_id, revision)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            payload = json.loads(self._body or b"{}")
            paths, expand = list(payload.get("paths", [])), bool(payload.get("expand"))
        else:
            form = parse_qs(self._body.decode())
            paths, expand = form.get("paths", []), form.get("expand", ["false"])[-1] in _TRUE
        known = snapshot.directories() | snapshot.files.keys()
        wanted = [path.strip("/") for path in paths]
        self._send_json([snapshot.entry(path, expand) for path in wanted if path in known])

    def _resolve(self, repo_id: str, revision: str) -> None:
        repo, snapshot = self.server.hub._lookup(repo_id, revision)
        path = self._fault_path or ""
        if repo.gated and not self.headers.get("Authorization", "").startswith("Bearer "):
            raise _HubError(401, _GATED_MESSAGE.format(repo=repo_id), "GatedRepo")
        blob = snapshot.files.get(path)
        if blob is None:
            raise _HubError(404, "Entry not found", "EntryNotFound", snapshot.commit)
        range_header = self.headers.get("Range")
        span = (0, blob.size) if range_header is None else _parse_range(range_header, blob.size)
        if span is None:
            raise _HubError(416, f"Unsatisfiable range {range_header!r}", None, snapshot.commit)
        start, length = span
        partial = range_header is not None
        self.send_response(206 if partial else 200)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(length),
            "Accept-Ranges": "bytes",
            "ETag": blob.etag(),
            "X-Repo-Commit": snapshot.commit,
        }
        if blob.lfs:
            headers |= {"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)}
        if partial:
            headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{blob.size}"
        if self.command == "GET" and (fault := self.server.hub._take_fault(path, frozenset({"headers"}))):
            headers |= fault.headers or {}
        self._end_headers(headers)
        if self.command == "GET":
            self._write_body(
                blob.source, start, length, functools.partial(self.server.hub._count_served, blob.path)
            )

    def _end_headers(self, headers: dict[str, str]) -> None:
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_json(self, payload: object, status: int = 200, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self._end_headers(
            {"Content-Type": "application/json", "Content-Length": str(len(body)), **(extra or {})}
        )
        if self.command != "HEAD":
            self._write_body(body, 0, len(body), lambda size: None)

    def _send_raw(self, body: bytes, content_type: str) -> None:
        """Answer 200 with ``body`` as it is."""
        self.send_response(200)
        self._end_headers({"Content-Type": content_type, "Content-Length": str(len(body))})
        if self.command != "HEAD":
            self._write_body(body, 0, len(body), lambda size: None)

    def _send_error(self, error: _HubError) -> None:
        if error.bare:
            self.send_response(error.status)
            self._end_headers({"Content-Length": "0"})
            return
        extra = {"X-Error-Message": error.message.replace("\r", "").replace("\n", " ")}
        if error.error_code is not None:
            extra["X-Error-Code"] = error.error_code
        if error.commit is not None:
            extra["X-Repo-Commit"] = error.commit
        self._send_json({"error": error.message}, status=error.status, extra=extra)

    def _write_body(
        self, source: bytes | Path, start: int, length: int, count: Callable[[int], None]
    ) -> None:
        fault = self.server.hub._take_fault(self._fault_path, _BODY_FAULTS) if length else None
        if fault is None and isinstance(source, Path):
            self._sendfile(source, start, length, count)
        else:
            self._copy(source, start, length, count, fault)

    def _sendfile(self, source: Path, start: int, length: int, count: Callable[[int], None]) -> None:
        with source.open("rb") as handle:
            offset, end = start, start + length
            while offset < end:
                sent = os.sendfile(
                    self.connection.fileno(), handle.fileno(), offset, min(end - offset, _SENDFILE_CHUNK)
                )
                if sent == 0:
                    raise ConnectionError(f"{source} shrank while being served")
                count(sent)
                offset += sent

    def _copy(
        self,
        source: bytes | Path,
        start: int,
        length: int,
        count: Callable[[int], None],
        fault: _Fault | None,
    ) -> None:
        kind = fault.kind if fault is not None else None
        limit = min(length, fault.at) if fault is not None and kind in ("cut", "stall") else length
        chunk_size = max(1, int(fault.rate / 20)) if fault is not None and kind == "slow" else _CHUNK
        began, sent = time.monotonic(), 0
        with io.BytesIO(source) if isinstance(source, bytes) else source.open("rb") as handle:
            handle.seek(start)
            while sent < limit:
                chunk = handle.read(min(chunk_size, limit - sent))
                if not chunk:
                    raise ConnectionError("file shrank while being served")
                if kind == "corrupt":
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                self._send_all(chunk, count)
                sent += len(chunk)
                if fault is not None and kind == "slow":
                    time.sleep(max(0.0, began + sent / fault.rate - time.monotonic()))
        if kind == "cut":
            self.close_connection = True
        elif kind == "stall":
            self.server.hub._stopping.wait()
            self.close_connection = True

    def _send_all(self, data: bytes, count: Callable[[int], None]) -> None:
        view = memoryview(data)
        while view:
            sent = self.connection.send(view)
            count(sent)
            view = view[sent:]


def _sibling(blob: _Blob, with_blobs: bool) -> dict[str, Any]:
    sibling: dict[str, Any] = {"rfilename": blob.path}
    if with_blobs:
        sibling |= {"blobId": blob.oid, "size": blob.size}
        if blob.lfs:
            sibling["lfs"] = {"sha256": blob.sha256, "size": blob.size, "pointerSize": blob.pointer_size}
    return sibling


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, length)`` of a single-range ``Range`` header; None when malformed or unsatisfiable."""
    unit, _, spec = header.strip().partition("=")
    first, dash, last = spec.partition("-")
    if unit != "bytes" or not dash or "," in spec or not (first + last).isdigit():
        return None
    if not first:
        suffix = int(last)
        return (size - min(suffix, size), min(suffix, size)) if suffix > 0 else None
    start, end = int(first), int(last) if last else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1) - start + 1


@contextmanager
def isolated_hf_env(home: Path) -> Iterator[Path]:
    """Keep ``huggingface_hub`` off the machine's token and caches: HF_HOME under ``home``, no token,
    no telemetry, no Xet, not offline. Patches the environment and the import-time constants, then restores.
    """
    from huggingface_hub import constants

    home.mkdir(parents=True, exist_ok=True)
    env = {"HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
    patched = {
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_OFFLINE": False,
    }
    with ExitStack() as stack:
        stack.enter_context(mock.patch.dict(os.environ, env))
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE"):
            os.environ.pop(name, None)
        for name, value in patched.items():
            stack.enter_context(mock.patch.object(constants, name, value))
        yield home
