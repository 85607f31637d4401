"""The sequences of a scheduler's context and the one pool of KV cells they share.

Design choices, and why:

- **One pool, many sequences.** The context's KV cache is unified
  (``kv_unified``): every sequence takes cells from the same ``cells``, so a
  short chat takes little and a long one can use all it may (its own limit
  is the request's ``num_ctx``, kept by the scheduler). Ollama and llama.cpp's
  server reserve ``num_ctx`` cells per slot, so a user who never set
  ``num_parallel`` gets 1 to 4 conversations at once; a pool of the same
  memory serves 16 or more short ones. Cells are counted here as the tokens
  each sequence holds (a prefix copied between sequences shares its cells in
  llama.cpp but is counted twice: the count never says there is room where
  there is none).
- **Admission waits for cells; the pool never fails a request.** A request is
  admitted when the cells it needs are free, after evicting idle
  conversations (``reclaim``). When the running sequences alone fill the
  pool, the scheduler parks the newest one (``park``: its cells saved to host
  memory on CPU, or simply dropped and evaluated again on a GPU) and resumes
  it when cells free up.
- **Prefix reuse.** A conversation keeps its sequence: a follow-up evaluates
  only what follows the longest common prefix with what the sequence holds
  (``seq_rm`` from the divergence), so an edited or regenerated turn reuses
  everything before it. The last prompt token is always evaluated again, for
  its logits. A request with no conversation (HTTP clients send whole
  message lists) takes the idle sequence that shares the longest prefix; a
  prefix held by another sequence is shared with ``seq_cp`` (in a unified
  cache the cells are shared, not copied).
- **Eviction.** The least recently used idle sequence gives up its cells. On
  CPU they are saved to host memory (``llama_state_seq_get_data``: 9 ms for
  2,000 Gemma tokens, restore 2 ms, against ~4 s to evaluate them again)
  within ``state_budget_bytes``, oldest saved state dropped first; on a GPU
  they are simply dropped, since copying 400 MiB out costs as much as
  evaluating the history again there.
- **Positions are not cells in M-RoPE models.** Qwen2-VL's image of ``n``
  tokens takes ``n`` cells but advances the position by ``max(rows, cols)``
  (``mtmd_input_chunk_get_n_pos``), and all its cells sit at its first
  position (their 2-D positions ride in the cells). A slot keeps such images
  as ``Run``s beside its tokens: ``next_pos`` is where its next token goes,
  ``pos_of`` where a cell lies for ``seq_rm``/``seq_cp``, and a cut never
  falls inside an image (its cells go or stay together). Without M-RoPE a
  slot has no runs and positions are cell indices.

Like the context, ``Slots`` is used on the compute thread only (``stats``
reads it from others, a step old at worst).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from engine.runtime.llama.context import Context

MIN_COPY = 16  # a prefix shorter than this is evaluated again rather than copied between streams

J = TypeVar("J")  # what runs in a slot: the scheduler's job


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix (compared in slices: C speed for long histories)."""
    n = min(len(a), len(b))
    i, step = 0, 256
    while step:
        while i + step <= n and a[i : i + step] == b[i : i + step]:
            i += step
        step //= 4
    return i


@dataclass(frozen=True)
class Run:
    """An M-RoPE image in a sequence: ``cells`` cells from cell ``start``, over ``positions`` positions;
    its cells' positions (llama.cpp's, for ``seq_rm``) lie from its first to that plus ``top``."""

    start: int
    cells: int
    positions: int
    top: int = 0


class SavedState:
    """An evicted conversation's KV cells in host memory, the tokens they hold and their images' runs."""

    __slots__ = ("tokens", "data", "runs")

    def __init__(self, tokens: list[int], data: bytearray, runs: Sequence[Run] = ()) -> None:
        self.tokens = tokens
        self.data = data
        self.runs = tuple(runs)


class Slot(Generic[J]):
    """One sequence of the context: the tokens its cells hold, the conversation keeping it, its job."""

    __slots__ = ("seq", "tokens", "runs", "owner", "job", "last_used")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.tokens: list[int] = []  # exactly what the sequence's KV cells hold, cell by cell
        self.runs: list[Run] = []  # its M-RoPE images, in order (none: positions are cell indices)
        self.owner: str | None = None  # the conversation that keeps this slot
        self.job: J | None = None
        self.last_used = 0

    @property
    def next_pos(self) -> int:
        """The position the sequence's next token takes."""
        return len(self.tokens) + sum(run.positions - run.cells for run in self.runs)

    def pos_of(self, cell: int) -> int:
        """Where cell ``cell`` lies (the first position of an image it is in); ``next_pos`` past the end."""
        if cell >= len(self.tokens):
            return self.next_pos
        shift = 0
        for run in self.runs:
            if cell < run.start:
                break
            if cell < run.start + run.cells:
                return run.start + shift
            shift += run.positions - run.cells
        return cell + shift

    def last_pos(self) -> int:
        """The highest position the sequence's cells hold (llama.cpp's ``seq_pos_max``); -1 when empty."""
        if not self.tokens:
            return -1
        run = self.runs[-1] if self.runs else None
        if run is not None and run.start + run.cells == len(self.tokens):
            return self.pos_of(run.start) + run.top
        return self.next_pos - 1

    def cut(self, keep: int) -> int:
        """``keep`` cells moved back to the start of an image it would split."""
        return next((run.start for run in self.runs if run.start < keep < run.start + run.cells), keep)

    def truncate(self, keep: int) -> None:
        """Forget the cells from ``keep`` on (the caller removes them from the context)."""
        del self.tokens[keep:]
        self.runs = [run for run in self.runs if run.start + run.cells <= keep]

    def hold(self, tokens: Sequence[int], runs: Sequence[Run]) -> None:
        """The sequence now holds ``tokens`` (a copy), with images ``runs``."""
        self.tokens = list(tokens)
        self.runs = list(runs)


class Slots(Generic[J]):
    """The ``n`` sequences of ``ctx`` sharing ``cells`` KV cells, who keeps which, what was saved.

    ``save_states`` keeps an evicted conversation's cells in host memory,
    ``state_budget_bytes`` in all (the oldest saved state is dropped first).
    """

    def __init__(
        self, ctx: Context, n: int, *, cells: int, save_states: bool, state_budget_bytes: int
    ) -> None:
        self._ctx = ctx
        self.cells = cells
        self.save_states = save_states
        self.state_budget_bytes = state_budget_bytes
        self._slots: list[Slot[J]] = [Slot(i) for i in range(n)]
        self._owners: dict[str, Slot[J]] = {}
        self.saved: collections.OrderedDict[str, SavedState] = collections.OrderedDict()
        self.saved_bytes = 0
        self._clock = 0  # advances whenever a slot is taken or freed: its last_used

    def __iter__(self) -> Iterator[Slot[J]]:
        return iter(self._slots)

    @property
    def used(self) -> int:
        """Cells the sequences hold (a shared prefix counted once per sequence: never too few)."""
        return sum(len(slot.tokens) for slot in self._slots)

    @property
    def free(self) -> int:
        return self.cells - self.used

    def cells_needed(self, tokens: Sequence[int], conversation: str | None) -> int:
        """Cells a prompt will add to the pool: what its conversation's sequence does not hold yet."""
        slot = self._owners.get(conversation) if conversation is not None else None
        held = len(slot.tokens) if slot is not None else 0
        return max(1, len(tokens) - held)

    def reclaim(self, need: int, *, keep: str | None = None) -> int:
        """Evict idle sequences, least recently used first, until ``need`` cells are free; returns the free
        count (less than ``need`` when every idle sequence is empty). ``keep``: a conversation whose
        sequence is about to be used, evicted last."""
        idle = sorted(
            (slot for slot in self._slots if slot.job is None and slot.tokens),
            key=lambda slot: (keep is not None and slot.owner == keep, slot.last_used),
        )
        free = self.free
        for slot in idle:
            if free >= need:
                break
            free += len(slot.tokens)
            self._evict(slot, keep_cells=False)
        return free

    def park(self, slot: Slot[J]) -> SavedState:
        """Free a running sequence's cells for others: what it holds (its tokens, and on CPU its cells'
        data when the budget allows) comes back with ``place(..., parked=...)``."""
        tokens = list(slot.tokens)
        data = bytearray()
        if self.save_states and tokens:
            data = self._ctx.state_get(slot.seq)
            if len(data) > self.state_budget_bytes:
                data = bytearray()
        owner = slot.owner
        if owner is not None:
            del self._owners[owner]
            slot.owner = None
        runs = tuple(slot.runs)
        self._ctx.seq_rm(slot.seq, -1, -1)
        slot.hold([], [])
        return SavedState(tokens, data, runs)

    def touch(self, slot: Slot[J]) -> None:
        """The slot was just taken or freed: the last to be evicted among the idle ones."""
        self._clock += 1
        slot.last_used = self._clock

    def place(
        self, tokens: list[int], conversation: str | None, *, parked: SavedState | None = None
    ) -> tuple[Slot[J], int] | None:
        """Choose the slot for a prompt and set its KV cells up to the reusable prefix; None: wait for one.

        Returns the slot and how many of the prompt's tokens its cells already hold.
        ``parked``: what ``park`` saved of this very request, restored first.
        """
        if conversation is not None and conversation in self._owners:
            slot = self._owners[conversation]
            if slot.job is not None:  # its previous turn still runs
                return None
            return slot, self._keep_prefix(tokens, slot)
        target = self._free_slot(tokens)
        if target is None:
            return None
        restored = False
        saved = self.saved.pop(conversation, None) if conversation is not None else None
        if saved is not None:
            self.saved_bytes -= len(saved.data)
        if parked is not None and parked.data:
            saved = parked
        if saved is not None:
            self._evict(target, keep_cells=False)  # (saving the evicted one cannot drop this one now)
            restored = self._restore(saved, target)
        if not restored:
            source, shared = self._best_prefix(tokens, exclude=target)
            shared = source.cut(shared) if source is not None else 0
            if source is not None and shared >= common_prefix(target.tokens, tokens) + MIN_COPY:
                self._evict(target, keep_cells=False)
                # in a unified cache the prefix's cells are shared by both sequences, not copied
                self._ctx.seq_cp(source.seq, target.seq, 0, source.pos_of(shared))
                target.hold(source.tokens[:shared], [r for r in source.runs if r.start + r.cells <= shared])
            else:
                self._evict(target, keep_cells=True)
        if conversation is not None:
            target.owner = conversation
            self._owners[conversation] = target
        return target, self._keep_prefix(tokens, target)

    def forget(self, conversation: str) -> None:
        """Drop what a conversation holds: its saved state and its claim on a slot (the cells stay)."""
        saved = self.saved.pop(conversation, None)
        if saved is not None:
            self.saved_bytes -= len(saved.data)
        slot = self._owners.pop(conversation, None)
        if slot is not None:
            slot.owner = None

    def clear(self) -> None:
        """Empty the whole KV cache (the context is not to be trusted): every slot holds nothing."""
        self._ctx.clear()
        for slot in self._slots:
            slot.hold([], [])

    def drop_saved(self) -> None:
        self.saved.clear()
        self.saved_bytes = 0

    def _free_slot(self, tokens: list[int]) -> Slot[J] | None:
        """An idle slot: an unclaimed one this prompt continues, else an empty one, else the unclaimed one
        sharing the longest prefix (then least recently used), else the least recently used one that a
        conversation claims (to be evicted)."""
        idle = [slot for slot in self._slots if slot.job is None]
        if not idle:
            return None
        free = [slot for slot in idle if slot.owner is None]
        shared = {slot.seq: common_prefix(slot.tokens, tokens) for slot in free}
        follow_ups = [slot for slot in free if slot.tokens and 2 * shared[slot.seq] >= len(slot.tokens)]
        if follow_ups:  # most of what it holds is this prompt's beginning: a stateless client's next turn
            return max(follow_ups, key=lambda slot: (shared[slot.seq], -slot.last_used))
        empty = [slot for slot in free if not slot.tokens]
        if empty:  # rather than overwrite another client's history (a shared prefix is copied in)
            return empty[0]
        if free:
            return max(free, key=lambda slot: (shared[slot.seq], -slot.last_used))
        return min(idle, key=lambda slot: slot.last_used)

    def _best_prefix(self, tokens: list[int], exclude: Slot[J]) -> tuple[Slot[J] | None, int]:
        best: Slot[J] | None = None
        length = 0
        for slot in self._slots:
            if slot is exclude or not slot.tokens:
                continue
            n = common_prefix(slot.tokens, tokens)
            if n > length:
                best, length = slot, n
        return best, length

    def _keep_prefix(self, tokens: list[int], slot: Slot[J]) -> int:
        """Drop the slot's cells after the longest common prefix with the prompt (at least the last prompt
        token is evaluated again, for its logits); returns how many cells were kept."""
        keep = slot.cut(min(common_prefix(slot.tokens, tokens), len(tokens) - 1))
        if keep < len(slot.tokens) and not self._ctx.seq_rm(slot.seq, slot.pos_of(keep), -1):
            self._ctx.seq_rm(slot.seq, -1, -1)  # a partial removal is impossible here: start over
            keep = 0
        slot.truncate(keep)
        # never expected, but a cache holding other than we think would be worse than slow
        if self._ctx.seq_pos_max(slot.seq) != slot.last_pos():
            self._ctx.seq_rm(slot.seq, -1, -1)
            slot.truncate(0)
            keep = 0
        return keep

    def _evict(self, slot: Slot[J], *, keep_cells: bool) -> None:
        """Release the slot's conversation (saving its cells to host memory on CPU); ``keep_cells`` leaves the
        cells for the next occupant's prefix reuse, else they are removed."""
        owner = slot.owner
        if owner is not None:
            if self.save_states and slot.tokens:
                self._save(owner, slot)
            del self._owners[owner]
            slot.owner = None
        if not keep_cells and slot.tokens:
            self._ctx.seq_rm(slot.seq, -1, -1)
            slot.hold([], [])

    def _save(self, owner: str, slot: Slot[J]) -> None:
        data = self._ctx.state_get(slot.seq)
        if len(data) > self.state_budget_bytes:
            return
        self.saved[owner] = SavedState(list(slot.tokens), data, slot.runs)
        self.saved_bytes += len(data)
        while self.saved_bytes > self.state_budget_bytes:
            _, dropped = self.saved.popitem(last=False)
            self.saved_bytes -= len(dropped.data)

    def _restore(self, saved: SavedState, slot: Slot[J]) -> bool:
        self._ctx.seq_rm(slot.seq, -1, -1)
        slot.hold(saved.tokens, saved.runs)  # a copy: the parked request keeps its own
        if self._ctx.state_set(slot.seq, saved.data) and self._ctx.seq_pos_max(slot.seq) == slot.last_pos():
            return True
        self._ctx.seq_rm(slot.seq, -1, -1)
        slot.hold([], [])
        return False
