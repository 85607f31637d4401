"""Errors as each API's clients expect them, with the status each engine error family owns.

Ollama's routes answer ``{"error": "..."}``; OpenAI's (``/v1``) answer
``{"error": {"message", "type", "param", "code"}}`` and Anthropic's
(``/v1/messages``) ``{"type": "error", "error": {"type", "message"}}``, also
for an unknown path, a wrong method or an oversized body (``error_for``).

Engine errors carry their HTTP status (``LlamadeckError.status``); anything else
a client can provoke is answered 400/404/413 by the helpers here, and whatever
slips through is a plain 500 with a one-line message, never a traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.encoding import decoded
from api.error_shapes import anthropic_body, error_body, openai_body
from api.limits import MAX_JSON_BYTES, JsonShape, Refused, check_request
from engine import LlamadeckError, ModelNotFound

_log = logging.getLogger("llamadeck.api")


class APIError(Exception):
    """An answer to a request that cannot be served: ``status`` and the message for ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """OpenAI's error: ``{"error": {"message", "type", "param", "code"}}``."""
    return JSONResponse(
        openai_body(status, message, param=param, code=code), status_code=status, headers=headers
    )


def anthropic_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Anthropic's error: ``{"type": "error", "error": {"type", "message"}}``, the type from the status."""
    return JSONResponse(anthropic_body(status, message), status_code=status, headers=headers)


def error_for(path: str, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error in the shape the clients of ``path``'s API expect (``api.error_shapes``)."""
    return JSONResponse(error_body(path, status, message), status_code=status, headers=headers)


Route = Callable[[Request], Awaitable[Response]]


def answered_in(shape: Callable[[APIError | LlamadeckError], Response]) -> Callable[[Route], Route]:
    """A route decorator: the route's APIError and engine errors answered by ``shape`` (OpenAI's, Anthropic's)
    instead of the app's handlers, which give Ollama's."""

    def decorate(route: Route) -> Route:
        @functools.wraps(route)
        async def answered(request: Request) -> Response:
            try:
                return await route(request)
            except (APIError, LlamadeckError) as error:
                return shape(error)

        return answered

    return decorate


def status_of(error: LlamadeckError) -> int:
    """The engine error's HTTP status; a status outside 400..599 would be a bug, answered 500."""
    status = getattr(error, "status", 500)
    return status if isinstance(status, int) and 400 <= status < 600 else 500


@contextmanager
def model_errors(name: str) -> Iterator[None]:
    """Turn "no such model" into Ollama's own words: ``model 'x' not found`` (404)."""
    try:
        yield
    except ModelNotFound as error:
        raise APIError(404, f"model '{name}' not found") from error


async def read_json(request: Request, *, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON object, read and parsed under the limits of ``api.limits``.

    The body is counted as it arrives, whatever Content-Length claims, and
    refused before it is parsed when parsing would build too much; a zstd body
    is counted as it decompresses (``api.encoding``). Raises APIError 400
    (missing, malformed, not an object, a field past its limit), 413 (too many
    bytes or values) or 415 (a Content-Encoding other than zstd).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body is larger than {limit >> 20} MiB")
    shape = JsonShape(limit)
    body = bytearray()
    try:
        async with aclosing(decoded(request, limit)) as chunks:  # zstd bodies decompressed, slice by slice
            async for chunk in chunks:
                shape.feed(chunk)
                body += chunk
        if not body or body.isspace():
            raise APIError(400, "missing request body")
        data = shape.parse(body)
        if not isinstance(data, dict):
            raise APIError(400, "invalid JSON: the request body must be a JSON object")
        check_request(request.url.path, data, len(body))
    except Refused as refused:
        raise APIError(refused.status, refused.message) from None
    return data


def string_field(data: dict[str, Any], *names: str, required: bool = True) -> str:
    """The first of ``names`` in ``data`` as a non-empty string (Ollama takes ``model`` or ``name``)."""
    for name in names:
        value = data.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise APIError(400, f"{name} must be a string")
        return value
    if required:
        raise APIError(400, f"{names[0]} is required")
    return ""


def bool_field(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise APIError(400, f"{name} must be true or false")
    return value


def install(app: FastAPI) -> None:
    """Register the handlers that give every failure the ``{"error": ...}`` shape."""

    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return error_for(request.url.path, error.status, error.message)

    @app.exception_handler(LlamadeckError)
    async def engine_error(request: Request, error: LlamadeckError) -> JSONResponse:
        return error_for(request.url.path, status_of(error), str(error) or type(error).__name__)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg', 'invalid')}"
            for e in error.errors()[:5]
        )
        return error_for(request.url.path, 400, problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)  # unknown paths (404), wrong methods (405)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_for(request.url.path, error.status_code, str(error.detail), dict(error.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        _log.exception("unexpected error")  # the server's log has the traceback; the client never does
        return error_for(request.url.path, 500, f"internal error: {type(error).__name__}")
