"""The requests a RemoteEngine has sent that wait for the server's first answer, and since when.

An Ollama says nothing of a load in flight: its ``/api/ps`` lists a model
being loaded as if it were loaded. What the client knows is how long its own
request has waited, which for a model not in memory is mostly its load: the
app's gauge shows those seconds (``LoadingModel.fraction`` None).

    waits = Waits()
    with waits.waiting("llama3.2"): ...       # a load: the whole call
    token = waits.begin("llama3.2"); ...; waits.end(token)   # a stream: until its first line
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from engine.runtime.loading import LoadingModel


class Waits:
    """Thread-safe: streams run on workers while the app polls from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[str, float]] = {}  # id -> (model, sent at)

    def begin(self, model: str) -> int:
        with self._lock:
            wait = next(self._ids)
            self._waiting[wait] = (model, time.monotonic())
            return wait

    def end(self, wait: int) -> None:
        with self._lock:
            self._waiting.pop(wait, None)

    @contextmanager
    def waiting(self, model: str) -> Iterator[None]:
        wait = self.begin(model)
        try:
            yield
        finally:
            self.end(wait)

    def snapshot(self) -> list[LoadingModel]:
        """One entry per model (its longest wait), seconds only."""
        now = time.monotonic()
        longest: dict[str, float] = {}
        with self._lock:
            for model, sent in self._waiting.values():
                longest[model] = max(longest.get(model, 0.0), now - sent)
        return [LoadingModel(model, None, seconds) for model, seconds in longest.items()]
