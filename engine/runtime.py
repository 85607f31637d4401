"""Loading a stored model into llama.cpp and streaming what it generates.

The only module that touches ``llama_cpp``. llama.cpp's own log goes through
``llama_log_set`` into a small ring buffer before the first load: printed to
stderr it would tear a full-screen UI.
"""

from __future__ import annotations

import collections
import ctypes
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import LlamadeckError
from engine.events import Done, Token
from engine.memory import default_context
from engine.store import Manifest, Store

LLAMA_LOG: collections.deque[str] = collections.deque(maxlen=200)  # the latest llama.cpp log lines
_log_callback: Any = None  # kept alive for as long as llama.cpp may call it


def route_llama_log() -> None:
    """Send llama.cpp's log into ``LLAMA_LOG`` instead of stderr (once per process)."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        LLAMA_LOG.append(text.decode("utf-8", "replace").rstrip("\n"))

    _log_callback = collect
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


@dataclass(frozen=True)
class LoadOptions:
    n_ctx: int | None = None  # None: the default context, capped at what the model was trained for
    n_gpu_layers: int = -1  # -1: all that fit (llama.cpp ignores it on a CPU-only build)
    seed: int | None = None


def model_path(store: Store, manifest: Manifest) -> Path:
    """The path llama.cpp should open.

    A split model is found by llama.cpp through its part names
    (``X-00001-of-00003.gguf`` next to ``X-00002-...``), so its blobs get a
    directory of correctly named symlinks.
    """
    blobs = [store.blob_path(f.sha256) for f in manifest.files]
    if len(blobs) == 1:
        return blobs[0]
    view = store.home / "views" / manifest.id
    view.mkdir(parents=True, exist_ok=True)
    for file, blob in zip(manifest.files, blobs, strict=True):
        link = view / Path(file.path).name
        if not link.is_symlink():
            os.symlink(blob, link)
    return view / Path(manifest.files[0].path).name


class LoadedModel:
    """A model in memory, ready to generate."""

    def __init__(self, store: Store, manifest: Manifest, options: LoadOptions) -> None:
        route_llama_log()
        import llama_cpp

        self.manifest = manifest
        path = model_path(store, manifest)
        if not path.exists():
            raise LlamadeckError(f"the weights of {manifest.reference} are missing: run llamadeck verify")
        n_ctx = options.n_ctx or default_context(manifest.context_length)
        started = time.perf_counter()
        try:
            self.llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_gpu_layers=options.n_gpu_layers,
                seed=options.seed if options.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED,
                verbose=False,
            )
        except ValueError as error:  # llama-cpp-python's word for "llama.cpp could not load it"
            last = next((line for line in reversed(LLAMA_LOG) if "error" in line.lower()), str(error))
            raise LlamadeckError(f"llama.cpp could not load {manifest.reference}: {last.strip()}") from error
        self.load_seconds = time.perf_counter() - started

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.8,
        stop: list[str] | None = None,
        load_seconds: float = 0.0,
    ) -> Iterator[Token | Done]:
        """Stream a plain completion of ``prompt``, then one Done with the timings."""
        started = time.perf_counter()
        first_token_at: float | None = None
        count = 0
        prompt_tokens = len(self.llama.tokenize(prompt.encode(), add_bos=True, special=True))
        finish = "length"
        for chunk in self.llama.create_completion(
            prompt, max_tokens=max_tokens, temperature=temperature, stop=stop or [], stream=True
        ):
            choice = chunk["choices"][0]
            if first_token_at is None:
                first_token_at = time.perf_counter()
            if choice["text"]:
                count += 1
                yield Token(choice["text"])
            finish = choice.get("finish_reason") or finish
        ended = time.perf_counter()
        first = first_token_at or ended
        yield Done(
            reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=count,
            load_seconds=load_seconds,
            prompt_seconds=first - started,
            generate_seconds=ended - first,
        )
