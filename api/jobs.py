"""Long model jobs (pull, create) streamed as Ollama's NDJSON status lines.

The blocking engine call runs in a thread of its own; its events reach the
event loop through an ``asyncio.Queue``. The first item is awaited before the
response starts, so an error found at once (unknown model, bad Modelfile
field) gets a real status code; a later one becomes an ``{"error": …}`` line,
as Ollama's clients expect. A client that goes away cancels the job.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from api.errors import APIError, status_of
from engine import CancelToken, Event, EventSink, LlamadeckError, Progress, Status, Waiting

_DISCONNECT_POLL = 0.5  # seconds between checks that the client is still there
Work = Callable[[EventSink, CancelToken], object]


class Finished:
    """The job's end: its result or its error."""

    def __init__(self, result: object = None, error: BaseException | None = None) -> None:
        self.result = result
        self.error = error


def progress_line(event: Event) -> dict[str, Any]:
    """One NDJSON object in Ollama's ``ProgressResponse`` shape."""
    if isinstance(event, Progress):
        status = "verifying sha256 digest" if event.action == "verifying" else f"{event.action} {event.file}"
        return {"status": status, "digest": event.file, "total": event.total, "completed": event.completed}
    if isinstance(event, (Status, Waiting)):
        return {"status": event.message}
    return {"status": str(event)}


def error_line(error: BaseException) -> tuple[int, str]:
    if isinstance(error, APIError):
        return error.status, error.message
    if isinstance(error, LlamadeckError):
        return status_of(error), str(error) or type(error).__name__
    return 500, f"internal error: {type(error).__name__}"


def ndjson(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def start(name: str, work: Work, token: CancelToken) -> asyncio.Queue[Event | Finished]:
    """Run ``work(emit, cancel)`` in a thread; its events and its end arrive in the returned queue."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event | Finished] = asyncio.Queue()

    def put(item: Event | Finished) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        try:
            result = work(put, token)
        except BaseException as error:  # handed to the response, never lost in the thread
            put(Finished(error=error))
        else:
            put(Finished(result))

    threading.Thread(target=run, name=name, daemon=True).start()
    return queue


async def next_item(
    request: Request, queue: asyncio.Queue[Event | Finished], token: CancelToken
) -> Event | Finished:
    """The job's next item; cancels the job when the client has gone away meanwhile."""
    while True:
        try:
            return await asyncio.wait_for(queue.get(), _DISCONNECT_POLL)
        except TimeoutError:
            if await request.is_disconnected():
                token.cancel("the client disconnected")


T = TypeVar("T")


async def until_disconnected(request: Request, work: Callable[[CancelToken], T]) -> T:
    """``work(token)`` off the event loop; the token is cancelled when the client goes away."""
    token = CancelToken()

    async def watch() -> None:
        while not token.cancelled:
            await asyncio.sleep(_DISCONNECT_POLL)
            if await request.is_disconnected():
                token.cancel("the client disconnected")

    watcher = asyncio.create_task(watch())
    try:
        return await anyio.to_thread.run_sync(lambda: work(token))
    except asyncio.CancelledError:
        token.cancel("the client disconnected")
        raise
    finally:
        watcher.cancel()


async def respond(
    request: Request,
    name: str,
    work: Work,
    *,
    stream: bool,
    first_status: str | None = None,
    closing: tuple[str, ...] = (),
) -> Response:
    """The job's answer: NDJSON status lines then ``success`` (or one JSON object when not streaming).

    ``first_status`` opens the stream (``pulling manifest``); ``closing`` are
    the statuses Ollama's clients expect before ``success``.
    """
    token = CancelToken()
    queue = start(name, work, token)
    if not stream:
        try:
            while not isinstance(item := await next_item(request, queue, token), Finished):
                pass
        except asyncio.CancelledError:
            token.cancel("the client disconnected")
            raise
        if item.error is not None:
            status, message = error_line(item.error)
            return JSONResponse({"error": message}, status_code=status)
        return JSONResponse({"status": "success"})

    first = await next_item(request, queue, token)
    if isinstance(first, Finished) and first.error is not None:  # failed before any progress: a real status
        status, message = error_line(first.error)
        return JSONResponse({"error": message}, status_code=status)

    async def lines() -> AsyncIterator[bytes]:
        item = first
        try:
            if first_status:
                yield ndjson({"status": first_status})
            while True:
                if isinstance(item, Finished):
                    if item.error is not None:
                        yield ndjson({"error": error_line(item.error)[1]})
                    else:
                        for status in (*closing, "success"):
                            yield ndjson({"status": status})
                    return
                yield ndjson(progress_line(item))
                item = await next_item(request, queue, token)
        finally:
            token.cancel("the client disconnected")  # no-op once the job has finished

    return StreamingResponse(lines(), media_type="application/x-ndjson")
