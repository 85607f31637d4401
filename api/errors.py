"""Errors as Ollama's clients expect them: ``{"error": "..."}`` with the status each engine error family owns.

Engine errors carry their HTTP status (``LlamadeckError.status``); anything else
a client can provoke is answered 400/404/413 by the helpers here, and whatever
slips through is a plain 500 with a one-line message, never a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import LlamadeckError, ModelNotFound

MAX_JSON_BYTES = 64 << 20  # a request body of JSON above this is refused with 413 (blob uploads excepted)
_log = logging.getLogger("llamadeck.api")


class APIError(Exception):
    """An answer to a request that cannot be served: ``status`` and the message for ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


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
    """The request's JSON object, read with a size limit whatever Content-Length claims.

    Raises APIError 400 (missing, malformed, not an object) or 413 (too large).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body is larger than {limit >> 20} MiB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body is larger than {limit >> 20} MiB")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise APIError(400, "missing request body")
    try:
        data = json.loads(body)
    except RecursionError as error:
        raise APIError(400, "invalid JSON: nested too deeply") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise APIError(400, f"invalid JSON: {str(error)[:200]}") from error
    if not isinstance(data, dict):
        raise APIError(400, "invalid JSON: the request body must be a JSON object")
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
    async def api_error(_request: Request, error: APIError) -> JSONResponse:
        return error_response(error.status, error.message)

    @app.exception_handler(LlamadeckError)
    async def engine_error(_request: Request, error: LlamadeckError) -> JSONResponse:
        return error_response(status_of(error), str(error) or type(error).__name__)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg', 'invalid')}"
            for e in error.errors()[:5]
        )
        return error_response(400, problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), dict(error.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        _log.exception("unexpected error")  # the server's log has the traceback; the client never does
        return error_response(500, f"internal error: {type(error).__name__}")
