"""The bridge between the engine's blocking generators and the HTTP event loop.

``engine.chat``/``engine.generate`` are ordinary iterators that block while
llama.cpp works. Each request gets a thread of its own that runs the
iterator and hands its events to the event loop (``call_soon_threadsafe``
into an ``asyncio.Queue``), so requests never wait on each other here: the
engine's scheduler decodes concurrent streams together, and there is no
lock in the API.

The first event is awaited before any response starts, so every error a
client can cause (unknown model, bad option, a prompt that cannot fit, a
model that does not load) becomes a proper status code instead of an error
half-way through a 200. A client that goes away cancels its ``CancelToken``:
the scheduler frees the slot at its next step and the thread ends.

    stream = await open_stream(lambda cancel: engine.chat(model, messages, cancel=cancel))
    async for event in stream: ...          # Token..., then one Done
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from engine import CancelToken, Done, Generation


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _End:
    pass


_END = _End()


class EngineStream:
    """A running generation: its events in order, then the end; ``cancel`` stops it."""

    def __init__(self, first: Generation, queue: asyncio.Queue[Any], cancel: CancelToken) -> None:
        self._first: Generation | None = first
        self._queue = queue
        self.cancel = cancel
        self.finished = False  # the Done was handed out

    def close(self) -> None:
        """Stop the generation unless it already ended (the client went away)."""
        if not self.finished:
            self.cancel.cancel("the client went away")

    async def __aiter__(self) -> AsyncIterator[Generation]:
        try:
            if self._first is not None:
                first, self._first = self._first, None
                self.finished = isinstance(first, Done)
                yield first
            while not self.finished:
                item = await self._queue.get()
                if isinstance(item, _Failed):
                    raise item.error
                if isinstance(item, _End):
                    return
                self.finished = isinstance(item, Done)
                yield item
        finally:
            self.close()


async def open_stream(start: Callable[[CancelToken], Iterator[Generation]]) -> EngineStream:
    """Start ``start(cancel)`` on its own thread; return once its first event is here.

    Raises what the call or the first ``next()`` raised (the engine's errors),
    so the caller can answer with a status code before streaming anything.
    """
    cancel = CancelToken()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def hand_over(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            cancel.cancel("the server is stopping")

    def work() -> None:
        try:
            for event in start(cancel):
                hand_over(event)
        except BaseException as error:  # handed to the request, which answers with its status
            hand_over(_Failed(error))
        finally:
            hand_over(_END)

    threading.Thread(target=work, name="api-generation", daemon=True).start()
    try:
        first = await queue.get()
    except BaseException:
        cancel.cancel("the client went away")
        raise
    if isinstance(first, _Failed):
        raise first.error
    if isinstance(first, _End):  # cannot happen: the engine always ends with a Done
        raise RuntimeError("the engine ended a generation without a Done")
    return EngineStream(first, queue, cancel)


async def until_disconnected(request: Request, cancel: CancelToken) -> None:
    """Cancel ``cancel`` when the client disconnects (for answers that are not streamed)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.cancel("the client went away")
            return


async def collect(request: Request, stream: EngineStream) -> tuple[str, Done]:
    """The whole reply of a stream that is answered in one piece, cancelled if the client leaves."""
    watcher = asyncio.create_task(until_disconnected(request, stream.cancel))
    try:
        parts: list[str] = []
        async for event in stream:
            if isinstance(event, Done):
                return "".join(parts), event
            parts.append(event.text)
        raise RuntimeError("the engine ended a generation without a Done")
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
