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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.calls import ChatCall, GenerateCall, chat_request, generate_request
from engine.cancel import NEVER, CancelToken
from engine.durations import parse_keep_alive
from engine.errors import Cancelled, InvalidInput
from engine.events import Embeddings, Generation
from engine.library import ModelLibrary
from engine.machine.memory import Machine
from engine.options import LoadOptions, SamplingOptions
from engine.runtime.loading import LoadBoard, LoadingModel
from engine.runtime.registry import Registry, Resident
from engine.runtime.session import ContextUse, GenerationRequest, Reply
from engine.runtime.worker.crashes import CrashLedger
from engine.server_settings import ServerSettings
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
    pid: int | None = None  # its llama.cpp worker process
    kv_cells: int = 0  # the KV pool its sequences share
    kv_used: int = 0  # cells they hold now
    paused: int = 0  # requests parked for lack of cells (they resume by themselves)
    draft: str | None = None  # the draft model it speculates with (what its Modelfile's DRAFT named)
    drafted: int = 0  # speculative draft tokens verified since it was loaded (prompt lookup or the draft)
    accepted: int = 0  # of them, taken


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
        settings: ServerSettings | None = None,
    ) -> None:
        """``settings``: the server settings (``OLLAMA_NUM_PARALLEL``, ... read by
        ``server_settings.from_environment``); None: the built-in ones."""
        self._store = Store(home)
        from engine.ingest.hub.tokens import clean_token

        self.token = clean_token(token or os.environ.get("HF_TOKEN"))
        self._machine = machine
        self._settings = settings or ServerSettings()
        self._registry: Registry[Runtime] = Registry(
            budget=self._free_memory,
            default_keep_alive=self._settings.keep_alive,
            max_loaded=self._settings.max_loaded_models,
        )
        self._crashes = CrashLedger()
        self._loads = LoadBoard()

    @property
    def settings(self) -> ServerSettings:
        """The server settings in effect: the defaults under every request's and model's own options."""
        return self._settings

    def configure(self, settings: ServerSettings) -> None:
        """Use other server settings from now on (the app saved its settings).

        Loaded models stay as they are; one whose load options change with
        these is loaded again by its next request, as any change of options does.
        """
        self._settings = settings
        self._registry.default_keep_alive = settings.keep_alive
        self._registry.max_loaded = settings.max_loaded_models

    def _free_memory(self) -> int:
        machine = self._machine()
        return machine.free_ram + (machine.gpu_free_vram or 0)

    @property
    def where(self) -> str:
        """Where this engine's models run: "local"; a remote one (``engine.connect``) names its server."""
        return "local"

    @property
    def manages_models(self) -> bool:
        """Whether pull, ps, load, unload and delete work here (not on a server that offers only /v1)."""
        return True

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
        think: bool | str | None = None,
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
        seconds after the reply or an Ollama duration such as "5m" (None: the
        server settings' ``keep_alive``, five minutes unless set; 0: unload at
        once, negative: forever; see ``parse_keep_alive``).
        ``think`` is Ollama's: True/False or "low"/"medium"/"high"/"max"; a
        model that thinks (``thinks``) does unless told False, and its Tokens
        carry the reasoning in ``thinking``; True for one that cannot is
        InvalidInput. Cancelling ends the stream with ``Done(reason="cancelled")``.

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
        call = ChatCall(
            reference,
            messages,
            options,
            conversation,
            tools,
            keep_alive,
            think,
            format,
            tool_choice,
            logprobs,
        )
        return self._stream(self._chat_request(call), cancel)

    def start_chat(
        self,
        reference: str,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        options: Mapping[str, object] | None = None,
        conversation: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        think: bool | str | None = None,
        format: str | Mapping[str, Any] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: int | None = None,
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
    ) -> Reply:
        """``chat`` with the model loaded and the prompt submitted when it returns: it blocks (use a thread).

        The Reply is read with ``for`` or, on an event loop, ``async for``
        (the HTTP API's way: the tokens come from the worker's reader thread
        straight to the loop). It raises what ``chat`` and its first
        ``next()`` raise; a Reply not read to its end must be closed.
        """
        call = ChatCall(
            reference,
            messages,
            options,
            conversation,
            tools,
            keep_alive,
            think,
            format,
            tool_choice,
            logprobs,
        )
        return self._start(self._chat_request(call), cancel)

    def measure_chat(
        self,
        reference: str,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        options: Mapping[str, object] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        think: bool | str | None = None,
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
    ) -> ContextUse:
        """How much of the model's context this chat takes, counted before it is sent (the model is
        loaded to count it, as sending would). Raises PromptTooLong, with the count, when even the last
        message cannot fit: an app can offer to raise the context or trim the message instead of failing."""
        from engine.runtime.session import measure

        request = self._chat_request(ChatCall(reference, messages, options, None, tools, keep_alive, think))
        with self._use(request.manifest, request.load, request.keep_alive, cancel) as (resident, _fresh):
            return measure(resident.payload, request)

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
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
        system: str | None = None,
        think: bool | str | None = None,
        suffix: str | None = None,
        context: Sequence[int] | None = None,
        keep_context: bool = False,
        format: str | Mapping[str, Any] | None = None,
        logprobs: int | None = None,
        images: Sequence[bytes | str] = (),
    ) -> Iterator[Generation]:
        """Stream a reply to one prompt: Token events, then exactly one Done (see ``chat``).

        ``raw=None`` applies the model's own chat template when it has one
        (instruct models) and continues the text plainly otherwise (base
        models such as the embedded Gemma 3 270M); True or False force it.
        ``max_tokens``, ``temperature`` and ``seed`` are shorthands for the
        options ``num_predict``, ``temperature`` and ``seed``. As Ollama's
        ``/api/generate`` has them:

        - ``system``: a system prompt (templated as a chat turn; a base model then uses its known format);
        - ``think``: as ``chat``;
        - ``suffix``: fill in the middle, for a template that reads ``.Suffix``
          or a GGUF with FIM tokens (``runtime.infill``), else InvalidInput
          (``NAME does not support insert``);
        - ``context``: token ids an earlier reply's Done carried: the prompt continues that conversation;
        - ``keep_context``: this reply's Done carries ``context``;
        - ``format`` and ``logprobs``: as in ``chat``;
        - ``images``: JPEG, PNG or WebP images (bytes or base64) with the prompt, for a model with a
          vision projector (else InvalidInput ``NAME does not support vision``); each is decoded within
          ``engine.images``' bounds first.
        """
        call = GenerateCall(
            reference, prompt, raw, max_tokens, temperature, seed, options, keep_alive,
            system, think, suffix, context, keep_context, format, logprobs, images,
        )  # fmt: skip
        return self._stream(self._generate_request(call), cancel)

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
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
        system: str | None = None,
        think: bool | str | None = None,
        suffix: str | None = None,
        context: Sequence[int] | None = None,
        keep_context: bool = False,
        format: str | Mapping[str, Any] | None = None,
        logprobs: int | None = None,
        images: Sequence[bytes | str] = (),
    ) -> Reply:
        """``generate``, loaded and submitted when it returns (see ``start_chat``)."""
        call = GenerateCall(
            reference, prompt, raw, max_tokens, temperature, seed, options, keep_alive,
            system, think, suffix, context, keep_context, format, logprobs, images,
        )  # fmt: skip
        return self._start(self._generate_request(call), cancel)

    def embed(
        self, reference: str, texts: Sequence[str], *, truncate: bool = True, cancel: CancelToken = NEVER
    ) -> list[list[float]]:
        """One unit-length embedding per text (a model that cannot embed is InvalidInput).

        ``cancel`` stops it between batches (and while the model loads) with ``Cancelled``.
        ``embed_texts`` gives the token count and timings too.
        """
        return self.embed_texts(reference, texts, truncate=truncate, cancel=cancel).vectors

    def embed_texts(
        self,
        reference: str,
        texts: Sequence[str],
        *,
        options: Mapping[str, object] | None = None,
        keep_alive: float | str | None = None,
        truncate: bool = True,
        cancel: CancelToken = NEVER,
    ) -> Embeddings:
        """``embed`` with the figures usage reports: tokens embedded, load and total seconds.

        ``options`` are layered over the model's parameters as for a chat; only
        the load options matter (``num_ctx``, ``num_gpu``, ``num_thread``, ...:
        other values load the model again, as in Ollama). ``keep_alive`` as
        in ``chat``. Texts longer than the model embeds are cut to it
        (``truncate``) or refused with PromptTooLong::

            result = engine.embed_texts("nomic-embed-text", ["a", "b"])
            result.vectors, result.prompt_tokens, result.load_seconds
        """
        started = time.perf_counter()
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("embed takes a list of texts")
        seconds = parse_keep_alive(keep_alive)
        manifest = self._resolve(parse_ref(reference))
        load, _ = self._options(manifest, options)
        with self._use(manifest, load, seconds, cancel) as (resident, fresh):
            loaded = resident.payload.load_seconds if fresh else 0.0
            result = resident.payload.embed(list(texts), truncate=truncate, cancel=cancel)
        return replace(result, load_seconds=loaded, total_seconds=time.perf_counter() - started)

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

    def loading(self) -> list[LoadingModel]:
        """The loads in flight and how far llama.cpp has got with each (an app's loading gauge)."""
        return self._loads.snapshot()

    def loaded(self) -> list[LoadedModel]:
        """The models in memory now, as ``ps`` and the Sessions tab show them."""
        now = time.monotonic()
        rows = []
        for resident in self._registry.residents():
            runtime = resident.payload
            stats = runtime.stats()
            if stats is None:  # its worker crashed just now: it is being dropped
                continue
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
                    pid=runtime.worker.pid,
                    kv_cells=stats.kv_cells,
                    kv_used=stats.kv_used,
                    paused=stats.paused,
                    drafted=stats.drafted,
                    accepted=stats.accepted,
                    draft=runtime.manifest.config.draft.source if runtime.manifest.config.draft else None,
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
        """llama.cpp's latest log lines from every model's worker, oldest first (the full log is in the state
        directory's llama.log)."""
        import sys

        client = sys.modules.get("engine.runtime.worker.client")  # nothing to show before a model was loaded
        return list(client.WORKER_LOG) if client is not None else []

    def close(self) -> None:
        """Unload every model (before the process ends)."""
        self._registry.close()

    # the checks at the call, and the hand-over --------------------------------

    def _chat_request(self, call: ChatCall) -> GenerationRequest:
        return chat_request(call, self._resolve(parse_ref(call.reference)), self._options)

    def _generate_request(self, call: GenerateCall) -> GenerationRequest:
        return generate_request(call, self._resolve(parse_ref(call.reference)), self._options)

    def _options(
        self, manifest: Manifest, request: Mapping[str, object] | None
    ) -> tuple[LoadOptions, SamplingOptions]:
        from engine.option_parsing import merge, parse_options

        model = parse_options(manifest.config.parameters, source=f"{manifest.reference}'s parameters")
        # request > Modelfile > the server settings (LLAMADECK_*, OLLAMA_*, config.toml) > built in
        return merge(self._settings.load_layer(), model, parse_options(request or {}, source="request"))

    def _use(
        self, manifest: Manifest, load: LoadOptions, keep_alive: float | None, cancel: CancelToken
    ) -> AbstractContextManager[tuple[Resident[Runtime], bool]]:
        from engine.runtime.residency import use_model

        return use_model(
            self._registry,
            self._store,
            self._machine,
            manifest,
            load,
            keep_alive=keep_alive,
            cancel=cancel,
            crashes=self._crashes,
            loads=self._loads,
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
            resident.payload,
            request,
            fresh=fresh,
            started=started,
            cancel=cancel,
            release=lease.close,
            max_queue=self._settings.max_queue,
        )

    def _stream(self, request: GenerationRequest, cancel: CancelToken) -> Iterator[Generation]:
        """``_start`` at the first ``next()``, then the reply's events."""
        yield from self._start(request, cancel)
