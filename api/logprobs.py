"""Log probabilities on the wire: the request fields of each API family, and the shapes they answer in.

- OpenAI's chat: ``logprobs: true`` and ``top_logprobs`` (0-20); answered as
  ``choices[0].logprobs = {"content": [{token, logprob, bytes, top_logprobs}]}``;
- OpenAI's completions: ``logprobs`` (how many alternatives, 0-20); answered in
  the legacy shape (``tokens``, ``token_logprobs``, ``top_logprobs``,
  ``text_offset``) and, as Ollama's layer does, ``content`` as in chat;
- Ollama's ``logprobs: true`` and ``top_logprobs`` on ``/api/generate`` and
  ``/api/chat``: a ``logprobs`` list on each chunk (``api/types.go``).

The engine computes them from the raw logits, only for requests that ask
(``Engine.chat(..., logprobs=n)``); each Token event carries the entries of
the tokens its text completes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fastapi import Request

from api.errors import APIError
from api.streaming import EngineStream, until_disconnected
from engine import Done, Token, TokenLogprob

MAX_TOP = 20


def _top(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOP:
        raise APIError(400, f"{name} must be a whole number from 0 to {MAX_TOP}")
    return value


def chat_request(data: dict[str, Any]) -> int | None:
    """OpenAI chat's and Ollama's ``logprobs`` (a boolean) and ``top_logprobs``: the engine's ``logprobs``."""
    asked, top = data.get("logprobs"), data.get("top_logprobs")
    if asked is None or asked is False:
        if top not in (None, 0):
            raise APIError(400, "top_logprobs needs logprobs: true")
        return None
    if asked is not True:
        raise APIError(400, "logprobs must be true or false")
    return 0 if top is None else _top(top, "top_logprobs")


def completion_request(data: dict[str, Any]) -> int | None:
    """OpenAI completions' ``logprobs``: how many alternatives per token (None: no log probabilities)."""
    value = data.get("logprobs")
    return None if value is None else _top(value, "logprobs")


def entry(logprob: TokenLogprob) -> dict[str, Any]:
    """One token as OpenAI's chat and Ollama write it."""
    found: dict[str, Any] = {"token": logprob.token, "logprob": logprob.logprob, "bytes": list(logprob.bytes)}
    found["top_logprobs"] = [
        {"token": t.token, "logprob": t.logprob, "bytes": list(t.bytes)} for t in logprob.top
    ]
    return found


def chat(entries: Sequence[TokenLogprob]) -> dict[str, Any]:
    return {"content": [entry(e) for e in entries], "refusal": None}


def completion(entries: Sequence[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    """The legacy completions shape; ``offset``: where the first token's text starts in the whole reply."""
    offsets = []
    for logprob in entries:
        offsets.append(offset)
        offset += len(logprob.token)
    return {
        "tokens": [e.token for e in entries],
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [{t.token: t.logprob for t in e.top} for e in entries],
        "text_offset": offsets,
        "content": [entry(e) for e in entries],
    }


class Offsets:
    """Completions' ``text_offset`` across a stream's chunks."""

    def __init__(self) -> None:
        self.at = 0

    def __call__(self, entries: Sequence[TokenLogprob]) -> dict[str, Any]:
        shape = completion(entries, self.at)
        self.at += sum(len(e.token) for e in entries)
        return shape


async def collect(request: Request, stream: EngineStream) -> tuple[Token, Done]:
    """The whole reply as one Token (answer, reasoning, every log probability), and the Done;
    cancelled if the client leaves."""
    watcher = asyncio.create_task(until_disconnected(request, stream.cancel))
    try:
        parts: list[str] = []
        thoughts: list[str] = []
        entries: list[TokenLogprob] = []
        async for event in stream:
            if isinstance(event, Done):
                return Token("".join(parts), "".join(thoughts), tuple(entries)), event
            parts.append(event.text)
            thoughts.append(event.thinking)
            entries.extend(event.logprobs)
        raise RuntimeError("the engine ended a generation without a Done")
    finally:
        watcher.cancel()
