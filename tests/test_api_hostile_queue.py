"""A client that leaves while its request waits for a slot is never admitted (issue 18, minor finding).

One slot (``num_parallel: 1``) held by an endless stream; a second client
queues behind it and hangs up. Its request must leave the queue at once, not
wait for the slot and have its prompt evaluated for nobody.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from engine import CancelToken, Done, Engine, Machine, Token
from engine.store.manifest import ModelConfig
from engine.store.model_store import Store
from tests.support.api_server import running_api
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.stored_models import add_blob, save

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
ONE_SLOT = {"num_parallel": 1, "num_ctx": 1 << 19, "temperature": 0}  # the model's own parameters


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    hello = token_id("▁hello")
    # a long context: the stream holding the slot runs for minutes, however fast the machine
    path = write_chain_gguf(tmp_path / "endless.gguf", {hello: hello}, default=hello, context_length=1 << 20)
    store = Store()
    store.ensure()
    store.save(
        replace(
            save(store, "endless", add_blob(store, path)),
            config=ModelConfig(parameters=ONE_SLOT),
            context_length=1 << 20,
        )
    )
    engine = Engine(machine=lambda: CPU_BOX)
    yield engine
    engine.close()


def queued(engine: Engine) -> int:
    return sum(m.queued for m in engine.loaded())


def wait_until(check) -> None:
    for _ in range(6000):  # ten minutes at most: the condition is met by what the test just did
        if check():
            return
        threading.Event().wait(0.1)
    raise AssertionError("the condition was never met")


@pytest.mark.parametrize("route", ["/api/generate", "/api/chat", "/v1/chat/completions"])
def test_a_client_that_hangs_up_in_the_queue_leaves_it(engine: Engine, route: str) -> None:
    stop = CancelToken()
    holder = engine.start_generate("endless", "hello", raw=True, options={"num_predict": -1}, cancel=stop)
    events = iter(holder)
    assert isinstance(next(events), Token)  # the one slot is taken and streaming
    with running_api(engine) as url:
        parts = urlsplit(url)
        waiting = socket.create_connection((parts.hostname, parts.port))
        body = _body(route)
        waiting.sendall(
            f"POST {route} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_until(lambda: queued(engine) == 1)
        waiting.close()  # hangs up while queued
        wait_until(lambda: queued(engine) == 0)
    # it left the queue while the slot was still busy: the holder never finished, it is cancelled now
    stop.cancel()
    done = [e for e in events if isinstance(e, Done)]
    assert done and done[0].reason == "cancelled"


def _body(route: str) -> bytes:
    import json

    if route == "/api/generate":
        data = {"model": "endless", "prompt": "hello hello", "raw": True}
    elif route == "/api/chat":
        data = {"model": "endless", "messages": [{"role": "user", "content": "hi"}]}
    else:
        data = {"model": "endless", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    return json.dumps(data).encode()
