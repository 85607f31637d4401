"""What a scheduler reports of itself (``ps``, the Sessions tab): plain data, sent by a worker too."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlotStats:
    index: int
    conversation: str | None
    tokens: int  # tokens whose KV the slot holds
    status: str  # "idle", "prefilling" or "generating"
    tokens_per_second: float  # of the stream running in it, 0 when idle


@dataclass(frozen=True)
class SchedulerStats:
    """A snapshot (it may be a step old): what each slot holds and does, and what waits."""

    slots: tuple[SlotStats, ...]
    queued: int  # requests waiting for a slot
    saved_states: int  # conversations evicted to host memory
    saved_bytes: int
    saved_conversations: tuple[str, ...]
    tokens_per_second: float  # all running streams together
    n_ctx_per_seq: int
    n_parallel: int
    kv_cells: int = 0  # the pool's size: the cells every sequence takes from
    kv_used: int = 0  # cells held by the sequences (a shared prefix counted once per sequence)
    paused: int = 0  # running requests parked for lack of cells, to resume when cells free up
    parks: int = 0  # times a running request was parked, since the model was loaded
    drafted: int = 0  # speculative draft tokens verified, since the model was loaded
    accepted: int = 0  # of them, accepted

    @property
    def acceptance(self) -> float | None:
        """Accepted draft tokens / drafted ones; None before any draft."""
        return self.accepted / self.drafted if self.drafted else None
