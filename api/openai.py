"""OpenAI's routes: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``.

The shapes are OpenAI's (as Ollama's compatibility layer, ``openai/openai.go``,
serves them): streamed answers are server-sent events, ``data: {chunk}``
blank-line separated and ended by ``data: [DONE]``; errors are
``{"error": {"message", "type", "param", "code"}}`` with the status of the
engine's error family. Sampling fields become the engine's Ollama-named
options (``max_tokens`` -> ``num_predict``), which the engine validates.
A chat with ``tools`` answers the model's calls as ``tool_calls`` (ids
``call_…``, arguments a JSON string; streamed, one delta per call with its
``index``) and ``finish_reason: "tool_calls"`` (``engine.runtime.toolcalls``).
A thinking model's reasoning is ``reasoning`` on the message and in deltas, as
Ollama's layer sends it; ``reasoning_effort`` (or ``reasoning.effort``) sets
``think`` (``api.openai_reasoning``). ``/v1/completions`` takes a ``suffix``.
``response_format`` (JSON mode, a JSON schema) and a forced ``tool_choice``
constrain the reply with a grammar (``api.structured``); ``logprobs`` come
from the engine's step logits (``api.logprobs``). What the engine cannot do
yet (``n`` > 1, ``best_of``, image URLs (data URLs are read), token-array inputs, ``echo``) is refused
with a 400 that says so.

This module holds the routes; reading the request bodies is ``api.openai_request``'s
job, the SSE framing ``api.openai_stream``'s, the error shape ``api.openai_errors``'.
"""

from __future__ import annotations

import base64
import secrets
import struct
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api import logprobs
from api.deps import engine_of
from api.embeddings import shorten
from api.errors import APIError, bool_field, read_json
from api.jobs import until_disconnected
from api.openai_errors import openai_errors
from api.openai_reasoning import REASONING_EFFORT, think_of
from api.openai_request import (
    chat_messages,
    chat_tools,
    completion_prompt,
    embedding_inputs,
    include_usage,
    model_field,
    refuse,
    sampling_options,
)
from api.openai_stream import SSE, Chunks, events, finish_reason, usage
from api.schema import BOOLEAN, COUNT, MESSAGES, NAME, NUMBER, STRING, TEXTS, json_body, path_parameter
from api.streaming import EngineStream, EventStreamResponse, open_stream
from api.structured import RESPONSE_FORMAT, openai_format, tool_choice
from engine import (
    CancelToken,
    Done,
    Manifest,
    Reply,
    ToolCall,
    parse_tool_calls,
    tool_call_pieces,
    tool_names,
)

router = APIRouter(tags=["openai"])


async def start(request: Request, run: Callable[[CancelToken], Reply]) -> EngineStream:
    return await open_stream(request, run)


# routes ----------------------------------------------------------------------------

STOP: dict[str, Any] = TEXTS
SAMPLING: dict[str, dict[str, Any]] = {
    "temperature": NUMBER,
    "top_p": NUMBER,
    "seed": {"type": "integer"},
    "frequency_penalty": NUMBER,
    "presence_penalty": NUMBER,
    "max_tokens": COUNT,
    "stop": STOP,
    "stream": BOOLEAN,
    "stream_options": {"type": "object", "properties": {"include_usage": BOOLEAN}},
}


def created_epoch(manifest: Manifest) -> int:
    try:
        return int(datetime.fromisoformat(manifest.created).timestamp())
    except ValueError:
        return 0


def model_object(manifest: Manifest) -> dict[str, Any]:
    reference = manifest.reference
    parts = reference.split("/")
    owner = parts[1] if reference.startswith("hf.co/") and len(parts) > 2 else "library"
    return {"id": reference, "object": "model", "created": created_epoch(manifest), "owned_by": owner}


@router.get("/v1/models")
@openai_errors
async def list_models(request: Request) -> Response:
    engine = engine_of(request)
    manifests = await anyio.to_thread.run_sync(engine.list_models)
    return JSONResponse({"object": "list", "data": [model_object(m) for m in manifests]})


@router.get("/v1/models/{model:path}", openapi_extra=path_parameter("model"))
@openai_errors
async def retrieve_model(request: Request) -> Response:
    engine = engine_of(request)
    model = request.path_params["model"]
    manifest = await anyio.to_thread.run_sync(engine.resolve, model)
    return JSONResponse(model_object(manifest))


@router.post(
    "/v1/chat/completions",
    openapi_extra=json_body(
        ["model", "messages"],
        model=NAME,
        messages=MESSAGES,
        max_completion_tokens=COUNT,
        tools={"type": "array", "items": {"type": "object"}},
        reasoning_effort=REASONING_EFFORT,
        **SAMPLING,
    ),
)
@openai_errors
async def chat_completions(request: Request) -> Response:
    data = await read_json(request)
    model = model_field(data)
    messages = chat_messages(data)
    tools = chat_tools(data)
    choice = tool_choice(data)
    options = sampling_options(data)
    think = think_of(data)
    format = openai_format(data)
    top = logprobs.chat_request(data)
    streaming = bool_field(data, "stream", False)
    engine = engine_of(request)
    stream = await start(
        request,
        lambda cancel: engine.start_chat(
            model,
            messages,
            options=options,
            tools=tools,
            think=think,
            format=format,
            tool_choice=choice,
            logprobs=top,
            cancel=cancel,
        ),
    )
    ident, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
    head = {"id": ident, "created": created, "model": model, "system_fingerprint": "fp_llamadeck"}
    names = tool_names(tools)
    if not streaming:
        reply, done = await logprobs.collect(request, stream)
        content, calls = parse_tool_calls(names, reply.text) if names else (reply.text, [])
        message: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
        if reply.thinking:
            message["reasoning"] = reply.thinking
        if calls:
            message["tool_calls"] = [c.openai() for c in calls]
        answer = {
            "index": 0,
            "message": message,
            "logprobs": None if top is None else logprobs.chat(reply.logprobs),
            "finish_reason": finish_reason(done, called=bool(calls)),
        }
        return JSONResponse({**head, "object": "chat.completion", "choices": [answer], "usage": usage(done)})

    frame = Chunks({**head, "object": "chat.completion.chunk"}, include_usage(data))
    called = False

    def chunk(text: str) -> dict[str, Any]:
        return delta_chunk({"role": "assistant", "content": text})

    def delta_chunk(delta: dict[str, Any]) -> dict[str, Any]:
        return frame.of({"index": 0, "delta": delta, "logprobs": None, "finish_reason": None})

    def last(done: Done) -> dict[str, Any]:
        reason = finish_reason(done, called=called)
        return frame.of({"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason})

    def call_chunk(call: ToolCall) -> dict[str, Any]:
        nonlocal called
        called = True
        return delta_chunk({"role": "assistant", "content": None, "tool_calls": [call.openai(streamed=True)]})

    def reasoning_chunk(thinking: str) -> dict[str, Any]:
        return delta_chunk({"role": "assistant", "content": "", "reasoning": thinking})

    return EventStreamResponse(
        events(
            tool_call_pieces(stream, names) if names else stream,
            chunk,
            last,
            frame.usage_chunk,
            call_chunk,
            reasoning_chunk,
            logprobs.chat,
        ),
        on_close=stream.close,
        media_type=SSE,
    )


@router.post(
    "/v1/completions",
    openapi_extra=json_body(
        ["model", "prompt"],
        model=NAME,
        prompt=STRING,
        suffix=STRING,
        response_format=RESPONSE_FORMAT,
        logprobs={"type": "integer", "minimum": 0, "maximum": 20},
        **SAMPLING,
    ),
)
@openai_errors
async def completions(request: Request) -> Response:
    data = await read_json(request)
    model = model_field(data)
    prompt = completion_prompt(data)
    if data.get("echo"):
        raise refuse("echo")
    suffix = data.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise APIError(400, "suffix must be a string")
    options = sampling_options(data)
    format = openai_format(data)
    top = logprobs.completion_request(data)
    streaming = bool_field(data, "stream", False)
    engine = engine_of(request)
    stream = await start(
        request,
        lambda cancel: engine.start_generate(
            model, prompt, options=options, suffix=suffix, format=format, logprobs=top, cancel=cancel
        ),
    )
    head = {
        "id": f"cmpl-{secrets.token_hex(12)}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_llamadeck",
    }
    if not streaming:
        reply, done = await logprobs.collect(
            request, stream
        )  # the reasoning is dropped, as Ollama's layer does
        shape = None if top is None else logprobs.completion(reply.logprobs)
        choice = {"text": reply.text, "index": 0, "logprobs": shape, "finish_reason": finish_reason(done)}
        return JSONResponse(head | {"choices": [choice], "usage": usage(done)})

    frame = Chunks(head, include_usage(data))

    def chunk(text: str) -> dict[str, Any]:
        return frame.of({"text": text, "index": 0, "logprobs": None, "finish_reason": None})

    def last(done: Done) -> dict[str, Any]:
        return frame.of({"text": "", "index": 0, "logprobs": None, "finish_reason": finish_reason(done)})

    return EventStreamResponse(
        events(stream, chunk, last, frame.usage_chunk, logprobs=logprobs.Offsets()),
        on_close=stream.close,
        media_type=SSE,
    )


def encoded(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI sends it (the openai client asks for this)
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


@router.post(
    "/v1/embeddings",
    openapi_extra=json_body(
        ["model", "input"],
        model=NAME,
        input=TEXTS,
        dimensions=COUNT,
        encoding_format={"type": "string", "enum": ["float", "base64"]},
    ),
)
@openai_errors
async def embeddings(request: Request) -> Response:
    data = await read_json(request)
    model = model_field(data)
    texts = embedding_inputs(data)
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise APIError(400, "encoding_format must be float or base64")
    dimensions = data.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
    ):
        raise APIError(400, "dimensions must be a whole number ≥ 1")
    engine = engine_of(request)
    result = await until_disconnected(request, lambda cancel: engine.embed_texts(model, texts, cancel=cancel))
    rows = [
        {"object": "embedding", "embedding": encoded(shorten(v, dimensions), encoding), "index": i}
        for i, v in enumerate(result.vectors)
    ]
    tokens = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return JSONResponse({"object": "list", "data": rows, "model": model, "usage": tokens})
