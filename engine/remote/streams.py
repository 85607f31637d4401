"""Replies streamed from a server, read into the engine's Tokens and Done: Ollama's lines, OpenAI's SSE.

``RemoteEngine`` decides what to ask a server; this reads what comes back,
so the two stream shapes (and the request bodies they answer: chat turns,
OpenAI's option names) sit together, apart from the facade's model methods.
A server that goes away mid-reply raises NetworkError after the tokens it sent.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from engine.cancel import CancelToken
from engine.errors import Cancelled
from engine.events import Done, Generation, Token
from engine.remote.openai_turns import StreamedCalls, ollama_calls_text, openai_messages
from engine.remote.shapes import ollama_done, openai_done, table
from engine.remote.waits import Waits
from engine.remote.wire import Wire
from engine.templates.message import Message

# Ollama option names and what OpenAI-compatible servers call them (top_k, min_p: vLLM's and llama-server's)
_OPENAI_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "num_predict": "max_tokens",
    "stop": "stop",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}

_EFFORTS = {"low": "low", "medium": "medium", "high": "high"}  # Ollama's think -> OpenAI's reasoning_effort


class ReplyStreams:
    """The streamed replies of one server: ``wire`` speaks to it, ``waits`` counts the loads it is doing."""

    def __init__(self, wire: Wire, waits: Waits) -> None:
        self._wire = wire
        self._waits = waits

    def ollama(self, path: str, body: dict[str, Any], cancel: CancelToken) -> Iterator[Generation]:
        started = time.perf_counter()
        wait = self._waits.begin(str(body["model"]))  # until the server's first line: a load, seconds only
        try:
            for line in self._wire.lines("POST", path, body, cancel=cancel):
                self._waits.end(wait)
                if not isinstance(line, dict):
                    continue
                message = table(line.get("message"))
                text = str(message.get("content") or line.get("response") or "")
                text += ollama_calls_text(message.get("tool_calls"))  # as the model's text: see openai_turns
                thinking = str(message.get("thinking") or line.get("thinking") or "")
                if text or thinking:
                    yield Token(text, thinking)
                if line.get("done"):
                    yield ollama_done(line)
                    return
        except Cancelled:
            yield _cancelled(started)
            return
        finally:
            self._waits.end(wait)
        raise self._cut_short()

    def openai_chat(
        self,
        reference: str,
        turns: list[dict[str, Any]],
        options: Mapping[str, object] | None,
        tools: Sequence[Mapping[str, Any]] | None,
        tool_choice: str | Mapping[str, Any] | None,
        cancel: CancelToken,
        think: bool | str | None = None,
    ) -> Iterator[Generation]:
        body: dict[str, Any] = {
            "model": reference,
            "messages": openai_messages(turns),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for name, value in (options or {}).items():
            if name in _OPENAI_OPTIONS and value is not None:
                body[_OPENAI_OPTIONS[name]] = value
        if think is not None and think is not True:  # True: the model's default, as no effort is
            body["reasoning_effort"] = _EFFORTS.get(str(think), "high") if think else "none"
        if tools:
            body["tools"] = list(tools)
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        return self._openai(body, cancel)

    def _openai(self, body: dict[str, Any], cancel: CancelToken) -> Iterator[Generation]:
        started = time.perf_counter()
        first: float | None = None
        reason = ""
        usage: dict[str, Any] = {}
        calls = StreamedCalls(self._wire.name)
        try:
            for item in self._wire.events("/v1/chat/completions", body, cancel=cancel):
                if not isinstance(item, dict):
                    continue
                if isinstance(item.get("usage"), dict):
                    usage = item["usage"]
                for choice in item.get("choices") or []:
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    if isinstance(delta, dict):
                        text = str(delta.get("content") or "")
                        thinking = str(delta.get("reasoning_content") or delta.get("reasoning") or "")
                        if text or thinking:
                            first = first if first is not None else time.perf_counter()
                            yield Token(text, thinking)
                        calls.feed(delta.get("tool_calls"))
                    if isinstance(choice, dict) and choice.get("finish_reason"):
                        reason = str(choice["finish_reason"])
                        if called := calls.text():  # whole now: as the model's text, as a local stream has it
                            yield Token(called)
        except Cancelled:
            yield _cancelled(started)
            return
        if not reason:
            raise self._cut_short()
        yield openai_done(reason, usage, started, first)

    def _cut_short(self) -> Exception:
        from engine.errors import NetworkError

        return NetworkError(f"{self._wire.name} ended the reply before it was done (did the server stop?)")


def _cancelled(started: float) -> Done:
    return Done("cancelled", 0, 0, 0.0, 0.0, 0.0, total_seconds=time.perf_counter() - started)


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def as_turn(message: Mapping[str, Any] | Message) -> dict[str, Any]:
    """A chat turn as Ollama's JSON has it (images as base64)."""
    if isinstance(message, Message):
        turn: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.images:
            turn["images"] = [base64.b64encode(i).decode() for i in message.images]
        if message.tool_calls:
            turn["tool_calls"] = [dict(c) for c in message.tool_calls]
        if message.tool_name:
            turn["tool_name"] = message.tool_name
        if message.thinking:
            turn["thinking"] = message.thinking
        return turn
    turn = dict(message)
    images = turn.get("images")
    if isinstance(images, list | tuple):
        turn["images"] = [as_base64(i) for i in images]
    return turn


def as_base64(image: bytes | str) -> str:
    """An image as Ollama's API takes it: base64 text (already text: as given)."""
    return base64.b64encode(image).decode() if isinstance(image, bytes) else image


__all__ = ["ReplyStreams", "as_base64", "as_turn", "drop_none"]
