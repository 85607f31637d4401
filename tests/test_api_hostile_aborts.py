"""Requests that made llama.cpp abort the server (issue 18, findings 1 and 2), sent to ``llamadeck serve``.

The server runs as a child process, as a user starts it: an abort in
llama.cpp ends that child (exit 134) and fails the test, never pytest. Each
case goes in through the API as the outside pass sent it (``/api/blobs`` then
``/api/create``) and then checks that the server still answers.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.store.model_store import Store
from tests.support.hostile_gguf import FOUND, HOSTILE_HEADERS, smuggle, write_hostile
from tests.support.tiny_gguf import N_EMBD, write_tiny_gguf

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120  # seconds for one request: generous, the machine may be busy


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    home: Path
    log: Path

    def alive(self) -> bool:
        """Still running and still answering."""
        if self.process.poll() is not None:
            return False
        return httpx.get(f"{self.url}/api/version", timeout=TIMEOUT).status_code == 200

    def why_dead(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        aborts = [line for line in lines if "GGML_" in line or "Traceback" in line]
        return f"exit {self.process.poll()}: {(aborts or lines[-20:] or [''])[0][:500]}"

    def post(self, route: str, **kwargs: Any) -> httpx.Response:
        """POST to the server; a server that died on the request fails the test with its exit and log."""
        try:
            return httpx.post(f"{self.url}{route}", timeout=TIMEOUT, **kwargs)
        except httpx.TransportError as error:
            try:  # an abort may first print a backtrace (llama.cpp runs gdb): give it time to end
                self.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                raise error from None
            pytest.fail(f"the server died on {route}: {self.why_dead()}")

    def upload(self, path: Path) -> str:
        digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        answer = self.post(f"/api/blobs/{digest}", content=path.read_bytes())
        assert answer.status_code == 201, answer.text
        return digest

    def create(self, name: str, path: Path) -> httpx.Response:
        body = {"model": name, "files": {path.name: self.upload(path)}, "stream": False}
        return self.post("/api/create", json=body)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``llamadeck serve`` on an ephemeral port, with its own store and log, for this module."""
    root = tmp_path_factory.mktemp("serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLAMADECK_", "HF_"))}
    env |= {
        "PYTHONPATH": str(ROOT),
        "LLAMADECK_HOME": str(root / "home"),
        "XDG_STATE_HOME": str(root / "state"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_DATA_HOME": str(root / "data"),
    }
    log = root / "serve.log"
    code = "import sys; from tui.cli import main; sys.exit(main(['serve', '--port', '0']))"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("llamadeck API on http://127.0.0.1:"), log.read_text()
        yield Server(line.rsplit(" ", 1)[1], process, root / "home", log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.parametrize("context_length", [100, 255, 257, 300])
def test_embed_with_a_context_length_not_a_multiple_of_256_answers_and_the_server_lives(
    server: Server, tmp_path: Path, context_length: int
) -> None:
    """Finding 1: the first /api/embed aborted the server with GGML_ASSERT(ggml_can_mul_mat(a, b))."""
    name = f"embed-{context_length}"
    path = write_tiny_gguf(tmp_path / f"{name}.gguf", context_length=context_length, pooling=1)[0]
    assert server.create(name, path).status_code == 200
    texts = ["hello world " * 200, "w", "a b c " * 30]  # the first is cut to the context
    answer = server.post("/api/embed", json={"model": name, "input": texts})
    assert server.alive(), server.why_dead()
    assert answer.status_code == 200, answer.text
    vectors = answer.json()["embeddings"]
    assert len(vectors) == 3 and {len(v) for v in vectors} == {N_EMBD}
    refused = server.post("/api/embed", json={"model": name, "input": texts, "truncate": False})
    assert refused.status_code == 400 and f"at most {context_length}" in refused.json()["error"]
    assert server.alive(), server.why_dead()


@pytest.mark.parametrize("case", FOUND)
def test_create_refuses_a_header_llama_cpp_aborts_on(server: Server, tmp_path: Path, case: str) -> None:
    """Finding 2: such a file was created, and the first /api/generate aborted the server."""
    answer = server.create(f"bad-{case}", write_hostile(tmp_path, case))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert HOSTILE_HEADERS[case][1] in error and "\n" not in error
    assert server.post("/api/show", json={"model": f"bad-{case}"}).status_code == 404
    assert server.alive(), server.why_dead()


@pytest.mark.parametrize("case", FOUND)
def test_a_stored_model_llama_cpp_aborts_on_is_refused_at_load(
    server: Server, tmp_path: Path, case: str
) -> None:
    """A store written before the check holds such a model: generate refuses it in one line."""
    smuggle(Store(server.home), f"old-{case}", write_hostile(tmp_path, case))
    body = {"model": f"old-{case}", "prompt": "hello", "stream": False}
    answer = server.post("/api/generate", json=body)
    assert server.alive(), server.why_dead()
    assert answer.status_code == 422, answer.text
    assert HOSTILE_HEADERS[case][1] in answer.json()["error"]
