"""``llamadeck run`` against a stranger on the port it probes, and ``serve`` with a blank API key (issue 18).

``run`` looks for a ``llamadeck serve`` on its own store at the default
address, 127.0.0.1:11434, which a test cannot own. ``run_unnamed`` runs the
real command line in a child whose default port is moved to one the test
owns; nothing else changes and ``LLAMADECK_HOST`` stays unset, so the server
is found there, not named. Every server is a real ``llamadeck serve`` (or a
real uvicorn), every stranger a real socket.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.cli import assert_one_line_error
from tests.support.fake_hub import FakeHub
from tests.support.relay import Relay
from tests.support.tiny_gguf import write_tiny_gguf
from tui.client import Server, ServerError, stream

LLAMADECK = str(Path(sys.executable).parent / "llamadeck")
CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
MODEL = "hf.co/acme/Tiny-GGUF:Q8_0"
KEY = "k3y-for-llamadeck-only"
PROMPT = "my secret prompt about the merger"
_RUN_UNNAMED = (
    "import sys, api.address\n"
    "api.address.DEFAULT_PORT = int(sys.argv.pop(1))\n"
    "from tui.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    model = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    with FakeHub() as fake, fake.patch_endpoint():
        fake.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model})
        yield fake


@pytest.fixture
def store(hub: FakeHub) -> None:
    """This test's store (``LLAMADECK_HOME``) holds the tiny model."""
    engine = Engine(machine=lambda: CPU_BOX)
    engine.pull(MODEL)
    engine.close()


def _env(**extra: str) -> dict[str, str]:
    unnamed = {k: v for k, v in os.environ.items() if k not in ("LLAMADECK_HOST", "LLAMADECK_API_KEY")}
    return unnamed | extra


def unnamed(default_port: int, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``llamadeck ARGS`` with its default port moved to ``default_port`` and no LLAMADECK_HOST."""
    command = [sys.executable, "-c", _RUN_UNNAMED, str(default_port), *args]
    return subprocess.run(command, env=_env(**env), capture_output=True, text=True, timeout=120)


def run_unnamed(default_port: int, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``llamadeck run ARGS`` with its default port moved to ``default_port`` and no LLAMADECK_HOST."""
    return unnamed(default_port, "run", *args, **env)


@contextmanager
def impostor() -> Iterator[tuple[int, list[str]]]:
    """A stranger on a port that answers like llamadeck but cannot prove the store; yields (port, heard).

    ``heard`` gets every request's headers and body as text: what the stranger learnt.
    """
    heard: list[str] = []

    class Impostor(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            heard.append(str(self.headers))
            self.send_response(200)
            self.send_header("x-llamadeck-version", "9.9.9")
            self.send_header("x-llamadeck-proof", "0" * 64)
            self.end_headers()
            self.wfile.write(b'{"version": "9.9.9", "models": [{"name": "SPOOFED"}]}')

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            heard.append(f"{self.headers}{body}")
            self.send_response(200)
            self.send_header("x-llamadeck-version", "9.9.9")
            self.end_headers()
            self.wfile.write(b'{"response": "SPOOFED", "done": true}\n')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], heard
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving(**env: str) -> Iterator[int]:
    """A real ``llamadeck serve`` on this test's store, on an ephemeral port of 127.0.0.1; yields the port."""
    process = subprocess.Popen(
        [LLAMADECK, "serve", "--port", "0"],
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        prefix = "llamadeck API on http://127.0.0.1:"
        assert line.startswith(prefix), line + (process.stderr.read() if process.poll() is not None else "")
        port = int(line.removeprefix(prefix))
        loaded(port, env.get("LLAMADECK_API_KEY"))  # it prints its address before uvicorn starts: wait for it
        yield port
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def loaded(port: int, key: str | None = None) -> list[str]:
    """What the server at ``port`` holds (``/api/ps``), asked directly."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/ps", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return [m["name"] for m in json.load(response)["models"]]


def test_a_relay_on_the_port_learns_neither_the_key_nor_the_prompt(store: None) -> None:
    """Finding 4: a stranger relaying run's probe to the real server neither passes it nor learns anything."""
    with serving(LLAMADECK_API_KEY=KEY) as port, Relay(port) as relay:
        ran = run_unnamed(relay.port, MODEL, PROMPT, "-n", "2", LLAMADECK_API_KEY=KEY)
        seen = relay.received
        held = loaded(port, KEY)
    assert ran.returncode == 0, ran.stderr
    assert b"x-llamadeck-challenge" in seen.lower()  # run did probe the relay, and the relay did forward
    assert KEY.encode() not in seen and b"merger" not in seen and b"/api/generate" not in seen
    assert held == []  # run answered in-process: the server behind the relay was never asked


def test_run_uses_a_server_that_proves_the_store_and_then_sends_it_the_key(store: None) -> None:
    with serving(LLAMADECK_API_KEY=KEY) as port:
        ran = run_unnamed(port, MODEL, "hello", "-n", "2", LLAMADECK_API_KEY=KEY)
        held = loaded(port, KEY)
    assert ran.returncode == 0, ran.stderr
    assert held == [MODEL]  # the prompt went to the proven server, with the key it asks for


def test_a_stranger_claiming_to_be_llamadeck_never_gets_the_key_or_the_prompt(
    store: None,
) -> None:
    """A process on the port that answers like llamadeck but cannot prove the store is never used."""
    with impostor() as (port, heard):
        ran = run_unnamed(port, MODEL, PROMPT, "-n", "2", LLAMADECK_API_KEY=KEY)
    assert ran.returncode == 0, ran.stderr
    assert "SPOOFED" not in ran.stdout  # it ran in-process
    assert heard and not any(KEY in text or "merger" in text for text in heard)


@pytest.mark.parametrize("command", [("ps",), ("stop", MODEL)])
def test_ps_and_stop_never_send_the_key_to_a_stranger_on_the_port(command: tuple[str, ...]) -> None:
    """Finding 4's tail: ps and stop send a key only on a connection that proved the store."""
    with impostor() as (port, heard):
        ran = unnamed(port, *command, LLAMADECK_API_KEY=KEY)
    assert_one_line_error(ran, f"127.0.0.1:{port}", "did not prove", "LLAMADECK_HOST")
    assert "SPOOFED" not in ran.stdout
    assert heard and not any(KEY in text for text in heard)
    assert not any(text.startswith("POST") or "keep_alive" in text for text in heard)  # stop sent nothing


def test_ps_and_stop_without_a_key_ask_the_default_address_as_before() -> None:
    """No key, nothing of value: ps asks whatever llamadeck answers there, without a proof."""
    with impostor() as (port, heard):
        ran = unnamed(port, "ps")
    assert ran.returncode == 0, ran.stderr
    assert "SPOOFED" in ran.stdout and not any("authorization" in text.lower() for text in heard)


def test_ps_and_stop_send_the_key_to_a_server_that_proves_the_store(store: None) -> None:
    """A real serve on this store with a key: run loads the model, ps lists it, stop unloads it; a relay
    in front of the same server learns no key."""
    with serving(LLAMADECK_API_KEY=KEY) as port:
        ran = run_unnamed(port, MODEL, "hello", "-n", "2", LLAMADECK_API_KEY=KEY)
        assert ran.returncode == 0, ran.stderr
        listed = unnamed(port, "ps", LLAMADECK_API_KEY=KEY)
        with Relay(port) as relay:
            relayed = unnamed(relay.port, "stop", MODEL, LLAMADECK_API_KEY=KEY)
            seen = relay.received
        still = loaded(port, KEY)
        stopped = unnamed(port, "stop", MODEL, LLAMADECK_API_KEY=KEY)
        after = unnamed(port, "ps", LLAMADECK_API_KEY=KEY)
        held = loaded(port, KEY)
    assert listed.returncode == 0 and MODEL in listed.stdout, listed.stderr
    assert_one_line_error(relayed, "did not prove", "LLAMADECK_HOST")
    assert b"x-llamadeck-challenge" in seen.lower() and KEY.encode() not in seen and still == [MODEL]
    assert stopped.returncode == 0, stopped.stderr
    assert after.returncode == 0 and MODEL not in after.stdout, after.stderr
    assert held == []


def test_a_server_named_by_llamadeck_host_is_trusted_without_a_store_proof(
    store: None, hub: FakeHub, tmp_path: Path
) -> None:
    """The user named the server: run uses it as named, even on another store (a remote server)."""
    remote = Engine(tmp_path / "remote-store", machine=lambda: CPU_BOX)
    remote.pull(MODEL)
    try:
        with running_api(remote) as base_url:
            host = base_url.removeprefix("http://")
            ran = subprocess.run(
                [LLAMADECK, "run", MODEL, "hello", "-n", "2"],
                env=_env(LLAMADECK_HOST=host),
                capture_output=True,
                text=True,
                timeout=120,
            )
            held = [m.reference for m in remote.loaded()]
    finally:
        remote.close()
    assert ran.returncode == 0, ran.stderr
    assert held == [MODEL]


@pytest.mark.parametrize("where", [("--host", "0.0.0.0"), ("--host", "127.0.0.1")])
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_serve_refuses_a_blank_api_key_in_one_line(where: tuple[str, str], how: str) -> None:
    """Minor finding: a key of spaces is no key; it never lets serve listen beyond loopback."""
    blank = "  \t "
    args = [LLAMADECK, "serve", *where, "--port", "0"]
    env = _env(LLAMADECK_API_KEY=blank) if how == "environment" else _env()
    if how == "flag":
        args += ["--api-key", blank]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and "API key" in result.stderr and "blank" in result.stderr


def test_ctrl_c_breaks_a_read_that_a_stalling_server_holds() -> None:
    """A server that starts an answer and then says nothing cannot hold run: Ctrl+C breaks the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    answered = threading.Event()

    def stall() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        answered.set()
        connection.recv(1)  # until the client leaves
        connection.close()

    threading.Thread(target=stall, daemon=True).start()
    server = Server(f"http://127.0.0.1:{port}", http.client.HTTPConnection("127.0.0.1", port))
    got: list[object] = []

    def read() -> None:
        with contextlib.suppress(ServerError):  # or the answer simply ends: either way the read is over
            got.extend(stream(server, "/api/generate", {"model": MODEL, "prompt": PROMPT}))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    answered.wait()
    server.interrupt()  # what run's Ctrl+C does, from the main thread
    reader.join(60)
    listener.close()
    assert not reader.is_alive() and got == []


def test_an_answer_cut_short_is_a_one_line_error_not_a_silent_end(store: None) -> None:
    """A named server (trusted as named) whose answer stops before ``done``: run says so."""

    class Truncating(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("x-llamadeck-version", "9.9.9")
            self.end_headers()
            if self.path == "/api/tags":  # it has the model: run goes straight to the reply
                self.wfile.write(json.dumps({"models": [{"name": MODEL}]}).encode())
                return
            self.wfile.write(b'{"version": "9.9.9"}')

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"response": "half of it"}\n')  # then the connection closes

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Truncating)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ran = subprocess.run(
            [LLAMADECK, "run", MODEL, "hello", "-n", "2"],
            env=_env(LLAMADECK_HOST=f"127.0.0.1:{server.server_address[1]}"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert_one_line_error(ran, f"127.0.0.1:{port} ended the reply before it was done")
