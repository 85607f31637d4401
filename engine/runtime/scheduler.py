"""Continuous batching over one llama.cpp context: many conversations decoded together.

One thread owns the context and nothing else touches it: the process's
llama.cpp compute thread (``llama.compute.COMPUTE``, which steps every scheduler in
turn; why one for all is in its docstring). Each step builds one batch: the
next token of every generating sequence, plus a chunk of a prompt still
being evaluated, and runs it in a single ``llama_decode``; new requests join
at the next step. On the H100 eight sequences decoded together gave 3.5x
the tokens/s of one (``shared/FACTS.md``); on 2 CPU cores with the demo
Gemma, 8 streams through this scheduler gave 194 tok/s against 98 for one,
each within 2% of a bare llama.cpp loop (``bench/generate.py``).

Design choices, and why:

- **Slots.** ``n_parallel`` sequences (``n_seq_max``), ``kv_unified`` off:
  llama.cpp gives each sequence its own ``n_ctx_per_seq`` cells, which is
  exactly Ollama's per-conversation ``num_ctx``. A long conversation cannot
  eat the cells of the others, so no eviction is ever needed for lack of
  cells, and llama.cpp notes that separate streams decode faster when the
  sequences share no long prefix (the usual case for chats). The price: a
  copy between sequences (``seq_cp``) copies a whole stream, so it is used
  only when it saves a real prefix.
- **Prefix reuse.** A conversation keeps its slot: a follow-up evaluates only
  what follows the longest common prefix with what the slot holds
  (``seq_rm`` from the divergence), so an edited or regenerated turn reuses
  everything before it. The last prompt token is always evaluated again, for
  its logits. A request with no conversation (HTTP clients send whole
  message lists) takes the idle slot that shares the longest prefix; when the
  best prefix sits in a busy or owned slot it is copied to a free one.
- **Eviction.** More conversations than slots: the least recently used idle
  slot is taken. On CPU its KV cells are saved to host memory
  (``llama_state_seq_get_data``: 9 ms for 2,000 Gemma tokens, restore 2 ms,
  against ~4 s to evaluate them again) within ``state_budget_bytes``, oldest
  saved state dropped first; on a GPU they are simply dropped, since copying
  400 MiB out costs as much as evaluating the history again there.
- **Chunked prefill.** While other sequences generate, a prompt is evaluated
  in chunks sized from measured step times so that a step with a chunk costs
  about ``PREFILL_STEP_RATIO`` x a decode-only step: the other streams keep
  flowing at a bounded slowdown instead of stalling for seconds. With nothing
  generating, prompts go in full ``n_batch`` chunks.
- **Text.** Pieces go through an incremental UTF-8 decoder (a character split
  over byte tokens appears once whole), and stop strings are matched on the
  text, held back while the text could still become one; the reply never
  contains the stop string. Token counts count llama.cpp tokens.

    scheduler = Scheduler(model, n_ctx_per_seq=4096, n_parallel=4, n_threads=physical_cores())
    handle = scheduler.submit(Request(model.tokenize(prompt), SamplingOptions(temperature=0), 128))
    for event in handle:            # Token ... then one Done
        ...
    scheduler.close()
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field

from engine.errors import InvalidInput, LlamadeckError, PromptTooLong
from engine.events import Done, Token
from engine.runtime.llama.compute import COMPUTE
from engine.runtime.llama.context import Batch, Context, DecodeError
from engine.runtime.llama.model import Model
from engine.runtime.llama.sampler import Sampler
from engine.options import SamplingOptions
from engine.machine.physical import physical_cores

# A step with a prompt chunk may cost this many decode-only steps. The prompt then takes R / (R - 1) times
# as long as alone (2.25x at R = 1.8), while the running streams slow down by about R (their p95 gap stays
# under 3x the median with the noise of a shared machine).
PREFILL_STEP_RATIO = 1.8
# tokens, so a prompt always advances (on CPU one Gemma 3 prompt token costs 1/5 of a decode step)
MIN_CHUNK = 2
FIRST_CHUNK = 16  # before any step has been timed
MIN_COPY = 16  # a prefix shorter than this is evaluated again rather than copied between streams
_EMA = 0.25


GREEDY = SamplingOptions(temperature=0.0, repeat_penalty=1.0)  # the same text every time


@dataclass(frozen=True)
class Request:
    """One generation: the whole prompt as tokens (the full rendered conversation), tokenized by the caller.

    ``max_tokens`` None (or negative) generates until the context is full.
    ``conversation`` is a key the caller keeps (a TUI chat id) so the
    conversation keeps its slot and KV cells between turns; None is a
    stateless request (HTTP) that still reuses any matching prefix.
    """

    tokens: list[int]
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    conversation: str | None = None


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


# -- text ------------------------------------------------------------------------------------------


class TextStream:
    """Token pieces in, text out: whole UTF-8 characters, stop strings cut and never shown.

    ``feed`` returns the text that is safe to show now and whether a stop
    string was met (then everything from it on is dropped). Text that could
    be the start of a stop string is held back until it is not.
    """

    __slots__ = ("_decode", "_stops", "_hold_max", "_pending")

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        self._stops = tuple(s for s in stop if s)
        self._hold_max = max((len(s) for s in self._stops), default=1) - 1
        self._pending = ""

    def feed(self, piece: bytes) -> tuple[str, bool]:
        text = self._decode(piece)
        if not self._stops:
            return text, False
        text = self._pending + text
        cut = -1
        for stop in self._stops:
            at = text.find(stop)
            if at >= 0 and (cut < 0 or at < cut):
                cut = at
        if cut >= 0:
            self._pending = ""
            return text[:cut], True
        hold = self._held(text)
        self._pending = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold], False

    def _held(self, text: str) -> int:
        """The longest end of ``text`` that begins some stop string."""
        for n in range(min(len(text), self._hold_max), 0, -1):
            tail = text[-n:]
            if any(stop.startswith(tail) for stop in self._stops):
                return n
        return 0

    def flush(self) -> str:
        """Whatever was held back (an unfinished character becomes U+FFFD)."""
        text = self._pending + self._decode(b"", True)
        self._pending = ""
        return text


# -- handles ---------------------------------------------------------------------------------------


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Handle:
    """What ``submit`` returns: the request's events (Token..., then one Done) and ``cancel``.

    Iterate it in one consumer: blocking with ``for event in handle`` or in
    asyncio with ``async for event in handle.aiter()``. A consumer that stops
    early (break, a closed HTTP connection) cancels the request. Events are
    buffered, so a slow consumer never slows the other streams.
    """

    def __init__(self, request: Request, on_cancel: Callable[[], None]) -> None:
        self.request = request
        self.error: LlamadeckError | None = None  # set before a Done with reason "error"
        self._on_cancel = on_cancel
        self._events: collections.deque[Token | Done] = collections.deque()
        self._lock = threading.Lock()
        self._waiter: Callable[[], None] | None = None
        self._cancel = False
        self._done: Done | None = None

    # called by the scheduler thread
    def _push(self, event: Token | Done) -> None:
        with self._lock:
            self._events.append(event)
            if isinstance(event, Done):
                self._done = event
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter()

    def cancel(self) -> None:
        """Stop the request within one step: the text so far was streamed, a Done "cancelled" follows."""
        self._cancel = True
        self._on_cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel

    @property
    def done(self) -> Done | None:
        """The final event once it has been produced."""
        return self._done

    def _take(self) -> list[Token | Done]:
        events = list(self._events)
        self._events.clear()
        return events

    def __iter__(self) -> Iterator[Token | Done]:
        finished = False
        try:
            while True:
                with self._lock:
                    events = self._take()
                    if not events:
                        if self._done is not None:  # read to the end already, by another loop
                            finished = True
                            return
                        ready = threading.Event()
                        self._waiter = ready.set
                if not events:
                    ready.wait()
                    continue
                for event in events:
                    yield event
                    if isinstance(event, Done):
                        finished = True
                        return
        finally:
            if not finished:
                self.cancel()

    async def aiter(self) -> AsyncIterator[Token | Done]:
        """The events in asyncio: the scheduler thread wakes the loop only when it waits."""
        loop = asyncio.get_running_loop()
        finished = False
        try:
            while True:
                with self._lock:
                    events = self._take()
                    if not events:
                        if self._done is not None:
                            finished = True
                            return
                        future: asyncio.Future[None] = loop.create_future()

                        def wake(future: asyncio.Future[None] = future) -> None:
                            loop.call_soon_threadsafe(_resolve, future)

                        self._waiter = wake
                if not events:
                    await future
                    continue
                for event in events:
                    yield event
                    if isinstance(event, Done):
                        finished = True
                        return
        finally:
            if not finished:
                self.cancel()

    def collect(self) -> tuple[str, Done]:
        """Block until done: the whole text and the final event."""
        parts: list[str] = []
        for event in self:
            if isinstance(event, Token):
                parts.append(event.text)
            else:
                return "".join(parts), event
        raise AssertionError("a handle ended without a Done")  # pragma: no cover


# -- the scheduler ---------------------------------------------------------------------------------

_QUEUED, _PREFILLING, _GENERATING = "queued", "prefilling", "generating"


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix (compared in slices: C speed for long histories)."""
    n = min(len(a), len(b))
    i, step = 0, 256
    while step:
        while i + step <= n and a[i : i + step] == b[i : i + step]:
            i += step
        step //= 4
    return i


def _smooth(average: float | None, sample: float) -> float:
    """A moving average that a stall (another process took a core for 0.5 s) barely moves."""
    if average is None:
        return sample
    weight = _EMA if sample < 3 * average else _EMA / 10
    return average + weight * (sample - average)


class _Saved:
    __slots__ = ("tokens", "data")

    def __init__(self, tokens: list[int], data: bytearray) -> None:
        self.tokens = tokens
        self.data = data


class _Slot:
    __slots__ = ("seq", "tokens", "owner", "job", "last_used")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.tokens: list[int] = []  # exactly what the sequence's KV cells hold, position by position
        self.owner: str | None = None  # the conversation that keeps this slot
        self.job: _Job | None = None
        self.last_used = 0


class _Job:
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
        self.slot: _Slot | None = None
        self.status = _QUEUED
        self.done_prompt = 0  # prompt tokens in the KV cache
        self.cached = 0
        self.generated = 0
        self.limit = limit
        self.next_token = -1  # sampled, to be decoded next step
        self.index = -1  # its logits' index in this step's batch, -1: none
        self.chunk = 0  # prompt tokens in this step's batch


class Scheduler:
    """Thread-safe front of one loaded model: ``submit`` requests, iterate their handles.

    ``n_ctx_per_seq`` is each conversation's context (Ollama's ``num_ctx``),
    ``n_parallel`` the sequences decoded together (``OLLAMA_NUM_PARALLEL``):
    the KV cache holds ``n_ctx_per_seq * n_parallel`` cells. ``n_threads``
    defaults to the physical cores. ``save_states`` (default: not on a GPU)
    keeps evicted conversations' KV cells in host memory. Raises LoadError
    when llama.cpp cannot create the context (not enough memory).
    """

    def __init__(
        self,
        model: Model,
        *,
        n_ctx_per_seq: int,
        n_parallel: int,
        n_threads: int | None = None,
        n_batch: int = 512,
        flash_attn: str = "auto",
        type_k: str = "f16",
        type_v: str = "f16",
        state_budget_bytes: int = 512 << 20,
        save_states: bool | None = None,
    ) -> None:
        if n_ctx_per_seq < 2 or n_parallel < 1:
            raise InvalidInput("a scheduler needs n_ctx_per_seq >= 2 and n_parallel >= 1")
        if model.has_encoder:
            raise InvalidInput(f"{model.label} is an encoder model: it cannot generate text here")
        self.model = model
        self.n_ctx_per_seq = n_ctx_per_seq
        self.n_parallel = n_parallel
        self.state_budget_bytes = state_budget_bytes
        self.save_states = (not model.offloaded) if save_states is None else save_states
        self._ctx = COMPUTE.call(
            lambda: Context(
                model,
                n_ctx=n_ctx_per_seq * n_parallel,
                n_seq_max=n_parallel,
                n_batch=max(n_batch, n_parallel),
                n_threads=n_threads or physical_cores(),
                flash_attn=flash_attn,
                type_k=type_k,
                type_v=type_v,
                kv_unified=False,
                n_outputs_max=n_parallel,  # one set of logits per sequence and step: 500 MiB less for Gemma 3
            )
        )
        self._batch = Batch(self._ctx.n_batch)
        self._slots = [_Slot(i) for i in range(n_parallel)]
        self._owners: dict[str, _Slot] = {}
        self._saved: collections.OrderedDict[str, _Saved] = collections.OrderedDict()
        self._saved_bytes = 0
        self._active: list[_Job] = []  # in admission order: prompts are evaluated first come, first served
        self._waiting: list[_Job] = []
        self._clock = 0  # advances whenever a slot is taken or freed: its last_used
        self._t_decode: float | None = None  # seconds of a decode-only step (EMA)
        self._t_token: float | None = None  # seconds per prompt token in a step (EMA)
        self._forget: list[str] = []
        # shared with other threads, under _cond (the compute thread's)
        self._cond = COMPUTE.cond
        self._inbox: list[_Job] = []
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
                self._inbox.extend(job for job in jobs if isinstance(job, _Job))
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

    def _job(self, request: Request, submitted: float) -> _Job | Handle:
        """The job for a valid request, else its handle with the error already in it."""
        handle = Handle(request, self._cancelled)
        try:
            tokens = request.tokens
            if request.conversation is not None and not isinstance(request.conversation, str):
                raise InvalidInput("a conversation key is a string")
            if not tokens:
                raise InvalidInput("the prompt is empty")
            if min(tokens) < 0 or max(tokens) >= self.model.n_vocab:
                raise InvalidInput(f"the prompt holds a token outside {self.model.label}'s vocabulary")
            if len(tokens) >= self.n_ctx_per_seq:
                raise PromptTooLong(
                    f"the prompt is {len(tokens)} tokens but each conversation on {self.model.label} has a "
                    f"{self.n_ctx_per_seq}-token context: drop old turns or raise num_ctx"
                )
            room = self.n_ctx_per_seq - len(tokens)
            limit = (
                room
                if request.max_tokens is None or request.max_tokens < 0
                else min(request.max_tokens, room)
            )
            sampler = Sampler.from_options(self.model, request.sampling, context_size=self.n_ctx_per_seq)
        except LlamadeckError as error:
            self._refuse(handle, error, submitted)
            return handle
        return _Job(request, handle, sampler, limit, submitted)

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
        return SchedulerStats(
            slots=tuple(slots),
            queued=queued,
            saved_states=len(self._saved),
            saved_bytes=self._saved_bytes,
            saved_conversations=tuple(list(self._saved)),
            tokens_per_second=total,
            n_ctx_per_seq=self.n_ctx_per_seq,
            n_parallel=self.n_parallel,
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
                self._drop_conversation(conversation)
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
        self._ctx.clear()
        for slot in self._slots:
            slot.tokens = []

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
            self._saved.clear()
            self._saved_bytes = 0
            self._batch.free()
            self._ctx.free()
        finally:
            self._closed.set()

    def _step(self) -> bool:
        """One decode for everything that runs; False when there was nothing to do."""
        changed = self._reap_cancelled()
        changed = self._admit() or changed
        batch = self._batch
        batch.clear()
        generating: list[_Job] = []
        prefilling: list[_Job] = []
        for job in self._active:
            slot = job.slot
            assert slot is not None
            if job.status == _GENERATING:
                job.index = batch.add(job.next_token, len(slot.tokens), slot.seq, True)
                generating.append(job)
        budget = self._chunk_budget(len(generating))
        for job in self._active:
            if job.status != _PREFILLING or budget <= 0:
                continue
            slot = job.slot
            assert slot is not None
            start = job.done_prompt
            k = min(len(job.tokens) - start, budget, batch.free_space)
            if k <= 0:
                continue
            last = start + k == len(job.tokens)
            index = batch.add_run(job.tokens[start : start + k], len(slot.tokens), slot.seq, logits_last=last)
            job.index = index if last else -1
            job.chunk = k
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
        self._learn(time.perf_counter() - started, len(generating), batch.n - len(generating))
        for job in generating:
            slot = job.slot
            assert slot is not None
            slot.tokens.append(job.next_token)
            self._next(job)
        for job in prefilling:
            slot = job.slot
            assert slot is not None
            start = job.done_prompt
            slot.tokens.extend(job.tokens[start : start + job.chunk])
            job.done_prompt = start + job.chunk
            job.chunk = 0
            if job.done_prompt == len(job.tokens):
                job.status = _GENERATING
                if job.limit <= 0:
                    self._finish(job, "length")
                else:
                    self._next(job)
        return True

    def _chunk_budget(self, n_generating: int) -> int:
        """Prompt tokens this step may take: all the batch holds when nothing generates, else a chunk."""
        room = self._batch.capacity - n_generating
        if n_generating == 0:
            return room
        if self._t_decode is None or self._t_token is None:
            return min(FIRST_CHUNK, room)
        chunk = int((PREFILL_STEP_RATIO - 1.0) * self._t_decode / self._t_token)
        return max(MIN_CHUNK, min(chunk, room))

    def _learn(self, seconds: float, n_generating: int, n_prompt: int) -> None:
        """Keep the step-time model (decode-only step, cost per prompt token) that sizes the chunks."""
        if n_prompt == 0:
            if n_generating:
                self._t_decode = _smooth(self._t_decode, seconds)
            return
        if n_generating and self._t_decode is not None:
            per = max(seconds - self._t_decode, 0.0) / n_prompt
        elif n_generating:
            return
        else:
            per = seconds / n_prompt
        self._t_token = _smooth(self._t_token, max(per, 1e-7))

    def _next(self, job: _Job) -> None:
        """Sample the job's next token and stream its text; finish it on end of text, a stop or its limit."""
        try:
            token = job.sampler.sample(self._ctx, job.index)
            if job.first_at is None:
                job.first_at = time.perf_counter()
            if self.model.is_eog(token):
                self._finish(job, "stop")
                return
            job.generated += 1
            text, stopped = job.text.feed(self.model.piece(token))
            if text:
                job.handle._push(Token(text))
            if stopped:
                self._finish(job, "stop", flush=False)
            elif job.generated >= job.limit:
                self._finish(job, "length")
            else:
                job.next_token = token
        except Exception as error:  # noqa: BLE001 (this request fails; the others go on)
            self._finish(job, "error", LlamadeckError(f"{type(error).__name__}: {error}"))

    def _finish(
        self, job: _Job, reason: str, error: LlamadeckError | None = None, *, flush: bool = True
    ) -> None:
        """Send the one final event, free the job's sampler and its slot (the slot keeps its KV cells)."""
        if job.handle.done is not None:
            return
        if flush and reason != "error" and (tail := job.text.flush()):
            job.handle._push(Token(tail))
        now = time.perf_counter()
        first = job.first_at if job.first_at is not None else now
        job.sampler.free()
        slot = job.slot
        if slot is not None:  # released before the Done goes out: a caller that saw it sees the slot idle
            slot.job = None
            self._clock += 1
            slot.last_used = self._clock
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
                prompt_tokens=len(job.tokens),
                completion_tokens=job.generated,
                load_seconds=0.0,
                prompt_seconds=first - job.submitted,
                generate_seconds=now - first,
                cached_tokens=job.cached,
                total_seconds=now - job.submitted,
                error=None if error is None else str(error),
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

    def _decode_failed(self, error: DecodeError, jobs: list[_Job]) -> None:
        """Fail the requests in the batch. A fatal error may leave half a batch in the cache: start afresh."""
        for job in jobs:
            self._finish(job, "error", error)
        if error.fatal:
            for job in list(self._active):
                self._finish(job, "error", error)
            self._ctx.clear()
            for slot in self._slots:
                slot.tokens = []

    # -- slots, prefixes, eviction ----------------------------------------------------------------

    def _admit(self) -> bool:
        admitted = False
        for job in list(self._waiting):
            slot = self._place(job)
            if slot is None:
                continue
            self._waiting.remove(job)
            slot.job = job
            job.slot = slot
            job.status = _PREFILLING
            self._clock += 1
            slot.last_used = self._clock
            if job.sampler.penalized:  # penalties look back over the prompt too, as llama.cpp's server does
                job.sampler.accept(job.tokens[-job.sampler.penalty_last_n :])
            self._active.append(job)
            admitted = True
        return admitted

    def _place(self, job: _Job) -> _Slot | None:
        """Choose the job's slot and set its KV cells up to the reusable prefix; None: wait for one."""
        conversation = job.request.conversation
        if conversation is not None and conversation in self._owners:
            slot = self._owners[conversation]
            if slot.job is not None:  # its previous turn still runs
                return None
            self._keep_prefix(job, slot)
            return slot
        target = self._free_slot(job.tokens)
        if target is None:
            return None
        restored = False
        saved = self._saved.pop(conversation, None) if conversation is not None else None
        if saved is not None:
            self._saved_bytes -= len(saved.data)
            self._evict(target, keep_cells=False)  # (saving the evicted one cannot drop this one now)
            restored = self._restore(saved, target)
        if not restored:
            source, shared = self._best_prefix(job.tokens, exclude=target)
            if source is not None and shared >= common_prefix(target.tokens, job.tokens) + MIN_COPY:
                self._evict(target, keep_cells=False)
                # a whole stream: the only copy llama.cpp makes between non-unified sequences
                self._ctx.seq_cp(source.seq, target.seq)
                target.tokens = list(source.tokens)
            else:
                self._evict(target, keep_cells=True)
        if conversation is not None:
            target.owner = conversation
            self._owners[conversation] = target
        self._keep_prefix(job, target)
        return target

    def _free_slot(self, tokens: list[int]) -> _Slot | None:
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

    def _best_prefix(self, tokens: list[int], exclude: _Slot) -> tuple[_Slot | None, int]:
        best: _Slot | None = None
        length = 0
        for slot in self._slots:
            if slot is exclude or not slot.tokens:
                continue
            n = common_prefix(slot.tokens, tokens)
            if n > length:
                best, length = slot, n
        return best, length

    def _keep_prefix(self, job: _Job, slot: _Slot) -> None:
        """Drop the slot's cells after the longest common prefix with the prompt (at least the last prompt
        token is evaluated again, for its logits)."""
        keep = min(common_prefix(slot.tokens, job.tokens), len(job.tokens) - 1)
        if keep < len(slot.tokens) and not self._ctx.seq_rm(slot.seq, keep, -1):
            self._ctx.seq_rm(slot.seq, -1, -1)  # a partial removal is impossible here: start over
            keep = 0
        del slot.tokens[keep:]
        # never expected, but a cache holding other than we think would be worse than slow
        if self._ctx.seq_pos_max(slot.seq) != keep - 1:
            self._ctx.seq_rm(slot.seq, -1, -1)
            slot.tokens.clear()
            keep = 0
        job.cached = job.done_prompt = keep

    def _evict(self, slot: _Slot, *, keep_cells: bool) -> None:
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
            slot.tokens = []

    def _save(self, owner: str, slot: _Slot) -> None:
        data = self._ctx.state_get(slot.seq)
        if len(data) > self.state_budget_bytes:
            return
        self._saved[owner] = _Saved(list(slot.tokens), data)
        self._saved_bytes += len(data)
        while self._saved_bytes > self.state_budget_bytes:
            _, dropped = self._saved.popitem(last=False)
            self._saved_bytes -= len(dropped.data)

    def _restore(self, saved: _Saved, slot: _Slot) -> bool:
        self._ctx.seq_rm(slot.seq, -1, -1)
        slot.tokens = []
        if (
            self._ctx.state_set(slot.seq, saved.data)
            and self._ctx.seq_pos_max(slot.seq) == len(saved.tokens) - 1
        ):
            slot.tokens = saved.tokens
            return True
        self._ctx.seq_rm(slot.seq, -1, -1)
        return False

    def _drop_conversation(self, conversation: str) -> None:
        saved = self._saved.pop(conversation, None)
        if saved is not None:
            self._saved_bytes -= len(saved.data)
        slot = self._owners.pop(conversation, None)
        if slot is not None:
            slot.owner = None
