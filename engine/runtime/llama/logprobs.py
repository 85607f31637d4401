"""Log probabilities of generated tokens, from the step's logits, for the requests that ask.

Computed from the raw logits (a softmax over the whole vocabulary: what the
model thought, before temperature, penalties or a grammar), as llama-server
and Ollama report them; about a millisecond for 262,144 tokens, so only
requests with ``logprobs`` pay it.
"""

from __future__ import annotations

import math

import llama_cpp
import numpy as np

from engine.events import TokenLogprob
from engine.runtime.llama.context import Context
from engine.runtime.llama.model import Model


def _entry(model: Model, token: int, logprob: float) -> tuple[str, float, bytes]:
    piece = model.piece(token)
    return piece.decode("utf-8", "replace"), logprob, piece


def token_logprob(ctx: Context, model: Model, index: int, token: int, top: int) -> TokenLogprob:
    """``token``'s log probability at batch entry ``index`` of the last decode, and the ``top`` best."""
    pointer = llama_cpp.llama_get_logits_ith(ctx.ptr, index)
    logits = np.ctypeslib.as_array(pointer, shape=(model.n_vocab,))
    peak = float(logits.max())
    norm = peak + math.log(float(np.exp(logits - peak).sum(dtype=np.float64)))
    alternatives: tuple[TokenLogprob, ...] = ()
    if top > 0:
        best = np.argpartition(logits, -top)[-top:]
        best = best[np.argsort(logits[best], kind="stable")[::-1]]
        alternatives = tuple(TokenLogprob(*_entry(model, int(t), float(logits[t]) - norm)) for t in best)
    return TokenLogprob(*_entry(model, token, float(logits[token]) - norm), top=alternatives)
