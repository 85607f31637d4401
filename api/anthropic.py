"""Anthropic's Messages API: ``POST /v1/messages``, so Claude-Code-style clients drive llamadeck.

The shapes are Anthropic's, as Ollama's compatibility layer (``anthropic/``,
``middleware/anthropic.go``) serves them, on the same ``Engine.start_chat``
as every chat route. The request is read by ``api.anthropic_request``. The
answer is a message: ``content`` blocks in the order the model said them (a
``thinking`` block with a thinking model's reasoning, ``text``, then
``tool_use`` for each call the model made, parsed by the engine's tool-call
parser), a ``stop_reason`` (``end_turn``, ``max_tokens``, ``tool_use``, or
``stop_sequence`` with the ``stop_sequence`` met, which Ollama never tells)
and ``usage``, whose ``cache_read_input_tokens`` are the prompt tokens the
engine reused from its KV cache (``input_tokens`` the rest, as Anthropic
counts them). Streamed, it is Anthropic's server-sent events:

    message_start, ping, content_block_start, content_block_delta..., content_block_stop,
    ... (a block per run of thinking or text, or per call), message_delta (stop_reason, usage), message_stop

A thinking block starts as ``{"type": "thinking", "thinking": "", "signature":
""}`` and grows by ``thinking_delta``s; its signature stays empty (Ollama
signs nothing, so no ``signature_delta`` is sent). Thinking that a model
cannot do is not refused here, as Ollama does for this API (``can_think``):
Claude Code asks for it in every request.

A failure before the first token is a status code; one after it is an
``error`` event (Ollama has none). Errors are ``{"type": "error", "error":
{"type", "message"}}`` with the status of the engine's error family.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.anthropic_request import read_messages_request
from api.deps import engine_of
from api.error_shapes import anthropic_body
from api.errors import APIError, answered_in, anthropic_error, read_json, status_of
from api.schema import BOOLEAN, COUNT, NAME, STRING, json_body
from api.streaming import EngineStream, EventStreamResponse, open_stream, watched
from engine import (
    Done,
    Engine,
    Generation,
    LlamadeckError,
    ReplyPiece,
    Token,
    ToolCall,
    quoted,
    thinks,
    tool_call_pieces,
    tool_names,
)

router = APIRouter(tags=["anthropic"])
_log = logging.getLogger("llamadeck.api")


# errors ---------------------------------------------------------------------------


def as_anthropic(error: APIError | LlamadeckError) -> JSONResponse:
    if isinstance(error, APIError):
        return anthropic_error(error.status, error.message)
    return anthropic_error(status_of(error), str(error) or type(error).__name__)


anthropic_errors = answered_in(as_anthropic)  # Anthropic's shape for a route's APIError and engine errors


# the message --------------------------------------------------------------------------


def usage(done: Done) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` are the prompt tokens evaluated, cache reads counted apart."""
    cached = min(done.cached_tokens, done.prompt_tokens)
    return {
        "input_tokens": done.prompt_tokens - cached,
        "output_tokens": done.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def stop_reason(done: Done, *, called: bool) -> tuple[str, str | None]:
    """``stop_reason`` and ``stop_sequence``: a reply cut short is ``max_tokens`` even after a call."""
    if done.reason == "length":
        return "max_tokens", None
    if called:
        return "tool_use", None
    if done.stop_sequence is not None:
        return "stop_sequence", done.stop_sequence
    return "end_turn", None


def message(head: dict[str, Any], blocks: Blocks, done: Done) -> dict[str, Any]:
    reason, sequence = stop_reason(done, called=blocks.called)
    return head | {
        "content": blocks.content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(done),
    }


# streaming ----------------------------------------------------------------------------


def sse(kind: str, payload: dict[str, Any]) -> str:
    """One server-sent event as Anthropic sends them: its type twice, as the event name and in the data."""
    data = json.dumps({"type": kind, **payload}, ensure_ascii=False, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n"


class Blocks:
    """A message's content blocks as the reply makes them, and the stream events that tell each step.

    One block is open at a time: a ``thinking`` block while the model reasons,
    a ``text`` block while it answers; each call is a ``tool_use`` block of its
    own. Every method returns its events (SSE text) and keeps the blocks in
    ``content``; an answer that is not streamed ignores the events. With
    ``omit_thinking`` (``thinking.display: "omitted"``) thinking blocks stay
    empty and no ``thinking_delta`` is sent.
    """

    def __init__(self, *, omit_thinking: bool = False) -> None:
        self.content: list[dict[str, Any]] = []  # the blocks so far, the open one last
        self.open: str | None = None  # the open block's type
        self.called = False
        self.omit_thinking = omit_thinking

    @property
    def index(self) -> int:
        """The open block's index, or the next one's."""
        return len(self.content) - 1 if self.open else len(self.content)

    def feed(self, piece: Token | ReplyPiece) -> list[str]:
        """A piece of the reply: a Token (its reasoning first), a run of answer text, or a call."""
        if isinstance(piece, ToolCall):
            return self.tool_use(piece)
        if isinstance(piece, str):
            return self.text(piece)
        return self.thinking(piece.thinking) + self.text(piece.text)

    def thinking(self, text: str) -> list[str]:
        if not text:
            return []
        events = (
            []
            if self.open == "thinking"
            else self._start({"type": "thinking", "thinking": "", "signature": ""})
        )
        if self.omit_thinking:
            return events
        self.content[-1]["thinking"] += text
        delta = {"type": "thinking_delta", "thinking": text}
        return [*events, sse("content_block_delta", {"index": self.index, "delta": delta})]

    def text(self, text: str) -> list[str]:
        if not text:
            return []
        events = [] if self.open == "text" else self._start({"type": "text", "text": ""})
        self.content[-1]["text"] += text
        delta = {"type": "text_delta", "text": text}
        return [*events, sse("content_block_delta", {"index": self.index, "delta": delta})]

    def tool_use(self, call: ToolCall) -> list[str]:
        self.called = True
        events = self._start({"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
        self.content[-1]["input"] = call.arguments
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        delta = {"type": "input_json_delta", "partial_json": arguments}
        return [*events, sse("content_block_delta", {"index": self.index, "delta": delta}), *self.close()]

    def close(self) -> list[str]:
        """Close the open block, if any."""
        if self.open is None:
            return []
        self.open = None
        return [sse("content_block_stop", {"index": len(self.content) - 1})]

    def _start(self, block: dict[str, Any]) -> list[str]:
        events = self.close()
        self.open = block["type"]
        self.content.append(dict(block))
        return [*events, sse("content_block_start", {"index": self.index, "content_block": block})]


async def events(
    head: dict[str, Any],
    prompt_tokens: int,
    pieces: AsyncIterable[Generation | ReplyPiece],
    *,
    omit_thinking: bool = False,
) -> AsyncIterator[str]:
    """The message as Anthropic streams it; an engine error after the first token is an ``error`` event."""
    start = head | {"content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {"input_tokens": prompt_tokens, "output_tokens": 0}  # the final split comes at the end
    yield sse("message_start", {"message": start})
    yield sse("ping", {})
    blocks = Blocks(omit_thinking=omit_thinking)
    try:
        async for piece in pieces:
            if isinstance(piece, Done):
                for event in blocks.close():
                    yield event
                reason, sequence = stop_reason(piece, called=blocks.called)
                delta = {"stop_reason": reason, "stop_sequence": sequence}
                yield sse("message_delta", {"delta": delta, "usage": usage(piece)})
                yield sse("message_stop", {})
            else:
                for event in blocks.feed(piece):
                    yield event
    except LlamadeckError as error:
        body = anthropic_body(status_of(error), str(error) or type(error).__name__)
        yield sse("error", {"error": body["error"]})


def can_think(engine: Engine, model: str, think: bool | str | None) -> bool | str | None:
    """``think`` relaxed as Ollama relaxes it for this API: a model that cannot think is not asked to.

    Claude Code sends ``thinking`` with every request, so Ollama drops a true
    ``think`` for such a model (with a warning in its log) instead of the
    400 its own routes answer. Runs where the chat starts (a worker thread).
    """
    if not think or thinks(engine.resolve(model)):
        return think
    _log.warning("%s does not support thinking: answering without it", quoted(model))
    return None


# the route ----------------------------------------------------------------------------

TEXT_BLOCK: dict[str, Any] = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"enum": ["text"]}, "text": STRING},
}
CONTENT: dict[str, Any] = {"anyOf": [STRING, {"type": "array", "items": TEXT_BLOCK}]}
MESSAGES: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {"role": {"enum": ["user", "assistant"]}, "content": CONTENT},
    },
}
TOOL: dict[str, Any] = {
    "type": "object",
    "required": ["name", "input_schema"],
    "properties": {"name": NAME, "description": STRING, "input_schema": {"type": "object"}},
}


@router.post(
    "/v1/messages",
    openapi_extra=json_body(
        ["model", "max_tokens", "messages"],
        model=NAME,
        max_tokens=COUNT,
        messages=MESSAGES,
        system=CONTENT,
        stream=BOOLEAN,
        temperature={"type": "number", "minimum": 0, "maximum": 1},
        top_p={"type": "number", "minimum": 0, "maximum": 1},
        top_k={"type": "integer", "minimum": 0},
        stop_sequences={"type": "array", "maxItems": 8, "items": {"type": "string", "minLength": 1}},
        tools={"type": "array", "maxItems": 8, "items": TOOL},
        tool_choice={  # "tool" too, with the name of one of the tools
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": ["auto", "any", "none"]}},
        },
        thinking={
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"enum": ["enabled", "adaptive", "disabled", "between_tools"]},
                "budget_tokens": {"type": "integer", "minimum": 0},
                "display": {"enum": ["summarized", "omitted"]},
            },
        },
        output_config={
            "type": "object",
            "properties": {"effort": {"enum": ["low", "medium", "high", "xhigh", "max"]}},
        },
        metadata={"type": "object"},
    ),
)
@anthropic_errors
async def messages(request: Request) -> Response:
    chat = read_messages_request(await read_json(request))
    engine = engine_of(request)
    stream: EngineStream = await open_stream(
        request,
        lambda cancel: engine.start_chat(
            chat.model,
            chat.messages,
            options=chat.options,
            tools=chat.tools,
            think=can_think(engine, chat.model, chat.think),
            format=chat.format,
            tool_choice=chat.tool_choice,
            cancel=cancel,
        ),
    )
    head = {"id": f"msg_{secrets.token_hex(12)}", "type": "message", "role": "assistant", "model": chat.model}
    names = tool_names(chat.tools)
    pieces = tool_call_pieces(stream, names) if names else stream
    if not chat.stream:
        blocks = Blocks(omit_thinking=chat.omit_thinking)
        async for piece in watched(request, stream, pieces):
            if isinstance(piece, Done):
                blocks.close()
                return JSONResponse(message(head, blocks, piece))
            blocks.feed(piece)
        raise RuntimeError("the engine ended a generation without a Done")
    return EventStreamResponse(
        events(head, stream.prompt_tokens, pieces, omit_thinking=chat.omit_thinking),
        on_close=stream.close,
        media_type="text/event-stream",
    )
