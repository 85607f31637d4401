"""What a caller submits to a scheduler (``Request``) and what it reads back (``Handle``).

A ``Handle`` is the request's stream of events (Token..., then one Done),
fed by the compute thread and read by one consumer, blocking
(``for event in handle``) or in asyncio (``async for event in
handle.aiter()``: the compute thread wakes the event loop directly, with no
thread in between).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from engine.errors import InvalidInput, LlamadeckError
from engine.events import Done, Token
from engine.options import SamplingOptions

GREEDY = SamplingOptions(temperature=0.0, repeat_penalty=1.0)  # the same text every time
MAX_TOP_LOGPROBS = 20  # alternatives per token, as OpenAI and Ollama


def check_logprobs(value: object) -> int | None:
    """``logprobs`` as the engine takes it: None (not asked), or how many alternatives (0 to 20)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOP_LOGPROBS:
        raise InvalidInput(f"top_logprobs must be a whole number from 0 to {MAX_TOP_LOGPROBS}")
    return value


@dataclass(frozen=True)
class ImageInput:
    """An image in a prompt: ``tokens[start : start + n_tokens]`` are its placeholders (``vision_prompt``)."""

    start: int
    n_tokens: int
    data: bytes  # JPEG, PNG or WebP, checked by the facade; encoded in the worker by its projector


@dataclass(frozen=True)
class Request:
    """One generation: the whole prompt as tokens (the full rendered conversation), tokenized by the caller.

    ``max_tokens`` None (or negative) generates until the context is full.
    ``conversation`` is a key the caller keeps (a TUI chat id) so the
    conversation keeps its slot and KV cells between turns; None is a
    stateless request (HTTP) that still reuses any matching prefix.
    ``preserve`` are control tokens streamed as their text (``<|channel|>``,
    a ``<think>`` marked as control) where a reply's parser needs to see them;
    others stream as nothing.
    ``grammar`` is GBNF text (root rule ``root``, see ``engine.structured``)
    that every generated token must follow; it is compiled per sequence by
    the scheduler, so constrained and free requests decode in one batch.
    ``logprobs`` None computes none; n >= 0 puts each token's log
    probability and its n likeliest alternatives on the Token events.
    """

    tokens: list[int]
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    conversation: str | None = None
    preserve: frozenset[int] = frozenset()
    grammar: str | None = None
    logprobs: int | None = None
    images: tuple[ImageInput, ...] = ()  # in prompt order; their placeholders are negative token ids


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Handle:
    """What ``submit`` returns: the request's events (Token..., then one Done) and ``cancel``.

    Iterate it in one consumer: blocking with ``for event in handle`` or in
    asyncio with ``async for event in handle.aiter()``. A consumer that stops
    early (break, a closed HTTP connection) cancels the request. Events are
    buffered, so a slow consumer never slows the other streams.
    """

    def __init__(self, request: Request, on_cancel: Callable[[], None]) -> None:
        self.request = request
        self.error: LlamadeckError | None = None  # set before a Done with reason "error"
        self._on_cancel = on_cancel
        self._events: collections.deque[Token | Done] = collections.deque()
        self._lock = threading.Lock()
        self._waiter: Callable[[], None] | None = None
        self._cancel = False
        self._done: Done | None = None
        self._sink: Callable[[Token | Done], None] | None = None

    # called by the scheduler thread
    def _push(self, event: Token | Done) -> None:
        with self._lock:
            if isinstance(event, Done):
                self._done = event
            if self._sink is not None:  # forwarded: in order, under the lock (see ``forward``)
                self._sink(event)
                return
            self._events.append(event)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter()

    def forward(self, sink: Callable[[Token | Done], None]) -> None:
        """Hand every event to ``sink`` instead of buffering it: those so far now, the rest as they come.

        A worker process sends its requests' events to the engine this way,
        on the thread that makes them. ``sink`` runs under the handle's lock,
        so the events arrive in order; it must be quick and never raise.
        """
        with self._lock:
            for event in self._take():
                sink(event)
            self._sink = sink

    def cancel(self) -> None:
        """Stop the request within one step: the text so far was streamed, a Done "cancelled" follows."""
        self._cancel = True
        self._on_cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel

    @property
    def done(self) -> Done | None:
        """The final event once it has been produced."""
        return self._done

    def _take(self) -> list[Token | Done]:
        events = list(self._events)
        self._events.clear()
        return events

    def _ready(self, waiter: Callable[[], None]) -> list[Token | Done] | None:
        """The events buffered now; none: ``waiter`` is called when the next arrives; None: the Done was
        read already (``__iter__`` and ``aiter``)."""
        with self._lock:
            events = self._take()
            if not events:
                if self._done is not None:
                    return None
                self._waiter = waiter
            return events

    def _next_events(self) -> list[Token | Done] | None:
        while True:
            ready = threading.Event()
            events = self._ready(ready.set)
            if events is None or events:
                return events
            ready.wait()

    async def _anext_events(self, loop: asyncio.AbstractEventLoop) -> list[Token | Done] | None:
        while True:
            future: asyncio.Future[None] = loop.create_future()

            def wake(future: asyncio.Future[None] = future) -> None:
                loop.call_soon_threadsafe(_resolve, future)

            events = self._ready(wake)
            if events is None or events:
                return events
            await future

    def __iter__(self) -> Iterator[Token | Done]:
        finished = False  # the Done was read; a consumer that stops before cancels the request
        try:
            while (events := self._next_events()) is not None:
                yield from events
            finished = True
        finally:
            if not finished:
                self.cancel()

    async def aiter(self) -> AsyncIterator[Token | Done]:
        """The events in asyncio: the scheduler thread wakes the loop only when it waits."""
        loop = asyncio.get_running_loop()
        finished = False
        try:
            while (events := await self._anext_events(loop)) is not None:
                for event in events:
                    yield event
            finished = True
        finally:
            if not finished:
                self.cancel()

    def collect(self) -> tuple[str, Done]:
        """Block until done: the whole text and the final event."""
        parts: list[str] = []
        for event in self:
            if isinstance(event, Token):
                parts.append(event.text)
            else:
                return "".join(parts), event
        raise AssertionError("a handle ended without a Done")  # pragma: no cover
