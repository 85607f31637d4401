"""A hostile server named with ``--host``: the API key sent to it never comes back in an error line.

Found by the outside review: a server that echoes the ``Authorization`` header it was sent into its
error (a 400, a 500, an ``{"error"}`` line of a stream) had the key printed by the CLI and the app.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine import LlamadeckError, connect

KEY = "sk-hostile-test-key-0123456789"


class _Echo(BaseHTTPRequestHandler):
    """Ollama's version route, then every other request answered with the key it was sent."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass

    def do_GET(self) -> None:
        if self.path == "/api/version":
            self._json(200, {"version": "0.9.0"})
        else:
            self._json(400 if "tags" in self.path else 500, {"error": f"bad {self.headers['Authorization']}"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        line = json.dumps({"error": f"{self.headers['Authorization']} is not welcome"}).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(line)))
        self.end_headers()
        self.wfile.write(line)

    def _json(self, status: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_server_echoing_the_key_into_its_errors_never_shows_it(echo_url: str) -> None:
    engine = connect(echo_url, api_key=KEY, name="echo")
    for call in (
        engine.list_models,  # a 400
        engine.loaded,  # a 500
        lambda: list(engine.chat("m", [{"role": "user", "content": "hi"}])),  # a stream's error line
    ):
        with pytest.raises(LlamadeckError) as caught:
            call()
        message = str(caught.value)
        assert KEY not in message and "***" in message and "echo" in message
