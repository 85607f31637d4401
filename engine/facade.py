"""``Engine``: the one entry point of the engine, as the CLI, the TUI and the HTTP API call it.

It coordinates and owns no algorithm. The store side (pull, show, rm, cp,
create, verify, ...) is inherited from ``ModelLibrary`` (``engine.library``);
running models is here: each call checks what it is given, then hands the
work on — loading and memory planning to ``runtime.residency`` and the
registry, the prompt and its reply to ``runtime.session``, keep-alive
durations to ``engine.durations``.

    engine = Engine()
    for event in engine.chat("gemma3:270m", [{"role": "user", "content": "Hi"}]):
        ...                                   # Token..., then one Done
    reply = engine.start_chat(...)            # loaded and submitted (blocks): read with for or async for
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cancel import NEVER, CancelToken
from engine.durations import parse_keep_alive
from engine.errors import Cancelled, InvalidInput, check_unicode
from engine.events import Generation
from engine.library import ModelLibrary
from engine.machine.memory import Machine
from engine.options import LoadOptions, SamplingOptions
from engine.runtime.registry import Registry, Resident
from engine.runtime.request import check_logprobs
from engine.runtime.session import GenerationRequest, Reply
from engine.store.manifest import Manifest
from engine.store.model_store import Store
from engine.store.refs import parse_ref
from engine.templates.message import Message

if TYPE_CHECKING:
    from engine.runtime.loader import Runtime


@dataclass(frozen=True)
class LoadedModel:
    """A model in memory, as ``ps`` and the Sessions tab show it."""

    reference: str
    id: str
    memory: int  # bytes, RAM and VRAM together
    vram: int
    gpu_layers: int  # llama.cpp's count, the output layer included
    layers: int  # every layer llama.cpp could offload (repeating layers + output)
    context: int  # per conversation
    slots: int
    slots_busy: int
    conversations: tuple[str, ...]  # resident in a slot or saved to host memory
    status: str  # "idle", "generating" or "queued"
    queued: int
    tokens_per_second: float  # the running streams together
    expires_in: float | None  # seconds until keep-alive unloads it; None while in use or kept for ever
    manifest: Manifest | None = None  # what was loaded (the name may hold another model by now)


def _grammar(
    manifest: Manifest,
    format: str | Mapping[str, Any] | None,
    tools: Sequence[Mapping[str, Any]] | None,
    tool_choice: str | Mapping[str, Any] | None,
) -> tuple[str | None, Sequence[Mapping[str, Any]] | None]:
    """The grammar a request's ``format`` or forced ``tool_choice`` asks for, and the tools the model sees."""
    from engine.structured import forced_names, format_grammar, tool_call_grammar

    grammar = format_grammar(format)
    if tool_choice == "none":
        return grammar, None
    names = forced_names(tools, tool_choice)
    if names is None:
        return grammar, tools
    if grammar is not None:
        raise InvalidInput("a forced tool_choice and a format together: the reply cannot be both")
    assert tools is not None
    return tool_call_grammar(tools, names, manifest.config.template), tools


def _default_machine() -> Machine:
    from engine.machine.gpu import probe_machine

    return probe_machine()


class Engine(ModelLibrary):
    """Pull, inspect, manage and run models in one store."""

    def __init__(
        self,
        home: Path | None = None,
        *,
        token: str | None = None,
        machine: Callable[[], Machine] = _default_machine,
    ) -> None:
        self._store = Store(home)
        from engine.ingest.hub.tokens import clean_token

        self.token = clean_token(token or os.environ.get("HF_TOKEN"))
        self._machine = machine
        self._registry: Registry[Runtime] = Registry(budget=self._free_memory)

    def _free_memory(self) -> int:
        machine = self._machine()
        return machine.free_ram + (machine.gpu_free_vram or 0)

    @property
    def home(self) -> Path:
        """The store's directory (``LLAMADECK_HOME``)."""
        return self._store.home

    def store_proof(self, challenge: str) -> str:
        """HMAC of ``challenge`` under the store's secret key (made on first use, for its owner's eyes only).

        A server answers a client's random challenge with it, and the client
        checks it against its own: only a server on the same store, run by
        someone who can read the store, can answer, so ``run`` never hands its
        prompt to whatever else listens on the port.
        """
        import hashlib
        import hmac

        return hmac.new(self._store.secret_key(), challenge.encode(), hashlib.sha256).hexdigest()

    # running ---------------------------------------------------------------

    def chat(
        self,
        reference: str,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        options: Mapping[str, object] | None = None,
        conversation: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        format: str | Mapping[str, Any] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: int | None = None,
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
    ) -> Iterator[Generation]:
        """Stream the model's reply to ``messages``: Token events, then exactly one Done.

        Never pulls: the model must be in the store (``ensure`` first). A
        missing model, a malformed message or a bad option raises here, at
        the call. Loading happens at the first ``next()`` (load errors and a
        history that cannot fit raise there); a failure during generation
        raises from the iterator instead of a Done. ``conversation`` is a key
        the caller keeps (a chat's id): its KV state stays resident, so a
        follow-up costs only the new tokens. A history longer than the
        context loses its oldest turns (the system prompt stays); Done's
        ``dropped_messages`` says how many. Options use Ollama's names and
        are layered over the model's own parameters; ``keep_alive`` is
        seconds after the reply or an Ollama duration such as "5m" (None: five
        minutes, 0: unload at once, negative: forever; see ``parse_keep_alive``).
        Cancelling ends the stream with ``Done(reason="cancelled")``.

        ``format`` constrains the reply: ``"json"`` (a JSON object) or a JSON
        schema it must validate against (a schema holding what llamadeck
        cannot enforce is an UnsupportedSchema, a 400, naming it).
        ``tool_choice`` (with ``tools``): "auto" (the model decides), "none"
        (no tools shown to it), "required" or a named tool
        (``{"type": "function", "function": {"name": ...}}``): the reply is
        then one call of a tool, with arguments valid against its parameters,
        in the model's own call format. A reply cut short by ``num_predict``
        ends with Done "length" and may not parse. ``logprobs`` (0 to 20) puts
        each token's log probability and that many likeliest alternatives on
        the Token events (``Token.logprobs``); None computes none.
        """
        request = self._chat_request(
            reference, messages, options, conversation, tools, keep_alive, format, tool_choice, logprobs
        )
        return self._stream(request, cancel)

    def start_chat(
        self,
        reference: str,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        options: Mapping[str, object] | None = None,
        conversation: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        format: str | Mapping[str, Any] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: int | None = None,
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
    ) -> Reply:
        """``chat`` with the model loaded and the prompt submitted when it returns: it blocks (use a thread).

        The Reply is read with ``for`` or, on an event loop, ``async for``
        (the HTTP API's way: the tokens come from the scheduler's thread
        straight to the loop). It raises what ``chat`` and its first
        ``next()`` raise; a Reply not read to its end must be closed.
        """
        request = self._chat_request(
            reference, messages, options, conversation, tools, keep_alive, format, tool_choice, logprobs
        )
        return self._start(request, cancel)

    def generate(
        self,
        reference: str,
        prompt: str,
        *,
        raw: bool | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        options: Mapping[str, object] | None = None,
        format: str | Mapping[str, Any] | None = None,
        logprobs: int | None = None,
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
    ) -> Iterator[Generation]:
        """Stream a reply to one prompt: Token events, then exactly one Done (see ``chat``).

        ``raw=None`` applies the model's own chat template when it has one
        (instruct models) and continues the text plainly otherwise (base
        models such as the embedded Gemma 3 270M); True or False force it.
        ``max_tokens``, ``temperature`` and ``seed`` are shorthands for the
        options ``num_predict``, ``temperature`` and ``seed``. ``format`` and ``logprobs`` as in ``chat``.
        """
        request = self._generate_request(
            reference, prompt, raw, max_tokens, temperature, seed, options, keep_alive, format, logprobs
        )
        return self._stream(request, cancel)

    def start_generate(
        self,
        reference: str,
        prompt: str,
        *,
        raw: bool | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        options: Mapping[str, object] | None = None,
        format: str | Mapping[str, Any] | None = None,
        logprobs: int | None = None,
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
    ) -> Reply:
        """``generate``, loaded and submitted when it returns (see ``start_chat``)."""
        request = self._generate_request(
            reference, prompt, raw, max_tokens, temperature, seed, options, keep_alive, format, logprobs
        )
        return self._start(request, cancel)

    def embed(
        self, reference: str, texts: Sequence[str], *, truncate: bool = True, cancel: CancelToken = NEVER
    ) -> list[list[float]]:
        """One unit-length embedding per text (a model that cannot embed is InvalidInput).

        ``cancel`` stops it between batches (and while the model loads) with ``Cancelled``.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("embed takes a list of texts")
        manifest = self._resolve(parse_ref(reference))
        load, _ = self._options(manifest, None)
        with self._use(manifest, load, None, cancel) as (resident, _fresh):
            return resident.payload.embed(list(texts), truncate=truncate, cancel=cancel)

    def load(
        self,
        reference: str,
        *,
        options: Mapping[str, object] | None = None,
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
    ) -> float:
        """Load a model without generating (Ollama's empty-prompt request); returns the seconds it took.

        0.0 when it was loaded already; the keep-alive clock starts now.
        """
        seconds = parse_keep_alive(keep_alive)
        manifest = self._resolve(parse_ref(reference))
        load, _ = self._options(manifest, options)
        with self._use(manifest, load, seconds, cancel) as (resident, fresh):
            return resident.payload.load_seconds if fresh else 0.0

    def loaded(self) -> list[LoadedModel]:
        """The models in memory now, as ``ps`` and the Sessions tab show them."""
        now = time.monotonic()
        rows = []
        for resident in self._registry.residents():
            runtime = resident.payload
            stats = runtime.scheduler.stats()
            busy = [s for s in stats.slots if s.status != "idle"]
            rows.append(
                LoadedModel(
                    reference=runtime.manifest.reference,
                    id=runtime.manifest.id,
                    memory=resident.memory,
                    vram=runtime.plan.vram if runtime.plan.n_gpu_layers else 0,
                    gpu_layers=runtime.plan.n_gpu_layers,
                    layers=runtime.plan.n_layers + 1,
                    context=runtime.settings.n_ctx,
                    slots=runtime.settings.num_parallel,
                    slots_busy=len(busy),
                    conversations=tuple(s.conversation for s in stats.slots if s.conversation)
                    + stats.saved_conversations,
                    status="generating" if busy else ("queued" if stats.queued else "idle"),
                    queued=stats.queued,
                    tokens_per_second=stats.tokens_per_second,
                    expires_in=None if resident.expires_at is None else max(resident.expires_at - now, 0.0),
                    manifest=runtime.manifest,
                )
            )
        return rows

    def unload(self, reference: str | None = None) -> list[str]:
        """Unload a model (every loaded model when None); one that is generating is Busy."""
        if reference is None:
            return self._registry.unload(lambda r: True)
        manifest = self._resolve(parse_ref(reference))
        # its weights, and whatever the name held before a create or import gave it others
        return self._registry.unload(lambda r: r.key[0] == manifest.load_id or r.name == manifest.reference)

    def logs(self) -> list[str]:
        """llama.cpp's latest log lines, oldest first (the full log is in the state directory's llama.log)."""
        import sys

        llama = sys.modules.get("engine.runtime.llama.log")  # nothing to show before llama.cpp was loaded
        return list(llama.LLAMA_LOG) if llama is not None else []

    def close(self) -> None:
        """Unload every model (before the process ends)."""
        self._registry.close()

    # the checks at the call, and the hand-over --------------------------------

    def _chat_request(
        self,
        reference: str,
        messages: Sequence[Mapping[str, Any] | Message],
        options: Mapping[str, object] | None,
        conversation: str | None,
        tools: Sequence[Mapping[str, Any]] | None,
        keep_alive: float | str | None,
        format: str | Mapping[str, Any] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: int | None = None,
    ) -> GenerationRequest:
        manifest = self._resolve(parse_ref(reference))
        chat_messages = [
            m if isinstance(m, Message) else Message.of(m, where=f"message {i + 1}")
            for i, m in enumerate(messages)
        ]
        if not chat_messages:
            raise InvalidInput("a chat needs at least one message")
        for i, message in enumerate(chat_messages):
            check_unicode(message.role, f"message {i + 1}'s role")
            check_unicode(message.content, f"message {i + 1}")
        if conversation is not None and not isinstance(conversation, str):
            raise InvalidInput("conversation is a key: a string such as a chat's id")
        if tools is not None and (
            isinstance(tools, str | bytes | Mapping) or not all(isinstance(t, Mapping) for t in tools)
        ):
            raise InvalidInput("tools is a list of tool definitions (JSON objects)")
        seconds = parse_keep_alive(keep_alive)
        load, sampling = self._options(manifest, options)
        grammar, tools = _grammar(manifest, format, tools, tool_choice)
        # raw=False: a conversation needs turns, so a base model chats in the format known for it
        return GenerationRequest(
            manifest,
            chat_messages,
            sampling,
            load,
            seconds,
            tools=tools,
            raw=False,
            conversation=conversation,
            grammar=grammar,
            logprobs=check_logprobs(logprobs),
        )

    def _generate_request(
        self,
        reference: str,
        prompt: str,
        raw: bool | None,
        max_tokens: int | None,
        temperature: float | None,
        seed: int | None,
        options: Mapping[str, object] | None,
        keep_alive: float | str | None,
        format: str | Mapping[str, Any] | None = None,
        logprobs: int | None = None,
    ) -> GenerationRequest:
        if not isinstance(prompt, str):
            raise InvalidInput("the prompt must be text")
        check_unicode(prompt, "the prompt")
        seconds = parse_keep_alive(keep_alive)
        merged = dict(options or {})
        for name, value in (("num_predict", max_tokens), ("temperature", temperature), ("seed", seed)):
            if value is not None:
                merged[name] = value
        manifest = self._resolve(parse_ref(reference))
        load, sampling = self._options(manifest, merged)
        grammar, _ = _grammar(manifest, format, None, None)
        return GenerationRequest(
            manifest,
            [Message("user", prompt)],
            sampling,
            load,
            seconds,
            raw=raw,
            grammar=grammar,
            logprobs=check_logprobs(logprobs),
        )

    def _options(
        self, manifest: Manifest, request: Mapping[str, object] | None
    ) -> tuple[LoadOptions, SamplingOptions]:
        from engine.options import merge, parse_options

        model = parse_options(manifest.config.parameters, source=f"{manifest.reference}'s parameters")
        return merge(model, parse_options(request or {}, source="request"))

    def _use(
        self, manifest: Manifest, load: LoadOptions, keep_alive: float | None, cancel: CancelToken
    ) -> AbstractContextManager[tuple[Resident[Runtime], bool]]:
        from engine.runtime.residency import use_model

        return use_model(
            self._registry, self._store, self._machine, manifest, load, keep_alive=keep_alive, cancel=cancel
        )

    def _start(self, request: GenerationRequest, cancel: CancelToken) -> Reply:
        """The blocking part of a generation: the model loaded (or reused), the prompt fitted, submitted."""
        from engine.runtime.session import start_reply

        started = time.perf_counter()
        lease = ExitStack()
        try:
            resident, fresh = lease.enter_context(
                self._use(request.manifest, request.load, request.keep_alive, cancel)
            )
        except Cancelled:  # cancelled while the model loaded: the stream ends as any cancelled one does
            return Reply.cancelled_while_loading(started)
        return start_reply(
            resident.payload, request, fresh=fresh, started=started, cancel=cancel, release=lease.close
        )

    def _stream(self, request: GenerationRequest, cancel: CancelToken) -> Iterator[Generation]:
        """``_start`` at the first ``next()``, then the reply's events."""
        yield from self._start(request, cancel)
