"""A llama.cpp context (a KV cache of several sequences and the compute buffers) and the batches it decodes.

``Batch`` is filled with tokens of any sequences and handed to
``Context.decode``; the context also edits its KV cache per sequence
(remove, copy, keep positions) and saves or restores one sequence's cells
(``state_get``/``state_set``), which is what the scheduler's prefix reuse
and eviction are made of. A failed decode raises ``DecodeError``.
"""

from __future__ import annotations

import array
import ctypes
from collections.abc import Sequence
from typing import Any

import llama_cpp

from engine.errors import InvalidOption, LlamadeckError, LoadError
from engine.machine.physical import physical_cores
from engine.runtime.llama.backend import init_backend
from engine.runtime.llama.log import error_mark, last_error_line
from engine.runtime.llama.model import Model


class DecodeError(LlamadeckError):
    """llama.cpp could not decode a batch (``code`` is what ``llama_decode`` returned).

    ``fatal`` (a code below -1): part of the batch may remain in the KV cache
    and the context should not be trusted; otherwise the cache is as it was.
    """

    status = 500
    kind = "decode"

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = code < -1


class Batch:
    """A reusable ``llama_batch`` of up to ``capacity`` tokens, one sequence id per token.

    Filled with ``add``/``add_run`` and handed to ``Context.decode``; ``clear``
    starts over without allocating. Returns batch indices, which is what
    ``Sampler.sample`` takes for a token whose logits were asked for.
    """

    def __init__(self, capacity: int, n_seq_max: int = 1) -> None:
        self.capacity = capacity
        self.raw = llama_cpp.llama_batch_init(capacity, 0, n_seq_max)
        self.n = 0
        raw = self.raw
        self._token, self._pos, self._logits = raw.token, raw.pos, raw.logits
        self._seq = [raw.seq_id[i] for i in range(capacity)]
        for i in range(capacity):
            raw.n_seq_id[i] = 1
            raw.logits[i] = 0
        self._token_addr = ctypes.cast(raw.token, ctypes.c_void_p).value or 0
        self._pos_addr = ctypes.cast(raw.pos, ctypes.c_void_p).value or 0
        self._logits_addr = ctypes.cast(raw.logits, ctypes.c_void_p).value or 0

    def clear(self) -> None:
        self.n = 0

    @property
    def free_space(self) -> int:
        return self.capacity - self.n

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """One token of sequence ``seq`` at position ``pos``; returns its index in the batch."""
        i = self.n
        self._token[i] = token
        self._pos[i] = pos
        self._seq[i][0] = seq
        self._logits[i] = logits
        self.n = i + 1
        return i

    def add_run(self, tokens: Sequence[int], pos: int, seq: int, *, logits_last: bool) -> int:
        """Consecutive tokens of one sequence from position ``pos``; returns the last one's index."""
        k = len(tokens)
        i = self.n
        if k == 0:
            return i - 1
        if i + k > self.capacity:
            raise ValueError(f"batch overflow: {i} + {k} > {self.capacity}")
        token_values = array.array("i", tokens)  # kept referenced until copied
        positions = array.array("i", range(pos, pos + k))
        ctypes.memmove(self._token_addr + 4 * i, token_values.buffer_info()[0], 4 * k)
        ctypes.memmove(self._pos_addr + 4 * i, positions.buffer_info()[0], 4 * k)
        ctypes.memset(self._logits_addr + i, 0, k)
        rows = self._seq
        for j in range(i, i + k):
            rows[j][0] = seq
        self.n = i + k
        if logits_last:
            self._logits[i + k - 1] = 1
        return i + k - 1

    def free(self) -> None:
        if self.raw is not None:
            llama_cpp.llama_batch_free(self.raw)
            self.raw = None


FLASH_ATTN = {
    "auto": llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO,
    "on": llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    "off": llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED,
}
# the KV cache types llama.cpp's own ``-ctk``/``-ctv`` accept (ggml_type values)
KV_TYPES = {
    "f32": 0,
    "f16": 1,
    "bf16": 30,
    "q8_0": 8,
    "q4_0": 2,
    "q4_1": 3,
    "iq4_nl": 20,
    "q5_0": 6,
    "q5_1": 7,
}


class Context:
    """A llama.cpp context: the KV cache of ``n_seq_max`` sequences and the compute buffers.

    Not thread-safe: one thread owns it (``COMPUTE``, the compute thread). ``kv_unified``
    False gives each sequence its own ``n_ctx / n_seq_max`` cells (rounded up
    to 256 by llama.cpp: ``n_ctx_seq``). ``n_outputs_max`` caps the tokens
    per batch whose logits are asked for (0: ``n_batch``); a scheduler that
    needs one per sequence saves ``n_vocab x (n_batch - n_seq_max) x 4``
    bytes of compute buffer with it: 500 MiB for Gemma 3's 262k vocabulary.
    """

    def __init__(
        self,
        model: Model,
        *,
        n_ctx: int,
        n_seq_max: int = 1,
        n_batch: int = 512,
        n_ubatch: int | None = None,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        flash_attn: str = "auto",
        type_k: str = "f16",
        type_v: str = "f16",
        kv_unified: bool = False,
        embeddings: bool = False,
        n_outputs_max: int = 0,
    ) -> None:
        if flash_attn not in FLASH_ATTN:
            raise InvalidOption(f"flash_attn must be auto, on or off, not {flash_attn!r}")
        for name, kind in (("type_k", type_k), ("type_v", type_v)):
            if kind not in KV_TYPES:
                raise InvalidOption(f"{name} {kind!r} is not a KV cache type ({', '.join(KV_TYPES)})")
        if n_ctx <= 0 or n_seq_max <= 0 or n_batch <= 0:
            raise InvalidOption("n_ctx, n_seq_max and n_batch must be positive")
        init_backend()
        threads = n_threads or physical_cores()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_ubatch or min(n_batch, 512)
        params.n_seq_max = n_seq_max
        params.n_threads = threads
        params.n_threads_batch = n_threads_batch or threads
        params.flash_attn_type = FLASH_ATTN[flash_attn]
        params.type_k = KV_TYPES[type_k]
        params.type_v = KV_TYPES[type_v]
        params.kv_unified = kv_unified
        params.embeddings = embeddings
        params.n_outputs_max = n_outputs_max  # 0: n_batch. The compute buffer holds logits for this many rows
        params.no_perf = True
        mark = error_mark()
        handle = llama_cpp.llama_init_from_model(model.ptr, params)
        if not handle:
            reason = last_error_line(mark) or "no reason given (see the llama.cpp log)"
            raise LoadError(f"llama.cpp could not create a context for {model.label}: {reason}")
        try:
            model.apply_adapters(handle)
        except BaseException:
            llama_cpp.llama_free(handle)
            raise
        self._ctx = handle
        self.model = model
        self._mem = llama_cpp.llama_get_memory(handle)
        self.n_ctx: int = llama_cpp.llama_n_ctx(handle)
        self.n_ctx_seq: int = llama_cpp.llama_n_ctx_seq(handle)
        self.n_batch: int = llama_cpp.llama_n_batch(handle)
        self.n_seq_max: int = llama_cpp.llama_n_seq_max(handle)
        self.n_threads = threads
        self.flash_attn = flash_attn
        self.kv_unified = kv_unified
        self._decode = llama_cpp.llama_decode

    @property
    def ptr(self) -> Any:
        """The raw ``llama_context *`` (for the sampler)."""
        return self._ctx

    def decode(self, batch: Batch) -> None:
        """Run the batch; raises DecodeError (``fatal`` says whether the cache is still trustworthy)."""
        raw = batch.raw
        raw.n_tokens = batch.n
        mark = error_mark()
        code = self._decode(self._ctx, raw)
        if code != 0:
            why = {1: "no room in the KV cache", 2: "aborted", -1: "invalid batch"}.get(code, "failed")
            detail = last_error_line(mark)
            raise DecodeError(f"llama.cpp decode {why} (code {code}){': ' + detail if detail else ''}", code)

    def set_threads(self, n_threads: int, n_threads_batch: int | None = None) -> None:
        llama_cpp.llama_set_n_threads(self._ctx, n_threads, n_threads_batch or n_threads)
        self.n_threads = n_threads

    # -- memory (the KV cache) --------------------------------------------------------------------

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> bool:
        """Drop positions [p0, p1) of ``seq`` (-1: open end). False when a partial removal is impossible
        (recurrent models, or a sliding-window cache that no longer holds those positions)."""
        return bool(llama_cpp.llama_memory_seq_rm(self._mem, seq, p0, p1))

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        """Make ``dst`` hold what ``src`` holds. Without ``kv_unified`` only whole sequences (-1, -1) copy,
        and the copy replaces everything ``dst`` held."""
        llama_cpp.llama_memory_seq_cp(self._mem, src, dst, p0, p1)

    def seq_keep(self, seq: int) -> None:
        llama_cpp.llama_memory_seq_keep(self._mem, seq)

    def seq_pos_max(self, seq: int) -> int:
        """The largest position ``seq`` holds, -1 when empty."""
        return int(llama_cpp.llama_memory_seq_pos_max(self._mem, seq))

    def seq_pos_min(self, seq: int) -> int:
        return int(llama_cpp.llama_memory_seq_pos_min(self._mem, seq))

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)

    # -- per-sequence state -----------------------------------------------------------------------

    def state_size(self, seq: int) -> int:
        return int(llama_cpp.llama_state_seq_get_size(self._ctx, seq))

    def state_get(self, seq: int) -> bytearray:
        """A copy of ``seq``'s KV cells in host memory (``llama_state_seq_get_data``)."""
        size = self.state_size(seq)
        data = bytearray(size)
        if size == 0:
            return data
        view = (ctypes.c_uint8 * size).from_buffer(data)
        n = llama_cpp.llama_state_seq_get_data(self._ctx, view, size, seq)
        del view  # release the export so the bytearray may be resized
        if n != size:
            del data[n:]
        return data

    def state_set(self, seq: int, data: bytes | bytearray) -> bool:
        """Load what ``state_get`` saved into ``seq`` (which should be empty); False if llama.cpp refused."""
        size = len(data)
        if size == 0:
            return False
        if isinstance(data, bytearray):
            view = (ctypes.c_uint8 * size).from_buffer(data)
        else:
            view = (ctypes.c_uint8 * size).from_buffer_copy(data)
        n = llama_cpp.llama_state_seq_set_data(self._ctx, view, size, seq)
        del view
        return n > 0

    def free(self) -> None:
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
