"""Sentence embeddings: a second context with embeddings on, pooled as the GGUF says, at unit length."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import llama_cpp

from engine.cancel import NEVER, CancelToken
from engine.errors import InvalidInput, PromptTooLong
from engine.events import Embeddings
from engine.runtime.llama.compute import COMPUTE
from engine.runtime.llama.context import Batch, Context
from engine.runtime.llama.model import Model

_POOLING_NAMES = {
    llama_cpp.LLAMA_POOLING_TYPE_MEAN: "mean",
    llama_cpp.LLAMA_POOLING_TYPE_CLS: "cls",
    llama_cpp.LLAMA_POOLING_TYPE_LAST: "last",
}


def normalize(vector: Sequence[float]) -> list[float]:
    """Scale to unit length (L2), as Ollama's embed handler does; a zero vector stays zero."""
    total = math.fsum(v * v for v in vector)
    scale = 1.0 / math.sqrt(total) if total > 0 else 0.0
    return [v * scale for v in vector]


# llama.cpp pads a context to a multiple of 256 cells. The physical batch is made that size too, and
# with pooling llama.cpp reserves its graph for the batch split evenly over n_seq_max sequences: a
# size the sequences do not divide aborts the process (GGML_ASSERT(ggml_can_mul_mat(a, b)),
# seen with context lengths 100, 255, 257 and 300, and 256 over 3 or 6 sequences).
_CTX_PAD = 256
_CHECK_EVERY = 256  # texts tokenized between two looks at the cancel token


class Embedder:
    """Sentence embeddings from a second context with embeddings on and the GGUF's pooling.

    Its compute runs on ``COMPUTE`` (one batch of texts per call, so running
    streams and other callers' embeds take turns between batches); ``embed``
    blocks the caller and checks its ``CancelToken`` between batches.

    A model without a pooling type in its GGUF (a text-generation model) or
    a reranker cannot embed: that is an InvalidInput naming the model.
    Texts longer than the context are cut to it (``truncate``, Ollama's
    default) or refused with PromptTooLong. ``n_seq_max`` (texts per
    batch) must divide 256.
    """

    def __init__(
        self, model: Model, *, n_ctx: int | None = None, n_seq_max: int = 8, n_threads: int | None = None
    ) -> None:
        if model.has_encoder and model.has_decoder:
            raise InvalidInput(f"{model.label} is an encoder-decoder model: it cannot make embeddings")
        if n_seq_max <= 0 or _CTX_PAD % n_seq_max:
            raise ValueError(f"n_seq_max must divide {_CTX_PAD}, not be {n_seq_max}")
        n_ctx = n_ctx or min(model.n_ctx_train or 2048, 8192)
        size = -(-n_ctx // _CTX_PAD) * _CTX_PAD
        self.model = model
        self.ctx = COMPUTE.call(
            lambda: Context(
                model,
                n_ctx=size,
                n_seq_max=n_seq_max,
                n_batch=size,
                n_ubatch=size,  # a non-causal model must see a whole text in one ubatch
                n_threads=n_threads,
                kv_unified=True,  # every text may use the whole context
                embeddings=True,
            )
        )
        pooling = llama_cpp.llama_pooling_type(self.ctx.ptr)
        if pooling not in _POOLING_NAMES:
            COMPUTE.call(self.ctx.free)
            what = "a reranker" if pooling == llama_cpp.LLAMA_POOLING_TYPE_RANK else "a text-generation model"
            raise InvalidInput(
                f"{model.label} cannot make embeddings: it is {what} (its GGUF declares no pooling type)"
            )
        self.pooling = _POOLING_NAMES[pooling]
        # what llama.cpp really allocated bounds a text, and so does the context asked for (a model
        # with learned positions has no row past its trained length)
        n_ubatch = llama_cpp.llama_n_ubatch(self.ctx.ptr)
        self.n_ctx: int = min(n_ctx, self.ctx.n_ctx, self.ctx.n_batch, n_ubatch)
        self.dimensions: int = llama_cpp.llama_model_n_embd_out(model.ptr) or model.n_embd
        self._batch = Batch(self.n_ctx, 1)
        self.batches = 0  # batches decoded so far, all callers together

    def embed(
        self, texts: Sequence[str], *, truncate: bool = True, cancel: CancelToken = NEVER
    ) -> Embeddings:
        """One unit-length vector per text, in order, and the tokens they took (after truncation).

        ``Cancelled`` between batches once ``cancel`` is. The timings are the
        caller's to fill in (it knows when the request began).
        """
        encoded: list[list[int]] = []
        for index, text in enumerate(texts):
            if index % _CHECK_EVERY == 0:
                cancel.check()
            tokens = self.model.tokenize(text, add_special=True, parse_special=False)
            if len(tokens) > self.n_ctx:
                if not truncate:
                    raise PromptTooLong(
                        f"a text is {len(tokens)} tokens but {self.model.label} embeds at most {self.n_ctx}"
                    )
                tokens = tokens[: self.n_ctx]
            encoded.append(tokens or [self.model.bos if self.model.bos >= 0 else 0])
        out: list[list[float]] = []
        start = 0
        while start < len(encoded):
            group: list[list[int]] = []
            used = 0
            while (
                start + len(group) < len(encoded)
                and len(group) < self.ctx.n_seq_max
                and used + len(encoded[start + len(group)]) <= self.n_ctx
            ):
                used += len(encoded[start + len(group)])
                group.append(encoded[start + len(group)])
            # one batch at a time: the schedulers and other embeds on the compute thread step in between
            cancel.check()
            out.extend(COMPUTE.call(functools.partial(self._run, group)))
            start += len(group)
        return Embeddings(out, sum(len(tokens) for tokens in encoded))

    def _run(self, group: list[list[int]]) -> list[list[float]]:
        batch = self._batch
        batch.clear()
        for seq, tokens in enumerate(group):
            for pos, token in enumerate(tokens):
                batch.add(token, pos, seq, True)
        self.ctx.clear()
        self.ctx.decode(batch)
        vectors = []
        for seq in range(len(group)):
            pointer = llama_cpp.llama_get_embeddings_seq(self.ctx.ptr, seq)
            if not pointer:
                raise InvalidInput(f"{self.model.label} returned no embedding")
            vectors.append(normalize(pointer[: self.dimensions]))
        self.ctx.clear()
        self.batches += 1
        return vectors

    def free(self) -> None:
        self._batch.free()
        COMPUTE.call(self.ctx.free)
