"""Every chat-history call of the Chat tab on one thread, in the order asked, never on the event loop.

SQLite waits up to 5 s for a history another program holds locked
(``BEGIN IMMEDIATE``), and the store's own lock makes every other call wait
behind that one. On the event loop that froze key handling; here a key press
never waits: the pane's flows ``await queue.call(store.method, ...)`` and go
on when the answer comes. One thread keeps the writes in the order they were
asked (a message before its reply row, a rename after the create), and one
writer is what SQLite serialises anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class HistoryQueue:
    """One worker thread for the chat history; ``call`` awaits a call's result (or its exception)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-history")

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.wrap_future(self._pool.submit(fn, *args, **kwargs))

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Ask without waiting for the answer (``close`` still waits for it)."""
        return self._pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        """Let what was asked finish (the app is closing: its writes must land), then stop the thread."""
        self._pool.shutdown(wait=True)
