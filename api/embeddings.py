"""Ollama's embedding routes: ``/api/embed`` and the legacy ``/api/embeddings``.

The shapes are Ollama's (``api/types.go``: ``EmbedRequest``/``EmbedResponse``,
``EmbeddingRequest``/``EmbeddingResponse``; ``server/routes.go``'s handlers):
``/api/embed`` takes ``input`` (a string or a list of strings), ``truncate``,
``dimensions``, ``keep_alive`` and ``options`` (null values skipped, unknown
names ignored with a warning: LangChain's ``OllamaEmbeddings`` sends a dozen,
most of them null) and answers the vectors with ``total_duration``,
``load_duration`` (nanoseconds) and ``prompt_eval_count`` (tokens embedded),
which LiteLLM reads as the usage. The legacy route takes one ``prompt`` and
answers ``{"embedding": [...]}`` alone, as Ollama does. An empty input loads
the model and answers no vectors. OpenAI's ``/v1/embeddings`` is in ``api.openai``.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.deps import engine_of
from api.errors import APIError, bool_field, model_errors, read_json, string_field
from api.generate import ns
from api.jobs import until_disconnected
from api.schema import BOOLEAN, KEEP_ALIVE, NAME, OPTIONS, STRING, TEXTS, json_body
from engine import Embeddings, parse_keep_alive, request_options

router = APIRouter(tags=["embed"])


def embed_texts(data: dict[str, Any], field: str) -> list[str]:
    value = data.get(field)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return value
    raise APIError(400, f"{field} must be a string or a list of strings")


def dimensions_field(data: dict[str, Any]) -> int | None:
    """Ollama's ``dimensions``: absent, null or 0 keep the model's width; a whole number ≥ 1 cuts it."""
    value = data.get("dimensions")
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise APIError(400, "dimensions must be a whole number ≥ 1")
    return value


def shorten(vector: list[float], dimensions: int | None) -> list[float]:
    """Ollama's ``dimensions``: the first n values, made unit-length again."""
    if dimensions is None or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(v * v for v in head))
    return [v / norm for v in head] if norm > 0 else head


async def embeddings_of(request: Request, data: dict[str, Any], texts: list[str]) -> Embeddings:
    """The engine's embeddings for ``texts`` with their figures, off the event loop.

    ``options`` and ``keep_alive`` as Ollama takes them; a client that goes
    away stops the work between batches.
    """
    model = string_field(data, "model")
    options_value = data.get("options")
    if options_value is not None and not isinstance(options_value, dict):
        raise APIError(400, "options must be an object of name: value")
    options = request_options(options_value)
    keep_alive = parse_keep_alive(data.get("keep_alive"))
    truncate = bool_field(data, "truncate", True)
    engine = engine_of(request)
    with model_errors(model):
        return await until_disconnected(
            request,
            lambda cancel: engine.embed_texts(
                model, texts, options=options, keep_alive=keep_alive, truncate=truncate, cancel=cancel
            ),
        )


@router.post(
    "/api/embed",
    openapi_extra=json_body(
        ["model"],
        model=NAME,
        input=TEXTS,
        truncate=BOOLEAN,
        keep_alive=KEEP_ALIVE,
        dimensions={"type": "integer", "minimum": 0},
        options=OPTIONS,
    ),
)
async def embed(request: Request) -> Response:
    data = await read_json(request)
    texts = embed_texts(data, "input")
    dimensions = dimensions_field(data)
    result = await embeddings_of(request, data, texts)
    return JSONResponse(
        {
            "model": data["model"],
            "embeddings": [shorten(v, dimensions) for v in result.vectors],
            "total_duration": ns(result.total_seconds),
            "load_duration": ns(result.load_seconds),
            "prompt_eval_count": result.prompt_tokens,
        }
    )


@router.post(
    "/api/embeddings",
    openapi_extra=json_body(["model"], model=NAME, prompt=STRING, keep_alive=KEEP_ALIVE, options=OPTIONS),
)
async def embeddings(request: Request) -> Response:
    """The legacy route: one ``prompt``, one ``embedding``, no figures (as Ollama answers it)."""
    data = await read_json(request)
    texts = embed_texts(data, "prompt")
    result = await embeddings_of(request, data, texts)
    return JSONResponse({"embedding": result.vectors[0] if result.vectors else []})
