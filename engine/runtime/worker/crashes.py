"""What crashed llama.cpp before: models marked broken, and requests refused because they crashed one.

Checks before loading cannot catch every abort (a context size llama.cpp
pads and then asserts on, a header value it trusts at decode time), so a
crash is remembered instead, in the engine's memory:

- a model whose worker died **while loading** is broken: loading it again
  is refused until it is re-created or re-pulled (``forget``);
- a worker that died **while serving** marks the requests it was serving:
  each of them is refused if it comes again (it would only take the model
  down again), and the model loads afresh for everything else. A model
  whose workers died ``BREAK_AFTER`` times while serving is broken too: then
  it is the model, not a request.

A request is known by what it asked the model (the prompt's tokens, the
sampling other than the seed, the stop strings); an embedding by its texts.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import pickle
import threading

from engine.errors import InvalidInput, LoadError
from engine.runtime.request import Request

BREAK_AFTER = 3  # crashes while serving after which the model itself is broken
_REMEMBERED = 10_000  # request fingerprints kept (the oldest forgotten first)


def request_key(request: Request) -> str:
    sampling = (
        dataclasses.replace(request.sampling, seed=0)
        if hasattr(request.sampling, "seed")
        else request.sampling
    )
    plain = (tuple(request.tokens), sampling, request.max_tokens, request.stop)
    return hashlib.sha256(pickle.dumps(plain)).hexdigest()


def embed_key(texts: list[str], truncate: bool) -> str:
    return hashlib.sha256(pickle.dumps((tuple(texts), truncate))).hexdigest()


class CrashLedger:
    """The engine's memory of crashes, keyed by a model's ``load_id`` (its weights and adapters)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._broken: dict[str, str] = {}
        self._serving_crashes: collections.Counter[str] = collections.Counter()
        self._requests: collections.OrderedDict[tuple[str, str], str] = collections.OrderedDict()

    def check_model(self, load_id: str, label: str) -> None:
        """LoadError when the model is marked broken."""
        with self._lock:
            reason = self._broken.get(load_id)
        if reason is not None:
            raise LoadError(
                f"{label} is marked broken: its llama.cpp worker {reason}; re-create or re-pull it"
            )

    def check_request(self, load_id: str, key: str, label: str) -> None:
        """InvalidInput when this very request crashed the model before."""
        with self._lock:
            reason = self._requests.get((load_id, key))
        if reason is not None:
            raise InvalidInput(f"this request crashed {label} before ({reason}): it is refused")

    def crashed_loading(self, load_id: str, cause: str) -> None:
        with self._lock:
            self._broken[load_id] = f"crashed while loading ({cause})"

    def crashed_serving(self, load_id: str, cause: str, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._requests[(load_id, key)] = cause
                self._requests.move_to_end((load_id, key))
            while len(self._requests) > _REMEMBERED:
                self._requests.popitem(last=False)
            self._serving_crashes[load_id] += 1
            if self._serving_crashes[load_id] >= BREAK_AFTER:
                self._broken[load_id] = f"crashed {BREAK_AFTER} times while serving (last: {cause})"

    def forget(self, load_id: str) -> None:
        """The model was re-created or re-pulled: try it again."""
        with self._lock:
            self._broken.pop(load_id, None)
            self._serving_crashes.pop(load_id, None)
            for key in [k for k in self._requests if k[0] == load_id]:
                del self._requests[key]
