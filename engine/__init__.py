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

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cancel import NEVER, CancelToken
from engine.embedded import DEFAULT_MODEL, find_embedded
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
    TemplateError,
    UnknownQuant,
)
from engine.events import Done, Event, EventSink, Generation, Progress, Status, Token, Waiting, ignore
from engine.manifest import Manifest, ModelConfig, ModelFile
from engine.memory import Fit, Machine
from engine.model import ModelShape
from engine.quant import VariantFit
from engine.refs import HubRef, LocalRef, ModelRef, parse_local_name, parse_ref
from engine.store import PruneReport, Store, StoreEntry
from engine.units import format_gib, format_size

if TYPE_CHECKING:
    from engine.runtime import LoadedModel, LoadOptions

__all__ = [
    "DEFAULT_MODEL",
    "AccessDenied",
    "Busy",
    "CancelToken",
    "Cancelled",
    "DemoPackageMissing",
    "DiskFull",
    "Done",
    "Engine",
    "Event",
    "EventSink",
    "Fit",
    "GatedRepo",
    "Generation",
    "HubUnreachable",
    "IntegrityError",
    "InvalidInput",
    "InvalidOption",
    "InvalidReference",
    "LlamadeckError",
    "LoadError",
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
    "RepoNotFound",
    "Status",
    "StoreProblem",
    "TemplateError",
    "Token",
    "UnknownQuant",
    "VariantFit",
    "VerifyReport",
    "Waiting",
    "format_gib",
    "format_size",
]

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


@dataclass
class VerifyReport:
    reference: str
    problems: list[str] = field(default_factory=list)
    repair: str | None = None  # what to do about the problems, when there is something

    @property
    def ok(self) -> bool:
        return not self.problems


def _default_machine() -> Machine:
    from engine.gpu import probe_machine

    return probe_machine()


def _problem(entry: StoreEntry) -> StoreProblem:
    return StoreProblem(entry.reference, entry.path, entry.problem or "unusable", entry.newer)


def _check_generation_options(max_tokens: int, temperature: float, seed: int | None) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidOption(f"max_tokens must be a whole number ≥ 1, not {max_tokens!r:.20}")
    if not isinstance(temperature, int | float) or not math.isfinite(temperature) or temperature < 0:
        raise InvalidOption(f"temperature must be a finite number ≥ 0, not {temperature!r:.20}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32 - 1):
        raise InvalidOption(f"seed must be a whole number from 0 to {2**32 - 2}, not {seed!r:.20}")


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
        self.token = token or os.environ.get("HF_TOKEN") or None
        self._machine = machine
        self._loaded: LoadedModel | None = None

    @property
    def home(self) -> Path:
        """The store's directory (``LLAMADECK_HOME``)."""
        return self._store.home

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
        return self._pull(ref, on_event, cancel)

    def _pull(self, ref: ModelRef, on_event: EventSink, cancel: CancelToken) -> Manifest:
        from engine import pull

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
        from engine import pull

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
            files = entry.manifest.files if entry.manifest is not None else ()
            self._store.remove_manifest(ref)
            collection = self._store.collect_garbage()
            self._store.prune(older_than=PRUNE_AFTER_RM)
        freed = sum(f.size for f in {f.sha256: f for f in files}.values() if f.sha256 in collection.removed)
        kept = None
        if collection.blocked_by is not None:
            kept = f"no files deleted: the manifest {collection.blocked_by} cannot be read"
        if self._loaded is not None and self._loaded.manifest.ref == ref:
            self._loaded = None
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
        from engine.pull import now_iso

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
        from engine.verify import check_blob

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
                advice = None if entry.newer else f"remove it with llamadeck rm {entry.reference}"
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

    def generate(
        self,
        reference: str,
        prompt: str,
        *,
        raw: bool | None = None,
        max_tokens: int = 256,
        temperature: float = 0.8,
        seed: int | None = None,
        options: LoadOptions | None = None,
        cancel: CancelToken = NEVER,
    ) -> Iterator[Generation]:
        """Stream Token events for ``prompt``, then one Done.

        Never pulls: the model must be in the store (call ``ensure`` first),
        and a missing model or a bad option raises here, at the call, before
        anything streams. Loading happens at the first ``next()``; a prompt
        longer than the context raises PromptTooLong there. A cancelled
        generation ends with ``Done(reason="cancelled")``.

        ``raw=None`` applies the model's own chat template when its GGUF has
        one (instruct models) and continues the text plainly otherwise (base
        models such as the embedded Gemma 3 270M); True or False force it.
        """
        _check_generation_options(max_tokens, temperature, seed)
        manifest = self._resolve(parse_ref(reference))
        return self._stream(manifest, prompt, raw, max_tokens, temperature, seed, options, cancel)

    def _stream(
        self,
        manifest: Manifest,
        prompt: str,
        raw: bool | None,
        max_tokens: int,
        temperature: float,
        seed: int | None,
        options: LoadOptions | None,
        cancel: CancelToken,
    ) -> Iterator[Generation]:
        from engine.runtime import LoadOptions

        started = time.perf_counter()
        model, fresh = self._load(manifest, options or LoadOptions())
        if cancel.cancelled:
            yield Done("cancelled", 0, 0, time.perf_counter() - started, 0.0, 0.0)
            return
        use_template = manifest.template is not None and (
            raw is False or (raw is None and manifest.template_source == "gguf")
        )
        text = self._render(model, manifest, prompt) if use_template else prompt
        load_seconds = model.load_seconds if fresh else 0.0
        yield from model.complete(
            text,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            cancel=cancel,
            load_seconds=load_seconds,
        )

    @staticmethod
    def _render(model: LoadedModel, manifest: Manifest, prompt: str) -> str:
        from engine.chat import render_chat

        bos, eos = model.special_texts()
        return render_chat(
            manifest.template or "", [{"role": "user", "content": prompt}], bos_token=bos, eos_token=eos
        )

    def _load(self, manifest: Manifest, options: LoadOptions) -> tuple[LoadedModel, bool]:
        """The loaded model for ``manifest``; loads it (replacing another) when needed."""
        from engine.runtime import LoadedModel

        if self._loaded is not None and self._loaded.manifest.id == manifest.id:
            return self._loaded, False
        self._loaded = None  # free the old weights before loading the new ones
        self._loaded = LoadedModel(self._store, manifest, options)
        return self._loaded, True
