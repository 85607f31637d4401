"""Ollama's generation routes: ``/api/generate`` and ``/api/chat`` (embeddings are in ``api.embeddings``).

The JSON shapes are Ollama's (``api/types.go``): NDJSON chunks
``{"model", "created_at", "response" | "message", "done": false}`` and a final
object with ``done_reason`` and the durations in nanoseconds; ``"stream":
false`` answers with one object. Every error a client can cause is a status
code before the first byte of a stream (see ``api.streaming``); a failure
during generation ends the stream with an ``{"error": ...}`` line, as Ollama does.

A thinking model's reasoning comes apart from its answer, in ``thinking``
(generate) or ``message.thinking`` (chat), as ``think`` asks (``api.ollama_fields``);
``suffix`` fills in the middle; ``context`` is returned and accepted as Ollama still does.

A chat with ``tools`` answers the model's tool calls as ``message.tool_calls``
(``engine.runtime.toolcalls`` parses them out of the text; streamed, each call comes in
a chunk of its own with empty content); history may carry calls in Ollama's
shape or OpenAI's (arguments a JSON string).

``format`` (``"json"`` or a JSON schema) constrains the reply with a grammar
(``api.structured``); ``logprobs``/``top_logprobs`` come from the engine's step
logits (``api.logprobs``). What llamadeck cannot do yet is refused with a 400
that says so (``images``, ``template``), never ignored.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api import logprobs
from api.deps import engine_of
from api.errors import APIError, bool_field, model_errors, read_json, string_field
from api.images import ollama_images
from api.ollama_fields import generate_fields, message, think_field, with_thinking
from api.schema import BOOLEAN, KEEP_ALIVE, MESSAGES, NAME, OPTIONS, STRING, THINK, json_body
from api.streaming import EngineStream, EventStreamResponse, open_stream
from api.structured import FORMAT, ollama_format
from engine import (
    CancelToken,
    Done,
    Engine,
    LlamadeckError,
    Reply,
    Token,
    ToolCall,
    as_template_call,
    parse_keep_alive,
    parse_tool_calls,
    request_options,
    tool_call_pieces,
    tool_names,
)

router = APIRouter(tags=["generate"])

NS = 1_000_000_000
NDJSON = "application/x-ndjson"


# request fields ------------------------------------------------------------------


def options_field(data: dict[str, Any]) -> dict[str, Any] | None:
    """The request's ``options`` as Ollama takes them: nulls skipped, unknown names logged and ignored."""
    options = data.get("options")
    if options is None:
        return None
    if not isinstance(options, dict):
        raise APIError(400, "options must be an object of name: value")
    return request_options(options)


def refuse_unsupported(data: dict[str, Any], *names: str) -> None:
    """A 400 for fields llamadeck cannot honour yet, rather than an answer that silently ignores them."""
    for name in names:
        value = data.get(name)
        if value is None or value is False or value in ("", [], {}):
            continue
        what = {
            "format": "format (JSON mode and structured outputs)",
            "template": "a template override",
        }.get(name, name)
        raise APIError(400, f"{what} is not supported yet by llamadeck")


def created_at() -> str:
    """Ollama's RFC 3339 time with the zone as ``Z``."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def ns(seconds: float) -> int:
    return max(int(seconds * NS), 0)


def final_fields(done: Done) -> dict[str, Any]:
    """The figures on Ollama's last object, durations in nanoseconds."""
    return {
        "done": True,
        "done_reason": done.reason,
        "total_duration": ns(done.total_seconds),
        "load_duration": ns(done.load_seconds),
        "prompt_eval_count": done.prompt_tokens,
        "prompt_eval_duration": ns(done.prompt_seconds),
        "eval_count": done.completion_tokens,
        "eval_duration": ns(done.generate_seconds),
    }


# answering -------------------------------------------------------------------------


async def start(request: Request, model: str, run: Callable[[CancelToken], Reply]) -> EngineStream:
    """The generation started and its first event here, or the APIError/engine error to answer with."""
    with model_errors(model):
        return await open_stream(request, run)


def line(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n"


async def ndjson(
    stream: EngineStream, chunk: Callable[[Token], dict[str, Any]], final: Callable[[Done], dict[str, Any]]
) -> AsyncIterator[str]:
    """Ollama's stream: one line per token, the final figures, or an error line if generation fails."""
    try:
        async for event in stream:
            if isinstance(event, Done):
                yield line(final(event))
            elif event.logprobs:
                yield line(chunk(event) | {"logprobs": [logprobs.entry(e) for e in event.logprobs]})
            else:
                yield line(chunk(event))
    except LlamadeckError as error:
        yield line({"error": str(error) or type(error).__name__})


async def answer(
    request: Request,
    stream: EngineStream,
    streaming: bool,
    chunk: Callable[[Token], dict[str, Any]],
    final: Callable[[Done], dict[str, Any]],
    whole: Callable[[Token, Done], dict[str, Any]],
) -> Response:
    if streaming:
        return EventStreamResponse(ndjson(stream, chunk, final), on_close=stream.close, media_type=NDJSON)
    reply, done = await logprobs.collect(request, stream)
    answered = whole(reply, done)
    if reply.logprobs:
        answered |= {"logprobs": [logprobs.entry(e) for e in reply.logprobs]}
    return JSONResponse(answered)


@dataclass(frozen=True)
class RunFields:
    """The fields ``/api/generate`` and ``/api/chat`` read alike, after their own."""

    streaming: bool
    options: dict[str, Any] | None
    keep_alive: float | None


def run_fields(data: dict[str, Any]) -> RunFields:
    return RunFields(
        bool_field(data, "stream", True), options_field(data), parse_keep_alive(data.get("keep_alive"))
    )


async def load_or_unload(engine: Engine, model: str, kind: str, asked: RunFields) -> JSONResponse:
    """Ollama's idioms for an empty prompt (or no messages): with ``keep_alive: 0`` the model is
    unloaded, else it is loaded; either answers done, with no reply."""
    with model_errors(model):
        if asked.keep_alive == 0:
            await anyio.to_thread.run_sync(engine.unload, model)
            figures: dict[str, Any] = {"done": True, "done_reason": "unload"}
        else:
            seconds = await anyio.to_thread.run_sync(
                lambda: engine.load(model, options=asked.options, keep_alive=asked.keep_alive)
            )
            nanoseconds = int(seconds * 1e9)
            figures = {"done": True, "done_reason": "load"}
            figures |= {"total_duration": nanoseconds, "load_duration": nanoseconds}
    reply: dict[str, Any] = {"model": model, "created_at": created_at()}
    reply |= {"response": ""} if kind == "generate" else {"message": {"role": "assistant", "content": ""}}
    return JSONResponse(reply | figures)


# routes ----------------------------------------------------------------------------


@router.post(
    "/api/generate",
    openapi_extra=json_body(
        ["model"],
        model=NAME,
        prompt=STRING,
        system=STRING,
        suffix=STRING,
        think=THINK,
        format=FORMAT,
        logprobs=BOOLEAN,
        top_logprobs={"type": "integer", "minimum": 0, "maximum": 20},
        context={"type": "array", "items": {"type": "integer", "minimum": 0}},
        raw=BOOLEAN,
        stream=BOOLEAN,
        options=OPTIONS,
        keep_alive=KEEP_ALIVE,
    ),
)
async def generate(request: Request) -> Response:
    data = await read_json(request)
    model = string_field(data, "model")
    prompt = data.get("prompt") or ""
    system = data.get("system") or ""
    if not isinstance(prompt, str) or not isinstance(system, str):
        raise APIError(400, "prompt and system must be strings")
    refuse_unsupported(data, "template")
    images = ollama_images(data.get("images"))
    think, suffix, context = generate_fields(data)
    format = ollama_format(data)
    top = logprobs.chat_request(data)
    raw = bool_field(data, "raw", False)
    asked = run_fields(data)
    engine = engine_of(request)
    if not prompt:
        return await load_or_unload(engine, model, "generate", asked)

    def run(cancel: CancelToken) -> Reply:
        # raw mode skips the template, and with it the system prompt (as Ollama)
        return engine.start_generate(
            model,
            prompt,
            raw=True if raw else None,
            options=asked.options,
            keep_alive=asked.keep_alive,
            cancel=cancel,
            system=None if raw else system,
            think=think,
            suffix=suffix,
            context=context,
            keep_context=not raw,  # Ollama returns the conversation's tokens unless raw
            format=format,
            logprobs=top,
            images=images,
        )

    stream = await start(request, model, run)

    def chunk(token: Token) -> dict[str, Any]:
        reply = {"model": model, "created_at": created_at(), "response": token.text}
        return with_thinking(reply, token.thinking) | {"done": False}

    def final(done: Done) -> dict[str, Any]:
        reply = {"model": model, "created_at": created_at(), "response": ""} | final_fields(done)
        return reply | ({"context": list(done.context)} if done.context is not None else {})

    def whole(token: Token, done: Done) -> dict[str, Any]:
        return final(done) | with_thinking({"response": token.text}, token.thinking)

    return await answer(request, stream, asked.streaming, chunk, final, whole)


@router.post(
    "/api/chat",
    openapi_extra=json_body(
        ["model"],
        model=NAME,
        messages=MESSAGES,
        tools={"type": "array", "items": {"type": "object"}},
        think=THINK,
        format=FORMAT,
        logprobs=BOOLEAN,
        top_logprobs={"type": "integer", "minimum": 0, "maximum": 20},
        stream=BOOLEAN,
        options=OPTIONS,
        keep_alive=KEEP_ALIVE,
    ),
)
async def chat(request: Request) -> Response:
    data = await read_json(request)
    model = string_field(data, "model")
    messages = data.get("messages") or []
    if not isinstance(messages, list):
        raise APIError(400, "messages must be a list of {role, content} objects")
    for i, each in enumerate(messages):
        if isinstance(each, dict) and each.get("images") is not None:
            each["images"] = ollama_images(each["images"], f"messages[{i}].images")
    tools = data.get("tools") or None
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise APIError(400, "tools must be a list of objects")
    messages = [with_template_calls(each) for each in messages]
    think = think_field(data)
    format = ollama_format(data)
    top = logprobs.chat_request(data)
    asked = run_fields(data)
    engine = engine_of(request)
    if not messages:
        return await load_or_unload(engine, model, "chat", asked)

    def run(cancel: CancelToken) -> Reply:
        return engine.start_chat(
            model,
            messages,
            options=asked.options,
            tools=tools,
            think=think,
            format=format,
            logprobs=top,
            keep_alive=asked.keep_alive,
            cancel=cancel,
        )

    stream = await start(request, model, run)

    def chunk(token: Token) -> dict[str, Any]:
        reply = message(token.text, token.thinking)
        return {"model": model, "created_at": created_at(), "message": reply, "done": False}

    def final(done: Done) -> dict[str, Any]:
        return {"model": model, "created_at": created_at(), "message": message("")} | final_fields(done)

    names = tool_names(tools)
    if not names:

        def whole(token: Token, done: Done) -> dict[str, Any]:
            return final(done) | {"message": message(token.text, token.thinking)}

        return await answer(request, stream, asked.streaming, chunk, final, whole)

    if not asked.streaming:
        whole_reply, done = await logprobs.collect(request, stream)
        content, calls = parse_tool_calls(names, whole_reply.text)
        said = message(content, whole_reply.thinking, calls)
        reply = {"model": model, "created_at": created_at(), "message": said}
        return JSONResponse(reply | final_fields(done))

    async def lines() -> AsyncIterator[str]:
        """As ``ndjson``, with each tool call in a chunk of its own whose content is empty (as Ollama)."""
        try:
            async for piece in tool_call_pieces(stream, names):
                if isinstance(piece, Done):
                    yield line(final(piece))
                elif isinstance(piece, ToolCall):
                    yield line(chunk(Token("")) | {"message": message("", calls=[piece])})
                else:
                    yield line(chunk(piece if isinstance(piece, Token) else Token(piece)))
        except LlamadeckError as error:
            yield line({"error": str(error) or type(error).__name__})

    return EventStreamResponse(lines(), on_close=stream.close, media_type=NDJSON)


def with_template_calls(message: object) -> object:
    """A history message with its tool calls' arguments as objects, whichever shape the client sent."""
    if isinstance(message, dict) and isinstance(message.get("tool_calls"), list):
        return message | {"tool_calls": [as_template_call(c) for c in message["tool_calls"]]}
    return message
