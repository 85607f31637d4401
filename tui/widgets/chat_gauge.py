"""The chat's gauge: a load in flight, then the context this chat uses, the model's memory, its speed.

Pure formatting of the figures the engine gives (``Engine.loading``,
``Engine.measure_chat``, ``Engine.loaded`` and a reply's Done), so the header,
the pending reply and the line under each reply say the same thing the same way:

    loading Tiny-GGUF:Q8_0 42% · 3.1 s          (the pending reply, while the model loads)
    ctx 86 / 4.1k · 231 MB · 38.2 tok/s          (the header)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine import visible

if TYPE_CHECKING:
    from engine import LoadingModel


@dataclass(frozen=True)
class Gauge:
    """What the header shows of a chat beside its model's name (None: not known yet)."""

    used: int | None = None  # tokens of this chat in the context: its prompt and last reply
    context: int | None = None  # tokens a conversation may hold (num_ctx as loaded or counted)
    tokens_per_second: float | None = None  # of the chat's last reply
    dropped: int = 0  # oldest messages its last reply left out to fit
    loading: LoadingModel | None = None  # its model's load in flight


def compact(n: float) -> str:
    """86 -> ``86``, 4096 -> ``4.1k``, 32901 -> ``32.9k``, 131072 -> ``131k``: a token count at a glance."""
    if n < 1000:
        return str(int(n))
    if n < 100_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1000:.0f}k"


def size(n: int) -> str:
    """Bytes as ``231 MB`` or ``4.4 GB``."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GB"
    return f"{max(n, 1 << 20) / (1 << 20):.0f} MB"


def short_name(reference: str) -> str:
    """A model reference without its Hub path: ``hf.co/acme/Tiny-GGUF:Q8_0`` -> ``Tiny-GGUF:Q8_0``."""
    return visible(reference.rsplit("/", 1)[-1])


def loading_text(loading: LoadingModel, *, name: bool = True) -> str:
    """``loading NAME 42% · 3.1 s`` (``name``: with the model's name); ``waiting for NAME · 3.1 s`` from a
    server that does not say how far a load has got (an Ollama: the wait may be a load, a queue, a prompt)."""
    if loading.fraction is None:
        return f"waiting{' for ' + short_name(loading.reference) if name else ''} · {loading.seconds:.1f} s"
    who = f" {short_name(loading.reference)}" if name else ""
    return f"loading{who} {loading.fraction * 100:.0f}% · {loading.seconds:.1f} s"


def context_text(used: int, context: int | None) -> str:
    """``ctx 86 / 4.1k``, or ``ctx 86`` while the context's size is not known."""
    return f"ctx {compact(used)} / {compact(context)}" if context else f"ctx {compact(used)}"


def figures(gauge: Gauge, memory: int | None) -> list[str]:
    """The header's figures after the model's name: context used, memory, speed of the last reply."""
    parts = []
    if gauge.used is not None:
        parts.append(context_text(gauge.used, gauge.context))
    if memory:
        parts.append(size(memory))
    if gauge.tokens_per_second:
        parts.append(f"{gauge.tokens_per_second:.1f} tok/s")
    return parts


def from_stats(stats: Mapping[str, float] | None, context: int | None = None) -> Gauge:
    """The gauge after a reply, from the figures the store keeps with it (``chat_reply.done_stats``)."""
    if not stats:
        return Gauge(context=context)
    used = int(stats.get("prompt_tokens", 0)) + int(stats.get("completion_tokens", 0))
    return Gauge(
        used=used or None,
        context=int(stats.get("context", 0)) or context,
        tokens_per_second=stats.get("tokens_per_second") or None,
        dropped=int(stats.get("dropped_messages", 0)),
    )


def reply_context(stats: Mapping[str, float]) -> str | None:
    """The reply's share of the context for the line under it: ``ctx 214 / 4.1k`` (None: not counted)."""
    used = int(stats.get("prompt_tokens", 0)) + int(stats.get("completion_tokens", 0))
    return context_text(used, int(stats.get("context", 0)) or None) if used else None
