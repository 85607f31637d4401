"""One request inside a scheduler: its prompt, sampler, text stream, sequence and progress.

Used on the compute thread only (``scheduler.py``); a job is what the
scheduler admits, parks for lack of KV cells and resumes.
"""

from __future__ import annotations

from engine.events import Token, TokenLogprob
from engine.runtime.llama.sampler import Sampler
from engine.runtime.request import Handle, Request
from engine.runtime.slots import SavedState, Slot
from engine.runtime.speculation import Speculation
from engine.runtime.text_stream import TextStream

QUEUED, PREFILLING, GENERATING, PAUSED = "queued", "prefilling", "generating", "paused"


class Job:
    __slots__ = (
        "request",
        "handle",
        "tokens",
        "sampler",
        "text",
        "submitted",
        "first_at",
        "slot",
        "status",
        "done_prompt",
        "cached",
        "generated",
        "limit",
        "next_token",
        "index",
        "chunk",
        "logprobs",
        "n_prompt",
        "parked",
        "spec",
    )

    def __init__(
        self, request: Request, handle: Handle, sampler: Sampler, limit: int, submitted: float
    ) -> None:
        self.request = request
        self.handle = handle
        self.tokens = list(request.tokens)
        self.sampler = sampler
        self.text = TextStream(request.stop)
        self.submitted = submitted
        self.first_at: float | None = None
        self.slot: Slot[Job] | None = None
        self.status = QUEUED
        self.done_prompt = 0  # prompt tokens in the KV cache
        self.cached = 0
        self.generated = 0
        self.limit = limit
        self.next_token = -1  # sampled, to be decoded next step
        self.index = -1  # its logits' index in this step's batch, -1: none
        self.chunk = 0  # prompt tokens in this step's batch
        self.logprobs: list[TokenLogprob] = []  # of tokens whose text was not streamed yet
        self.n_prompt = len(request.tokens)
        # parked for lack of cells: what its sequence held (``tokens`` is then that, to evaluate again)
        self.parked: SavedState | None = None
        self.spec: Speculation | None = None  # its drafting (speculation.py); None: it does not speculate

    def token_event(self, text: str) -> Token:
        """A Token event, with the log probabilities of the tokens its text completes (if asked)."""
        if not self.logprobs:
            return Token(text)
        logprobs, self.logprobs = tuple(self.logprobs), []
        return Token(text, logprobs=logprobs)
