"""The request fields that constrain a reply, read from each API family's shape into the engine's.

- Ollama's ``format``: ``"json"`` or a JSON schema (``/api/generate``, ``/api/chat``);
- OpenAI's ``response_format``: ``{"type": "json_object"}`` or ``{"type": "json_schema",
  "json_schema": {"schema": {...}}}`` (``/v1/chat/completions``, ``/v1/completions``);
- OpenAI's ``tool_choice``: "auto", "none", "required" or ``{"type": "function", "function": {"name"}}``.

The engine turns them into grammars: a schema it cannot enforce is a 400 naming the construct
(``UnsupportedSchema``), never a reply that ignores it. What is checked here is only the shape.
"""

from __future__ import annotations

from typing import Any

from api.errors import APIError

FORMAT: dict[str, Any] = {
    "anyOf": [{"type": "string", "enum": ["", "json"]}, {"type": "object"}],
    "description": '"json" (a JSON object) or a JSON schema the reply must validate against',
}
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["text", "json_object", "json_schema"]},
        "json_schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "schema": {"type": "object"}},
        },
    },
}
TOOL_CHOICE: dict[str, Any] = {
    "anyOf": [
        {"enum": ["auto", "none", "required"]},
        {"type": "object", "properties": {"type": {"enum": ["function"]}, "function": {"type": "object"}}},
    ]
}


def ollama_format(data: dict[str, Any]) -> str | dict[str, Any] | None:
    """Ollama's ``format``: None (or "") for free text, ``"json"``, or a schema object."""
    value = data.get("format")
    if value is None or value == "":
        return None
    if value == "json" or isinstance(value, dict):
        return value
    raise APIError(400, f'invalid format: {str(value)[:80]!r}; expected "json" or a JSON schema object')


def openai_format(data: dict[str, Any]) -> str | dict[str, Any] | None:
    """OpenAI's ``response_format`` as the engine's ``format`` (as Ollama's OpenAI layer reads it)."""
    value = data.get("response_format")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise APIError(400, "response_format must be an object with a type")
    kind = value.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if schema is None:
            return "json"  # no schema given: any JSON object, as Ollama does
        if not isinstance(schema, dict):
            raise APIError(400, "response_format.json_schema.schema must be a JSON schema object")
        return schema
    raise APIError(
        400, f"response_format type {str(kind)[:40]!r} is not one of text, json_object, json_schema"
    )


def tool_choice(data: dict[str, Any]) -> str | dict[str, Any] | None:
    """OpenAI's ``tool_choice``, its shape checked (the engine checks the name against the tools)."""
    value = data.get("tool_choice")
    if value is None or value in ("auto", "none", "required"):
        return value
    if isinstance(value, dict):
        function = value.get("function")
        name = function.get("name") if isinstance(function, dict) else value.get("name")
        if isinstance(name, str) and name:
            return {"type": "function", "function": {"name": name}}
    raise APIError(
        400,
        'tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}',
    )
