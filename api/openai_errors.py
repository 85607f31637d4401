"""OpenAI's error shape for the OpenAI-style routes: ``{"error": {"message", "type", "param", "code"}}``.

The app's own handlers answer Ollama's shape; every route of the OpenAI
family (``api.openai``, ``api.responses``) wraps itself in ``openai_errors``
instead, and a stream that fails after its status was sent ends with
``error_body``. One place, so the two families never drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

from api.errors import APIError, answered_in, openai_error, status_of
from engine import LlamadeckError, ModelNotFound


def error_body(error: BaseException) -> dict[str, Any]:
    """The error object for a failure in the middle of a stream, after the status was sent."""
    response = as_openai(error)
    body: dict[str, Any] = json.loads(bytes(response.body))
    return body


def as_openai(error: BaseException) -> JSONResponse:
    if isinstance(error, APIError):
        return openai_error(error.status, error.message)
    if isinstance(error, ModelNotFound):
        return openai_error(404, str(error), param="model", code="model_not_found")
    if isinstance(error, LlamadeckError):
        return openai_error(status_of(error), str(error) or type(error).__name__)
    raise error


openai_errors = answered_in(as_openai)  # OpenAI's shape for a route's APIError and engine errors


__all__ = ["as_openai", "error_body", "openai_errors"]
