"""The error body each API family's clients read, chosen by the request's path; plain data, no FastAPI.

    error_body("/api/chat", 404, "...")      # Ollama's: {"error": "..."}
    error_body("/v1/models/x", 404, "...")   # OpenAI's: {"error": {"message", "type", "param", "code"}}
    error_body("/v1/messages", 401, "...")   # Anthropic's: {"type": "error", "error": {"type", "message"}}

Kept free of FastAPI: the guard (``api.security``) refuses requests before
any route runs, and the command line imports it without starting a server.
"""

from __future__ import annotations

from typing import Any

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def is_anthropic(path: str) -> bool:
    """Whether ``path`` is an Anthropic route (``/v1/messages...``)."""
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def is_openai(path: str) -> bool:
    """Whether ``path`` is one of OpenAI's routes (``/v1/...``, Anthropic's excepted)."""
    return (path == "/v1" or path.startswith("/v1/")) and not is_anthropic(path)


def _kind(table: dict[int, str], status: int) -> str:
    return table.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")


def openai_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": _kind(_OPENAI_TYPES, status), "param": param, "code": code}}


def anthropic_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _kind(_ANTHROPIC_TYPES, status), "message": message}}


def error_body(path: str, status: int, message: str) -> dict[str, Any]:
    """The error in the shape the clients of ``path``'s API expect: Anthropic's, OpenAI's or Ollama's."""
    if is_anthropic(path):
        return anthropic_body(status, message)
    if is_openai(path):
        return openai_body(status, message)
    return {"error": message}
