"""The FastAPI app: one engine behind every route, guarded by ``api.security``.

    app = create_app(engine, api_key=None, allowed_hosts=None)

Route families live in their own modules, each an ``APIRouter`` included
here: model management (``api.models``), generation (``api.generate``),
embeddings (``api.embeddings``), the OpenAI-compatible routes (``api.openai``),
OpenAI's Responses API (``api.responses``), Anthropic's Messages API
(``api.anthropic``), model making (``api.create``) and llamadeck's own
(``api.llamadeck_routes``). Routes reach the engine through
``api.deps.engine_of``, never through this module, so the app imports its
routers and none imports the app back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import (
    anthropic,
    create,
    embeddings,
    errors,
    generate,
    limits,
    llamadeck_routes,
    models,
    openai,
    responses,
)
from api.security import Guard, check_api_key
from engine import Engine

ROUTERS: tuple[APIRouter, ...] = (
    models.router,
    generate.router,
    embeddings.router,
    openai.router,
    responses.router,
    anthropic.router,
    create.router,
    llamadeck_routes.router,
)
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

    ``api_key``: every request then needs ``Authorization: Bearer <key>``
    (one of only spaces is a ValueError: it could never be sent).
    ``allowed_hosts``: Host names accepted besides loopback ones (``"*"``: any,
    for a server bound to every interface, where the key is the guard).
    ``allowed_origins``: browser origins besides local pages and app schemes
    (default: ``LLAMADECK_ORIGINS``).
    """
    check_api_key(api_key)  # now, not at the first request
    QuietDisconnects.install()
    app = FastAPI(title="llamadeck", version=models.VERSION, docs_url=None, redoc_url=None)
    app.state.engine = engine
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyLimit)
    app.add_middleware(
        Guard,
        api_key=api_key,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
        prove=engine.store_proof,  # answered inside the guard: never on a request it refuses
    )
    app.add_middleware(Identify, version=models.VERSION)
    return app


class Identify:
    """Every response says it comes from llamadeck: ``llamadeck ps`` tells us from an Ollama on the port.

    It sits outside the guard, so refusals say it too; it proves nothing (the
    store proof is the guard's, ``api.proof``): anyone can send this header.
    """

    HEADER = b"x-llamadeck-version"

    def __init__(self, app: ASGIApp, version: str) -> None:
        self.app = app
        self.headers = [(self.HEADER, version.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_identified(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        try:
            await self.app(scope, receive, send_identified)
        except Exception:
            # Starlette's last-resort 500 is sent outside this middleware, without the header: send
            # it here, so a client still knows whose server failed (the error is raised on, and logged)
            if not started:
                plain = [(b"content-type", b"text/plain; charset=utf-8")]
                await send_identified({"type": "http.response.start", "status": 500, "headers": plain})
                await send_identified({"type": "http.response.body", "body": b"Internal Server Error"})
            raise
