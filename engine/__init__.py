"""The llamadeck engine: one facade that the CLI, the TUI and the HTTP API all call.

    engine = Engine()
    manifest = engine.pull("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF", on_event=print)
    for m in engine.list_models(): ...

Nothing here prints or knows who is watching: long jobs report through an
``on_event`` callback (see ``engine.events``) and fail with
``engine.errors.LlamadeckError`` subclasses whose messages are fit for users.
Importing the engine is cheap: llama_cpp, huggingface_hub and gguf are
imported only by the calls that need them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.embedded import DEFAULT_MODEL, find_embedded
from engine.errors import IntegrityError, InvalidReference, LlamadeckError, ModelNotFound
from engine.events import EventSink, Generation, ignore
from engine.memory import Machine
from engine.refs import HubRef, LocalRef, ModelRef, parse_local_name, parse_ref
from engine.store import Manifest, Store

if TYPE_CHECKING:
    from engine.pull import VariantFit
    from engine.runtime import LoadedModel, LoadOptions

__all__ = ["DEFAULT_MODEL", "Engine", "LlamadeckError", "Manifest", "ModelDetails", "VerifyReport"]


@dataclass(frozen=True)
class ModelDetails:
    """``show``: the manifest and where its files are."""

    manifest: Manifest
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Removal:
    reference: str
    freed: int  # bytes of blobs that no other model used


@dataclass
class VerifyReport:
    reference: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _default_machine() -> Machine:
    from engine.gpu import probe_machine

    return probe_machine()


class Engine:
    """Pull, inspect and manage models in one store."""

    def __init__(
        self,
        home: Path | None = None,
        *,
        token: str | None = None,
        machine: Callable[[], Machine] = _default_machine,
    ) -> None:
        self.store = Store(home)
        self.token = token or os.environ.get("HF_TOKEN") or None
        self._machine = machine
        self._loaded: LoadedModel | None = None

    # pulling ---------------------------------------------------------------

    def pull(self, reference: str, *, quant: str | None = None, on_event: EventSink = ignore) -> Manifest:
        """Download (or import, for embedded models) a model into the store and verify it."""
        from engine import pull

        ref = parse_ref(reference)
        if isinstance(ref, HubRef):
            if quant is not None:
                ref = HubRef(ref.repo, quant)  # validated and normalised by HubRef itself
            return pull.pull_from_hub(self.store, ref, on_event, self._machine, token=self.token)
        embedded = find_embedded(ref.name, ref.tag)
        if embedded is None:
            raise ModelNotFound(
                f"{ref} is not a model llamadeck can pull: use a Hugging Face reference "
                f"such as hf.co/ORG/REPO[:QUANT], or {DEFAULT_MODEL}"
            )
        return pull.import_embedded(self.store, embedded, on_event)

    def variants(self, reference: str, *, on_event: EventSink = ignore) -> list[VariantFit]:
        """A Hub repository's quantizations, each with its memory estimate and whether it fits here."""
        from engine import pull

        ref = parse_ref(reference)
        if not isinstance(ref, HubRef):
            raise InvalidReference(f"{ref} is not a Hugging Face reference (hf.co/ORG/REPO)")
        return pull.survey(ref.repo, on_event, self._machine, token=self.token).fits()

    def ensure(self, reference: str, *, on_event: EventSink = ignore) -> Manifest:
        """The model's manifest, pulling it first when it is not here yet, as ``ollama run`` does.

        Hub references are pulled (the quant picked for this machine unless
        named) and embedded models imported; an unknown local name stays an error.
        """
        try:
            return self.resolve(reference)
        except ModelNotFound:
            ref = parse_ref(reference)
            if isinstance(ref, HubRef) or find_embedded(ref.name, ref.tag):
                return self.pull(reference, on_event=on_event)
            raise

    # inspecting ------------------------------------------------------------

    def resolve(self, reference: str) -> Manifest:
        """The manifest a reference names; a Hub reference without quant takes the newest pull."""
        ref = parse_ref(reference)
        manifest = self._find(ref)
        if manifest is None:
            raise ModelNotFound(f"model {reference.strip()} not found: pull it with llamadeck pull {ref}")
        return manifest

    def _find(self, ref: ModelRef) -> Manifest | None:
        if isinstance(ref, LocalRef):
            return self.store.load(ref.name, ref.tag)
        if ref.quant is not None:
            return self.store.load(ref.name, ref.quant)
        pulled = [m for m in self.store.manifests() if m.name == ref.name]
        return max(pulled, key=lambda m: m.created, default=None)

    def list_models(self) -> list[Manifest]:
        """Every model in the store, newest first."""
        return sorted(self.store.manifests(), key=lambda m: m.created, reverse=True)

    def show(self, reference: str) -> ModelDetails:
        manifest = self.resolve(reference)
        paths = tuple(self.store.blob_path(f.sha256) for f in manifest.files)
        if not paths[0].is_file():
            raise IntegrityError(f"the weights of {manifest.reference} are missing from {self.store.blobs}")
        return ModelDetails(manifest, paths)

    # managing --------------------------------------------------------------

    def remove(self, reference: str) -> Removal:
        """Forget a name; delete its blobs unless another model uses them.

        A damaged manifest can still be removed: that is how a user gets rid of it.
        """
        try:
            manifest = self.resolve(reference)
            name, tag, files = manifest.name, manifest.tag, manifest.files
        except IntegrityError:
            ref = parse_ref(reference)
            name, tag, files = ref.name, ref.tag or "", ()
        self.store.ensure()
        with self.store.store_lock():
            self.store.remove_manifest(name, tag)
            removed = set(self.store.collect_garbage())
        freed = sum(f.size for f in files if f.sha256 in removed)
        return Removal(f"{name}:{tag}", freed)

    def copy(self, source: str, destination: str) -> Manifest:
        """A second name for the same blobs (no bytes are copied)."""
        manifest = self.resolve(source)
        target = parse_local_name(destination)
        from engine.pull import now_iso

        copied = replace(manifest, name=target.name, tag=target.tag, created=now_iso())
        self.store.ensure()
        with self.store.store_lock():
            self.store.save(copied)
        return copied

    def verify(
        self, references: list[str] | None = None, *, on_event: EventSink = ignore
    ) -> list[VerifyReport]:
        """Re-hash every file of the named models (all when none) and check their GGUF structure."""
        from engine.verify import check_blob

        manifests = [self.resolve(r) for r in references] if references else self.list_models()
        reports = []
        if not references:
            reports += [VerifyReport(str(p), ["manifest is damaged"]) for p in self.store.damaged_manifests()]
        problems: dict[str, str | None] = {}  # sha256 -> problem; a blob shared by two names is hashed once
        for manifest in manifests:
            report = VerifyReport(manifest.reference)
            for file in manifest.files:
                if file.sha256 not in problems:
                    problems[file.sha256] = check_blob(self.store, file, on_event)
                if problem := problems[file.sha256]:
                    report.problems.append(problem)
            reports.append(report)
        return reports

    # running ---------------------------------------------------------------

    def generate(
        self,
        reference: str,
        prompt: str,
        *,
        raw: bool | None = None,
        max_tokens: int = 256,
        temperature: float = 0.8,
        options: LoadOptions | None = None,
        on_event: EventSink = ignore,
    ) -> Iterator[Generation]:
        """Stream Token events for ``prompt``, then one Done.

        ``raw=None`` applies the model's own chat template when its GGUF has
        one (instruct models) and continues the text plainly otherwise (base
        models such as the embedded Gemma 3 270M); True or False force it.
        """
        from engine.chat import render_chat
        from engine.runtime import LoadOptions

        manifest = self.ensure(reference, on_event=on_event)
        model, fresh = self._load(manifest, options or LoadOptions())
        use_template = manifest.template is not None and (
            raw is False or (raw is None and manifest.template_source == "gguf")
        )
        text = prompt
        if use_template:
            llama = model.llama
            text = render_chat(
                manifest.template,  # type: ignore[arg-type]
                [{"role": "user", "content": prompt}],
                bos_token=llama._model.token_get_text(llama.token_bos()),
                eos_token=llama._model.token_get_text(llama.token_eos()),
            )
        load_seconds = model.load_seconds if fresh else 0.0
        yield from model.complete(
            text, max_tokens=max_tokens, temperature=temperature, load_seconds=load_seconds
        )

    def _load(self, manifest: Manifest, options: LoadOptions) -> tuple[LoadedModel, bool]:
        """The loaded model for ``manifest``; loads it (replacing another) when needed."""
        from engine.runtime import LoadedModel

        if self._loaded is not None and self._loaded.manifest.id == manifest.id:
            return self._loaded, False
        self._loaded = None  # free the old weights before loading the new ones
        self._loaded = LoadedModel(self.store, manifest, options)
        return self._loaded, True
