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

import hashlib
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any
from unittest import mock

from tests.support.fake_hub_http import HubError, HubServer
from tests.support.fake_hub_repos import FAULT_KINDS, LAST_MODIFIED, Fault, Repo, Snapshot, make_blob


class FakeHub:
    """Loopback fake of the Hugging Face Hub; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._repos: dict[str, Repo] = {}
        self._faults: list[Fault] = []
        self._served: Counter[str] = Counter()
        self._requests: list[tuple[str, str]] = []
        self._rewrites: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self._connections: set[socket.socket] = set()
        self._server: HubServer | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()  # wakes stalled responses when the hub stops

    def start(self) -> FakeHub:
        self.stopping.clear()
        self._server = HubServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-hub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self.stopping.set()
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
        last_modified: str = LAST_MODIFIED,
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
        blobs = {path: make_blob(path, source) for path, source in files.items()}
        if commit is None:
            listing = "".join(f"{path}\0{blob.oid}\0" for path, blob in sorted(blobs.items()))
            commit = hashlib.sha1(f"{repo_id}\0{revision}\0{listing}".encode()).hexdigest()
        elif len(commit) != 40 or set(commit) - set("0123456789abcdef"):
            raise ValueError(f"commit must be 40 lowercase hex digits, got {commit!r}")
        with self._lock:
            repo = self._repos.setdefault(repo_id, Repo(gated, {}))
            repo.gated = gated
            repo.downloads, repo.likes, repo.last_modified = downloads, likes, last_modified
            repo.branches[revision] = Snapshot(commit, blobs, card_data)
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
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if rate <= 0 or at < 0 or (times is not None and times < 1):
            raise ValueError("rate must be > 0, at >= 0 and times >= 1 (or None)")
        if kind == "headers" and not headers:
            raise ValueError("a 'headers' fault needs headers={...}")
        fault = Fault(path, kind, times, at, code, rate, message, bare, body, content_type, headers)
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

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

    # -- for the HTTP handler (fake_hub_http) --

    def rewrite_of(self, repo_id: str) -> Callable[[dict[str, Any]], Any] | None:
        """What ``rewrite_info`` set for ``repo_id``, if anything."""
        with self._lock:
            return self._rewrites.get(repo_id)

    def main_branches(self) -> dict[str, Repo]:
        """The repos that have a ``main`` branch: what the search lists."""
        with self._lock:
            return {repo_id: repo for repo_id, repo in self._repos.items() if "main" in repo.branches}

    def take_fault(self, path: str | None, kinds: frozenset[str]) -> Fault | None:
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

    def count_served(self, path: str, size: int) -> None:
        with self._lock:
            self._served[path] += size

    def log_request(self, method: str, path: str) -> None:
        with self._lock:
            self._requests.append((method, path))

    def track_connection(self, connection: socket.socket, active: bool) -> None:
        with self._lock:
            (self._connections.add if active else self._connections.discard)(connection)

    def lookup(self, repo_id: str, revision: str) -> tuple[Repo, Snapshot]:
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                raise HubError(404, "Repository not found", "RepoNotFound")
            snapshot = repo.snapshot(revision)
        if snapshot is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo, snapshot


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
