"""One reply from a loaded model: the prompt it sees, submitted to its scheduler, and its events back.

``start_reply`` does what a generation needs once its model is loaded: it
picks the template (the model's own, the one llamadeck recorded for a base
model, or none for plain completion), puts the model's system prompt and
preset turns in front, fits the history into the context (the oldest turns
dropped, see ``history.py``), tokenizes it and submits it to the model's
scheduler. What comes back is a ``Reply``: Token events, then exactly one
Done with the request's own figures (load time, total time, dropped
messages); a Done "error" is raised as the error instead.

A thinking model's reply comes split, reasoning apart from the answer, and a
request that asks for it gets the conversation's tokens on its Done
(``shaping.py``); a ``suffix`` fills in the middle (``infill.py``).

A reply is read once, with ``for`` (blocking: the CLI and the TUI, on a
thread of their own) or with ``async for`` (asyncio: the HTTP API, woken by
the worker's reader thread itself, so each token crosses one thread handoff here).
It holds its model in use until its Done was read or it is closed; then
the keep-alive clock starts.

    reply = start_reply(runtime, request, fresh=True, started=t0, cancel=token, release=lease.close)
    for event in reply: ...            # or: async for event in reply: ...

Importing this module is cheap: the scheduler is imported by ``start_reply``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from engine.cancel import NEVER, CancelToken
from engine.errors import InvalidInput, LlamadeckError, PromptTooLong
from engine.events import Done, Generation, Token
from engine.options import LoadOptions, SamplingOptions
from engine.runtime.history import fit_history
from engine.store.manifest import Manifest
from engine.templates.message import Message
from engine.templates.render import ChatTemplate, template_for, with_system_prompt
from engine.templates.thinking import ThinkSetting

if TYPE_CHECKING:
    from engine.runtime.loader import Runtime
    from engine.runtime.request import Handle, ImageInput
    from engine.runtime.shaping import ReplyShape

MAX_BYTES_PER_TOKEN = 64  # no tokenizer packs more into one token: longer text cannot fit the context


@dataclass(frozen=True)
class GenerationRequest:
    """What one chat or generate call asks of a model, checked by the facade."""

    manifest: Manifest  # the name asked for: its template and system prompt (weights may be shared)
    messages: list[Message]
    sampling: SamplingOptions
    load: LoadOptions  # how the model is loaded (a loaded one with other options is loaded again)
    keep_alive: float | None  # seconds after the reply (``durations.parse_keep_alive``); None: the default
    tools: Sequence[Mapping[str, Any]] | None = None
    raw: bool | None = None  # None: the model's own template if it has one (see ``template_for``)
    conversation: str | None = None  # a key the caller keeps: its KV state stays resident
    think: ThinkSetting = ThinkSetting()  # resolved by the facade (``templates.thinking.think_setting``)
    suffix: str | None = None  # fill in the middle after the (one) prompt: ``runtime.infill``
    context: tuple[int, ...] = ()  # an earlier reply's conversation as tokens: the prompt goes after it
    keep_context: bool = False  # the Done carries this conversation's tokens
    grammar: str | None = None  # GBNF every token must follow (``engine.structured``: format, forced tools)
    logprobs: int | None = None  # None: none; n: each token's log probability and n alternatives


@dataclass(frozen=True)
class Prompt:
    """A request's prompt as the model gets it."""

    tokens: list[int]
    dropped: int  # oldest messages left out to fit
    tail: str  # the end of the rendered text: whether it opens the reply's reasoning
    needed: int | None = (
        None  # tokens of the whole history, nothing dropped (None: not counted, far too long)
    )
    images: tuple[ImageInput, ...] = ()  # where the images' placeholders lie in ``tokens``


def prompt_tokens(runtime: Runtime, request: GenerationRequest) -> Prompt:
    """The prompt as tokens, fitted into the model's context, and how many messages were dropped for it.

    Raises TemplateError (a template llamadeck cannot render), PromptTooLong
    (the system prompt and the last message alone do not fit) and InvalidInput
    (a suffix for a model that cannot fill in the middle, a context token
    outside the vocabulary).
    """
    manifest, model = request.manifest, runtime.model
    template = template_for(
        manifest.config.template,
        manifest.config.template_source,
        bos_token=model.bos_text,
        eos_token=model.eos_text,
        raw=request.raw,
    )
    if request.context and max(request.context) >= model.n_vocab:
        raise InvalidInput(f"context holds a token outside {manifest.reference}'s vocabulary")
    if request.suffix:
        return _insert_prompt(runtime, request, template)
    messages = request.messages
    marks = None
    if any(m.images for m in messages):  # checked by the facade; counted by the model's projector
        from engine.runtime.vision_prompt import ImageMarks

        messages, marks = ImageMarks.of(messages, model.image_tokens, model.image_wrap)
    if template is not None:
        preset = [] if request.context else [Message(r, c) for r, c in manifest.config.messages]
        messages = with_system_prompt(messages, manifest.config.system, preset=preset)
    n_ctx = runtime.settings.n_ctx
    tail = ""
    part = messages if template is not None else messages[-1:]
    needed: int | None = None

    def render(part_of: Sequence[Message]) -> list[int] | int | None:
        nonlocal needed
        tokens = _render(part_of)
        if len(part_of) == len(part):  # the whole history: what a context that holds it all must hold
            needed = len(tokens) if isinstance(tokens, list) else tokens
        return tokens

    def _render(part: Sequence[Message]) -> list[int] | int | None:
        nonlocal tail
        if template is None:  # plain completion: the prompt as it is
            text = "\n\n".join(m.content for m in part)
        else:
            text = template.render(part, tools=request.tools, think=request.think)
        if len(text.encode()) > n_ctx * MAX_BYTES_PER_TOKEN:
            return None  # cannot fit whatever the tokenizer says: never tokenize megabytes (quadratic)
        tail = text[-_TAIL:]
        room = n_ctx - len(request.context)  # more tokens than this cannot fit: not even counted out
        special = {"add_special": not request.context, "parse_special": template is not None}
        if marks is not None:
            tokens = marks.tokenize(model, text, room, **special)
        else:
            tokens = model.tokenize_within(text, room, **special)
        return len(request.context) + tokens if isinstance(tokens, int) else [*request.context, *tokens]

    limit = n_ctx - min(256, n_ctx // 8)  # room for a reply
    try:
        tokens, dropped = fit_history(part, render, limit, context=n_ctx)
    except PromptTooLong as error:
        error.needed = needed
        raise
    return Prompt(tokens, dropped, tail, needed, marks.inputs(tokens) if marks is not None else ())


_TAIL = 64  # characters of a rendered prompt kept to see how it ends


def _insert_prompt(runtime: Runtime, request: GenerationRequest, template: ChatTemplate | None) -> Prompt:
    """Fill in the middle: the template's way if it reads ``.Suffix``, else the vocabulary's FIM tokens."""
    from engine.runtime.infill import insert_tokens, refuse_insert

    model, prompt, suffix = runtime.model, request.messages[-1].content, request.suffix or ""
    render_insert = getattr(template, "render_insert", None)
    if render_insert is not None and getattr(template, "reads_suffix", False):
        text = render_insert(prompt, suffix, think=request.think)
        if len(text.encode()) > runtime.settings.n_ctx * MAX_BYTES_PER_TOKEN:
            raise PromptTooLong(
                f"the prompt and suffix cannot fit the {runtime.settings.n_ctx}-token context"
            )
        tokens = model.tokenize(text, add_special=not request.context, parse_special=True)
        return Prompt([*request.context, *tokens], 0, text[-_TAIL:])
    if len((prompt + suffix).encode()) > runtime.settings.n_ctx * MAX_BYTES_PER_TOKEN:
        raise PromptTooLong(f"the prompt and suffix cannot fit the {runtime.settings.n_ctx}-token context")
    inserted = insert_tokens(model, prompt, suffix)
    if inserted is None:
        raise refuse_insert(request.manifest.reference)
    tokens = inserted
    if request.context and tokens[:1] == [model.bos] and model.add_bos:
        tokens = tokens[1:]
    return Prompt([*request.context, *tokens], 0, "")


@dataclass(frozen=True)
class ContextUse:
    """How much of a loaded model's context a chat takes, counted before it is sent."""

    prompt_tokens: int  # the prompt as it would be submitted (old turns dropped to fit)
    context: int  # tokens a conversation may hold (num_ctx as loaded)
    dropped_messages: int  # oldest turns that would be left out so the rest fits
    needed: int | None = None  # tokens of the whole chat, nothing dropped (None: far past the context)

    @property
    def fraction(self) -> float:
        return self.prompt_tokens / self.context if self.context else 1.0


def measure(runtime: Runtime, request: GenerationRequest) -> ContextUse:
    """Count ``request``'s prompt as ``start_reply`` would submit it, without submitting it.

    Raises PromptTooLong, with the count (and ``needed``), when even the last message cannot fit.
    """
    prompt = prompt_tokens(runtime, request)
    return ContextUse(len(prompt.tokens), runtime.settings.n_ctx, prompt.dropped, prompt.needed)


def start_reply(
    runtime: Runtime,
    request: GenerationRequest,
    *,
    fresh: bool,
    started: float,
    cancel: CancelToken = NEVER,
    release: Callable[[], None] = lambda: None,
    max_queue: int | None = None,
) -> Reply:
    """Fit, tokenize and submit ``request`` to the loaded ``runtime``; the Reply streams its events.

    ``fresh``: the model was loaded for this request (its Done carries the
    load time); ``started``: ``time.perf_counter()`` when the request came;
    ``release`` lets go of the model, called once when the reply ends (also
    when this raises). Cancelling ``cancel`` stops the generation.
    ``max_queue``: requests that may wait for a slot before this one is refused (QueueFull).
    """
    from engine.runtime import loader
    from engine.runtime.request import Request
    from engine.runtime.shaping import reply_shape
    from engine.templates.thinking import format_of

    try:
        prompt = prompt_tokens(runtime, request)
        shape, preserve = reply_shape(
            runtime.model,
            format_of(request.manifest),
            request.think,
            raw=request.raw is True,
            tail=prompt.tail,
            prompt=prompt.tokens if request.keep_context else None,
        )
        sampling = request.sampling
        handle = runtime.submit(
            Request(
                tokens=prompt.tokens,
                sampling=sampling,
                max_tokens=loader.max_tokens(sampling),
                stop=sampling.stop,
                conversation=request.conversation,
                preserve=preserve,
                grammar=request.grammar,
                logprobs=request.logprobs,
                images=prompt.images,
            ),
            max_queue=max_queue,
        )
    except BaseException:
        release()
        raise
    load_seconds = runtime.load_seconds if fresh else 0.0
    return Reply(
        handle,
        started=started,
        load_seconds=load_seconds,
        dropped=prompt.dropped,
        prompt_tokens=len(prompt.tokens),
        cancel=cancel,
        release=release,
        shape=None if shape.idle else shape,
    )


class Reply:
    """A generation under way: Token events, then exactly one Done; read once, with ``for`` or ``async for``.

    The Done is the scheduler's with this request's load time, total time
    and dropped messages; a Done "error" raises the generation's error
    instead. A reader that stops early (``break``, a closed connection)
    cancels the generation. ``close`` ends a reply that is not read to its
    end (``close_soon`` on an event loop); both are safe to call more than
    once, from any thread.
    """

    def __init__(
        self,
        handle: Handle | None,
        *,
        started: float,
        load_seconds: float = 0.0,
        dropped: int = 0,
        prompt_tokens: int = 0,
        cancel: CancelToken = NEVER,
        release: Callable[[], None] = lambda: None,
        shape: ReplyShape | None = None,
    ) -> None:
        self.prompt_tokens = prompt_tokens  # the prompt as submitted, known before its first token
        self._handle = handle
        self._shape = shape
        self._started = started
        self._load_seconds = load_seconds
        self._dropped = dropped
        self._release = release
        self._forget = cancel.on_cancel(handle.cancel) if handle is not None else lambda: None
        self._lock = threading.Lock()
        self._finished = False  # the Done was read
        self._closing = False  # close was called, or handed to a worker thread
        self._closed = False

    @classmethod
    def cancelled_while_loading(cls, started: float) -> Reply:
        """The reply of a request cancelled before its model was loaded: only a Done "cancelled"."""
        return cls(None, started=started)

    def close(self) -> None:
        """Stop the generation unless its Done was read, and let go of the model; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closing = self._closed = True
        try:
            self._forget()
            if not self._finished and self._handle is not None:
                self._handle.cancel()  # the reader stopped early: the slot is free at the next step
        finally:
            self._release()

    def _last(self, done: Done) -> Done:
        """The scheduler's Done as this request's: its figures added, or its error raised."""
        self._finished = True
        if done.reason == "error":
            error = self._handle.error if self._handle is not None else None
            raise error or LlamadeckError(done.error or "generation failed")
        return replace(
            done,
            load_seconds=self._load_seconds,
            total_seconds=time.perf_counter() - self._started,
            dropped_messages=self._dropped,
        )

    def _end(self, done: Done) -> tuple[Token | None, Done]:
        """The last piece the shape held and this request's Done (before the model is let go)."""
        done = self._last(done)
        if self._shape is None:
            return None, done
        return self._shape.end(done)

    def _cancelled_early(self, let_go: Callable[[], None]) -> Done:
        """The only event of a reply cancelled while its model loaded (the model let go first)."""
        self._finished = True
        waited = time.perf_counter() - self._started
        let_go()
        return Done("cancelled", 0, 0, waited, 0.0, 0.0, total_seconds=waited)

    def _passed(self, event: Token | Done, let_go: Callable[[], None]) -> tuple[Generation, ...]:
        """What the reader is given for one of the scheduler's events (``__iter__`` and ``__aiter__``).

        A Token goes through the reply's shape, which may hold it back; a Done
        becomes this request's, after the last piece the shape held, and the
        model is let go before the reader sees the end.
        """
        if isinstance(event, Done):
            last, done = self._end(event)
            let_go()
            return (done,) if last is None else (last, done)
        if self._shape is None:
            return (event,)
        shaped = self._shape.token(event)
        return () if shaped is None else (shaped,)

    def __iter__(self) -> Iterator[Generation]:
        try:
            if self._handle is None:
                yield self._cancelled_early(self.close)
                return
            for event in self._handle:  # ends after the Done
                yield from self._passed(event, self.close)
        finally:
            self.close()

    async def __aiter__(self) -> AsyncIterator[Generation]:
        try:
            if self._handle is None:
                yield self._cancelled_early(self.close_soon)
                return
            # close_soon at the Done: a reader that stops there need not close the reply
            async for event in self._handle.aiter():  # ends after the Done
                for passed in self._passed(event, self.close_soon):
                    yield passed
        finally:
            self.close_soon()

    def close_soon(self) -> None:
        """``close`` for an event loop: on a worker thread, as letting go of a model may unload it."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        try:
            asyncio.get_running_loop().run_in_executor(None, self.close)
        except RuntimeError:  # no loop or its executor is shut down (the server is stopping): here, then
            self.close()
