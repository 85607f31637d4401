"""The bridge between the engine's replies and the HTTP event loop.

A generation starts on a worker thread (``Engine.start_chat`` and
``start_generate`` block while they resolve the model, load it, fit and
submit the prompt); then its tokens come to the event loop straight from the
engine's scheduler thread (``async for`` over the ``Reply``): one thread
handoff per token, no thread per request and no lock in the API. Requests
never wait on each other here: the scheduler decodes concurrent streams
together.

The first event is awaited before any response starts, so every error a
client can cause (unknown model, bad option, a prompt that cannot fit, a
model that does not load) becomes a proper status code instead of an error
half-way through a 200. A client that goes away cancels its ``CancelToken``:
the scheduler frees the slot at its next step.

    stream = await open_stream(request, lambda cancel: engine.start_chat(model, messages, cancel=cancel))
    async for event in stream: ...          # Token..., then one Done
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from engine import CancelToken, Done, Generation, Reply

T = TypeVar("T")


class EngineStream:
    """A running generation: its events in order, then the end; ``cancel`` stops it."""

    def __init__(
        self, reply: Reply, events: AsyncIterator[Generation], first: Generation, cancel: CancelToken
    ) -> None:
        self._reply = reply
        self._events = events
        self._first: Generation | None = first
        self.cancel = cancel
        self.finished = isinstance(first, Done)  # the Done was handed out

    @property
    def prompt_tokens(self) -> int:
        """The prompt's length in tokens, known before the Done (which also says how many were cached)."""
        return self._reply.prompt_tokens

    def close(self) -> None:
        """Stop the generation unless it already ended (the client went away), and let go of the model."""
        if not self.finished:
            self.cancel.cancel("the client went away")
        self._reply.close_soon()

    async def __aiter__(self) -> AsyncIterator[Generation]:
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            if not self.finished:
                async for event in self._events:
                    self.finished = isinstance(event, Done)
                    yield event
        finally:
            self.close()


async def open_stream(request: Request, start: Callable[[CancelToken], Reply]) -> EngineStream:
    """Run ``start(cancel)`` on a worker thread; return once the reply's first event is here.

    Raises what the call or the first event raised (the engine's errors), so
    the caller can answer with a status code before streaming anything. A
    client that disconnects meanwhile (its request queued for a slot, its
    model loading) cancels it: it is never admitted after it left.
    """
    cancel = CancelToken()
    watcher = asyncio.create_task(until_disconnected(request, cancel))
    try:
        return await _first_event(start, cancel)
    finally:
        watcher.cancel()


async def _first_event(start: Callable[[CancelToken], Reply], cancel: CancelToken) -> EngineStream:
    starting = asyncio.ensure_future(anyio.to_thread.run_sync(start, cancel))
    try:
        reply = await asyncio.shield(starting)  # a load is not abandoned half-way: it finishes, then closes
    except BaseException:
        cancel.cancel("the client went away")
        starting.add_done_callback(_close_started)
        raise
    events = aiter(reply)
    try:
        first = await anext(events)
    except StopAsyncIteration:  # cannot happen: the engine always ends with a Done
        raise RuntimeError("the engine ended a generation without a Done") from None
    except BaseException:
        cancel.cancel("the client went away")
        reply.close_soon()
        raise
    return EngineStream(reply, events, first, cancel)


def _close_started(starting: asyncio.Future[Reply]) -> None:
    """Close a reply whose request went away while it started."""
    if not starting.cancelled() and starting.exception() is None:
        starting.result().close_soon()


async def until_disconnected(request: Request, cancel: CancelToken) -> None:
    """Cancel ``cancel`` when the client disconnects (for answers that are not streamed)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.cancel("the client went away")
            return


async def collect(request: Request, stream: EngineStream) -> tuple[str, Done]:
    """The whole reply of a stream that is answered in one piece, cancelled if the client leaves."""
    text, _, done = await collect_thinking(request, stream)
    return text, done


async def collect_thinking(request: Request, stream: EngineStream) -> tuple[str, str, Done]:
    """``collect`` with a thinking model's reasoning apart: the answer, the reasoning, the end."""
    watcher = asyncio.create_task(until_disconnected(request, stream.cancel))
    try:
        parts: list[str] = []
        thoughts: list[str] = []
        async for event in stream:
            if isinstance(event, Done):
                return "".join(parts), "".join(thoughts), event
            parts.append(event.text)
            thoughts.append(event.thinking)
        raise RuntimeError("the engine ended a generation without a Done")
    finally:
        watcher.cancel()


async def watched(request: Request, stream: EngineStream, pieces: AsyncIterable[T]) -> AsyncIterator[T]:
    """``pieces`` (the stream's events, maybe reshaped) read for an answer sent whole: a client that leaves
    meanwhile cancels the stream, as ``collect`` does."""
    watcher = asyncio.create_task(until_disconnected(request, stream.cancel))
    try:
        async for piece in pieces:
            yield piece
    finally:
        watcher.cancel()


class EventStreamResponse(StreamingResponse):
    """A streamed answer that stops its generation however the response ends.

    Starlette cancels the sending task when the client disconnects; the
    generation must stop then too, also when the cancel lands while a chunk
    is being sent rather than while the next event is awaited.
    """

    def __init__(self, content: AsyncIterator[str], *, on_close: Callable[[], None], media_type: str) -> None:
        super().__init__(content, media_type=media_type)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
