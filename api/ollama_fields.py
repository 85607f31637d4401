"""Ollama's fields for thinking, fill in the middle and the deprecated context, read as Ollama reads them.

``think`` is passed to the engine as sent (it checks it: a bad value or a
model that cannot think is a 400 in Ollama's words); ``suffix`` and
``context`` are checked here for their JSON types. The answers' ``thinking``
fields are left out when empty (``omitempty`` in Ollama's ``api/types.go``).

    think, suffix, context = generate_fields(data)
    message("Paris.", "Capital.")  # {"role": "assistant", "content": "Paris.", "thinking": "Capital."}
"""

from __future__ import annotations

from typing import Any

from api.errors import APIError
from engine import ToolCall


def think_field(data: dict[str, Any]) -> bool | str | None:
    """``think`` as sent (true/false or a level); its value is the engine's to judge."""
    think = data.get("think")
    if think is not None and not isinstance(think, bool | str):
        raise APIError(
            400, 'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'
        )
    return think


def generate_fields(data: dict[str, Any]) -> tuple[bool | str | None, str | None, list[int] | None]:
    """``think``, ``suffix`` and ``context`` of an ``/api/generate`` request."""
    suffix = data.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise APIError(400, "suffix must be a string")
    context = data.get("context")
    if context is not None and (
        not isinstance(context, list)
        or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in context)
    ):
        raise APIError(400, "context must be a list of token ids from an earlier response")
    if data.get("raw") is True and context:  # Ollama's words (a raw system prompt is skipped here)
        raise APIError(400, "raw mode does not support template, system, or context")
    return think_field(data), suffix or None, context or None


def message(text: str, thinking: str = "", calls: list[ToolCall] | None = None) -> dict[str, Any]:
    """Ollama's ``api.Message`` of an answer: ``thinking`` and ``tool_calls`` only when there are some."""
    reply: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking:
        reply["thinking"] = thinking
    if calls:
        reply["tool_calls"] = [c.ollama() for c in calls]
    return reply


def with_thinking(fields: dict[str, Any], thinking: str) -> dict[str, Any]:
    """``/api/generate``'s chunk with its ``thinking`` when there is some."""
    return fields | {"thinking": thinking} if thinking else fields
