"""Loading a stored model into llama.cpp and streaming what it generates.

The only module that touches ``llama_cpp``. llama.cpp's own log goes through
``llama_log_set`` into a small ring buffer before the first load: printed to
stderr it would tear a full-screen UI.
"""

from __future__ import annotations

import codecs
import collections
import ctypes
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.cancel import NEVER, CancelToken
from engine.errors import IntegrityError, LoadError, PromptTooLong
from engine.events import Done, Token
from engine.manifest import Manifest
from engine.memory import default_context
from engine.store import Store

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


def _one_line(text: str, limit: int = 200) -> str:
    """A log line from llama.cpp (which may quote a downloaded file's strings) fit for an error message."""
    text = " ".join(text.split())
    return ascii(text)[1:-1][:limit] if not text.isprintable() else text[:limit]


class LoadedModel:
    """A model in memory, ready to generate."""

    def __init__(self, store: Store, manifest: Manifest, options: LoadOptions) -> None:
        route_llama_log()
        import llama_cpp

        self.manifest = manifest
        path = model_path(store, manifest)
        if not path.exists():
            raise IntegrityError(f"the weights of {manifest.reference} are missing: run llamadeck verify")
        n_ctx = options.n_ctx or default_context(manifest.context_length)
        started = time.perf_counter()
        try:
            self.llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_gpu_layers=options.n_gpu_layers,
                verbose=False,
            )
        except ValueError as error:  # llama-cpp-python's word for "llama.cpp could not load it"
            last = next((line for line in reversed(LLAMA_LOG) if "error" in line.lower()), str(error))
            raise LoadError(f"llama.cpp could not load {manifest.reference}: {_one_line(last)}") from error
        self.load_seconds = time.perf_counter() - started
        self._vocab = self.llama._model.vocab
        self._piece_buffer = ctypes.create_string_buffer(64)

    def _piece(self, token: int) -> bytes:
        """The bytes of one token (llama-cpp-python's own helper returns its whole padded buffer)."""
        import llama_cpp

        size = len(self._piece_buffer)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece_buffer, size, 0, False)
        if n < 0:  # a longer piece than the buffer: grow it once and ask again
            self._piece_buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece_buffer, -n, 0, False)
        return self._piece_buffer.raw[:n]

    def special_texts(self) -> tuple[str, str]:
        """The BOS and EOS tokens as text, for chat templates that spell them out."""
        model = self.llama._model
        return model.token_get_text(self.llama.token_bos()), model.token_get_text(self.llama.token_eos())

    def tokenize(self, text: str) -> list[int]:
        return self.llama.tokenize(text.encode(), add_bos=True, special=True)

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.8,
        seed: int | None = None,
        cancel: CancelToken = NEVER,
        load_seconds: float = 0.0,
    ) -> Iterator[Token | Done]:
        """Stream a plain completion of ``prompt``, then one Done with the timings.

        Counts llama.cpp's tokens, not text pieces: a token that is half of a
        character yields no text of its own but is still a token.
        """
        import llama_cpp

        started = time.perf_counter()
        tokens = self.tokenize(prompt)
        n_ctx = self.llama.n_ctx()
        if len(tokens) >= n_ctx:
            raise PromptTooLong(
                f"the prompt is {len(tokens)} tokens but {self.manifest.reference} runs with a "
                f"{n_ctx}-token context; shorten it"
            )
        budget = min(max_tokens, n_ctx - len(tokens))
        self.llama.set_seed(seed if seed is not None else random.randrange(2**31))
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        first_token_at: float | None = None
        count = 0
        finish = "length"
        for token in self.llama.generate(tokens, temp=temperature):
            if first_token_at is None:
                first_token_at = time.perf_counter()
            if cancel.cancelled:
                finish = "cancelled"
                break
            if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                finish = "stop"
                break
            count += 1
            if text := decoder.decode(self._piece(token)):
                yield Token(text)
            if count >= budget:
                break
        if tail := decoder.decode(b"", final=True):
            yield Token(tail)
        ended = time.perf_counter()
        first = first_token_at or ended
        yield Done(
            reason=finish,
            prompt_tokens=len(tokens),
            completion_tokens=count,
            load_seconds=load_seconds,
            prompt_seconds=first - started,
            generate_seconds=ended - first,
        )
