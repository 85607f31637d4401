"""How OpenAI's completions answer: server-sent events ended by ``data: [DONE]``, usage, finish reasons.

Shared by ``/v1/chat/completions`` and ``/v1/completions`` (and ``SSE`` by
``/v1/responses``): the routes build the chunks, this turns the engine's
events into the stream around them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from api.openai_errors import error_body
from engine import Done, Generation, LlamadeckError, ReplyPiece, TokenLogprob, ToolCall

SSE = "text/event-stream"


def usage(done: Done) -> dict[str, Any]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": done.cached_tokens},
    }


@dataclass(frozen=True)
class Chunks:
    """What every chunk of one stream carries: ``head`` (id, object, created, model, ...) and, when the
    client asked for ``stream_options.include_usage``, ``usage: null``; the usage itself then comes
    in a chunk of its own, with no choices, after the last."""

    head: dict[str, Any]
    with_usage: bool

    def of(self, choice: dict[str, Any]) -> dict[str, Any]:
        return self.head | {"choices": [choice]} | ({"usage": None} if self.with_usage else {})

    def usage(self, done: Done) -> dict[str, Any]:
        return self.head | {"choices": [], "usage": usage(done)}

    @property
    def usage_chunk(self) -> Callable[[Done], dict[str, Any]] | None:
        """``events``' ``usage_chunk``: None where the client did not ask for the usage."""
        return self.usage if self.with_usage else None


def finish_reason(done: Done, *, called: bool = False) -> str:
    """``tool_calls`` only where a reply that called a tool ended by itself (as Ollama: never ``length``)."""
    if done.reason == "length":
        return "length"
    return "tool_calls" if called and done.reason == "stop" else "stop"


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


__all__ = ["SSE", "Chunks", "events", "finish_reason", "sse", "usage"]
