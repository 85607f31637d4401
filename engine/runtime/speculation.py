"""Speculative decoding per sequence inside the batched scheduler: drafts, and what verifying them leaves.

A generating sequence that has a draft ``d1..dk`` puts ``[next, d1..dk]``
into the step's batch with logits at every position; the scheduler then
samples, with the request's own sampler (penalties and grammar included),
the target's token at each position in order and accepts while it equals
the draft; the first token that differs is the sequence's next token, and
the KV cells of the rejected drafts are removed (``settle``). So one step
yields up to ``k + 1`` tokens for about the cost of a short prompt chunk.

Why the output is exactly the target model's:

- The drafts are deterministic (a point mass ``q`` on ``d_i``). The standard
  speculative-sampling rule accepts ``d_i`` with probability
  ``min(1, p(d_i) / q(d_i)) = p(d_i)`` and otherwise samples from the
  residual ``(p - q)+`` normalised, which is ``p`` without ``d_i``. Sampling
  ``t ~ p`` and accepting while ``t == d_i`` does exactly that: ``t == d_i``
  with probability ``p(d_i)``, and given ``t != d_i``, ``t`` is distributed
  as ``p`` without ``d_i``. Each token is drawn from the target's
  distribution given the accepted tokens before it, as without speculation.
- Every accepted token goes through the same per-token path as without
  speculation (end of generation, stop strings, ``max_tokens``, logprobs,
  the grammar advancing only by accepted tokens), and the sampler draws one
  random number per emitted token either way, so a seeded request gives the
  same text with and without drafts; at temperature 0 the accepted tokens
  are the target's argmax.
- Given the same logits, that is. llama.cpp's CPU kernels may round a
  position's logits differently when the batch holds several of the
  sequence's tokens (Gemma 3 270M Q4_K_M: identical up to 5 rows, up to 0.43
  apart in a 9-row batch), so where two tokens nearly tie a greedy reply can
  part from plain decoding's, as batched decoding of several sequences can;
  on the tiny test models, whose kernels agree, it is identical.

Where drafts come from:

- **Prompt lookup** (every model): the longest recent n-gram of the
  sequence (prompt and reply so far, ``MAX_NGRAM`` down to ``MIN_NGRAM``
  tokens) is looked up in what came before, and the tokens that followed
  its latest occurrence are the draft, as llama.cpp's ``--lookup`` and vLLM's
  n-gram proposer do. Replies that repeat their context (code edits, RAG
  answers, reformatted JSON) get many tokens per step.
- **A draft model** sharing the target's vocabulary (``DraftModel``): its
  greedy tokens, decoded batched across sequences in a context of its own
  whose per-sequence KV cells follow the target's accepted tokens (synced
  lazily, by common prefix, before each draft).

A sequence whose drafts keep failing stops drafting (``Speculation``): an
acceptance average below ``OFF_BELOW`` pauses it for a number of steps that
doubles at each failed re-probe, so free text pays for a rare probe only.
The draft length grows while drafts are taken whole and shrinks to what was
accepted otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import llama_cpp

from engine.errors import LoadError
from engine.options import DRAFT_OUTPUTS, MAX_DRAFT
from engine.runtime.llama.context import Batch, Context, DecodeError
from engine.runtime.llama.model import Model
from engine.runtime.llama.sampler import Sampler
from engine.runtime.slots import common_prefix

MAX_NGRAM, MIN_NGRAM = 4, 2  # prompt lookup: the longest suffix first; a single token matches too often
OFF_BELOW = 0.3  # acceptance average under which a sequence stops drafting for a while
_WEIGHT = 0.3  # of the newest step in that average
FIRST_LENGTH = 4  # drafts a sequence starts with; they double while taken whole, up to draft_num_predict
FIRST_PAUSE, MAX_PAUSE = 8, 256  # steps without drafts after drafts kept failing, doubling per failed probe


class Speculation:
    """One sequence's drafting: its n-gram index, the draft of this step, and whether drafting pays.

    ``k_max`` is the request's ``draft_num_predict``. ``tokens`` mirror what
    the target's KV cells hold for the sequence (``sync``); the index maps
    each n-gram to where its latest occurrence continues.
    """

    __slots__ = (
        "k_max",
        "length",
        "average",
        "pause",
        "backoff",
        "draft",
        "tokens",
        "drafted",
        "accepted",
        "_index",
        "_indexed",
    )

    def __init__(self, k_max: int) -> None:
        self.k_max = k_max
        self.length = min(FIRST_LENGTH, k_max)  # drafts to ask for next
        self.average = 0.5  # acceptance, per drafted token
        self.pause = 0  # steps left without drafting
        self.backoff = FIRST_PAUSE
        self.draft: list[int] = []  # this step's
        self.tokens: list[int] = []
        # this request's draft tokens verified, and accepted, counted by the scheduler as it verifies them
        self.drafted = self.accepted = 0
        self._index: dict[tuple[int, ...], int] = {}
        self._indexed = 0  # continuation starts below this are in the index

    def want(self) -> int:
        """How many drafts this sequence asks for this step (0: it pauses)."""
        if self.pause > 0:
            self.pause -= 1
            return 0
        return self.length

    def sync(self, held: Sequence[int]) -> None:
        """Follow the target's cells (they only grow while a request generates; anything else: start over)."""
        n = len(self.tokens)
        if len(held) < n or (n and held[n - 1] != self.tokens[n - 1]):
            self.tokens = []
            self._index.clear()
            self._indexed = n = 0
        self.tokens.extend(held[n:])

    def lookup(self, next_token: int, k: int) -> list[int]:
        """Prompt lookup: what followed the latest earlier occurrence of the longest matching suffix."""
        tokens = self.tokens
        end = len(tokens)
        index = self._index
        for start in range(max(self._indexed, 1), end):  # n-grams ending before ``start``, continued there
            for n in range(MIN_NGRAM, min(MAX_NGRAM, start) + 1):
                index[tuple(tokens[start - n : start])] = start
        self._indexed = max(self._indexed, end)
        for n in range(MAX_NGRAM, MIN_NGRAM - 1, -1):
            if n - 1 > end:
                continue
            key = (*tokens[end - n + 1 : end], next_token) if n > 1 else (next_token,)
            found = index.get(key)
            if found is not None:  # what followed, read on through the next token and the draft itself
                draft = tokens[found : found + k]  # (a short loop's latest occurrence ends at the suffix)
                while len(draft) < k:
                    at = found + len(draft)
                    draft.append(next_token if at == end else draft[at - end - 1])
                return draft
        return []

    def count(self, position: int, drafted: int) -> None:
        """The reply's figures as the scheduler verifies a step: its drafts at position 0, and each later
        position reached is a draft taken."""
        if position == 0:
            self.drafted += drafted
        else:
            self.accepted += 1

    def settle(self, drafted: int, accepted: int) -> None:
        """Learn from a verified draft: grow or shrink the next one, pause when drafts keep failing."""
        if drafted == 0:
            return
        self.average += _WEIGHT * (accepted / drafted - self.average)
        self.length = min(2 * self.length, self.k_max) if accepted == drafted else max(1, accepted + 1)
        if self.average < OFF_BELOW:
            self.pause = self.backoff
            self.backoff = min(2 * self.backoff, MAX_PAUSE)
            self.average = OFF_BELOW  # the probe after the pause decides: one failure pauses again
            self.length = 1
        elif self.average > 2 * OFF_BELOW:
            self.backoff = FIRST_PAUSE


class _Slot(Protocol):
    seq: int
    tokens: list[int]  # what the target's cells hold


class _Job(Protocol):  # the scheduler's
    @property
    def slot(self) -> _Slot | None: ...
    @property
    def spec(self) -> Speculation | None: ...
    @property
    def next_token(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def generated(self) -> int: ...


def add_drafts(batch: Batch, draft: Sequence[int], pos: int, seq: int) -> None:
    """The draft tokens after a sequence's next token, each with its logits (to be verified)."""
    for i, token in enumerate(draft):
        batch.add(token, pos + i, seq, True)


def same_vocabulary(target: Model, draft: Model) -> str | None:
    """Why ``draft`` cannot draft for ``target`` (None: it can): the vocabularies must be the same."""
    if target.n_vocab != draft.n_vocab:
        return f"its vocabulary has {draft.n_vocab} tokens, {target.label}'s {target.n_vocab}"
    if (target.bos, target.eos) != (draft.bos, draft.eos):
        return f"its BOS/EOS tokens differ from {target.label}'s"
    for token in range(target.n_vocab):
        theirs, ours = draft.token_text(token), target.token_text(token)
        if theirs != ours:
            return f"token {token} is {theirs!r} there, {ours!r} in {target.label}"
    return None


class DraftModel:
    """A small model's greedy drafts, for all sequences of a scheduler at once, in a context of its own.

    The context has the target's shape (``like``: cells, sequences, batch),
    so a sequence id means the same sequence in both. ``held`` is what its
    cells hold per sequence; before drafting, each sequence is brought to the
    target's tokens by common prefix (cells after it removed, the rest
    decoded, at most one batch per step: a long prompt is caught up over a
    few steps without drafts), then ``k`` tokens are decoded one position
    per step, every sequence in the same batch.
    """

    def __init__(self, model: Model, like: Context) -> None:
        self.model = model
        self.ctx = Context(
            model,
            n_ctx=like.n_ctx,
            n_seq_max=like.n_seq_max,
            n_batch=like.n_batch,
            n_threads=like.n_threads,
            flash_attn=like.flash_attn,
            kv_unified=like.kv_unified,
            n_outputs_max=like.n_seq_max,
        )
        self.batch = Batch(self.ctx.n_batch)
        self.sampler = Sampler(model, temperature=0, repeat_penalty=1.0)
        self.held: dict[int, list[int]] = {}

    def draft(self, wants: Sequence[tuple[int, list[int], int]]) -> list[list[int]]:
        """Greedy drafts: for each ``(seq, tokens, k)``, up to ``k`` tokens that follow ``tokens``."""
        try:
            return self._draft(wants)
        except DecodeError:  # the target still decodes: no drafts this step, and this context starts afresh
            self.ctx.clear()
            self.held.clear()
            return [[] for _ in wants]

    def _draft(self, wants: Sequence[tuple[int, list[int], int]]) -> list[list[int]]:
        ctx, batch = self.ctx, self.batch
        drafts: list[list[int]] = [[] for _ in wants]
        pending: list[tuple[int, int, list[int]]] = []  # (which, seq, tokens still to decode)
        for which, (seq, tokens, _k) in enumerate(wants):
            held = self.held.setdefault(seq, [])
            keep = min(common_prefix(held, tokens), len(tokens) - 1)
            if keep < len(held) and not ctx.seq_rm(seq, keep, -1):
                ctx.seq_rm(seq, -1, -1)
                keep = 0
            del held[keep:]
            pending.append((which, seq, tokens[keep:]))
        # catch up, one batch per step (a long prompt does not stall the streams); the last token of a
        # sequence's catch-up gives its first draft token's logits; one still behind drafts nothing
        batch.clear()
        ends: list[tuple[int, int]] = []
        for which, seq, todo in pending:
            take = min(len(todo), batch.free_space)
            if take == 0:
                break
            held = self.held[seq]
            index = batch.add_run(todo[:take], len(held), seq, logits_last=take == len(todo))
            held.extend(todo[:take])
            if take == len(todo):
                ends.append((which, index))
        if batch.n:
            ctx.decode(batch)
        for which, index in ends:
            self._pick(index, drafts[which])
        while True:  # one more token per sequence and step, until each has its k (or ended)
            batch.clear()
            rows: list[tuple[int, int]] = []
            for which, (seq, _tokens, k) in enumerate(wants):
                draft = drafts[which]
                if len(draft) >= k or not draft or draft[-1] < 0:
                    continue
                held = self.held[seq]
                rows.append((which, batch.add(draft[-1], len(held), seq, True)))
                held.append(draft[-1])
            if not rows:
                break
            ctx.decode(batch)
            for which, index in rows:
                self._pick(index, drafts[which])
        return [
            [t for t in draft[:k] if t >= 0] for draft, (_seq, _tokens, k) in zip(drafts, wants, strict=True)
        ]

    def _pick(self, index: int, draft: list[int]) -> None:
        """The draft model's greedy token; an end of text ends the draft (marked -1: never verified)."""
        token = self.sampler.sample(self.ctx, index)
        draft.append(-1 if self.model.is_eog(token) else token)

    def free(self) -> None:
        self.sampler.free()
        self.batch.free()
        self.ctx.free()


class Speculator:
    """A scheduler's drafting: per step, drafts for the generating sequences within the step's room.

    ``enabled`` is False for models whose cells cannot be partly removed
    (recurrent and hybrid ones): rejected drafts could not be taken back.
    ``drafted`` and ``accepted`` count draft tokens over the scheduler's life.
    """

    def __init__(self, model: Model, ctx: Context, draft: Model | None = None) -> None:
        self.enabled = not (
            llama_cpp.llama_model_is_recurrent(model.ptr) or llama_cpp.llama_model_is_hybrid(model.ptr)
        )
        self._ctx = ctx
        self.draft_model: DraftModel | None = None
        if draft is not None and self.enabled:
            why = same_vocabulary(model, draft)
            if why is not None:
                raise LoadError(f"{draft.label} cannot draft for {model.label}: {why}")
            self.draft_model = DraftModel(draft, ctx)
        self.drafted = 0
        self.accepted = 0

    def start(self, k_max: int) -> Speculation | None:
        """The drafting state of a new request (None: it does not speculate)."""
        if not self.enabled or k_max <= 0:
            return None
        return Speculation(min(k_max, MAX_DRAFT))

    def propose(
        self, jobs: Sequence[_Job], room: int, t_step: float | None = None, t_token: float | None = None
    ) -> None:
        """Set the draft of each generating job that speculates, at most ``room`` draft tokens in all; a job
        never gets more than it may still emit after its next token (``max_tokens``, the context).

        ``t_step`` (seconds of a step without drafts) and ``t_token`` (what one more token in the batch
        adds) say what drafting costs: with ``S`` sequences a step makes ``S`` tokens, and a draft token
        accepted with probability ``a`` adds ``a`` tokens for ``t_token``, so drafting raises the
        tokens/s of all streams together only where ``a > S * t_token / t_step``. It pays less and less
        as more sequences share a step, until only drafts that are nearly always right (copying) still
        go in. One stream always drafts (its pauses are the guard): there the point is its own speed.
        """
        budget = min(room, DRAFT_OUTPUTS)
        cost = 0.0  # the least acceptance that pays
        if len(jobs) > 1 and t_step and t_token:
            cost = len(jobs) * t_token / t_step
        asks: list[tuple[Speculation, _Slot, int, int]] = []
        for job in jobs:
            spec, slot, next_token = job.spec, job.slot, job.next_token
            if spec is None or slot is None:
                continue
            spec.draft = []
            if spec.average < cost:
                continue
            k = min(spec.want(), job.limit - job.generated - 1, budget)
            if k <= 0:
                continue
            spec.sync(slot.tokens)
            if self.draft_model is None:
                spec.draft = spec.lookup(next_token, k)
                budget -= len(spec.draft)
            else:
                asks.append((spec, slot, next_token, k))
                budget -= k
        if asks and self.draft_model is not None:
            wants = [(slot.seq, [*spec.tokens, next_token], k) for spec, slot, next_token, k in asks]
            for (spec, *_), draft in zip(asks, self.draft_model.draft(wants), strict=True):
                spec.draft = draft

    def count(self, spec: Speculation, position: int, drafted: int) -> None:
        """As the scheduler verifies a step, before any Done can go out: at position 0 the step's drafts,
        each later position reached a draft taken; for the request (``spec``) and the model."""
        spec.count(position, drafted)
        if position == 0:
            self.drafted += drafted
        else:
            self.accepted += 1

    def settle(self, spec: Speculation, slot: _Slot, pos: int, accepted: int) -> None:
        """After verification: drop the cells of the rejected drafts (after position ``pos + accepted``, where
        ``pos`` held the sequence's next token) and learn from the outcome."""
        drafted = len(spec.draft)
        spec.settle(drafted, accepted)
        keep = pos + 1 + accepted
        spec.draft = []
        if len(slot.tokens) > keep:
            if not self._ctx.seq_rm(slot.seq, keep, -1):
                raise RuntimeError("llama.cpp could not remove rejected draft tokens from the KV cache")
            del slot.tokens[keep:]

    def free(self) -> None:
        if self.draft_model is not None:
            self.draft_model.free()
            self.draft_model = None
