"""Who runs on the shared KV pool: admission, eviction for room and parking, for one scheduler.

The scheduler (``scheduler.py``) decodes what is active; this module decides
what is active. Requests wait in line, first come first served, until a
sequence and the cells their prompt needs are free; idle conversations are
evicted for those cells (``Slots.reclaim``), and when the running sequences
alone fill the pool, the newest is parked (its cells saved or dropped) and
comes back first in line, going on exactly where it stopped. Why one pool and
not ``num_ctx`` cells per slot: ``slots.py``.

Like the scheduler's step, used on the compute thread only. ``active`` and
``waiting`` are the scheduler's own lists, changed in place.
"""

from __future__ import annotations

from engine.runtime.job import GENERATING, PAUSED, PREFILLING, Job
from engine.runtime.slots import Slots
from engine.runtime.step_clock import MIN_CHUNK
from engine.runtime.vision_prefill import prompt_need


class Admission:
    """Moves jobs between ``waiting`` and ``active`` as the cells of ``slots`` allow; counts ``parks``."""

    def __init__(self, slots: Slots[Job], active: list[Job], waiting: list[Job]) -> None:
        self._slots = slots
        self._active = active  # in admission order: prompts are evaluated first come, first served
        self._waiting = waiting  # a parked request first
        self.parks = 0

    def admit(self) -> bool:
        """Start waiting requests, first come first served, while a sequence and the cells they need are
        free (a parked request is first in line); idle conversations are evicted for the cells."""
        admitted = False
        for job in list(self._waiting):
            conversation = job.request.conversation
            need = self._slots.cells_needed(job.tokens, conversation) + 1  # and its first generated token
            reserved = self.reserved()
            if (
                self._slots.free - reserved < need
                and self._slots.reclaim(need + reserved, keep=conversation) - reserved < need
            ):
                break  # the next to go waits for cells; those behind it wait too, so it is not starved
            placed = self._slots.place(job.tokens, conversation, parked=job.parked)
            if placed is None:
                continue
            slot, kept = placed
            resumed = job.parked is not None
            job.done_prompt = kept
            self._waiting.remove(job)
            slot.job = job
            job.slot = slot
            job.status = PREFILLING
            self._slots.touch(slot)
            if resumed:
                if job.first_at is None:  # parked while its prompt was evaluated: it goes on as new
                    job.parked = None
            else:
                job.cached = kept
                if (
                    job.sampler.penalized
                ):  # penalties look back over the prompt too, as llama.cpp's server does
                    job.sampler.accept(job.tokens[-job.sampler.penalty_last_n :])
            self._active.append(job)
            admitted = True
        return admitted

    def reserved(self) -> int:
        """Cells promised to prompts being evaluated: what they still have to evaluate."""
        return sum(len(job.tokens) - job.done_prompt for job in self._active if job.status == PREFILLING)

    def make_room(self) -> bool:
        """Free the cells this step needs (one per generating sequence, and a chunk of a prompt): idle
        conversations are evicted first, then the newest running requests are parked."""
        need = sum(1 for job in self._active if job.status == GENERATING)
        prefilling = [job for job in self._active if job.status == PREFILLING]
        if prefilling:
            need += prompt_need(prefilling[0], MIN_CHUNK)  # a chunk of text, or a whole image
        if self._slots.free >= need or self._slots.reclaim(need) >= need:
            return False
        while len(self._active) > 1 and self._slots.free < need:
            job = self._active[-1]
            need -= 1 if job.status == GENERATING else 0
            self.park(job)
        return True

    def park(self, job: Job) -> None:
        """Take a running request off the pool (its cells saved or dropped) until cells free up; it is
        first in line to come back, and goes on exactly where it stopped."""
        slot = job.slot
        assert slot is not None
        parked = self._slots.park(slot)
        self.parks += 1
        if job.status == GENERATING:  # it comes back by evaluating what its sequence held
            job.tokens = parked.tokens
        job.parked = parked
        slot.job = None
        self._slots.touch(slot)
        job.slot = None
        self._active.remove(job)
        job.status = PAUSED
        self._waiting.insert(0, job)
