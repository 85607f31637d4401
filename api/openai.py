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
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import secrets
import struct
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api import logprobs
from api.deps import engine_of
from api.embeddings import shorten
from api.errors import APIError, bool_field, openai_error, read_json, status_of
from api.images import openai_image_part
from api.jobs import until_disconnected
from api.openai_reasoning import REASONING_EFFORT, reasoning_of, think_of
from api.schema import BOOLEAN, COUNT, MESSAGES, NAME, NUMBER, STRING, TEXTS, json_body, path_parameter
from api.streaming import EngineStream, EventStreamResponse, open_stream
from api.structured import RESPONSE_FORMAT, openai_format, tool_choice
from engine import (
    CancelToken,
    Done,
    Generation,
    LlamadeckError,
    Manifest,
    ModelNotFound,
    Reply,
    ReplyPiece,
    TokenLogprob,
    ToolCall,
    parse_tool_calls,
    tool_call_pieces,
    tool_names,
)

router = APIRouter(tags=["openai"])

SSE = "text/event-stream"


# errors ---------------------------------------------------------------------------


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


def openai_errors(
    route: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Answer the route's APIError and engine errors in OpenAI's shape (the app's handlers give Ollama's)."""

    @functools.wraps(route)
    async def answered(request: Request) -> Response:
        try:
            return await route(request)
        except (APIError, LlamadeckError) as error:
            return as_openai(error)

    return answered


# request fields -------------------------------------------------------------------


def refuse(what: str) -> APIError:
    return APIError(400, f"{what} is not supported yet by llamadeck")


def sampling_options(data: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's sampling fields as the engine's options (validated there: a bad value is a 400)."""
    options: dict[str, Any] = {}
    for name in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
        if data.get(name) is not None:
            options[name] = data[name]
    limit = data.get("max_completion_tokens")
    limit = data.get("max_tokens") if limit is None else limit
    if limit is not None:
        options["num_predict"] = limit
    stop = data.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif stop is not None:
        options["stop"] = stop
    n = data.get("n")
    if n is not None and n != 1:
        raise refuse("n other than 1 (several choices)")
    if data.get("best_of") not in (None, 1):
        raise refuse("best_of")
    return options


def model_field(data: dict[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise APIError(400, "model is required")
    return model


def text_of(content: object, where: str) -> str:
    """A message's content: a string, or a list of text parts (image parts are read by ``images_of``)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                continue
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise refuse(f"{where}: content of type {kind!s:.40}")
            texts.append(str(part.get("text") or ""))
        return "\n".join(texts)
    raise APIError(400, f"{where}.content must be a string or a list of parts")


def images_of(content: object, where: str) -> list[bytes]:
    """The images of a message's ``image_url`` parts: data URLs only (``api.images``)."""
    if not isinstance(content, list):
        return []
    return [
        openai_image_part(part, f"{where}.content[{k}]")
        for k, part in enumerate(content)
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]


def tool_call(call: object) -> dict[str, Any]:
    """An OpenAI tool call (``arguments`` a JSON string) as a chat template takes it (an object)."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise APIError(400, "tool_calls must be a list of {type: function, function: {name, arguments}}")
    function = call["function"]
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # left as the model wrote it
            arguments = json.loads(arguments) if arguments.strip() else {}
    return {"function": {"name": function.get("name"), "arguments": arguments}}


def chat_messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    raw = data.get("messages")
    if not isinstance(raw, list) or not raw:
        raise APIError(400, "messages must be a non-empty list")
    messages = []
    called: dict[str, str] = {}  # tool call id -> the tool's name, for results that give only the id
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise APIError(400, f"{where} must be an object with a role and a content")
        role = message.get("role")
        converted: dict[str, Any] = {
            "role": "system" if role == "developer" else role,
            "content": text_of(message.get("content"), where),
        }
        if images := images_of(message.get("content"), where):
            converted["images"] = images
        if message.get("tool_calls"):
            calls = message["tool_calls"]
            if not isinstance(calls, list):
                raise APIError(400, f"{where}.tool_calls must be a list")
            converted["tool_calls"] = [tool_call(c) for c in calls]
            for call in calls:
                name = call["function"].get("name")
                if isinstance(call.get("id"), str) and isinstance(name, str):
                    called[call["id"]] = name
        if reasoning := reasoning_of(message, where):
            converted["thinking"] = reasoning
        if role == "tool" and isinstance(message.get("name"), str):
            converted["tool_name"] = message["name"]
        elif role == "tool" and message.get("tool_call_id") in called:
            converted["tool_name"] = called[message["tool_call_id"]]
        messages.append(converted)
    return messages


def chat_tools(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = data.get("tools") or None
    choice = tool_choice(data)
    if tools is None or choice == "none":
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise APIError(400, "tools must be a list of objects")
    return tools


def include_usage(data: dict[str, Any]) -> bool:
    stream_options = data.get("stream_options")
    return isinstance(stream_options, dict) and stream_options.get("include_usage") is True


def usage(done: Done) -> dict[str, Any]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": done.cached_tokens},
    }


def finish_reason(done: Done, *, called: bool = False) -> str:
    """``tool_calls`` only where a reply that called a tool ended by itself (as Ollama: never ``length``)."""
    if done.reason == "length":
        return "length"
    return "tool_calls" if called and done.reason == "stop" else "stop"


# streaming -------------------------------------------------------------------------


def sse(payload: dict[str, Any] | str) -> str:
    text = (
        payload
        if isinstance(payload, str)
        else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    )
    return f"data: {text}\n\n"


async def events(
    stream: AsyncIterable[Generation | ReplyPiece],
    chunk: Callable[[str], dict[str, Any]],
    last: Callable[[Done], dict[str, Any]],
    usage_chunk: Callable[[Done], dict[str, Any]] | None,
    call_chunk: Callable[[ToolCall], dict[str, Any]] | None = None,
    reasoning_chunk: Callable[[str], dict[str, Any]] | None = None,
    logprobs: Callable[[tuple[TokenLogprob, ...]], dict[str, Any]] | None = None,
) -> AsyncIterator[str]:
    """OpenAI's SSE stream: a chunk per token, the finish_reason, the usage if asked, ``[DONE]``.

    ``stream`` is the engine's, or its text and tool calls (``tool_call_pieces``),
    each call a chunk of its own. A thinking model's reasoning goes in chunks
    of its own (``reasoning_chunk``), or nowhere where there are none;
    ``logprobs`` renders a Token's log probabilities into its chunk.
    """
    try:
        async for event in stream:
            if isinstance(event, Done):
                yield sse(last(event))
                if usage_chunk is not None:
                    yield sse(usage_chunk(event))
            elif isinstance(event, ToolCall):
                if call_chunk is not None:
                    yield sse(call_chunk(event))
            elif isinstance(event, str):
                yield sse(chunk(event))
            else:
                if event.thinking and reasoning_chunk is not None:
                    yield sse(reasoning_chunk(event.thinking))
                if event.text or not event.thinking:
                    payload = chunk(event.text)
                    if logprobs is not None and event.logprobs:
                        payload["choices"][0]["logprobs"] = logprobs(event.logprobs)
                    yield sse(payload)
    except LlamadeckError as error:
        yield sse(error_body(error))
    yield sse("[DONE]")


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

    with_usage = include_usage(data)
    base = {**head, "object": "chat.completion.chunk"}
    called = False

    def chunk(text: str) -> dict[str, Any]:
        return delta_chunk({"role": "assistant", "content": text})

    def delta_chunk(delta: dict[str, Any]) -> dict[str, Any]:
        return (
            base
            | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}
            | ({"usage": None} if with_usage else {})
        )

    def last(done: Done) -> dict[str, Any]:
        reason = finish_reason(done, called=called)
        choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}
        return base | {"choices": [choice]} | ({"usage": None} if with_usage else {})

    def usage_chunk(done: Done) -> dict[str, Any]:
        return base | {"choices": [], "usage": usage(done)}

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
            usage_chunk if with_usage else None,
            call_chunk,
            reasoning_chunk,
            logprobs.chat,
        ),
        on_close=stream.close,
        media_type=SSE,
    )


def completion_prompt(data: dict[str, Any]) -> str:
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list):
        raise refuse("a prompt that is a list of several prompts or of token ids")
    if not isinstance(prompt, str) or not prompt:
        raise APIError(400, "prompt must be a non-empty string")
    return prompt


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

    with_usage = include_usage(data)

    def chunk(text: str) -> dict[str, Any]:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": None}
        return head | {"choices": [choice]} | ({"usage": None} if with_usage else {})

    def last(done: Done) -> dict[str, Any]:
        choice = {"text": "", "index": 0, "logprobs": None, "finish_reason": finish_reason(done)}
        return head | {"choices": [choice]} | ({"usage": None} if with_usage else {})

    def usage_chunk(done: Done) -> dict[str, Any]:
        return head | {"choices": [], "usage": usage(done)}

    return EventStreamResponse(
        events(stream, chunk, last, usage_chunk if with_usage else None, logprobs=logprobs.Offsets()),
        on_close=stream.close,
        media_type=SSE,
    )


def embedding_inputs(data: dict[str, Any]) -> list[str]:
    value = data.get("input")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise APIError(400, "input must be a string or a non-empty list of strings")
    if not all(isinstance(t, str) for t in value):
        raise refuse("input as token ids")
    return value


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
