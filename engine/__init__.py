"""The llamadeck engine: one facade that the CLI, the TUI and the HTTP API all call.

    engine = Engine()
    manifest = engine.pull("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF", on_event=print)
    for m in engine.list_models(): ...

Front ends import only this package: ``Engine`` and every type, event and
error they may see are exported here, and a test fails if a front end
reaches into a submodule. References are parsed once, here at the edge;
inside, the engine passes typed ``HubRef``/``LocalRef`` values.

Nothing here prints or knows who is watching: long jobs report through an
``on_event`` callback (see ``Event``), can be stopped from another thread
with a ``CancelToken``, and fail with ``LlamadeckError`` subclasses whose
messages are fit for users. Importing the engine is cheap: llama_cpp,
huggingface_hub and gguf are imported only by the calls that need them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cancel import NEVER, CancelToken
from engine.ingest.create import CreateSpec
from engine.ingest.discover import FoundModel
from engine.ingest.embedded import DEFAULT_MODEL, find_embedded
from engine.errors import (
    AccessDenied,
    Busy,
    Cancelled,
    DemoPackageMissing,
    DiskFull,
    GatedRepo,
    HubUnreachable,
    IntegrityError,
    InvalidInput,
    InvalidOption,
    InvalidReference,
    LlamadeckError,
    LoadError,
    ModelNotFound,
    NetworkError,
    NewerStore,
    NoGGUFInRepo,
    NotFound,
    PromptTooLong,
    RepoNotFound,
    ShutDown,
    TemplateError,
    UnknownQuant,
    check_unicode,
)
from engine.events import Done, Event, EventSink, Generation, Progress, Status, Token, Waiting, ignore
from engine.ingest.hub.search import HubRepo
from engine.store.manifest import Manifest, ModelConfig, ModelFile
from engine.machine.memory import Fit, Machine
from engine.shape import ModelShape
from engine.machine.quant import VariantFit
from engine.store.refs import HubRef, LocalRef, ModelRef, parse_local_name, parse_ref
from engine.options import LoadOptions, SamplingOptions, parameter_pairs, parse_options
from engine.runtime.registry import Registry, Resident
from engine.runtime.toolcalls import (
    ReplyPiece,
    ToolCall,
    ToolCallParser,
    as_template_call,
    parse_tool_calls,
    tool_call_pieces,
    tool_names,
)
from engine.templates.message import Message
from engine.store.cleanup import PruneReport
from engine.store.manifest_files import StoreEntry
from engine.store.model_store import Store
from engine.units import format_gib, format_size

if TYPE_CHECKING:
    from engine.store.blobs import BlobUpload
    from engine.machine.offload import OffloadPlan
    from engine.runtime.loader import Runtime

__all__ = [
    "DEFAULT_MODEL",
    "AccessDenied",
    "Busy",
    "CancelToken",
    "CreateSpec",
    "Cancelled",
    "DemoPackageMissing",
    "DiskFull",
    "Done",
    "Engine",
    "Event",
    "EventSink",
    "Fit",
    "FoundModel",
    "GatedRepo",
    "Generation",
    "HubRepo",
    "HubUnreachable",
    "IntegrityError",
    "InvalidInput",
    "InvalidOption",
    "InvalidReference",
    "LlamadeckError",
    "LoadError",
    "LoadedModel",
    "Message",
    "Machine",
    "Manifest",
    "ModelConfig",
    "ModelDetails",
    "ModelFile",
    "ModelNotFound",
    "ModelShape",
    "NetworkError",
    "NewerStore",
    "NoGGUFInRepo",
    "NotFound",
    "Progress",
    "PromptTooLong",
    "PruneReport",
    "Removal",
    "ReplyPiece",
    "RepoNotFound",
    "Status",
    "ShutDown",
    "StoreProblem",
    "TemplateError",
    "Token",
    "ToolCall",
    "ToolCallParser",
    "UnknownQuant",
    "VariantFit",
    "VerifyReport",
    "Waiting",
    "as_template_call",
    "format_gib",
    "format_size",
    "parameter_pairs",
    "parse_options",
    "parse_tool_calls",
    "tool_call_pieces",
    "tool_names",
]

MAX_BYTES_PER_TOKEN = 64  # no tokenizer packs more into one token: longer text cannot fit the context
PRUNE_AFTER_RM = 7 * 24 * 3600  # rm prunes partials untouched for a week; prune itself takes all


@dataclass(frozen=True)
class ModelDetails:
    """``show``: the manifest and where its files are."""

    manifest: Manifest
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Removal:
    """What ``remove`` really did."""

    reference: str
    freed: int  # bytes of blobs that no other model used
    kept_because: str | None = None  # why no blob was deleted, when garbage collection was stopped


@dataclass(frozen=True)
class StoreProblem:
    """A manifest that cannot be used: damaged, misnamed, unreadable, or from a newer llamadeck."""

    reference: str  # the name its path stands for (what ``rm`` takes), or the path itself
    path: Path
    problem: str
    newer: bool


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


@dataclass
class VerifyReport:
    reference: str
    problems: list[str] = field(default_factory=list)
    repair: str | None = None  # what to do about the problems, when there is something

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_keep_alive(keep_alive: object) -> None:
    if keep_alive is None:
        return
    if isinstance(keep_alive, bool) or not isinstance(keep_alive, int | float) or keep_alive != keep_alive:
        raise InvalidInput(
            "keep_alive is seconds (a number; 0 unloads at once, negative keeps for ever), "
            f"not {keep_alive!r:.40}"
        )


def _default_machine() -> Machine:
    from engine.machine.gpu import probe_machine

    return probe_machine()


def _problem(entry: StoreEntry) -> StoreProblem:
    return StoreProblem(entry.reference, entry.path, entry.problem or "unusable", entry.newer)


class Engine:
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

    # pulling ---------------------------------------------------------------

    def pull(
        self,
        reference: str,
        *,
        quant: str | None = None,
        on_event: EventSink = ignore,
        cancel: CancelToken = NEVER,
    ) -> Manifest:
        """Download (or import, for embedded models) a model into the store and verify it.

        Raises NotFound (repo, quant, or a local name that cannot be pulled),
        AccessDenied, NetworkError, DiskFull, IntegrityError, Cancelled.
        """
        ref = parse_ref(reference)
        if isinstance(ref, HubRef) and quant is not None:
            ref = HubRef(ref.repo, quant)  # validated and normalised by HubRef itself
        elif quant is not None and isinstance(ref, LocalRef):
            embedded = find_embedded(ref.name, ref.tag)
            only = (
                f"{ref} comes in one quantization, {embedded.quant}" if embedded else f"{ref} is a local name"
            )
            if embedded is None or quant.strip().upper() != embedded.quant:
                raise InvalidInput(f"{only}: a quant can only be chosen for a Hugging Face reference")
        return self._pull(ref, on_event, cancel)

    def _pull(self, ref: ModelRef, on_event: EventSink, cancel: CancelToken) -> Manifest:
        from engine.ingest import pull

        if isinstance(ref, HubRef):
            return pull.pull_from_hub(
                self._store, ref, on_event, self._machine, token=self.token, cancel=cancel
            )
        embedded = find_embedded(ref.name, ref.tag)
        if embedded is None:
            raise ModelNotFound(
                f"{ref} is a local name, and llamadeck can only pull Hugging Face references "
                f"(hf.co/ORG/REPO[:QUANT]) or {DEFAULT_MODEL}"
            )
        return pull.import_embedded(self._store, embedded, on_event, cancel)

    def variants(
        self, reference: str, *, on_event: EventSink = ignore, cancel: CancelToken = NEVER
    ) -> list[VariantFit]:
        """A Hub repository's quantizations, each with its memory estimate and whether it fits here."""
        from engine.ingest import pull

        ref = parse_ref(reference)
        if not isinstance(ref, HubRef):
            raise InvalidReference(f"{ref} is not a Hugging Face reference (hf.co/ORG/REPO)")
        return pull.survey(ref.repo, on_event, self._machine, token=self.token, cancel=cancel).fits()

    def ensure(
        self, reference: str, *, on_event: EventSink = ignore, cancel: CancelToken = NEVER
    ) -> Manifest:
        """The model's manifest, pulling it first when it is not here yet, as ``ollama run`` does.

        Hub references are pulled (the quant picked for this machine unless
        named) and embedded models imported; an unknown local name stays ModelNotFound.
        """
        ref = parse_ref(reference)
        manifest = self._find(ref)
        if manifest is not None:
            return manifest
        if isinstance(ref, HubRef) or find_embedded(ref.name, ref.tag):
            return self._pull(ref, on_event, cancel)
        raise self._not_found(ref)

    # inspecting ------------------------------------------------------------

    def resolve(self, reference: str) -> Manifest:
        """The manifest a reference names; a Hub reference without quant takes the newest pull.

        Raises ModelNotFound, IntegrityError (damaged) or NewerStore.
        """
        return self._resolve(parse_ref(reference))

    def _resolve(self, ref: ModelRef) -> Manifest:
        manifest = self._find(ref)
        if manifest is None:
            raise self._not_found(ref)
        return manifest

    def _not_found(self, ref: ModelRef) -> ModelNotFound:
        """A not-found error whose advice fits the name: pull what can be pulled, list otherwise."""
        if isinstance(ref, HubRef) or find_embedded(ref.name, ref.tag):
            return ModelNotFound(f"model {ref} not found: pull it with llamadeck pull {ref}")
        return ModelNotFound(f"model {ref} not found: llamadeck list shows the models here")

    def _find(self, ref: ModelRef) -> Manifest | None:
        if isinstance(ref, LocalRef) or ref.quant is not None:
            return self._store.load(ref)
        pulled = [m for m in self._store.manifests() if m.name == ref.name]
        return max(pulled, key=lambda m: m.created, default=None)

    def list_models(self) -> list[Manifest]:
        """Every usable model in the store, newest first; the rest are in ``store_problems``."""
        return sorted(self._store.manifests(), key=lambda m: m.created, reverse=True)

    def store_problems(self) -> list[StoreProblem]:
        """Manifests that cannot be used (damaged, misnamed, unreadable, newer), each removable with rm."""
        return [_problem(e) for e in self._store.problems()]

    def show(self, reference: str) -> ModelDetails:
        manifest = self.resolve(reference)
        paths = tuple(self._store.blob_path(f.sha256) for f in manifest.files)
        if not paths[0].is_file():
            raise IntegrityError(f"the weights of {manifest.reference} are missing from {self._store.blobs}")
        return ModelDetails(manifest, paths)

    # managing --------------------------------------------------------------

    def remove(self, reference: str) -> Removal:
        """Forget a name; delete its blobs unless something else may still name them.

        The manifest removed is the one at the name's path, whatever it says
        inside, so a damaged or misnamed manifest is removable too. A manifest
        from a newer llamadeck is refused (NewerStore): it is not ours to judge.
        A Hub name without a quant is accepted only when one quant is stored.
        """
        ref = self._removable(parse_ref(reference))
        self._store.ensure()
        with self._store.store_lock():
            entry = self._store.entry(self._store.manifest_path(ref))
            if entry is None:
                raise self._not_found(ref)
            if entry.newer:
                raise NewerStore(f"{ref} was {entry.problem}; not removed")
            files = (
                (*entry.manifest.files, *entry.manifest.config.adapters) if entry.manifest is not None else ()
            )
            self._store.remove_manifest(ref)
            collection = self._store.collect_garbage()
            self._store.prune(older_than=PRUNE_AFTER_RM)
        freed = sum(f.size for f in {f.sha256: f for f in files}.values() if f.sha256 in collection.removed)
        kept = None
        if collection.blocked_by is not None:
            kept = (
                f"no files deleted: {collection.blocked_by}: {collection.blocked_because or 'cannot be read'}"
            )
        self._registry.unload(lambda r: r.name == str(ref) and not r.users)  # its weights may be gone
        return Removal(str(ref), freed, kept)

    def _removable(self, ref: ModelRef) -> ModelRef:
        """The one stored reference ``ref`` stands for (a Hub name without quant needs exactly one)."""
        if not isinstance(ref, HubRef) or ref.quant is not None:
            return ref
        stored = sorted(
            {e.ref for e in self._store.entries() if isinstance(e.ref, HubRef) and e.ref.repo == ref.repo},
            key=str,
        )
        if not stored:
            raise self._not_found(ref)
        if len(stored) > 1:
            quants = ", ".join(r.quant or "" for r in stored)
            raise InvalidInput(f"{ref} has {len(stored)} quants here ({quants}): name one, e.g. {stored[0]}")
        return stored[0]

    def copy(self, source: str, destination: str) -> Manifest:
        """A second name for the same blobs (no bytes are copied); replaces what the name held."""
        ref = parse_ref(source)
        target = parse_local_name(destination)
        manifest = self._resolve(ref)
        if manifest.ref == target:
            raise InvalidInput(f"{target} is already that model: copy it to another name")
        from engine.store.clock import now_iso

        copied = replace(
            manifest,
            name=target.name,
            tag=target.tag,
            created=now_iso(),
            config=replace(manifest.config, parent=manifest.config.parent or manifest.reference),
        )
        self._store.ensure()
        with self._store.store_lock():
            if self._find(ref) is None:  # removed by another process meanwhile
                raise self._not_found(ref)
            self._store.save(copied)
        return copied

    def create(
        self,
        name: str,
        modelfile: str | bytes | CreateSpec,
        *,
        base_dir: Path | None = None,
        quantize: str | None = None,
        on_event: EventSink = ignore,
        cancel: CancelToken = NEVER,
    ) -> Manifest:
        """Make a model from a Modelfile's text (or a ready ``CreateSpec``), as ``ollama create`` does.

        FROM names a stored model, an ``hf.co/`` reference (pulled first) or
        a GGUF file or folder, relative to ``base_dir`` (the Modelfile's
        folder; the working directory when None). ``quantize`` requantizes an
        F16/F32 base (e.g. "Q4_K_M"). Raises InvalidInput (a Modelfile error
        names its line), ModelNotFound, and what pull, import and quantize raise.
        """
        from engine.ingest.create import create_model, spec_from_modelfile

        target = parse_local_name(name)
        if isinstance(modelfile, CreateSpec):
            spec = replace(modelfile, quantize=quantize or modelfile.quantize)
        else:
            spec = spec_from_modelfile(modelfile, base_dir=base_dir or Path.cwd(), quantize=quantize)

        def base_model(ref: ModelRef) -> Manifest:
            return self.ensure(str(ref), on_event=on_event, cancel=cancel)

        made = create_model(
            self._store, target, spec, base_model=base_model, on_event=on_event, cancel=cancel
        )
        self._registry.unload(lambda r: r.name == made.reference and not r.users)  # a name's old model
        return made

    def modelfile(self, reference: str) -> str:
        """The Modelfile that makes this model again (``show --modelfile``): FROM its weights' path."""
        from engine.ingest.modelfile import Modelfile, format_modelfile

        details = self.show(reference)
        manifest = details.manifest
        weights = details.paths[0] if len(details.paths) == 1 else self._store.split_view(manifest.files)
        config = manifest.config
        text = format_modelfile(
            Modelfile(
                from_=str(weights),
                adapters=tuple(str(self._store.blob_path(a.sha256)) for a in config.adapters),
                template=config.template if config.template_source in ("gguf", "modelfile") else None,
                system=config.system,
                parameters=dict(config.parameters),
                messages=config.messages,
                license=(manifest.license,) if manifest.license else (),
            )
        )
        header = (
            f'# Modelfile generated by "llamadeck show"\n'
            f"# To build a new Modelfile based on this, replace FROM with:\n"
            f"# FROM {manifest.reference}\n\n"
        )
        return header + text

    def discover(self, tools: Sequence[str] | None = None) -> list[FoundModel]:
        """GGUF models other tools downloaded here (Ollama, the Hugging Face cache, LM Studio).

        ``tools`` picks some of "ollama", "huggingface", "lmstudio" (all when
        None). Reads only: nothing is hashed or imported.
        """
        from engine.ingest.discover import default_locations, discover

        where = default_locations()
        chosen = set(where) if tools is None else set(tools)
        if unknown := chosen - set(where):
            raise InvalidInput(f"unknown tool {sorted(unknown)[0]!r}: choose from {', '.join(sorted(where))}")
        taken = {m.reference: m.source for m in self._store.manifests()}
        taken |= {e.reference: "" for e in self._store.problems()}  # damaged or newer: never overwritten
        return discover(**{tool: where[tool] for tool in chosen}, taken=taken)

    def import_found(
        self,
        found: FoundModel,
        name: str | None = None,
        *,
        on_event: EventSink = ignore,
        cancel: CancelToken = NEVER,
    ) -> Manifest:
        """Register a discovered model by hard link (a copy across file systems), verified like a pull.

        ``name`` defaults to ``found.suggested``; the tool's template, system
        prompt and parameters come along.
        """
        from engine.ingest.local import import_gguf

        if not found.importable:
            raise InvalidInput(f"{found.origin} cannot be imported: {found.note}")
        target = parse_local_name(name or found.suggested)
        self._store.ensure()
        existing = self._store.entry(self._store.manifest_path(target))
        if existing is not None and (existing.manifest is None or existing.manifest.source != found.origin):
            raise InvalidInput(
                f"{target} is already a model here: import {found.origin} as another name or rm {target}"
            )
        made = import_gguf(
            self._store,
            list(found.files),
            ref=target,
            config=found.config,
            origin=found.origin,
            license=found.license,
            on_event=on_event,
            cancel=cancel,
        )
        self._registry.unload(lambda r: r.name == made.reference and not r.users)
        return made

    def has_blob(self, digest: str) -> bool:
        """Whether the store holds the blob ``sha256:<hex>`` (``HEAD /api/blobs/…``)."""
        from engine.store.blobs import parse_digest

        return self._store.has_blob(parse_digest(digest))

    def upload_blob(self, digest: str) -> BlobUpload:
        """Start writing the blob ``sha256:<hex>``: ``write`` chunks, then ``finish`` checks the digest.

        Use it in a ``with`` block, so that a failed upload leaves nothing behind.
        """
        from engine.store.blobs import BlobUpload, parse_digest

        return BlobUpload(self._store, parse_digest(digest))

    def blob_path(self, digest: str) -> Path:
        """Where a stored blob lives, for ``CreateSpec.base_path`` built from uploaded files."""
        from engine.store.blobs import parse_digest

        sha256 = parse_digest(digest)
        if not self._store.has_blob(sha256):
            raise ModelNotFound(f"blob sha256:{sha256} not found: upload it first (POST /api/blobs/sha256:…)")
        return self._store.blob_path(sha256)

    def prune(self) -> PruneReport:
        """Remove every partial download and lock file that no live process holds."""
        self._store.ensure()
        with self._store.store_lock():
            report = self._store.prune()
            self._store.collect_garbage()
        return report

    def verify(
        self,
        references: list[str] | None = None,
        *,
        on_event: EventSink = ignore,
        cancel: CancelToken = NEVER,
    ) -> list[VerifyReport]:
        """Re-hash every file of the named models (all when none) and check their GGUF structure.

        Names that are not found or not readable get a report of their own
        instead of stopping the run, so every name asked for is answered.
        """
        from engine.store.verify import check_blob

        problems: dict[str, str | None] = {}  # sha256 -> problem; a blob shared by two names is hashed once

        def check(manifest: Manifest) -> VerifyReport:
            report = VerifyReport(manifest.reference)
            for file in manifest.files:
                if file.sha256 not in problems:
                    problems[file.sha256] = check_blob(self._store, file, on_event, cancel)
                if problem := problems[file.sha256]:
                    report.problems.append(problem)
            if report.problems:
                report.repair = self._repair_advice(manifest)
            return report

        if references is None:
            reports = [check(m) for m in self.list_models()]
            for entry in self._store.problems():
                advice = entry.repair
                reports.append(VerifyReport(entry.reference, [entry.problem or "unusable"], advice))
            return reports
        reports = []
        for reference in references:  # answered in the order asked
            try:
                manifest = self.resolve(reference)
            except LlamadeckError as error:
                reports.append(VerifyReport(reference.strip(), [str(error)]))
                continue
            reports.append(check(manifest))
        return reports

    def _repair_advice(self, manifest: Manifest) -> str:
        if isinstance(manifest.ref, HubRef):
            return f"pull it again to repair it: llamadeck pull {manifest.reference}"
        embedded = find_embedded(manifest.name, manifest.tag)
        if embedded is not None:
            return (
                f"import it again: llamadeck rm {manifest.reference} && llamadeck pull {manifest.reference}"
            )
        parent = manifest.config.parent
        origin = f" (made from {parent})" if parent else ""
        return f"its files are shared with the model it was made from{origin}: repair or pull that one"

    # running ---------------------------------------------------------------

    def chat(
        self,
        reference: str,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        options: Mapping[str, object] | None = None,
        conversation: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        keep_alive: float | None = None,
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
        seconds after the reply (None: five minutes, 0: unload at once,
        negative: forever). Cancelling ends the stream with ``Done(reason="cancelled")``.
        """
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
        _check_keep_alive(keep_alive)
        load, sampling = self._options(manifest, options)
        # raw=False: a conversation needs turns, so a base model chats in the format known for it
        return self._run(
            manifest, load, sampling, keep_alive, cancel, conversation, chat_messages, tools, False
        )

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
        keep_alive: float | None = None,
        cancel: CancelToken = NEVER,
    ) -> Iterator[Generation]:
        """Stream a reply to one prompt: Token events, then exactly one Done (see ``chat``).

        ``raw=None`` applies the model's own chat template when it has one
        (instruct models) and continues the text plainly otherwise (base
        models such as the embedded Gemma 3 270M); True or False force it.
        ``max_tokens``, ``temperature`` and ``seed`` are shorthands for the
        options ``num_predict``, ``temperature`` and ``seed``.
        """
        if not isinstance(prompt, str):
            raise InvalidInput("the prompt must be text")
        check_unicode(prompt, "the prompt")
        _check_keep_alive(keep_alive)
        merged = dict(options or {})
        for name, value in (("num_predict", max_tokens), ("temperature", temperature), ("seed", seed)):
            if value is not None:
                merged[name] = value
        manifest = self._resolve(parse_ref(reference))
        load, sampling = self._options(manifest, merged)
        messages = [Message("user", prompt)]
        return self._run(manifest, load, sampling, keep_alive, cancel, None, messages, None, raw)

    def embed(self, reference: str, texts: Sequence[str], *, truncate: bool = True) -> list[list[float]]:
        """One unit-length embedding per text (a model that cannot embed is InvalidInput)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("embed takes a list of texts")
        manifest = self._resolve(parse_ref(reference))
        load, _ = self._options(manifest, None)
        with self._use(manifest, load, None, NEVER) as (resident, _fresh):
            return resident.payload.embed(list(texts), truncate=truncate)

    def load(
        self,
        reference: str,
        *,
        options: Mapping[str, object] | None = None,
        keep_alive: float | None = None,
        cancel: CancelToken = NEVER,
    ) -> float:
        """Load a model without generating (Ollama's empty-prompt request); returns the seconds it took.

        0.0 when it was loaded already; the keep-alive clock starts now.
        """
        _check_keep_alive(keep_alive)
        manifest = self._resolve(parse_ref(reference))
        load, _ = self._options(manifest, options)
        with self._use(manifest, load, keep_alive, cancel) as (resident, fresh):
            return resident.payload.load_seconds if fresh else 0.0

    def loaded(self) -> list[LoadedModel]:
        """The models in memory now, as ``ps`` and the Sessions tab show them."""
        import time as clock

        now = clock.monotonic()
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

    def search(self, query: str, *, limit: int = 30, cancel: CancelToken = NEVER) -> list[HubRepo]:
        """GGUF repositories on Hugging Face whose name contains ``query``, the most downloaded first.

        Pull one with ``hf.co/`` + its ``repo``. Raises InvalidInput (an empty
        or overlong query), HubUnreachable (the Hub cannot be reached or
        answers with an error), GatedRepo (HF_TOKEN refused), Cancelled.
        """
        from engine.ingest.hub.search import search_models

        return search_models(query, limit=limit, token=self.token, cancel=cancel)

    def close(self) -> None:
        """Unload every model (before the process ends)."""
        self._registry.close()

    def _options(
        self, manifest: Manifest, request: Mapping[str, object] | None
    ) -> tuple[LoadOptions, SamplingOptions]:
        from engine.options import merge, parse_options

        model = parse_options(manifest.config.parameters, source=f"{manifest.reference}'s parameters")
        return merge(model, parse_options(request or {}, source="request"))

    def _use(
        self, manifest: Manifest, load: LoadOptions, keep_alive: float | None, cancel: CancelToken
    ) -> AbstractContextManager[tuple[Resident[Runtime], bool]]:
        """The loaded model for ``manifest`` with ``load`` options, loading it (and making room) first."""
        from engine.machine.memory import estimate_memory
        from engine.runtime import loader

        # A loaded model is matched by the options the request asked for. The automatic ones
        # (context, slots, GPU layers) are decided once, when it loads: decided again per request they
        # would see the memory the model itself now takes, differ, and reload it every time.
        key = (
            manifest.load_id,
            load,
        )  # the weights and their adapters: two names may share one but not the other
        stale = [
            r
            for r in self._registry.residents()
            if (r.key[0] == manifest.load_id or r.name == manifest.reference) and r.key != key and not r.users
        ]
        if stale:  # the same weights with other options, or the name's old weights: reload, as Ollama does
            self._registry.unload(lambda r: r in stale)
        decided: list[tuple[loader.LoadSettings, OffloadPlan]] = []

        def decide() -> tuple[loader.LoadSettings, OffloadPlan]:
            """Probe the machine and plan: only when the model is really to be loaded."""
            if not decided:
                tensors = loader.tensor_bytes(self._store, manifest)
                decided.append(loader.resolve(manifest, tensors, self._machine(), load))
            return decided[0]

        def need() -> int:
            settings, plan = decide()
            if manifest.shape is None:
                return plan.vram + plan.ram
            kv = estimate_memory(0, manifest.shape, settings.n_ctx, num_parallel=settings.num_parallel)
            return max(plan.vram + plan.ram, kv)

        def load_it(token: CancelToken) -> tuple[loader.Runtime, int]:
            settings, plan = decide()
            return loader.load_runtime(self._store, manifest, settings, plan, token), plan.vram + plan.ram

        return self._registry.use(
            key, manifest.reference, load_it, need=need, keep_alive=keep_alive, cancel=cancel
        )

    def _run(
        self,
        manifest: Manifest,
        load: LoadOptions,
        sampling: SamplingOptions,
        keep_alive: float | None,
        cancel: CancelToken,
        conversation: str | None,
        messages: list[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        raw: bool | None,
    ) -> Iterator[Generation]:
        from engine.runtime import loader
        from engine.runtime.history import fit_history
        from engine.runtime.request import Request
        from engine.templates.render import template_for, with_system_prompt

        started = time.perf_counter()
        with ExitStack() as stack:
            try:
                resident, fresh = stack.enter_context(self._use(manifest, load, keep_alive, cancel))
            except Cancelled:  # cancelled while the model loaded: the stream ends as any cancelled one does
                waited = time.perf_counter() - started
                yield Done("cancelled", 0, 0, waited, 0.0, 0.0, total_seconds=waited)
                return
            runtime = resident.payload
            model = runtime.model
            template = template_for(
                manifest.config.template,
                manifest.config.template_source,
                bos_token=model.bos_text,
                eos_token=model.eos_text,
                raw=raw,
            )
            if template is not None:
                preset = [Message(role, content) for role, content in manifest.config.messages]
                messages = with_system_prompt(messages, manifest.config.system, preset=preset)

            n_ctx = runtime.settings.n_ctx

            def render(part: Sequence[Message]) -> list[int] | None:
                if template is None:  # plain completion: the prompt as it is
                    text = "\n\n".join(m.content for m in part)
                else:
                    text = template.render(part, tools=tools)
                if len(text.encode()) > n_ctx * MAX_BYTES_PER_TOKEN:
                    return (
                        None  # cannot fit whatever the tokenizer says: never tokenize megabytes (quadratic)
                    )
                return model.tokenize(text, add_special=True, parse_special=template is not None)

            limit = n_ctx - min(256, n_ctx // 8)  # room for a reply
            tokens, dropped = fit_history(
                messages if template is not None else messages[-1:], render, limit, context=n_ctx
            )
            request = Request(
                tokens=tokens,
                sampling=sampling,
                max_tokens=loader.max_tokens(sampling),
                stop=sampling.stop,
                conversation=conversation,
            )
            handle = runtime.scheduler.submit(request)
            remove = cancel.on_cancel(handle.cancel)
            finished = False
            try:
                for event in handle:
                    if isinstance(event, Done):
                        finished = True
                        if event.reason == "error":
                            raise handle.error or LlamadeckError(event.error or "generation failed")
                        event = replace(
                            event,
                            load_seconds=runtime.load_seconds if fresh else 0.0,
                            total_seconds=time.perf_counter() - started,
                            dropped_messages=dropped,
                        )
                    yield event
            finally:
                remove()
                if not finished:
                    handle.cancel()  # the consumer stopped early: free the slot at the next step
