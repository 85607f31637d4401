"""The model library: the store side of the engine's facade — pull, inspect, copy, create, remove, verify.

``Engine`` (``engine.facade``) is the one entry point; it inherits these
methods from ``ModelLibrary``, which holds none of the engine's state itself.
Each method coordinates: references are parsed here at the edge, the work
is done by the store (``engine.store``) and by the ways models come in
(``engine.ingest``), and a name whose model changed is unloaded from memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cancel import NEVER, CancelToken
from engine.errors import (
    IntegrityError,
    InvalidInput,
    InvalidReference,
    LlamadeckError,
    ModelNotFound,
)
from engine.events import EventSink, ignore
from engine.ingest.create import CreateSpec
from engine.ingest.embedded import DEFAULT_MODEL, find_embedded
from engine.ingest.found import FoundModel
from engine.ingest.hub.search import HubRepo
from engine.machine.memory import Machine
from engine.machine.quant import VariantFit
from engine.store.cleanup import PruneReport
from engine.store.manifest import Manifest, ModelConfig, ModelFile
from engine.store.manifest_files import StoreEntry
from engine.store.model_store import Store
from engine.store.refs import HubRef, LocalRef, ModelRef, parse_local_name, parse_ref
from engine.store.removal import Removal, prune_store, remove_model

_log = logging.getLogger("llamadeck.engine")
# what Ollama's show handler deletes from model_info: the name, and the template (shown on its own)
_NOT_IN_MODEL_INFO = frozenset({"general.name", "tokenizer.chat_template"})

if TYPE_CHECKING:
    from engine.runtime.loader import Runtime
    from engine.runtime.registry import Registry
    from engine.runtime.worker.crashes import CrashLedger
    from engine.store.blobs import BlobUpload


@dataclass(frozen=True)
class ModelDetails:
    """``show``: the manifest, where its files are, what it can do and its GGUF header.

    ``capabilities`` in Ollama's words (``completion``, ``embedding``,
    ``tools``, ``thinking``, ``insert``, ``vision``; see
    ``engine.capabilities``); ``model_info`` the header's own key/values as
    Ollama's ``/api/show`` gives them: arrays None unless ``show(verbose=True)``,
    ``general.parameter_count`` added, the name and chat template left out.
    """

    manifest: Manifest
    paths: tuple[Path, ...]
    capabilities: tuple[str, ...] = ()
    model_info: dict[str, Any] = field(default_factory=dict)
    projector_info: dict[str, Any] = field(default_factory=dict)  # the projector's header, as Ollama shows it


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


def _problem(entry: StoreEntry) -> StoreProblem:
    return StoreProblem(entry.reference, entry.path, entry.problem or "unusable", entry.newer)


class ModelLibrary:
    """Pull, inspect and manage the models in one store (``Engine``'s store side; use ``Engine``)."""

    _store: Store
    _registry: Registry[Runtime]
    _crashes: CrashLedger  # a re-created or re-pulled model is tried again
    _machine: Callable[[], Machine]
    token: str | None

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
        manifest = self._fetch(ref, on_event, cancel)
        self._crashes.forget(manifest.load_id)
        return manifest

    def _fetch(self, ref: ModelRef, on_event: EventSink, cancel: CancelToken) -> Manifest:
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
        """A Hub repository's quantizations, each with its memory estimate and whether it fits here.

        Empty for a repository with safetensors weights and no GGUF: pulling it converts them.
        """
        from engine.ingest import pull

        ref = parse_ref(reference)
        if not isinstance(ref, HubRef):
            raise InvalidReference(f"{ref} is not a Hugging Face reference (hf.co/ORG/REPO)")
        try:
            return pull.survey(ref.repo, on_event, self._machine, token=self.token, cancel=cancel).fits()
        except pull.Convertible:
            return []  # safetensors only: pull converts it (to F16/BF16, or the quant its tag names)

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

    def show(self, reference: str, *, verbose: bool = False) -> ModelDetails:
        """The model's manifest, files, capabilities and header key/values (arrays too when ``verbose``).

        The header is read again each time (tens of milliseconds; with
        ``verbose`` a large vocabulary takes a few tenths of a second).
        A header that cannot be read leaves ``model_info`` empty and the
        capabilities to the template: ``verify`` says what is wrong.
        """
        details = self._details(reference)
        manifest = details.manifest
        from engine.capabilities import capabilities
        from engine.store.gguf_metadata import read_metadata

        try:
            metadata = read_metadata(details.paths[0], label=manifest.reference, verbose=verbose)
        except (IntegrityError, OSError) as error:
            _log.warning("cannot read the header of %s: %s", manifest.reference, error)
            metadata = {"general.architecture": manifest.architecture}
        info = {k: v for k, v in metadata.items() if k not in _NOT_IN_MODEL_INFO}
        info["general.parameter_count"] = manifest.parameters  # all parts of a split model, as Ollama counts
        projector = manifest.config.projector
        shown = capabilities(metadata, manifest.template, projector=projector is not None)
        projected = self._projector_info(manifest)
        return replace(details, capabilities=shown, model_info=info, projector_info=projected)

    def _projector_info(self, manifest: Manifest) -> dict[str, Any]:
        """The projector's header key/values (arrays left out), empty when it has none or it is unreadable."""
        from engine.store.gguf_metadata import read_metadata

        projector = manifest.config.projector
        if projector is None:
            return {}
        try:
            metadata = read_metadata(self._store.blob_path(projector.sha256), label=projector.path)
        except (IntegrityError, OSError) as error:
            _log.warning("cannot read the projector of %s: %s", manifest.reference, error)
            return {}
        return {k: v for k, v in metadata.items() if k not in _NOT_IN_MODEL_INFO}

    def _details(self, reference: str) -> ModelDetails:
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
        removal = remove_model(self._store, parse_ref(reference), not_found=self._not_found)
        self._registry.unload(
            lambda r: r.name == removal.reference and not r.users
        )  # its weights may be gone
        return removal

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
        draft_quantize: str | None = None,
        on_event: EventSink = ignore,
        cancel: CancelToken = NEVER,
    ) -> Manifest:
        """Make a model from a Modelfile's text (or a ready ``CreateSpec``), as ``ollama create`` does.

        FROM names a stored model, an ``hf.co/`` reference (pulled first) or
        a GGUF file or folder, relative to ``base_dir`` (the Modelfile's
        folder; the working directory when None). ``quantize`` requantizes an
        F16/F32 base (e.g. "Q4_K_M"), ``draft_quantize`` the DRAFT model. DRAFT
        names a stored model or GGUF files of the same vocabulary. Raises InvalidInput (a Modelfile error
        names its line), ModelNotFound, and what pull, import and quantize raise.
        """
        from engine.ingest.create import create_model, spec_from_modelfile

        target = parse_local_name(name)
        if isinstance(modelfile, CreateSpec):
            spec = replace(
                modelfile,
                quantize=quantize or modelfile.quantize,
                draft_quantize=draft_quantize or modelfile.draft_quantize,
            )
        else:
            spec = spec_from_modelfile(
                modelfile, base_dir=base_dir or Path.cwd(), quantize=quantize, draft_quantize=draft_quantize
            )

        def base_model(ref: ModelRef) -> Manifest:
            return self.ensure(str(ref), on_event=on_event, cancel=cancel)

        made = create_model(
            self._store, target, spec, base_model=base_model, on_event=on_event, cancel=cancel
        )
        self._registry.unload(lambda r: r.name == made.reference and not r.users)  # a name's old model
        self._crashes.forget(made.load_id)
        return made

    def modelfile(self, reference: str) -> str:
        """The Modelfile that makes this model again (``show --modelfile``): FROM its weights' path."""
        from engine.ingest.modelfile import Modelfile, format_modelfile

        details = self._details(reference)
        manifest = details.manifest
        weights = details.paths[0] if len(details.paths) == 1 else self._store.split_view(manifest.files)
        config = manifest.config
        draft = None
        if config.draft is not None:  # its blob's path, as Ollama writes DRAFT
            files = config.draft.files
            path = (
                self._store.blob_path(files[0].sha256) if len(files) == 1 else self._store.split_view(files)
            )
            draft = str(path)
        text = format_modelfile(
            Modelfile(
                from_=str(weights),
                also_from=(str(self._store.blob_path(config.projector.sha256)),) if config.projector else (),
                adapters=tuple(str(self._store.blob_path(a.sha256)) for a in config.adapters),
                template=config.template if config.template_source in ("gguf", "modelfile") else None,
                system=config.system,
                parameters=dict(config.parameters),
                messages=config.messages,
                license=(manifest.license,) if manifest.license else (),
                draft=draft,
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
        config = found.config
        if found.projector is not None:  # checked, then stored: a bad one is refused with the model
            projector = self._import_projector(found, on_event, cancel)
            config = replace(config or ModelConfig(), projector=projector)
        made = import_gguf(
            self._store,
            list(found.files),
            ref=target,
            config=config,
            origin=found.origin,
            license=found.license,
            on_event=on_event,
            cancel=cancel,
        )
        self._registry.unload(lambda r: r.name == made.reference and not r.users)
        self._crashes.forget(made.load_id)
        return made

    def _import_projector(self, found: FoundModel, on_event: EventSink, cancel: CancelToken) -> ModelFile:
        from engine.ingest.local import import_file
        from engine.store.projector import read_projector

        assert found.projector is not None
        read_projector(found.projector, label=f"the projector of {found.origin}")
        return import_file(self._store, found.projector, on_event=on_event, cancel=cancel)

    def has_blob(self, digest: str) -> bool:
        """Whether the store holds the blob ``sha256:<hex>`` (``HEAD /api/blobs/…``).

        A client told yes skips its upload and names the blob next: its grace
        period against ``prune`` restarts, as an upload's would.
        """
        from engine.store.blobs import parse_digest

        return self._store.touch_blob(parse_digest(digest))

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

    def prune(self, *, at_start: bool = False) -> PruneReport:
        """Remove partial downloads and lock files no live process holds, and blobs nothing names.

        A blob nothing names goes only once untouched for a day (a client may
        have uploaded it to name it next). ``at_start`` (a server starting)
        also spares the partials a pull may resume.
        """
        return prune_store(self._store, at_start=at_start)

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
            projector = manifest.config.projector
            for file in manifest.blob_files:  # weights, LoRA adapters, draft model and vision projector
                if file.sha256 not in problems:
                    is_projector = file is projector
                    problems[file.sha256] = check_blob(
                        self._store, file, on_event, cancel, projector=is_projector
                    )
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

    def search(self, query: str, *, limit: int = 30, cancel: CancelToken = NEVER) -> list[HubRepo]:
        """GGUF repositories on Hugging Face whose name contains ``query``, the most downloaded first.

        Pull one with ``hf.co/`` + its ``repo``. Raises InvalidInput (an empty
        or overlong query), HubUnreachable (the Hub cannot be reached or
        answers with an error), GatedRepo (HF_TOKEN refused), Cancelled.
        """
        from engine.ingest.hub.search import search_models

        return search_models(query, limit=limit, token=self.token, cancel=cancel)
