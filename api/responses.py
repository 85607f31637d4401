"""OpenAI's Responses API, ``POST /v1/responses``, on the engine's chat: what Codex-style clients speak.

As Ollama serves it (``openai/responses.go``, ``middleware/openai.go``): the
request becomes a chat (``api.responses_input``), and the answer a
``response`` object whose ``output`` holds the reply's items in order: a
``reasoning`` item for a thinking model's reasoning (its text as the one
``summary_text`` and, as Ollama sends it, in plain text as
``encrypted_content``, which an input ``reasoning`` item brings back), a
``message`` (one ``output_text`` part) for text, a ``function_call`` per tool
call (``call_id``, ``arguments`` a JSON string). ``reasoning.effort`` is the
chat's ``think``: on a model that cannot think, an effort other than
``"none"`` is the 400 Ollama gives. ``usage`` counts ``input_tokens``,
``output_tokens`` (and the cached ones) and ``reasoning_tokens`` (where Ollama
says 0: the pieces of reasoning streamed, one per token except where
llama.cpp's bytes or a tag split across tokens merge into one). A reply cut by
``max_output_tokens`` (or a full context) is ``status: "incomplete"`` with
``incomplete_details.reason: "max_output_tokens"``, as OpenAI answers it
(Ollama says ``completed``); text after a call is a message of its own (Ollama
drops it).

Streamed (``stream: true``), the same items are told as OpenAI's events,
``event: <type>`` / ``data: {...}`` each with its ``sequence_number``:
``response.created``, ``response.in_progress``; per reasoning item
``response.output_item.added``, ``response.reasoning_summary_part.added``,
``response.reasoning_summary_text.delta``…, ``.done``,
``response.reasoning_summary_part.done``, ``response.output_item.done`` (Ollama
sends no summary part events; OpenAI does); per message
``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta``…, ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done``; per call
``response.output_item.added``, ``response.function_call_arguments.delta`` and
``.done``, ``response.output_item.done``; then ``response.completed`` (or
``response.incomplete``; ``response.failed`` when generation fails half-way).

    client.responses.create(model="gemma3", input="Hi", max_output_tokens=64).output_text
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.deps import engine_of
from api.errors import read_json
from api.openai_errors import openai_errors
from api.openai_request import model_field
from api.openai_stream import SSE
from api.responses_input import chat_of, text_format
from api.schema import BOOLEAN, COUNT, NAME, NUMBER, STRING, json_body
from api.streaming import EventStreamResponse, open_stream, watched
from engine import (
    Done,
    Generation,
    LlamadeckError,
    ReplyPiece,
    Token,
    ToolCall,
    tool_call_pieces,
    tool_names,
)

router = APIRouter(tags=["openai"])


def shell(data: dict[str, Any], model: str) -> dict[str, Any]:
    """The response object without its outcome: the request's settings echoed, as Ollama echoes them."""
    reasoning = data.get("reasoning")
    metadata = data.get("metadata")
    text: dict[str, Any] = {"format": text_format(data)}
    if isinstance(data.get("text"), dict) and isinstance(data["text"].get("verbosity"), str):
        text["verbosity"] = data["text"]["verbosity"]
    return {
        "id": f"resp_{secrets.token_hex(12)}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": data.get("instructions") or None,
        "model": model,
        "output": [],
        "parallel_tool_calls": data.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "reasoning": (
            {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
            if isinstance(reasoning, dict)
            else None
        ),
        "store": False,  # nothing is kept (as Ollama)
        "background": False,
        "service_tier": "default",
        "temperature": data.get("temperature"),  # None: the model's own
        "top_p": data.get("top_p"),
        "max_output_tokens": data.get("max_output_tokens"),
        "max_tool_calls": None,
        "text": text,
        "tool_choice": data.get("tool_choice") or "auto",
        "tools": data.get("tools") or [],
        "top_logprobs": 0,
        "truncation": data.get("truncation") or "disabled",
        "metadata": metadata if isinstance(metadata, dict) else {},
        "usage": None,
    }


def usage(done: Done, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": done.prompt_tokens,
        "input_tokens_details": {"cached_tokens": done.cached_tokens},
        "output_tokens": done.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": min(reasoning_tokens, done.completion_tokens)},
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def summary(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


class Output:
    """A response's output items as the reply makes them, and the stream events that tell each step.

    Every method returns the events (SSE text) of its step; an answer that is
    not streamed ignores them and sends ``response`` once ``finish`` is done.
    """

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.items: list[dict[str, Any]] = []  # finished items, in order
        self._sequence = 0
        self._message: dict[str, Any] | None = None  # the message being written
        self._text: list[str] = []
        self._reasoning: str | None = None  # the open reasoning item's id
        self._thinking: list[str] = []
        self.reasoning_tokens = 0  # pieces of reasoning streamed: one per token, but where tokens merge

    def event(self, kind: str, **fields: Any) -> str:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return f"event: {kind}\ndata: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"

    def start(self) -> list[str]:
        return [
            self.event("response.created", response=self.snapshot()),
            self.event("response.in_progress", response=self.snapshot()),
        ]

    def snapshot(self) -> dict[str, Any]:
        return {**self.response, "output": list(self.items)}

    def feed(self, piece: Token | ReplyPiece) -> list[str]:
        """A piece of the reply: a Token (its reasoning first), a run of answer text, or a call."""
        if isinstance(piece, ToolCall):
            return self.call(piece)
        if isinstance(piece, str):
            return self.text(piece)
        return self.reasoning(piece.thinking) + self.text(piece.text)

    def reasoning(self, piece: str) -> list[str]:
        """Reasoning, as Ollama's ``processThinking`` tells it: one ``reasoning`` item whose summary grows."""
        if not piece:
            return []
        self.reasoning_tokens += 1
        events = []
        if self._reasoning is None:
            events = self._close_message("completed")
            self._reasoning = f"rs_{secrets.token_hex(12)}"
            where = {"item_id": self._reasoning, "output_index": len(self.items), "summary_index": 0}
            item = {"id": self._reasoning, "type": "reasoning", "summary": []}
            events += [
                self.event("response.output_item.added", output_index=len(self.items), item=item),
                self.event("response.reasoning_summary_part.added", **where, part=summary("")),
            ]
        self._thinking.append(piece)
        where = {"item_id": self._reasoning, "output_index": len(self.items), "summary_index": 0}
        return [*events, self.event("response.reasoning_summary_text.delta", **where, delta=piece)]

    def _close_reasoning(self) -> list[str]:
        if self._reasoning is None:
            return []
        thinking = "".join(self._thinking)
        item = {
            "id": self._reasoning,
            "type": "reasoning",
            "summary": [summary(thinking)],
            "encrypted_content": thinking,  # plain text, as Ollama sends it: input items bring it back
        }
        where = {"item_id": item["id"], "output_index": len(self.items), "summary_index": 0}
        events = [
            self.event("response.reasoning_summary_text.done", **where, text=thinking),
            self.event("response.reasoning_summary_part.done", **where, part=summary(thinking)),
            self.event("response.output_item.done", output_index=len(self.items), item=item),
        ]
        self.items.append(item)
        self._reasoning, self._thinking = None, []
        return events

    def text(self, piece: str) -> list[str]:
        if not piece:
            return []
        events = [] if self._message is not None else [*self._close_reasoning(), *self._open_message()]
        assert self._message is not None
        self._text.append(piece)
        where = {"item_id": self._message["id"], "output_index": len(self.items), "content_index": 0}
        return [*events, self.event("response.output_text.delta", **where, delta=piece, logprobs=[])]

    def _open_message(self) -> list[str]:
        self._message = {
            "id": f"msg_{secrets.token_hex(12)}",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        index = len(self.items)
        return [
            self.event("response.output_item.added", output_index=index, item=dict(self._message)),
            self.event(
                "response.content_part.added",
                item_id=self._message["id"],
                output_index=index,
                content_index=0,
                part=text_part(""),
            ),
        ]

    def _close_message(self, status: str) -> list[str]:
        if self._message is None:
            return []
        text, part = "".join(self._text), text_part("".join(self._text))
        item = {**self._message, "status": status, "content": [part]}
        where = {"item_id": item["id"], "output_index": len(self.items), "content_index": 0}
        events = [
            self.event("response.output_text.done", **where, text=text, logprobs=[]),
            self.event("response.content_part.done", **where, part=part),
            self.event("response.output_item.done", output_index=len(self.items), item=item),
        ]
        self.items.append(item)
        self._message, self._text = None, []
        return events

    def call(self, call: ToolCall) -> list[str]:
        events = [*self._close_reasoning(), *self._close_message("completed")]
        arguments = call.openai()["function"]["arguments"]
        item = {
            "id": f"fc_{secrets.token_hex(12)}",
            "type": "function_call",
            "status": "completed",
            "call_id": call.id,
            "name": call.name,
            "arguments": arguments,
        }
        index = len(self.items)
        where = {"item_id": item["id"], "output_index": index}
        events += [
            self.event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            ),
            self.event("response.function_call_arguments.delta", **where, delta=arguments),
            self.event("response.function_call_arguments.done", **where, arguments=arguments),
            self.event("response.output_item.done", output_index=index, item=item),
        ]
        self.items.append(item)
        return events

    def finish(self, done: Done) -> list[str]:
        """The end: the open message closed (an empty one if nothing was said), then the outcome."""
        cut = done.reason == "length"
        events = self._close_reasoning()
        events += [] if self.items or self._message else self._open_message()
        events += self._close_message("incomplete" if cut else "completed")
        self.response |= {
            "status": "incomplete" if cut else "completed",
            "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
            "completed_at": None if cut else int(time.time()),
            "output": list(self.items),
            "usage": usage(done, self.reasoning_tokens),
        }
        kind = "response.incomplete" if cut else "response.completed"
        return [*events, self.event(kind, response=self.response)]

    def failed(self, error: LlamadeckError) -> list[str]:
        self.response |= {
            "status": "failed",
            "error": {"code": "server_error", "message": str(error) or type(error).__name__},
            "output": list(self.items),
        }
        return [self.event("response.failed", response=self.response)]


async def events(output: Output, stream: AsyncIterable[Generation | ReplyPiece]) -> AsyncIterator[str]:
    for event in output.start():
        yield event
    try:
        async for piece in stream:
            for event in output.finish(piece) if isinstance(piece, Done) else output.feed(piece):
                yield event
    except LlamadeckError as error:
        yield output.failed(error)[0]


TOOLS: dict[str, Any] = {"type": "array", "items": {"type": "object"}}


@router.post(
    "/v1/responses",
    openapi_extra=json_body(
        ["model", "input"],
        model=NAME,
        input={"anyOf": [STRING, {"type": "array", "items": {"type": "object"}}]},
        instructions=STRING,
        max_output_tokens=COUNT,
        temperature=NUMBER,
        top_p=NUMBER,
        tools=TOOLS,
        stream=BOOLEAN,
        store=BOOLEAN,
    ),
)
@openai_errors
async def create_response(request: Request) -> Response:
    data = await read_json(request)
    model = model_field(data)
    chat = chat_of(data)
    engine = engine_of(request)
    stream = await open_stream(
        request,
        lambda cancel: engine.start_chat(
            model,
            chat.messages,
            options=chat.options,
            tools=chat.tools,
            think=chat.think,
            format=chat.format,
            tool_choice=chat.tool_choice,
            cancel=cancel,
        ),
    )
    output = Output(shell(data, model))
    names = tool_names(chat.tools)
    pieces = tool_call_pieces(stream, names) if names else stream
    if data.get("stream") is not True:
        async for piece in watched(request, stream, pieces):
            if isinstance(piece, Done):
                output.finish(piece)
                return JSONResponse(output.response)
            output.feed(piece)
        raise RuntimeError("the engine ended a generation without a Done")
    return EventStreamResponse(events(output, pieces), on_close=stream.close, media_type=SSE)
