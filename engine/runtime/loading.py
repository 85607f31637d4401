"""Loads in flight and how far each has got: what an app shows while a big model loads.

llama.cpp reports a load's progress from 0 to 1 (``Model.load``'s callback, in
the model's worker, sent to the engine as it comes); ``LoadBoard`` keeps the
latest figure per model until its load ends, for ``Engine.loading``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadingModel:
    """A model being loaded now."""

    reference: str
    fraction: float | None  # llama.cpp's progress, 0.0 to 1.0 (0 until the worker has started reading
    # weights); None where a server does not say (Ollama): ``seconds`` is then how long a request has waited
    seconds: float  # since the load began


class LoadBoard:
    """The loads in flight of one engine; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loads: dict[int, tuple[str, float, float]] = {}  # id -> (reference, started, fraction)
        self._ids = 0

    def begin(self, reference: str) -> int:
        with self._lock:
            self._ids += 1
            self._loads[self._ids] = (reference, time.monotonic(), 0.0)
            return self._ids

    def advance(self, load: int, fraction: float) -> None:
        with self._lock:
            if load in self._loads:
                reference, started, _ = self._loads[load]
                self._loads[load] = (reference, started, min(max(fraction, 0.0), 1.0))

    def end(self, load: int) -> None:
        with self._lock:
            self._loads.pop(load, None)

    def snapshot(self) -> list[LoadingModel]:
        now = time.monotonic()
        with self._lock:
            return [
                LoadingModel(ref, fraction, now - started) for ref, started, fraction in self._loads.values()
            ]
