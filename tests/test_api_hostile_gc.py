"""A delete through the API never takes another client's fresh upload (issue 18, finding 11).

Client A uploads a blob, client B deletes an unrelated model, A creates from
the blob: before the fix the delete had collected it and A got "upload it
first". The server's start prunes unused blobs past the grace period
(``UNUSED_BLOB_GRACE``), never a younger one, and not at all with
``LLAMADECK_NOPRUNE`` (as Ollama's ``OLLAMA_NOPRUNE``). Real uvicorn, a
real ``llamadeck serve`` subprocess; ages set with ``os.utime``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine import Engine
from engine.store.cleanup import UNUSED_BLOB_GRACE
from engine.store.model_store import Store
from tests.support.api_server import running_api
from tests.support.cli import LLAMADECK
from tests.support.tiny_gguf import write_tiny_gguf

OLD = time.time() - UNUSED_BLOB_GRACE - 3600


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("gc")
    return {
        "a": write_tiny_gguf(d / "A-Q8_0.gguf", quant="Q8_0", seed=1)[0],
        "b": write_tiny_gguf(d / "B-Q8_0.gguf", quant="Q8_0", seed=2)[0],
    }


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine()
    yield engine
    engine.close()


def upload(base_url: str, path: Path) -> str:
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert httpx.post(f"{base_url}/api/blobs/{digest}", content=path.read_bytes()).status_code == 201
    return digest


def create(base_url: str, name: str, digest: str) -> httpx.Response:
    body = {"model": name, "files": {"model.gguf": digest}, "stream": False}
    return httpx.post(f"{base_url}/api/create", json=body, timeout=120)


def test_deleting_a_model_leaves_another_clients_fresh_upload(
    engine: Engine, weights: dict[str, Path]
) -> None:
    with running_api(engine) as base_url:
        b = upload(base_url, weights["b"])
        assert create(base_url, "b-model", b).status_code == 200
        a = upload(base_url, weights["a"])  # client A, about to create
        assert httpx.request("DELETE", f"{base_url}/api/delete", json={"model": "b-model"}).status_code == 200
        assert httpx.head(f"{base_url}/api/blobs/{b}").status_code == 404  # b's own blob went
        assert httpx.head(f"{base_url}/api/blobs/{a}").status_code == 200
        created = create(base_url, "a-model", a)
        assert created.status_code == 200, created.text
        assert engine.resolve("a-model").files[0].sha256 == a.removeprefix("sha256:")


def serve_once(**env: str) -> None:
    """Start ``llamadeck serve`` on a free port, wait until it listens (after its start prune), stop it."""
    server = subprocess.Popen(
        [LLAMADECK, "serve", "--port", "0"],
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "llamadeck API on" in line, server.stderr.read() if server.stderr else line
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("noprune", [None, "1"])
def test_serve_prunes_old_unused_blobs_at_start_unless_noprune(
    isolated_env: Path, noprune: str | None
) -> None:
    store = Store(isolated_env)
    store.ensure()
    shas = {}
    for name in ("fresh", "old"):
        shas[name] = hashlib.sha256(name.encode()).hexdigest()
        store.blob_path(shas[name]).write_bytes(name.encode())
    os.utime(store.blob_path(shas["old"]), (OLD, OLD))
    serve_once(**({"LLAMADECK_NOPRUNE": noprune} if noprune else {}))
    assert store.has_blob(shas["fresh"])  # a client may be mid-upload/create across the restart
    assert store.has_blob(shas["old"]) == (noprune is not None)
