"""A real uvicorn serving llamadeck's API on 127.0.0.1, an ephemeral port, in a background thread.

    with running_api(engine) as base_url:               # "http://127.0.0.1:PORT"
        ollama.Client(host=base_url).list()
    with running_api(engine, api_key="k") as base_url:  # every request then needs the key
        ...
    with running_asgi(app) as base_url:                 # any ASGI app (tests.support.partial_servers)
        ...

The socket is bound before the thread starts (no race for the port) and the
block is entered only once uvicorn accepts connections; on exit the server
finishes (open streams get a second to end) and the thread is joined. The
engine is not closed: the caller owns it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from api.app import create_app
from engine import Engine

_START_TIMEOUT = 20.0


@contextmanager
def running_api(
    engine: Engine,
    api_key: str | None = None,
    *,
    allowed_hosts: Iterable[str] | None = None,
    allowed_origins: Iterable[str] | None = None,
) -> Iterator[str]:
    app = create_app(engine, api_key=api_key, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins)
    with running_asgi(app) as base_url:
        yield base_url


@contextmanager
def running_asgi(app: Any) -> Iterator[str]:
    """Any ASGI app on a real uvicorn, as ``running_api`` runs llamadeck's (a server of some routes only)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=1, lifespan="off"
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as error:  # reported to the test below, not lost in the thread
            failure.append(error)

    thread = threading.Thread(target=serve, name=f"api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if failure or not thread.is_alive():
            raise RuntimeError(f"the API server did not start: {failure[0] if failure else 'exited'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the API server did not start within 20 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
