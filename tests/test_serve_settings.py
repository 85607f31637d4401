"""``llamadeck serve`` under Ollama's server settings, end to end: a real subprocess, real HTTP.

OLLAMA_NUM_PARALLEL, OLLAMA_CONTEXT_LENGTH and the keep-alive (the
variable, or ``config.toml``'s, which issue 21 found API loads ignoring)
show in ``/api/ps``; OLLAMA_MAX_LOADED_MODELS=1 unloads the first model when
a second loads; OLLAMA_MAX_QUEUE=1 answers a third request to a one-slot
model 503 while the first holds the slot and the second waits; a bad value
stops ``serve`` in one line naming the variable.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from engine.store.manifest import ModelConfig
from engine.store.model_store import Store
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.cli import LLAMADECK, assert_one_line_error
from tests.support.stored_models import add_blob, save
from tests.support.tiny_gguf import write_tiny_gguf

BUSY = "server busy, please try again.  maximum pending requests exceeded"  # Ollama's ErrMaxQueue


@contextmanager
def serving(**env: str) -> Iterator[str]:
    """``llamadeck serve`` on a free port with ``env`` added; its URL once it listens; stopped after."""
    server = subprocess.Popen(
        [LLAMADECK, "serve", "--port", "0"],
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stderr is not None
        line = server.stdout.readline()
        assert "llamadeck API on" in line, server.stderr.read()
        yield line.split()[-1]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=120)


def wait_until(check: Callable[[], bool]) -> None:
    for _ in range(6000):  # ten minutes at most: the condition is met by what the test just did
        if check():
            return
        threading.Event().wait(0.1)
    raise AssertionError("the condition was never met")


def write_config(text: str) -> None:
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "llamadeck"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(text, encoding="utf-8")


@pytest.fixture
def two_models(tmp_path: Path) -> None:
    store = Store()
    store.ensure()
    for name, seed in (("first", 1), ("second", 2)):
        path, *_ = write_tiny_gguf(tmp_path / f"{name}.gguf", seed=seed)
        save(store, name, add_blob(store, path))


def seconds_left(entry: dict[str, object]) -> float:
    return (datetime.fromisoformat(str(entry["expires_at"])) - datetime.now(UTC)).total_seconds()


@pytest.mark.parametrize(
    ("variable", "low", "high"),
    [
        (None, 300, 600),  # config.toml's 10m (the default would be 5m)
        ("2h", 600, 7200),  # OLLAMA_KEEP_ALIVE wins over config.toml
    ],
)
def test_ollamas_variables_and_config_toml_show_in_ps(
    two_models: None, variable: str | None, low: int, high: int
) -> None:
    write_config('keep_alive = "10m"\nmax_loaded_models = 5\n')
    env = {"OLLAMA_NUM_PARALLEL": "3", "OLLAMA_CONTEXT_LENGTH": "512", "OLLAMA_MAX_LOADED_MODELS": "1"}
    if variable is not None:
        env["OLLAMA_KEEP_ALIVE"] = variable
    with serving(**env) as url:
        loaded = httpx.post(f"{url}/api/generate", json={"model": "first", "prompt": ""}, timeout=120)
        assert loaded.status_code == 200, loaded.text
        (entry,) = httpx.get(f"{url}/api/ps").json()["models"]
        assert (entry["name"], entry["context_length"], entry["num_parallel"]) == ("first:latest", 512, 3)
        assert low < seconds_left(entry) <= high
        # OLLAMA_MAX_LOADED_MODELS=1 (over config.toml's 5): the second load unloads the first
        loaded = httpx.post(f"{url}/api/generate", json={"model": "second", "prompt": ""}, timeout=120)
        assert loaded.status_code == 200, loaded.text
        assert [m["name"] for m in httpx.get(f"{url}/api/ps").json()["models"]] == ["second:latest"]


@pytest.fixture
def endless(tmp_path: Path) -> None:
    """A model that says "hello" for ever: the stream in its one slot never ends by itself."""
    hello = token_id("▁hello")
    path = write_chain_gguf(tmp_path / "endless.gguf", {hello: hello}, default=hello, context_length=1 << 20)
    store = Store()
    store.ensure()
    parameters = {"num_ctx": 1 << 19, "temperature": 0}  # runs for minutes, however fast the machine
    store.save(
        replace(
            save(store, "endless", add_blob(store, path)),
            config=ModelConfig(parameters=parameters),
            context_length=1 << 20,
        )
    )


def send(url: str, route: str, body: dict[str, object]) -> socket.socket:
    """POST ``body`` and leave the answer unread: the request stays open as long as the socket."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    data = json.dumps(body).encode()
    connection = socket.create_connection((parts.hostname, parts.port))
    connection.sendall(
        f"POST {route} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return connection


def test_a_full_queue_is_a_503_in_ollamas_words(endless: None) -> None:
    generate = {"model": "endless", "prompt": "hello", "raw": True, "options": {"num_predict": -1}}
    with serving(OLLAMA_NUM_PARALLEL="1", OLLAMA_MAX_QUEUE="1") as url:
        holder = send(url, "/api/generate", generate)
        waiting = send(url, "/api/generate", generate)
        try:

            def one_runs_one_waits() -> bool:
                models = httpx.get(f"{url}/api/ps").json()["models"]
                return bool(models) and (models[0]["num_parallel"], models[0]["queued"]) == (1, 1)

            wait_until(one_runs_one_waits)
            refused = httpx.post(f"{url}/api/generate", json=generate | {"stream": False}, timeout=60)
            assert (refused.status_code, refused.json()) == (503, {"error": BUSY})
            chat = {"model": "endless", "messages": [{"role": "user", "content": "hi"}]}
            refused = httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=60)
            assert refused.status_code == 503 and refused.json()["error"]["message"] == BUSY
        finally:
            holder.close()
            waiting.close()
        # the queue empties as they go: a new request is admitted again (and runs until it is let go)
        wait_until(lambda: httpx.get(f"{url}/api/ps").json()["models"][0]["queued"] == 0)
        again = send(url, "/api/generate", generate)
        again.settimeout(600)  # a guard against hanging for ever, not a limit: the answer comes at once
        try:
            assert again.makefile("rb").readline().startswith(b"HTTP/1.1 200")
        finally:
            again.close()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "OLLAMA_NUM_PARALLEL",
            "four",
            "OLLAMA_NUM_PARALLEL must be a whole number from 0 to 256, not 'four'",
        ),
        ("LLAMADECK_MAX_QUEUE", "-1", "LLAMADECK_MAX_QUEUE must be a whole number"),
        ("OLLAMA_KEEP_ALIVE", "soon", "OLLAMA_KEEP_ALIVE must be a duration like 5m"),
    ],
)
def test_serve_refuses_a_bad_setting_in_one_line_naming_it(variable: str, value: str, message: str) -> None:
    result = subprocess.run(
        [LLAMADECK, "serve", "--port", "0"],
        env=os.environ | {variable: value},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(result, message)
    assert "llamadeck API on" not in result.stdout  # it never listened


def test_serve_help_lists_the_settings() -> None:
    result = subprocess.run([LLAMADECK, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for name in (
        "OLLAMA_NUM_PARALLEL",
        "OLLAMA_MAX_LOADED_MODELS",
        "OLLAMA_KEEP_ALIVE",
        "OLLAMA_MAX_QUEUE",
        "OLLAMA_CONTEXT_LENGTH",
        "OLLAMA_FLASH_ATTENTION",
        "OLLAMA_KV_CACHE_TYPE",
        "LLAMADECK_NUM_PARALLEL",
        "config.toml",
    ):
        assert name in result.stdout
