"""Continuous batching over one llama.cpp context: many conversations decoded together.

A scheduler runs inside a model's worker process (``worker/child.py``).
One thread owns the context and nothing else touches it: the process's
llama.cpp compute thread (``llama.compute.COMPUTE``, which steps every scheduler in
turn; why one for all is in its docstring). Each step builds one batch: the
next token of every generating sequence, plus a chunk of a prompt still
being evaluated, and runs it in a single ``llama_decode``; new requests join
at the next step. On the H100 eight sequences decoded together gave 3.5x
the tokens/s of one (``shared/FACTS.md``); on 2 CPU cores with the demo
Gemma, 8 streams through this scheduler gave 194 tok/s against 98 for one,
each within 2% of a bare llama.cpp loop (``bench/generate.py``).

Design choices, and why (the KV pool: ``slots.py``; chunk sizes: ``step_clock.py``; drafts:
``speculation.py``; UTF-8 and stop strings: ``text_stream.py``):

- **Chunked prefill.** While others generate, a long prompt goes in chunks that keep a step near
  ``PREFILL_STEP_RATIO`` decode steps (the streams slow, never stall); short prompts go whole.
- **One pool of cells.** Admission waits for free KV cells, idle conversations are evicted for
  them, and when running sequences alone fill the pool the newest is parked and resumed later
  (``admission.py``).
- **Speculation.** Drafts (prompt lookup, a draft model) are verified in the step's own batch.
- **Counts.** Token counts count llama.cpp tokens, not pieces of text.

    scheduler = Scheduler(model, n_ctx_per_seq=4096, n_parallel=4, n_threads=physical_cores())
    handle = scheduler.submit(Request(model.tokenize(prompt), SamplingOptions(temperature=0), 128))
    for event in handle:            # Token ... then one Done
        ...
    scheduler.close()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from engine.errors import InvalidInput, LlamadeckError, PromptTooLong
from engine.events import Done
from engine.machine.physical import physical_cores
from engine.runtime.admission import Admission
from engine.runtime.job import GENERATING, PREFILLING, Job
from engine.runtime.llama.compute import COMPUTE
from engine.runtime.llama.context import Batch, Context, DecodeError
from engine.runtime.llama.logprobs import token_logprob
from engine.runtime.llama.model import Model
from engine.runtime.llama.sampler import Sampler
from engine.runtime.llama.vision import Projector
from engine.runtime.request import Handle, Request, check_logprobs
from engine.runtime.slots import Slots
from engine.runtime.speculation import DRAFT_OUTPUTS, Speculator, add_drafts
from engine.runtime.stats import SchedulerStats, SlotStats
from engine.runtime.step_clock import SHORT_BUDGET, SHORT_PROMPT, StepClock
from engine.runtime.vision_prefill import feed_images, images_cover, text_stop


class Scheduler:
    """Thread-safe front of one loaded model: ``submit`` requests, iterate their handles.

    ``n_ctx_per_seq`` is each conversation's context (Ollama's ``num_ctx``),
    ``n_parallel`` the sequences decoded together (``OLLAMA_NUM_PARALLEL``),
    ``kv_cells`` the pool of KV cells they share (default
    ``n_ctx_per_seq * n_parallel``; at least ``n_ctx_per_seq``). ``n_threads``
    defaults to the physical cores. ``save_states`` (default: not on a GPU)
    keeps evicted conversations' KV cells in host memory. ``draft`` is a
    draft model of the same vocabulary (``speculation.py``). Raises LoadError
    when llama.cpp cannot create the context (not enough memory) or the
    draft's vocabulary differs.
    """

    def __init__(
        self,
        model: Model,
        *,
        n_ctx_per_seq: int,
        n_parallel: int,
        kv_cells: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        flash_attn: str = "auto",
        type_k: str = "f16",
        type_v: str = "f16",
        state_budget_bytes: int = 512 << 20,
        save_states: bool | None = None,
        draft: Model | None = None,
    ) -> None:
        if n_ctx_per_seq < 2 or n_parallel < 1:
            raise InvalidInput("a scheduler needs n_ctx_per_seq >= 2 and n_parallel >= 1")
        cells = kv_cells or n_ctx_per_seq * n_parallel
        if cells < n_ctx_per_seq:
            raise InvalidInput(f"a pool of {cells} KV cells cannot hold one {n_ctx_per_seq}-token context")
        if model.has_encoder:
            raise InvalidInput(f"{model.label} is an encoder model: it cannot generate text here")
        self.model = model
        self.projector: Projector | None = None  # a vision model's, set by its worker (runtime.llama.vision)
        self.n_ctx_per_seq = n_ctx_per_seq
        self.n_parallel = n_parallel
        self.kv_cells = cells
        self._ctx = COMPUTE.call(
            lambda: Context(
                model,
                n_ctx=cells,
                n_seq_max=n_parallel,
                n_batch=max(n_batch, n_parallel),
                n_threads=n_threads or physical_cores(),
                flash_attn=flash_attn,
                type_k=type_k,
                type_v=type_v,
                kv_unified=True,
                # one set of logits per sequence and step, and the drafts verified: 460 MiB less for Gemma 3
                n_outputs_max=n_parallel + DRAFT_OUTPUTS,
            )
        )
        try:
            self._spec = COMPUTE.call(lambda: Speculator(model, self._ctx, draft))
        except BaseException:
            self._ctx.free()
            raise
        self._batch = Batch(self._ctx.n_batch)
        self._slots: Slots[Job] = Slots(
            self._ctx,
            n_parallel,
            cells=cells,
            save_states=(not model.offloaded) if save_states is None else save_states,
            state_budget_bytes=state_budget_bytes,
        )
        self._active: list[Job] = []  # in admission order: prompts are evaluated first come, first served
        self._waiting: list[Job] = []
        self._pool = Admission(self._slots, self._active, self._waiting)  # who runs on the pool of cells
        self._clock = StepClock()
        self._forget: list[str] = []
        # shared with other threads, under _cond (the compute thread's)
        self._cond = COMPUTE.cond
        self._inbox: list[Job] = []
        self._closing = False
        self._cancels = False  # some handle was cancelled since the last look
        self._broken: str | None = None
        self._closed = threading.Event()
        COMPUTE.attach(self)

    # -- the thread-safe surface ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Queue a request and return its handle at once; errors arrive as its final Done."""
        return self.submit_many([request])[0]

    def submit_many(self, requests: Sequence[Request]) -> list[Handle]:
        """Queue several requests at once: they start in the same step (variants of a prompt, a benchmark)."""
        submitted = time.perf_counter()
        jobs = [self._job(request, submitted) for request in requests]
        with self._cond:
            refused = self._broken or ("the model was unloaded" if self._closing else None)
            if refused is None:
                self._inbox.extend(job for job in jobs if isinstance(job, Job))
                self._cond.notify()
        handles = []
        for job in jobs:
            if isinstance(job, Handle):
                handles.append(job)
                continue
            if refused is not None:
                job.sampler.free()
                self._refuse(job.handle, LlamadeckError(refused), submitted)
            handles.append(job.handle)
        return handles

    def _job(self, request: Request, submitted: float) -> Job | Handle:
        """The job for a valid request, else its handle with the error already in it."""
        handle = Handle(request, self._cancelled)
        try:
            tokens = request.tokens
            if request.conversation is not None and not isinstance(request.conversation, str):
                raise InvalidInput("a conversation key is a string")
            if not tokens:
                raise InvalidInput("the prompt is empty")
            if (min(tokens) < 0 and not images_cover(request)) or max(tokens) >= self.model.n_vocab:
                raise InvalidInput(f"the prompt holds a token outside {self.model.label}'s vocabulary")
            if len(tokens) >= self.n_ctx_per_seq:
                raise PromptTooLong(
                    f"the prompt is {len(tokens)} tokens but each conversation on {self.model.label} has a "
                    f"{self.n_ctx_per_seq}-token context: drop old turns or raise num_ctx"
                )
            check_logprobs(request.logprobs)
            room = self.n_ctx_per_seq - len(tokens)
            limit = (
                room
                if request.max_tokens is None or request.max_tokens < 0
                else min(request.max_tokens, room)
            )
            sampler = Sampler.from_options(
                self.model, request.sampling, context_size=self.n_ctx_per_seq, grammar=request.grammar
            )
        except LlamadeckError as error:
            self._refuse(handle, error, submitted)
            return handle
        job = Job(request, handle, sampler, limit, submitted)
        # no drafts beside images: prompt lookup would copy their placeholder ids, which are not tokens
        job.spec = None if request.images else self._spec.start(request.sampling.draft_num_predict)
        return job

    def forget(self, conversation: str) -> None:
        """Free what a conversation holds (its claim on a slot, any saved state): a chat was deleted."""
        with self._cond:
            self._forget.append(conversation)
            self._cond.notify()

    def stats(self) -> SchedulerStats:
        now = time.perf_counter()
        slots = []
        total = 0.0
        for slot in self._slots:
            job = slot.job
            rate = 0.0
            status = "idle"
            if job is not None:
                status = job.status
                if job.first_at is not None and now > job.first_at:
                    rate = job.generated / (now - job.first_at)
            total += rate
            slots.append(SlotStats(slot.seq, slot.owner, len(slot.tokens), status, rate))
        with self._cond:
            queued = len(self._inbox)
        queued += len(self._waiting)
        paused = sum(1 for job in self._waiting if job.parked is not None)
        return SchedulerStats(
            slots=tuple(slots),
            queued=queued - paused,
            paused=paused,
            kv_cells=self.kv_cells,
            kv_used=self._slots.used,
            parks=self._pool.parks,
            saved_states=len(self._slots.saved),
            saved_bytes=self._slots.saved_bytes,
            saved_conversations=tuple(list(self._slots.saved)),
            tokens_per_second=total,
            n_ctx_per_seq=self.n_ctx_per_seq,
            n_parallel=self.n_parallel,
            drafted=self._spec.drafted,
            accepted=self._spec.accepted,
        )

    def close(self) -> None:
        """Cancel everything (each handle gets its final Done) and free the context; returns once done."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if COMPUTE.current:
            if not self._closed.is_set():
                COMPUTE.detach(self)
                self._shutdown()
            return
        self._closed.wait()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cancelled(self) -> None:
        """A handle was cancelled: look at the handles at the next step."""
        with self._cond:
            self._cancels = True
            self._cond.notify()

    def _refuse(self, handle: Handle, error: LlamadeckError, submitted: float) -> None:
        handle.error = error
        elapsed = time.perf_counter() - submitted
        handle._push(
            Done(
                reason="error",
                prompt_tokens=len(handle.request.tokens),
                completion_tokens=0,
                load_seconds=0.0,
                prompt_seconds=elapsed,
                generate_seconds=0.0,
                total_seconds=elapsed,
                error=str(error),
            )
        )

    # -- on the compute thread -------------------------------------------------------------------

    def wants_step(self) -> bool:
        """(Under ``_cond``.) Whether there is anything to do."""
        return bool(self._inbox or self._closing or self._forget or self._active or self._waiting)

    def tick(self) -> bool:
        """One step of this scheduler, called by the compute thread in turn with the others."""
        with self._cond:
            self._waiting.extend(self._inbox)
            self._inbox.clear()
            forget, self._forget = self._forget, []
            closing = self._closing
        if closing:
            COMPUTE.detach(self)
            self._shutdown()
            return True
        try:
            for conversation in forget:
                self._slots.forget(conversation)
            return self._step()
        except Exception as error:  # noqa: BLE001 (a bug must not stop the streams silently)
            try:
                self._recover(error)
            except Exception as fatal:  # noqa: BLE001 (the context is in an unknown state: refuse from now on)
                with self._cond:
                    self._broken = f"the scheduler of {self.model.label} stopped: {fatal}"
                    self._closing = True
            return True

    def _recover(self, error: Exception) -> None:
        """An unexpected error in a step: fail what was running, start the KV cache afresh, keep serving."""
        message = f"internal error in the scheduler: {type(error).__name__}: {error}"
        # the waiting ones too: a request that breaks admission would otherwise be picked up again for ever
        for job in list(self._active) + list(self._waiting):
            self._finish(job, "error", LlamadeckError(message))
        self._waiting.clear()
        self._slots.clear()

    def _shutdown(self) -> None:
        with self._cond:
            self._closing = True
            self._waiting.extend(self._inbox)
            self._inbox.clear()
        try:
            reason = self._broken
            for job in list(self._active) + list(self._waiting):
                if reason:
                    self._finish(job, "error", LlamadeckError(reason))
                else:
                    self._finish(job, "cancelled")
            self._waiting.clear()
            self._slots.drop_saved()
            self._batch.free()
            self._spec.free()
            self._ctx.free()
        finally:
            self._closed.set()

    def _step(self) -> bool:
        """One decode for everything that runs; False when there was nothing to do."""
        changed = self._reap_cancelled()
        changed = self._pool.admit() or changed
        changed = self._pool.make_room() or changed
        batch = self._batch
        batch.clear()
        generating = [job for job in self._active if job.status == GENERATING]
        prefilling: list[Job] = []
        room = min(batch.capacity, self._slots.free) - len(generating)  # drafts take cells too
        if any(job.status == PREFILLING for job in self._active):  # a prompt's first token comes first
            room = 0
        self._spec.propose(generating, room, self._clock.t_decode, self._clock.t_token)
        for job in generating:
            slot = job.slot
            assert slot is not None
            job.index = batch.add(job.next_token, slot.next_pos, slot.seq, True)
            if job.spec is not None:
                add_drafts(batch, job.spec.draft, slot.next_pos + 1, slot.seq)
        if any(job.request.images for job in self._active):  # images: llama_decode calls of their own
            fail = lambda job, error: self._finish(job, "error", error)  # noqa: E731
            feed_images(self.projector, self._ctx, list(self._active), fail, self._slots.free - batch.n)
        room = self._batch.capacity - batch.n
        cells = self._slots.free - batch.n
        budget = self._clock.prompt_budget(len(generating), room)
        short = SHORT_BUDGET
        for job in self._active:
            if job.status != PREFILLING:
                continue
            slot = job.slot
            assert slot is not None
            start = job.done_prompt
            left = text_stop(job.request, start, len(job.tokens)) - start  # up to an image, if one comes
            whole = left <= min(SHORT_PROMPT, short)  # a short prompt goes whole, beside the chunks
            k = min(left if whole else budget, left, cells, batch.free_space)
            if k <= 0:
                continue
            last = start + k == len(job.tokens)
            index = batch.add_run(job.tokens[start : start + k], slot.next_pos, slot.seq, logits_last=last)
            job.index = index if last else -1
            job.chunk = k
            cells -= k
            if whole:
                short -= k
            else:
                budget -= k
            prefilling.append(job)
        if batch.n == 0:
            return changed
        started = time.perf_counter()
        try:
            self._ctx.decode(batch)
        except DecodeError as error:
            self._decode_failed(error, generating + prefilling)
            return True
        self._clock.learn(time.perf_counter() - started, len(generating), batch.n - len(generating))
        for job in generating:
            self._verify(job)
        for job in prefilling:
            slot = job.slot
            assert slot is not None
            start = job.done_prompt
            slot.tokens.extend(job.tokens[start : start + job.chunk])
            job.done_prompt = start + job.chunk
            job.chunk = 0
            if job.done_prompt == len(job.tokens):
                job.status = GENERATING
                if job.parked is not None:  # resumed: its next token was sampled before it was parked
                    job.parked = None
                elif job.limit <= 0:
                    self._finish(job, "length")
                else:
                    self._next(job)
        return True

    def _verify(self, job: Job) -> None:
        """Sample at the next token's position, then at each draft's in order while the sample equals the
        draft (why the output stays the target's: ``speculation.py``); the rejected drafts' cells go."""
        slot, spec = job.slot, job.spec
        assert slot is not None
        pos, draft = len(slot.tokens), spec.draft if spec is not None else []
        slot.tokens += [job.next_token, *draft]
        base, accepted = job.index, 0
        for i in range(len(draft) + 1):
            job.index = base + i
            if spec is not None:  # the reply's own figures, counted before its Done can go out
                self._spec.count(spec, i, len(draft))
            self._next(job)
            if i == len(draft) or job.handle.done is not None or job.next_token != draft[i]:
                break
            accepted += 1
        if spec is not None:
            self._spec.settle(spec, slot, pos, accepted)

    def _next(self, job: Job) -> None:
        """Sample the job's next token and stream its text; finish it on end of text, a stop or its limit."""
        try:
            token = job.sampler.sample(self._ctx, job.index)
            if job.first_at is None:
                job.first_at = time.perf_counter()
            if self.model.is_eog(token):
                self._finish(job, "stop")
                return
            job.generated += 1
            if job.request.logprobs is not None:
                job.logprobs.append(
                    token_logprob(self._ctx, self.model, job.index, token, job.request.logprobs)
                )
            preserve = job.request.preserve
            text, stopped = job.text.feed(
                self.model.piece(token, special=bool(preserve) and token in preserve)
            )
            if text:
                job.handle._push(job.token_event(text))
            if stopped:
                self._finish(job, "stop", flush=False)
            elif job.generated >= job.limit:
                self._finish(job, "length")
            else:
                job.next_token = token
        except Exception as error:  # noqa: BLE001 (this request fails; the others go on)
            self._finish(job, "error", LlamadeckError(f"{type(error).__name__}: {error}"))

    def _finish(
        self, job: Job, reason: str, error: LlamadeckError | None = None, *, flush: bool = True
    ) -> None:
        """Send the one final event, free the job's sampler and its slot (the slot keeps its KV cells)."""
        if job.handle.done is not None:
            return
        if flush and reason != "error" and (tail := job.text.flush()):
            job.handle._push(job.token_event(tail))
        now = time.perf_counter()
        first = job.first_at if job.first_at is not None else now
        job.sampler.free()
        slot = job.slot
        if slot is not None:  # released before the Done goes out: a caller that saw it sees the slot idle
            slot.job = None
            self._slots.touch(slot)
            job.slot = None
        if job in self._active:
            self._active.remove(job)
        elif job in self._waiting:
            self._waiting.remove(job)
        if error is not None:
            job.handle.error = error
        job.handle._push(
            Done(
                reason=reason,
                prompt_tokens=job.n_prompt,
                completion_tokens=job.generated,
                load_seconds=0.0,
                prompt_seconds=first - job.submitted,
                generate_seconds=now - first,
                cached_tokens=job.cached,
                total_seconds=now - job.submitted,
                error=None if error is None else str(error),
                stop_sequence=job.text.stopped_by if reason == "stop" else None,
                drafted=job.spec.drafted if job.spec else 0,
                accepted=job.spec.accepted if job.spec else 0,
            )
        )

    def _reap_cancelled(self) -> bool:
        if not self._cancels:  # (read without the lock: a cancel that races this is seen next step)
            return False
        with self._cond:
            self._cancels = False
        cancelled = [job for job in self._active + self._waiting if job.handle.cancelled]
        for job in cancelled:
            self._finish(job, "cancelled")
        return bool(cancelled)

    def _decode_failed(self, error: DecodeError, jobs: list[Job]) -> None:
        """Fail the requests in the batch. A fatal error may leave half a batch in the cache: start afresh.

        No room in the cache (code 1: the count of cells disagrees with llama.cpp's, which should not
        happen) fails nothing while a request can be parked: the step is tried again without it."""
        if error.code == 1 and len(self._active) > 1:
            self._pool.park(self._active[-1])
            return
        for job in jobs:
            self._finish(job, "error", error)
        if error.fatal:
            for job in list(self._active):
                self._finish(job, "error", error)
            self._slots.clear()
