"""The request bodies of the OpenAPI document (``/openapi.json``), in Ollama's and OpenAI's shapes.

The routes read and check their JSON themselves (``api.errors.read_json``), so
FastAPI cannot infer the bodies: each route declares its shape here with
``openapi_extra=json_body(...)``. The schema documents the API and feeds the
fuzzer (``tests/test_api_fuzz.py``); it changes nothing a route accepts.

    @router.post("/api/copy", openapi_extra=json_body(["source", "destination"], source=STRING, ...))
"""

from __future__ import annotations

from typing import Any


def json_body(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route whose body is a JSON object with these ``properties``."""
    schema = {"type": "object", "required": required, "properties": properties}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def path_parameter(name: str, **schema: Any) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads ``{name}`` from ``request.path_params`` itself."""
    parameter = {"name": name, "in": "path", "required": True, "schema": {"type": "string", **schema}}
    return {"parameters": [parameter]}


STRING: dict[str, Any] = {"type": "string"}
NAME: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": "a model: name[:tag] or hf.co/org/repo[:quant]",
}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
NUMBER: dict[str, Any] = {"type": "number"}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 1}
TEXTS: dict[str, Any] = {"anyOf": [STRING, {"type": "array", "items": STRING}]}
OPTIONS: dict[str, Any] = {  # a known name out of range or of the wrong type is a 400; others are ignored
    "type": "object",
    "additionalProperties": True,
    "description": (
        "Ollama's option names (``llamadeck options`` lists them all); null values are skipped, "
        "unknown and retired names ignored with a warning in the server's log, as Ollama does"
    ),
    "properties": {
        "temperature": {"type": ["number", "null"], "minimum": 0},
        "top_k": {"type": ["integer", "null"], "minimum": 0},
        "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "min_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "repeat_penalty": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "seed": {"type": ["integer", "null"], "minimum": -1, "maximum": 2**32 - 2},
        "num_predict": {
            "type": ["integer", "null"],
            "minimum": -2,
            "description": "-1: until the context is full",
        },
        "num_ctx": {"type": ["integer", "null"], "minimum": 1},
        "stop": {"type": ["array", "null"], "maxItems": 64, "items": {"type": "string", "minLength": 1}},
    },
}
KEEP_ALIVE: dict[str, Any] = {
    "anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^-?([0-9]*\.?[0-9]+(ns|us|ms|s|m|h))+$"}],
    "description": "seconds (negative: for ever), or a Go duration: 30s, 5m, 1h30m",
}
MESSAGES: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["role"],
        "properties": {"role": {"enum": ["system", "user", "assistant", "tool"]}, "content": STRING},
    },
}
THINK: dict[str, Any] = {
    "anyOf": [BOOLEAN, {"enum": ["low", "medium", "high", "max"]}],
    "description": "thinking models: think or not, or how hard (a model that cannot think refuses true)",
}
