"""llama.cpp's grammar sampler for one sequence, and the candidate array a constrained sample is drawn from.

A grammar (GBNF text, made by ``engine.structured``) is compiled here, on
the thread that submits the request, never on the compute thread. Checking
one token against it is cheap; checking the whole vocabulary (262,144
tokens for Gemma 3) is not, so ``Sampler`` samples first and asks
``allows`` about that one token, and only when it is refused runs the full
pass (``apply`` on ``Candidates``), as llama-server does (``constrained.py``).

``accept`` must only be given tokens the grammar allows: llama.cpp aborts
the process otherwise, so a grammar that refuses every token (a dead end)
fails its request instead (``GrammarDeadEnd``).
"""

from __future__ import annotations

import ctypes
import functools
import math
from typing import Any

import llama_cpp
import numpy as np

from engine.errors import InvalidInput, LlamadeckError
from engine.runtime.llama.log import error_mark, last_error_line
from engine.runtime.llama.model import Model
from engine.structured.gbnf import MAX_GRAMMAR_BYTES

TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])  # llama_token_data, 12 bytes
assert TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)


class GrammarDeadEnd(LlamadeckError):
    """The grammar refuses every token of the vocabulary: the reply cannot go on."""

    status = 500
    kind = "grammar"


@functools.lru_cache(maxsize=8)
def _blank(n_vocab: int) -> np.ndarray:
    """Every token id in order with p 0, shared and read-only: copied in whole, then the logits."""
    blank = np.zeros(n_vocab, dtype=TOKEN_DATA)
    blank["id"] = np.arange(n_vocab, dtype=np.int32)
    blank.flags.writeable = False
    return blank


class Candidates:
    """Every token of the vocabulary with its logit, as a ``llama_token_data_array`` samplers work on."""

    def __init__(self, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self.data = np.zeros(n_vocab, dtype=TOKEN_DATA)
        self._blank = _blank(n_vocab)
        self._pointer = self.data.ctypes.data_as(llama_cpp.llama_token_data_p)
        self.array = llama_cpp.llama_token_data_array(self._pointer, n_vocab, -1, False)
        self.ref = ctypes.byref(self.array)

    def fill(self, ctx: Any, index: int) -> None:
        """The logits of batch entry ``index`` of the context's last decode, unsorted, nothing selected."""
        logits = llama_cpp.llama_get_logits_ith(ctx, index)
        if not logits:
            raise LlamadeckError(f"llama.cpp has no logits for batch entry {index}")
        data = self.data
        ctypes.memmove(data.ctypes.data, self._blank.ctypes.data, data.nbytes)
        data["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        array = self.array
        array.data = self._pointer  # type: ignore[assignment]  # (ctypes' stubs want an Array)
        array.size = self.n_vocab
        array.selected = -1
        array.sorted = False

    def selected(self) -> int:
        """The token the last sampler in the chain picked."""
        array = self.array
        if not 0 <= array.selected < array.size:
            raise LlamadeckError("the sampler picked no token")
        return int(array.data[array.selected].id)


class Grammar:
    """A compiled grammar and where one sequence stands in it; ``free`` it once the request ends."""

    def __init__(self, model: Model, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("a grammar is GBNF text with a root rule")
        raw = text.encode("utf-8")
        if len(raw) > MAX_GRAMMAR_BYTES:
            raise InvalidInput(f"the grammar is past llamadeck's limit of {MAX_GRAMMAR_BYTES // 1024} KiB")
        mark = error_mark()
        self._ptr = llama_cpp.llama_sampler_init_grammar(model.vocab, raw, b"root")
        if not self._ptr:
            reason = last_error_line(mark) or "no reason given"
            raise InvalidInput(f"llama.cpp could not compile the grammar: {reason}")
        self._single = llama_cpp.llama_token_data(0, 0.0, 0.0)
        self._single_array = llama_cpp.llama_token_data_array(ctypes.pointer(self._single), 1, -1, False)
        self._single_ref = ctypes.byref(self._single_array)

    def allows(self, token: int) -> bool:
        """Whether ``token`` may come next (an end-of-generation token: whether the grammar is complete)."""
        single = self._single
        single.id, single.logit, single.p = token, 0.0, 0.0  # type: ignore[assignment]  # (stubs: c_int32)
        array = self._single_array
        array.size, array.selected, array.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(self._ptr, self._single_ref)
        return not math.isinf(single.logit)

    def apply(self, array: Any) -> None:
        """Rule out (logit -inf) every candidate the grammar refuses: ``array`` is a reference to a
        ``llama_token_data_array`` (``Candidates.ref``)."""
        llama_cpp.llama_sampler_apply(self._ptr, array)

    def accept(self, token: int) -> None:
        """Move past ``token``, which ``allows`` said yes to (anything else aborts llama.cpp)."""
        llama_cpp.llama_sampler_accept(self._ptr, token)

    def free(self) -> None:
        if self._ptr:
            llama_cpp.llama_sampler_free(self._ptr)
            self._ptr = None
