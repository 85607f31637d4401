"""The FastAPI app: one engine behind every route, guarded by ``api.security``.

    app = create_app(engine, api_key=None, allowed_hosts=None)

Route families live in their own modules, each an ``APIRouter`` included
here: model management (``api.models``), generation (``api.generate``),
the OpenAI-compatible routes (``api.openai``) and model making
(``api.create``). Routes reach the engine through ``api.deps.engine_of``,
never through this module, so the app imports its routers and none imports
the app back.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import create, errors, generate, limits, models, openai
from api.security import Guard
from engine import Engine

ROUTERS: tuple[APIRouter, ...] = (models.router, generate.router, openai.router, create.router)
_CHALLENGE = re.compile(rb"[0-9a-f]{32,128}")
_UNLIMITED_PREFIXES = ("/api/blobs/",)  # uploads of model files: LLAMADECK_MAX_BLOB_BYTES, in api.create
_SENT_AFTER_DISCONNECT = "socket.send() raised exception."  # asyncio's words, logged as a warning


class QuietDisconnects(logging.Filter):
    """Drop asyncio's warning that a response was written after its client left: not a fault of ours.

    asyncio logs it (``socket.send() raised exception.``) from the fifth write
    to a closed connection; every other asyncio record still reaches the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _SENT_AFTER_DISCONNECT

    @classmethod
    def install(cls) -> None:
        logger = logging.getLogger("asyncio")
        if not any(isinstance(f, cls) for f in logger.filters):
            logger.addFilter(cls())


class BodyLimit:
    """Refuse (413) a request whose declared body is larger than the JSON limit, before reading it.

    Chunked bodies are counted as they are read by ``errors.read_json``.
    """

    def __init__(self, app: ASGIApp, limit: int = limits.MAX_JSON_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(_UNLIMITED_PREFIXES):
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    response = errors.error_for(
                        scope["path"], 413, f"request body is larger than {self.limit >> 20} MiB"
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def create_app(
    engine: Engine,
    *,
    api_key: str | None = None,
    allowed_hosts: Iterable[str] | None = None,
    allowed_origins: Iterable[str] | None = None,
) -> FastAPI:
    """An ASGI app serving ``engine``.

    ``api_key``: every request then needs ``Authorization: Bearer <key>``.
    ``allowed_hosts``: Host names accepted besides loopback ones (``"*"``: any,
    for a server bound to every interface, where the key is the guard).
    ``allowed_origins``: browser origins besides local pages and app schemes
    (default: ``LLAMADECK_ORIGINS``).
    """
    QuietDisconnects.install()
    app = FastAPI(title="llamadeck", version=models.VERSION, docs_url=None, redoc_url=None)
    app.state.engine = engine
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyLimit)
    app.add_middleware(Guard, api_key=api_key, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins)
    app.add_middleware(Identify, version=models.VERSION, prove=engine.store_proof)
    return app


class Identify:
    """Every response says it comes from llamadeck: ``llamadeck ps`` tells us from an Ollama on the port."""

    HEADER = b"x-llamadeck-version"
    CHALLENGE = b"x-llamadeck-challenge"  # a client's random text: the answer proves which store this serves
    PROOF = b"x-llamadeck-proof"

    def __init__(self, app: ASGIApp, version: str, prove: Callable[[str], str] | None = None) -> None:
        self.app = app
        self.headers = [(self.HEADER, version.encode())]
        self.prove = prove

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = list(self.headers)
        challenge = next((v for k, v in scope.get("headers", []) if k == self.CHALLENGE), None)
        if challenge is not None and self.prove is not None and _CHALLENGE.fullmatch(challenge):
            with contextlib.suppress(Exception):  # no key, no proof: the client then works on its own
                headers.append((self.PROOF, self.prove(challenge.decode()).encode()))

        async def send_identified(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_identified)
