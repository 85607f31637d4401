"""Sampling under a grammar, fast: the chain first, and the grammar checks only what it has to.

Checking every token of Gemma 3's 262,144 against a grammar takes about 40
ms on 2 CPU cores, two decode steps. So, as llama-server does, the chain
samples first and the grammar checks that one token; most tokens pass. When
it is refused, the grammar checks the best-scored tokens only (64, then 512,
then 4,096), highest logit first, until it has as many allowed ones as the
chain will look at (1 for greedy, ``top_k`` otherwise); the chain then
samples among those. That is exactly what checking the whole vocabulary
first would give (the chain's ``top_k`` keeps the k best allowed tokens, and
no allowed token outside the ones checked scores higher), for a fraction of
the cost. Where fewer tokens are allowed than that (a digit, a ``,`` or a
``}`` in JSON), the ones found still decide the draw when the chain has a
``top_p`` (Ollama's default 0.9) and the tokens not checked, allowed or
not, weigh too little to move its cut: ``top_p`` keeps the same best
allowed tokens whether they count or not, and drops them anyway. Otherwise
(and with mirostat or ``typical_p``) every allowed token is needed: the
full pass, but first the grammar is asked about one token per first byte
(256 of them), and only the tokens whose first byte it allows are checked
one by one, a few thousand of Gemma's 262,144 where it wants a digit.

The penalties (repeat, presence, frequency) are a chain of their own here,
applied to the logits before either pass, so that a refused token is never
counted in their history. Tokens that would break UTF-8 count as refused
(``utf8.py``).
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp
import numpy as np

from engine.runtime.llama.grammar import TOKEN_DATA, Candidates, Grammar, GrammarDeadEnd
from engine.runtime.llama.model import Model
from engine.runtime.llama.utf8 import CLEAN, advance, table_for

FIRST_TRY = 64  # best-scored tokens the grammar checks first after a refusal, then 8x more, up to LAST_TRY
LAST_TRY = 4096


def cut_decided(allowed: np.ndarray, logits: np.ndarray, checked: np.ndarray, top_p: float) -> bool:
    """Whether ``top_p`` keeps the same tokens among ``allowed`` however much the allowed tokens not checked
    weigh (at most all of the tokens not checked), and none of those.

    ``allowed``: the allowed tokens' logits among the ``checked`` ones (the best-scored of ``logits``),
    best first. The cut is where llama.cpp's ``top_p`` puts it: the first place where the running sum of
    probabilities (softmax of the logits, before temperature) reaches ``top_p``.
    """
    if not len(allowed):
        return False
    peak = float(allowed[0])
    cumulative = np.cumsum(np.exp(allowed.astype(np.float64) - peak))
    total = float(np.exp(logits.astype(np.float64) - peak).sum())
    unchecked = max(total - float(np.exp(checked.astype(np.float64) - peak).sum()), 0.0)
    found = float(cumulative[-1])
    alone = int(np.searchsorted(cumulative, top_p * found))
    at_most = int(np.searchsorted(cumulative, top_p * (found + unchecked)))
    return at_most < len(allowed) and alone == at_most


class Constrained:
    """The grammar, the candidates and the UTF-8 state of one sequence; ``sample`` as ``Sampler.sample``.

    ``penalties`` and ``chain`` are llama.cpp sampler chains owned by the
    caller; ``need`` is how many allowed tokens the chain looks at (1 for
    greedy; None: all of them); ``top_p`` the chain's, where it is the only
    cut after ``top_k`` (no ``typical_p``, no mirostat), else None.
    """

    first_try = FIRST_TRY

    def __init__(
        self, model: Model, grammar: str, penalties: Any, chain: Any, need: int | None, top_p: float | None
    ) -> None:
        self._model = model
        self._top_p = top_p
        self._grammar = Grammar(model, grammar)
        self._penalties = penalties
        self._chain = chain
        self._need = need
        self._candidates = Candidates(model.n_vocab)
        self._utf8 = table_for(model)
        self._state = CLEAN
        size = min(LAST_TRY, model.n_vocab)
        self._best = np.zeros(size, dtype=TOKEN_DATA)
        self._best_array = llama_cpp.llama_token_data_array(
            self._best.ctypes.data_as(llama_cpp.llama_token_data_p), 0, -1, False
        )
        singles = self._utf8.single
        self._bytes = np.flatnonzero(singles >= 0)  # the byte values a token stands for alone
        self._byte_tokens = np.zeros(len(self._bytes), dtype=TOKEN_DATA)
        self._byte_tokens["id"] = singles[self._bytes]
        self._byte_array = llama_cpp.llama_token_data_array(
            self._byte_tokens.ctypes.data_as(llama_cpp.llama_token_data_p), len(self._bytes), -1, False
        )
        self.rejections = 0  # sampled tokens the grammar refused
        self.full_passes = 0  # of those, the ones that needed every allowed token

    def sample(self, ctx: Any, index: int) -> int:
        candidates, grammar, model = self._candidates, self._grammar, self._model
        self._fill(ctx, index)
        llama_cpp.llama_sampler_apply(self._chain, candidates.ref)
        token = candidates.selected()
        state = advance(self._state, model.piece(token))
        if state is None or not grammar.allows(token):
            self.rejections += 1
            self._fill(ctx, index)
            best = self._among_the_best()
            if best is None:
                self.full_passes += 1
                best = self._full_pass()
            token = best
            state = advance(self._state, model.piece(token))
            assert state is not None
        self._state = state
        if not model.is_eog(token):  # (the grammar allowed an end only where it is complete)
            grammar.accept(token)
        if self._penalties is not None:
            llama_cpp.llama_sampler_accept(self._penalties, token)
        llama_cpp.llama_sampler_accept(self._chain, token)
        return token

    def _fill(self, ctx: Any, index: int) -> None:
        self._candidates.fill(ctx, index)
        if self._penalties is not None:
            llama_cpp.llama_sampler_apply(self._penalties, self._candidates.ref)

    def _among_the_best(self) -> int | None:
        """The chain's pick among the best-scored allowed tokens; None when the full pass is needed."""
        if self._need is None and self._top_p is None:
            return None
        logits = self._candidates.data["logit"]  # by token id (filled, not yet reordered)
        usable = self._utf8.mask(self._state)
        n = len(logits)
        tried = self.first_try
        while 0 < tried < n and tried <= LAST_TRY:
            checked = np.argpartition(logits, n - tried)[n - tried :]
            checked = checked[np.argsort(logits[checked], kind="stable")[::-1]]
            top = checked[usable[checked]]
            k = len(top)
            best, array = self._best, self._best_array
            best["id"][:k] = top
            best["logit"][:k] = logits[top]
            best["p"][:k] = 0.0
            array.size, array.selected, array.sorted = k, -1, False
            self._grammar.apply(ctypes.byref(array))
            allowed = np.flatnonzero(best["logit"][:k] != -np.inf)
            enough = self._need is not None and len(allowed) >= self._need
            if enough or (
                self._top_p is not None
                and cut_decided(best["logit"][allowed], logits, logits[checked], self._top_p)
            ):
                best[: len(allowed)] = best[allowed]
                array.size, array.selected, array.sorted = len(allowed), -1, False
                llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(array))
                if not 0 <= array.selected < array.size:
                    return None
                return int(best["id"][array.selected])
            tried *= 8
        return None

    def _full_pass(self) -> int:
        """The chain's pick among every allowed token: those whose first byte the grammar refuses are
        ruled out by asking about one token per byte; the rest are checked one by one."""
        table, candidates = self._utf8, self._candidates
        byte_tokens, array = self._byte_tokens, self._byte_array
        byte_tokens["logit"] = 0.0
        array.size, array.selected, array.sorted = len(byte_tokens), -1, False
        self._grammar.apply(ctypes.byref(array))
        first_ok = np.ones(256, dtype=bool)  # bytes no token stands for alone: not ruled out
        first_ok[self._bytes] = byte_tokens["logit"] != -np.inf
        keep = ((table.length == 0) | first_ok[table.first]) & table.mask(self._state)
        data = candidates.data
        kept = np.flatnonzero(keep)
        data[: len(kept)] = data[kept]
        candidates.array.size = len(kept)
        self._grammar.apply(candidates.ref)
        allowed = np.flatnonzero(data["logit"][: len(kept)] != -np.inf)
        if not len(allowed):
            raise GrammarDeadEnd("the grammar allows no token of the vocabulary here")
        data[: len(allowed)] = data[allowed]
        candidates.array.size = len(allowed)
        llama_cpp.llama_sampler_apply(self._chain, candidates.ref)
        return candidates.selected()

    def free(self) -> None:
        self._grammar.free()
