"""Hostile ``/api/create`` requests: refused in one line that says nothing of where the store lies.

Found by the outside review: uploaded files are laid out in the store's ``partial/`` folder, and a
refusal about them (two models' files in one create) named that folder, so an API client learnt the
server's home path (``/home/NAME/...``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.tiny_gguf import write_tiny_gguf


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    yield engine
    engine.close()


def test_a_refused_upload_does_not_name_the_servers_folders(engine: Engine, tmp_path: Path) -> None:
    data = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0].read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with running_api(engine) as base:
        assert httpx.post(f"{base}/api/blobs/{digest}", content=data).status_code == 201
        body = {"model": "two", "files": {"a.gguf": digest, "b.gguf": digest}, "stream": False}
        reply = httpx.post(f"{base}/api/create", json=body)
        assert reply.status_code == 400
        error = reply.json()["error"]
        assert "it holds 2 model files" in error and str(engine.home) not in error
        assert "the store" in error
        streamed = httpx.post(f"{base}/api/create", json={**body, "stream": True}).text
        assert "it holds 2 model files" in streamed and str(engine.home) not in streamed
        assert httpx.get(f"{base}/api/tags").json() == {"models": []}
