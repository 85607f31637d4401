"""Servers that are not a whole ``llamadeck serve``, for the remote client's tests (real uvicorn, routes).

    with second_machine(tmp_path) as engine: ...           # another machine's engine and its fake Hub
    with running_asgi(openai_only(engine)) as url: ...     # vLLM, llama-server, SGLang: /v1 only
    with running_asgi(ollama_only(engine)) as url: ...     # Ollama's routes, none of llamadeck's extras
    with dying_server(tokens=3) as url: ...                # streams 3 tokens of a chat, then drops dead
    with dying_server(1, client_left=event) as url: ...    # 1 token, then silence until the client leaves

The first two mount llamadeck's own routers on a bare FastAPI app (no
guard, no version header, no store proof), so they answer as the server
they stand for answers. ``dying_server`` is a raw socket server: it lists one
model, then cuts each chat's chunked answer in the middle, as a server
that is killed mid-reply does.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI

from api import errors, generate, models, openai
from engine import Engine, Machine
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

DYING_MODEL = "dying:latest"
TINY = "hf.co/acme/Tiny-GGUF:Q8_0"  # what second_machine's Hub offers, as pulled
CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)


@contextmanager
def second_machine(tmp_path: Path) -> Iterator[Engine]:
    """Another machine's engine (a store of its own), with a fake Hub offering acme/Tiny-GGUF to pull."""
    model = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model})
        engine = Engine(tmp_path / "gpu-box-store", machine=lambda: CPU_BOX)
        try:
            yield engine
        finally:
            engine.close()


def _bare(engine: Engine) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)
    app.state.engine = engine
    errors.install(app)
    return app


def openai_only(engine: Engine) -> FastAPI:
    """Only the OpenAI-compatible routes (/v1/models, /v1/chat/completions, ...)."""
    app = _bare(engine)
    app.include_router(openai.router)
    return app


def ollama_only(engine: Engine) -> FastAPI:
    """Only Ollama's model and generation routes (/api/tags, /api/pull, /api/chat, /api/ps, ...)."""
    app = _bare(engine)
    app.include_router(models.router)
    app.include_router(generate.router)
    return app


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@contextmanager
def dying_server(tokens: int = 3, *, client_left: threading.Event | None = None) -> Iterator[str]:
    """An Ollama-shaped server whose chat answers stop after ``tokens`` tokens, mid-stream.

    With ``client_left`` it stalls there instead, until the client closes the connection, and then sets it.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listed = json.dumps({"models": [{"name": DYING_MODEL, "model": DYING_MODEL, "size": 1}]}).encode()
    version = b'{"version": "0.0.1"}'

    def answer(connection: socket.socket) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                got = connection.recv(65536)
                if not got:
                    return
                request += got
            path = request.split(b" ", 2)[1]
            if path != b"/api/chat":  # the model list, the version; nothing loaded (/api/ps)
                body = {b"/api/version": version, b"/api/tags": listed}.get(path, b'{"models": []}')
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(
                    body
                )
                connection.sendall(head + b"Connection: close\r\n\r\n" + body)
                return
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n")
            connection.sendall(b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(tokens):
                line = {
                    "model": DYING_MODEL,
                    "message": {"role": "assistant", "content": f"word{i} "},
                    "done": False,
                }
                connection.sendall(_chunk(json.dumps(line).encode() + b"\n"))
            if client_left is not None:
                while connection.recv(65536):  # a request body's rest, then nothing until the client goes
                    pass
                client_left.set()
                return
            connection.sendall(b'ff\r\n{"model": ')  # half a chunk, then the process is gone
            connection.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()
