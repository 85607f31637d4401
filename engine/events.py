"""Events the engine emits while it works.

Small frozen dataclasses that flow one way, engine -> front end. The CLI draws
them as progress bars, the TUI as widgets, the HTTP API as NDJSON lines; the
engine never knows which one is watching.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Status:
    """A step of a longer job, e.g. ``resolving hf.co/org/repo``."""

    message: str


@dataclass(frozen=True)
class Progress:
    """Work done on one file: bytes of a download, import or verify pass, tensors of a quantize."""

    action: str  # "downloading", "importing", "verifying", "quantizing"
    file: str
    completed: int
    total: int
    rate: float  # units per second over the whole job so far
    eta: float | None  # seconds left, None while unknown
    unit: str = "bytes"  # what completed and total count: "bytes" or "tensors"

    @property
    def fraction(self) -> float:
        return self.completed / self.total if self.total else 1.0


@dataclass(frozen=True)
class Waiting:
    """Another process holds the lock on what this job needs."""

    message: str


Event = Status | Progress | Waiting
EventSink = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The default sink: nobody is watching."""


@dataclass(frozen=True)
class TokenLogprob:
    """How likely a generated token was: its text, natural-log probability and bytes (OpenAI's and
    Ollama's ``logprobs``), and in ``top`` the most likely tokens at its place, best first."""

    token: str  # the token's bytes as text (a lone byte of a character split over tokens reads U+FFFD)
    logprob: float  # from the model's logits before any sampling setting or grammar
    bytes: bytes
    top: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Token:
    """A piece of generated text, as soon as llama.cpp produces it.

    A thinking model's reply comes split (``engine.runtime.thinking``):
    ``thinking`` holds reasoning, ``text`` the answer; a piece may carry
    either or both. A front end that shows only ``text`` shows the answer.
    ``logprobs``: for a request that asked, the tokens whose text this piece
    completes (a character split over byte tokens, or text held back for a
    stop string, arrives with the piece that shows it).
    """

    text: str
    thinking: str = ""
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Done:
    """The end of a generation, with the figures users compare models by.

    Every request ends with exactly one, also when it was cancelled or failed
    (``reason`` "error" and ``error`` the message).
    """

    reason: (
        str  # "stop" (end of text, a stop string), "length" (max tokens, context full), "cancelled", "error"
    )
    prompt_tokens: int  # the whole prompt
    completion_tokens: int  # llama.cpp tokens generated (never text pieces)
    load_seconds: float  # 0 when the model was already loaded
    prompt_seconds: float  # from the request to the first token, queueing and prompt evaluation included
    generate_seconds: float
    cached_tokens: int = 0  # prompt tokens reused from the KV cache, not evaluated again
    total_seconds: float = 0.0  # from the request to this event
    error: str | None = None  # the message when reason is "error"
    dropped_messages: int = 0  # oldest turns left out so the history fits the context
    stop_sequence: str | None = None  # the request's stop string that ended the reply (reason "stop")
    context: tuple[int, ...] | None = None  # the conversation's tokens, prompt and reply, when asked for
    drafted: int = 0  # speculative decoding: draft tokens verified for this reply
    accepted: int = 0  # of them, accepted (each one a token made without a step of its own)

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.generate_seconds if self.generate_seconds > 0 else 0.0


Generation = Token | Done


@dataclass(frozen=True)
class Embeddings:
    """What an embed request gives back: the vectors, and the figures Ollama's and OpenAI's usage report.

    Plain data (it crosses from a model's worker process to the front end).
    """

    vectors: list[list[float]]  # one unit-length vector per text, in order
    prompt_tokens: int  # tokens embedded, all texts together, after truncation
    load_seconds: float = 0.0  # 0 when the model was already loaded
    total_seconds: float = 0.0  # from the request to the answer, loading included
