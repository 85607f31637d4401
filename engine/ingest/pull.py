"""Getting a model into the store: from Hugging Face or from an embedded package.

Both paths end the same way: every file is hashed while it is written,
checked against the sha256 it must have, structurally verified as GGUF,
moved into ``blobs/`` and only then named by a manifest. The blob locks are
held from the first byte until the manifest is written, so a second process
pulling the same model waits and then finds everything in place, and garbage
collection never takes a blob a pull is about to name.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.errors import DiskFull, IntegrityError, InvalidInput, NoGGUFInRepo
from engine.events import EventSink, Status
from engine.ingest.embedded import EmbeddedModel, locate
from engine.ingest.hub.download import download
from engine.ingest.hub.header import read_remote_info
from engine.ingest.hub.listing import fetch_listing, license_text
from engine.ingest.hub.remote import RemoteFile, RemoteVariant, RepoListing
from engine.machine.memory import Machine, estimate_memory, fit
from engine.machine.quant import (
    DYNAMIC_PREFIX,
    QuantChoice,
    Variant,
    VariantFit,
    pick_variant,
    quant_from_file_type,
)
from engine.store.blob_locks import blob_locks
from engine.store.clock import now_iso
from engine.store.gguf_io import GGUFInfo, check_data_inside, read_header
from engine.store.manifest import MAX_TEXT, Manifest, ModelConfig, ModelFile
from engine.store.model_store import Store
from engine.store.projector import ProjectorInfo, pick_projector, read_projector
from engine.store.refs import HubRef
from engine.store.transfer import HashingFile, ProgressMeter
from engine.store.verify import inspect_blob, inspect_projector
from engine.templates.known import template_and_source
from engine.units import format_size


@dataclass(frozen=True)
class Wanted:
    """A file the model needs, and how to produce it if the store lacks it."""

    file: ModelFile
    fetch: Callable[[Path, ProgressMeter], str]  # writes into the partial path, returns its sha256
    action: str = "downloading"
    header: GGUFInfo | None = None  # read before the download (same sha256, so it still holds after)
    repair: str = "the bad download was deleted, run pull again"  # what to do when the bytes are wrong
    projector: bool = False  # a vision projector: checked as one, kept out of the model's facts


_Checked = GGUFInfo | ProjectorInfo  # what a stored file was found to be


def _check_space(store: Store, missing: list[tuple[Wanted, Path]]) -> None:
    need = 0
    for wanted, partial in missing:
        have = partial.stat().st_size if partial.exists() else 0
        need += max(wanted.file.size - have, 0)
    free = shutil.disk_usage(store.partial).free
    if need > free:
        raise DiskFull(
            f"not enough disk space in {store.home}: need {format_size(need)}, {format_size(free)} free; "
            "nothing changed"
        )


def _produce(store: Store, wanted: Wanted, partial: Path, sink: EventSink) -> _Checked:
    """Fetch one file into its partial, verify it and move it into the blob store."""
    file = wanted.file
    meter = ProgressMeter(sink, wanted.action, file.path, file.size)
    digest = wanted.fetch(partial, meter)
    if digest != file.sha256:
        partial.unlink(missing_ok=True)
        raise IntegrityError(
            f"sha256 mismatch for {file.path}: expected {file.sha256[:12]}…, got {digest[:12]}…; "
            f"{wanted.repair}"
        )
    info: _Checked
    try:
        if wanted.projector:
            info = _projector_header(partial, file.path)
        else:
            # The bytes hash to what the Hub announced, so a header read from the Hub before the
            # download describes them: only files nobody read yet are parsed (milliseconds either way).
            info = wanted.header or read_header(partial, label=file.path)
            check_data_inside(info, file.size, label=file.path)
    except IntegrityError:
        partial.unlink(missing_ok=True)
        raise
    store.commit_blob(partial, file.sha256)
    return info


def _projector_header(path: Path, label: str) -> ProjectorInfo:
    try:
        return read_projector(path, label=label)
    except InvalidInput as error:  # a file named mmproj that is no projector: the repo's fault
        raise IntegrityError(str(error)) from error


def _reuse(store: Store, item: Wanted, sink: EventSink, cancel: CancelToken) -> _Checked | None:
    """The header of a blob already in the store, re-checked; None (and the blob gone) when damaged.

    Pulling again is how a user repairs what ``verify`` reported, so a stored
    copy is re-hashed rather than trusted.
    """
    if not store.has_blob(item.file.sha256):
        return None
    info: _Checked
    try:
        inspect = inspect_projector if item.projector else inspect_blob
        info = inspect(store, item.file, sink, cancel)
    except IntegrityError:
        sink(Status(f"{item.file.path}: the stored copy is damaged; fetching it again"))
        store.blob_path(item.file.sha256).unlink()
        return None
    sink(Status(f"{item.file.path}: already in the store"))
    return info


def install(
    store: Store,
    wanted: list[Wanted],
    sink: EventSink,
    make_manifest: Callable[[list[GGUFInfo]], Manifest],
    cancel: CancelToken = NEVER,
) -> Manifest:
    """Make sure every wanted blob is in the store and sound, then write the manifest.

    ``make_manifest`` is given the headers of the model's own files (a projector's is not one).
    """
    store.ensure()
    with blob_locks(store, [w.file.sha256 for w in wanted], sink, cancel):
        stored = [_reuse(store, item, sink, cancel) for item in wanted]
        # each missing file's partial is made safe to write once (prepare_partial), then measured and filled
        missing = [
            (item, store.prepare_partial(item.file.sha256))
            for item, info in zip(wanted, stored, strict=True)
            if info is None
        ]
        _check_space(store, missing)
        fetched = (_produce(store, item, partial, sink) for item, partial in missing)  # in turn, below
        infos = [info or next(fetched) for info in stored]
        manifest = make_manifest([info for info in infos if isinstance(info, GGUFInfo)])
        with store.store_lock():
            store.save(manifest)
    sink(Status(f"success: {manifest.reference}"))
    return manifest


class Convertible(NoGGUFInRepo):
    """The repo has no GGUF files but safetensors weights that pull converts: it has no variants to list."""


@dataclass(frozen=True)
class Survey:
    """What a repository offers and what this machine can take, before any download."""

    listing: RepoListing
    header: GGUFInfo  # of the requested or the smallest readable variant: every variant shares the shape
    header_sha256: str  # the file that header was read from
    machine: Machine

    def choose(self, quant: str | None) -> QuantChoice:
        variants = [Variant(v.quant, v.size) for v in self.listing.variants]
        return pick_variant(variants, self.header.shape, self.machine, quant=quant, projector=self.projector)

    @property
    def projector(self) -> int:
        """Bytes of the vision projector a pull fetches with the weights (0: none): counted in each need."""
        chosen = pick_projector(self.listing.projectors)
        return chosen.size if chosen is not None else 0

    def fits(self) -> list[VariantFit]:
        """Every variant with its estimated memory and where it would fit, best quality first."""
        picked = self.choose(None).variant.quant
        rows = []
        for v in self.listing.variants:
            need = estimate_memory(v.size, self.header.shape, projector=self.projector)
            rows.append(VariantFit(v.quant, v.size, need, fit(need, self.machine), v.quant == picked))
        return rows


def survey(
    repo: str,
    sink: EventSink,
    machine: Callable[[], Machine],
    *,
    quant: str | None = None,
    token: str | None = None,
    cancel: CancelToken = NEVER,
    listing: RepoListing | None = None,
) -> Survey:
    """List the repo and read one variant's header for the model's shape.

    Every variant of a repo shares the shape, so one header serves all. With
    an explicit ``quant`` (spelt as ``HubRef.quant``: upper-case) that is the
    requested variant's (so a broken file elsewhere in the repo is no
    obstacle); otherwise the smallest variant that reads, trying the next
    size up when one is not a readable GGUF.
    """
    if listing is None:
        sink(Status(f"pulling manifest of {repo}"))
        listing = fetch_listing(repo, token=token, cancel=cancel)
    if not listing.variants:
        if listing.incomplete:
            raise NoGGUFInRepo(f"{repo} has only incomplete split models ({'; '.join(listing.incomplete)})")
        extra = " (only projector files)" if listing.projectors else ""
        if listing.convertible:
            raise Convertible(f"{repo} has no GGUF model files; pulling it converts its safetensors weights")
        if listing.pickled:
            extra = (
                " and its weights are pickled PyTorch files, which llamadeck refuses (loading one runs code)"
            )
        elif any(f.path == "config.json" for f in listing.hf_files):
            extra = " and no .safetensors weights to convert"
        raise NoGGUFInRepo(f"{repo} has no GGUF model files{extra}")
    if listing.incomplete:
        sink(Status(f"skipping incomplete split models: {'; '.join(listing.incomplete)}"))
    requested = _requested(listing, quant) if quant is not None else None
    candidates = [requested] if requested else sorted(listing.variants, key=lambda v: (v.size, v.quant))
    failures: list[IntegrityError] = []
    for variant in candidates:
        first = variant.files[0]
        sink(Status(f"reading the GGUF header of {first.path}"))
        try:
            header = read_remote_info(repo, listing.commit, first, token=token, cancel=cancel)
        except IntegrityError as error:
            if requested is not None:
                raise
            failures.append(error)
            sink(Status(f"skipping {variant.quant}: {error}"))
            continue
        return Survey(listing, header, first.sha256, machine())
    if len(failures) == 1:
        raise failures[0]
    tried = len(failures)
    raise IntegrityError(f"none of the {tried} variants of {repo} has a readable GGUF header; {failures[0]}")


def _requested(listing: RepoListing, quant: str) -> RemoteVariant | None:
    """The variant ``quant`` names (as ``pick_variant`` finds it); None: the pick will say it is unknown.

    Both sides are already in their one spelling: ``quant`` as ``HubRef`` normalised it when the
    reference was parsed, each variant's as ``quant_tag`` made it (upper-case) when it was listed.
    """
    exact = [v for v in listing.variants if v.quant == quant]
    if not exact:  # "Q4_K_XL" also finds a lone "UD-Q4_K_XL"
        exact = [v for v in listing.variants if v.quant.removeprefix(DYNAMIC_PREFIX) == quant]
    return exact[0] if len(exact) == 1 else None


def _check_template(template: str | None, where: str) -> None:
    """Refuse a chat template the store would refuse to keep, before anything is written."""
    if template is not None and len(template) > MAX_TEXT:
        raise IntegrityError(
            f"{where} has a chat template of {len(template):,} characters; llamadeck keeps templates "
            f"of up to {MAX_TEXT:,} (1 MiB): not pulled"
        )


def pull_from_hub(
    store: Store,
    ref: HubRef,
    sink: EventSink,
    machine: Callable[[], Machine],
    *,
    token: str | None = None,
    cancel: CancelToken = NEVER,
) -> Manifest:
    sink(Status(f"pulling manifest of {ref.repo}"))
    listing = fetch_listing(ref.repo, token=token, cancel=cancel)
    if not listing.variants and listing.convertible:  # safetensors only: download and convert
        return _pull_converted(store, ref, listing, sink, token=token, cancel=cancel)
    found = survey(ref.repo, sink, machine, quant=ref.quant, token=token, cancel=cancel, listing=listing)
    choice = found.choose(ref.quant)
    sink(Status(choice.reason))
    variant = listing.variant(choice.variant.quant)

    def fetcher(remote: RemoteFile) -> Callable[[Path, ProgressMeter], str]:
        return lambda partial, meter: download(
            ref.repo, listing.commit, remote, partial, meter, token=token, cancel=cancel
        )

    def known_header(remote: RemoteFile) -> GGUFInfo | None:
        return found.header if remote.sha256 == found.header_sha256 else None

    wanted = [
        Wanted(ModelFile(f.path, f.sha256, f.size), fetcher(f), header=known_header(f)) for f in variant.files
    ]
    projector = pick_projector(listing.projectors)
    if projector is not None:  # the repo's vision projector comes with the weights, as Ollama's pull does
        sink(Status(f"with the vision projector {projector.path}"))
        file = ModelFile(projector.path, projector.sha256, projector.size)
        wanted.append(Wanted(file, fetcher(projector), projector=True))
    if wanted[0].header is not None:  # known before the download: refuse before it
        _check_template(wanted[0].header.chat_template, variant.files[0].path)

    def manifest(infos: list[GGUFInfo]) -> Manifest:
        first = infos[0]
        _check_template(first.chat_template, variant.files[0].path)
        return Manifest(
            name=ref.name,
            tag=variant.quant,  # a listing's quants are reference tags already (quant_tag)
            source=f"hf.co/{ref.repo}",
            revision=listing.commit,
            files=tuple(w.file for w in wanted if not w.projector),
            quant=variant.quant,
            architecture=first.architecture,
            parameters=sum(i.parameter_count for i in infos),
            context_length=first.shape.context_length,
            shape=first.shape,
            created=now_iso(),
            size_label=first.size_label,
            license=license_text(listing.license or first.license),
            config=replace(_config(first), projector=next((w.file for w in wanted if w.projector), None)),
        )

    return install(store, wanted, sink, manifest, cancel)


def _pull_converted(
    store: Store,
    ref: HubRef,
    listing: RepoListing,
    sink: EventSink,
    *,
    token: str | None,
    cancel: CancelToken,
) -> Manifest:
    """Download a safetensors repo, convert it (and quantize when the reference names a quant), install it."""
    import tempfile

    from engine.convert.hub import fetch_and_convert
    from engine.store.gguf_io import verify_structure

    store.ensure()
    scratch = Path(tempfile.mkdtemp(prefix="create-", dir=store.partial))  # prune takes an abandoned one
    try:
        path, sha256 = fetch_and_convert(
            ref.repo, listing, scratch, sink, quant=ref.quant, token=token, cancel=cancel
        )
        info = read_header(path, label=path.name)
        verify_structure(path, label=path.name)
        _check_template(info.chat_template, "tokenizer_config.json")
        quant = (quant_from_file_type(info.file_type) if info.file_type is not None else None) or "F16"
        file = ModelFile(path.name, sha256, path.stat().st_size)

        def move(partial: Path, meter: ProgressMeter) -> str:
            path.replace(partial)  # same file system: the store's partial folder
            return sha256

        def manifest(infos: list[GGUFInfo]) -> Manifest:
            first = infos[0]
            return Manifest(
                name=ref.name, tag=quant, source=f"hf.co/{ref.repo}", revision=listing.commit, files=(file,),
                quant=quant, architecture=first.architecture, parameters=first.parameter_count,
                context_length=first.shape.context_length, shape=first.shape, created=now_iso(),
                size_label=first.size_label, license=license_text(listing.license), config=_config(first),
            )  # fmt: skip

        wanted = Wanted(file, move, action="storing", header=info, repair="pull again to convert it again")
        return install(store, [wanted], sink, manifest, cancel)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _config(first: GGUFInfo) -> ModelConfig:
    """The GGUF's own chat template, or the format llamadeck knows for its architecture."""
    template, source = template_and_source(first.architecture, first.chat_template)
    return ModelConfig(template=template, template_source=source)


def import_embedded(
    store: Store, model: EmbeddedModel, sink: EventSink, cancel: CancelToken = NEVER
) -> Manifest:
    """Copy a packaged GGUF into the store, hashing as it goes; no network."""
    source = locate(model)

    def copy(partial: Path, meter: ProgressMeter) -> str:
        partial.unlink(missing_ok=True)  # a local copy is cheap: never resume it
        out = HashingFile(partial, meter)
        try:
            for chunk_path in source.chunks:
                with open(chunk_path, "rb") as chunk:
                    while data := chunk.read(8 * 1024 * 1024):
                        cancel.check()
                        out.write(data)
        except BaseException:
            out.close()
            partial.unlink(missing_ok=True)
            raise
        meter.finish()
        return out.finish()

    file = ModelFile(source.file_name, source.sha256, source.size)

    def manifest(infos: list[GGUFInfo]) -> Manifest:
        first = infos[0]
        quant = quant_from_file_type(first.file_type) if first.file_type is not None else None
        return Manifest(
            name=model.name,
            tag=model.tag,
            source=f"package {model.distribution}",
            revision=None,
            files=(file,),
            quant=quant or model.quant,
            architecture=first.architecture,
            parameters=first.parameter_count,
            context_length=first.shape.context_length,
            shape=first.shape,
            created=now_iso(),
            size_label=first.size_label,
            license=model.license,
            config=_config(first),
        )

    repair = f"the package is damaged: pip install --force-reinstall {model.distribution}"
    return install(store, [Wanted(file, copy, action="importing", repair=repair)], sink, manifest, cancel)
