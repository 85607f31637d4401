"""Cancelling long engine calls from another thread.

A Textual thread worker cannot receive Ctrl+C and an HTTP handler sees its
client go away on another task, so pulls, verifies and lock waits take a
``CancelToken`` and check it between chunks: a cancel lands within a second
while bytes flow, and leaves the store as it was (partials kept for resume).

    token = CancelToken()
    threading.Thread(target=engine.pull, args=(ref,), kwargs={"cancel": token}).start()
    token.cancel()   # the pull raises Cancelled in its own thread
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from engine.errors import Cancelled


class CancelToken:
    """A one-way flag: once cancelled, every check raises ``Cancelled``."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason = "cancelled"

    def cancel(self, reason: str = "cancelled") -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (in the cancelling thread) on cancel, at once if already; returns a remover.

        How a cancel reaches work that does not poll the token, such as a
        request waiting in the scheduler's queue.
        """
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._remove(callback)
        callback()
        return lambda: None

    def _remove(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``Cancelled`` if the token was cancelled."""
        if self._event.is_set():
            raise Cancelled(self.reason)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early on cancel; True when cancelled."""
        return self._event.wait(seconds)


class _Never(CancelToken):
    """The default for callers that never cancel: shared, so it refuses to be cancelled."""

    def cancel(self, reason: str = "cancelled") -> None:
        raise RuntimeError("NEVER cannot be cancelled: pass a CancelToken of your own")

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        return lambda: None  # never called: nothing to keep


NEVER: CancelToken = _Never()
