"""How the fake Hub answers HTTP: the routes huggingface_hub calls, resolve with Range, faults on the wire.

``HubServer`` is a ``ThreadingHTTPServer`` bound to 127.0.0.1; its handler reads and counts through the
``FakeHub`` it serves (``fake_hub``), whose docstring lists the routes and the faults.
"""

from __future__ import annotations

import functools
import io
import json
import os
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from tests.support.fake_hub_repos import BODY_FAULTS, LAST_MODIFIED, STATUS_FAULTS, Blob, Fault

if TYPE_CHECKING:
    from tests.support.fake_hub import FakeHub

_CHUNK = 1024 * 1024
_SENDFILE_CHUNK = 8 * 1024 * 1024
_ERROR_CODES = {401: "GatedRepo", 404: "EntryNotFound"}
_GATED_MESSAGE = "Access to model {repo} is restricted. You must be authenticated to access it."
_TRUE = frozenset({"true", "1", "True"})


class HubError(Exception):
    """Raised by route handlers to answer an error status with the Hub's error headers."""

    def __init__(
        self, status: int, message: str, error_code: str | None, commit: str | None = None, bare: bool = False
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.error_code, self.commit = status, message, error_code, commit
        self.bare = bare


class HubServer(ThreadingHTTPServer):
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
    server: HubServer

    def setup(self) -> None:
        super().setup()
        self.server.hub.track_connection(self.connection, active=True)

    def finish(self) -> None:
        self.server.hub.track_connection(self.connection, active=False)
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
        hub.log_request(self.command, unquote(raw_path))
        segments = raw_path.strip("/").split("/")
        is_resolve = len(segments) >= 5 and segments[2] == "resolve"
        self._fault_path = unquote("/".join(segments[4:])) if is_resolve else None
        try:
            fault = hub.take_fault(self._fault_path, STATUS_FAULTS)
            if fault is not None and fault.kind == "refuse":
                self.close_connection = True
                return
            if fault is not None and fault.kind == "answer":
                self._send_raw(fault.body, fault.content_type)
                return
            try:
                if fault is not None:
                    message = fault.message if fault.message is not None else f"Injected HTTP {fault.code}"
                    raise HubError(fault.code, message, _ERROR_CODES.get(fault.code), bare=fault.bare)
                if is_resolve:
                    self._resolve(f"{unquote(segments[0])}/{unquote(segments[1])}", unquote(segments[3]))
                elif segments == ["api", "models"] and self.command == "GET":
                    self._search()
                elif segments[:2] == ["api", "models"] and len(segments) >= 4:
                    self._api(f"{unquote(segments[2])}/{unquote(segments[3])}", segments[4:])
                else:
                    raise HubError(404, "Not Found", None)
            except HubError as error:
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
                raise HubError(404, "Not Found", None)

    def _query_flag(self, name: str) -> bool:
        return parse_qs(self._query).get(name, ["false"])[-1] in _TRUE

    def _model_info(self, repo_id: str, revision: str) -> None:
        repo, snapshot = self.server.hub.lookup(repo_id, revision)
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
            "createdAt": LAST_MODIFIED,
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
        rewrite = self.server.hub.rewrite_of(repo_id)
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
        repos = self.server.hub.main_branches()
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
                "createdAt": LAST_MODIFIED,
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
        _, snapshot = self.server.hub.lookup(repo_id, revision)
        paths = snapshot.listing(path, recursive=self._query_flag("recursive"))
        if paths is None:
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound", snapshot.commit)
        expand = self._query_flag("expand")
        self._send_json([snapshot.entry(item, expand) for item in paths])

    def _paths_info(self, repo_id: str, revision: str) -> None:
        _, snapshot = self.server.hub.lookup(repo_id, revision)
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
        repo, snapshot = self.server.hub.lookup(repo_id, revision)
        path = self._fault_path or ""
        if repo.gated and not self.headers.get("Authorization", "").startswith("Bearer "):
            raise HubError(401, _GATED_MESSAGE.format(repo=repo_id), "GatedRepo")
        blob = snapshot.files.get(path)
        if blob is None:
            raise HubError(404, "Entry not found", "EntryNotFound", snapshot.commit)
        range_header = self.headers.get("Range")
        span = (0, blob.size) if range_header is None else _parse_range(range_header, blob.size)
        if span is None:
            raise HubError(416, f"Unsatisfiable range {range_header!r}", None, snapshot.commit)
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
        if self.command == "GET" and (fault := self.server.hub.take_fault(path, frozenset({"headers"}))):
            headers |= fault.headers or {}
        self._end_headers(headers)
        if self.command == "GET":
            self._write_body(
                blob.source, start, length, functools.partial(self.server.hub.count_served, blob.path)
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

    def _send_error(self, error: HubError) -> None:
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
        fault = self.server.hub.take_fault(self._fault_path, BODY_FAULTS) if length else None
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
        fault: Fault | None,
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
            self.server.hub.stopping.wait()
            self.close_connection = True

    def _send_all(self, data: bytes, count: Callable[[int], None]) -> None:
        view = memoryview(data)
        while view:
            sent = self.connection.send(view)
            count(sent)
            view = view[sent:]


def _sibling(blob: Blob, with_blobs: bool) -> dict[str, Any]:
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
