"""Making a model from a Modelfile (``llamadeck create``) or from ``/api/create``'s JSON.

Both front doors become one :class:`CreateSpec`; :func:`create_model` turns it
into a manifest, as Ollama's ``CreateHandler`` does:

- FROM a stored model (or an ``hf.co/`` reference, pulled first): the same
  blobs under a new name, its configuration layered with the new one;
- FROM a GGUF file, the first part of a split model, or a folder of parts:
  imported by content hash (a hard link where the file system allows);
- ``quantize``: an F16/F32 base is requantized by llama.cpp's own quantizer in a
  subprocess first.

Layering follows Ollama: TEMPLATE and SYSTEM replace the base's, PARAMETER
names override the base's one by one (the others are inherited), MESSAGE turns
replace the base's when any are given, LICENSE texts are added to the base's,
ADAPTERs are added to the base's, and DRAFT replaces the base's draft model
(``engine.ingest.draft``: a stored model or GGUF files of the same vocabulary).
A second FROM naming a vision projector file (``mmproj``) gives the model that
projector, as Ollama's create merges it in; without one the model keeps its base's.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.convert.source import as_gguf, gather, is_hf_upload
from engine.errors import InvalidInput, LlamadeckError, ModelNotFound, TemplateError, check_unicode
from engine.events import EventSink, Status, ignore
from engine.ingest.draft import draft_by_name, draft_from_files, draft_from_model, model_named, same_path
from engine.ingest.modelfile import MAX_MESSAGES, MAX_MODELFILE_BYTES, parse_modelfile
from engine.store.clock import now_iso
from engine.store.gguf_io import GGUFInfo
from engine.store.manifest import DraftModel, Manifest, ModelConfig, ModelFile
from engine.store.model_store import Store
from engine.store.refs import LocalRef, ModelRef
from engine.store.transfer import Written

SOURCE_MODELFILE = "modelfile"
_LICENSE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class CreateSpec:
    """What a new model is made of; exactly one of ``base`` and ``base_path`` is set."""

    base: str | None = None  # a stored model's name, or an hf.co/ reference to pull
    base_path: Path | None = None  # a GGUF file, a split model's first part, or a folder of parts
    base_blobs: tuple[tuple[str, str], ...] = ()  # (file name, sha256) of uploaded blobs: /api/create's files
    adapters: tuple[Path, ...] = ()  # LoRA GGUF files
    projector: Path | None = None  # a vision projector (mmproj GGUF): a Modelfile's second FROM
    template: str | None = None
    system: str | None = None
    parameters: Mapping[str, object] = field(default_factory=dict)  # validated option values
    messages: tuple[tuple[str, str], ...] = ()
    license: tuple[str, ...] = ()
    quantize: str | None = None  # e.g. "Q4_K_M": requantize an F16/F32 base first
    draft: str | None = None  # DRAFT: a stored model's name (or an hf.co/ reference to pull)
    draft_path: Path | None = None  # DRAFT: a GGUF file, a split model's first part or a folder
    draft_blobs: tuple[tuple[str, str], ...] = ()  # (file name, sha256): /api/create's draft_files
    draft_quantize: str | None = None  # requantize an F16/F32 draft first (Ollama's draft_quantize)


def spec_from_modelfile(
    text: str | bytes, *, base_dir: Path, quantize: str | None = None, draft_quantize: str | None = None
) -> CreateSpec:
    """Parse a Modelfile; FROM, ADAPTER and DRAFT paths are relative to ``base_dir`` (the Modelfile's folder).

    As Ollama's client does, FROM names a file when such a path exists and a model otherwise;
    DRAFT too (Ollama's client takes only a path there). Like Ollama, DRAFT may not be FROM's own path.
    """
    modelfile = parse_modelfile(text)
    base_path = _existing_path(modelfile.from_, base_dir)
    projector = None
    for also in modelfile.also_from:
        projector = _existing_path(also, base_dir)
        if projector is None or not projector.is_file():
            raise InvalidInput(f"FROM {also!r:.200}: a second FROM must be a vision projector (mmproj) file")
    if projector is not None and base_path is not None and base_path.is_file() and _is_projector(base_path):
        base_path, projector = projector, base_path  # Ollama takes the two in either order
    draft_path = _existing_path(modelfile.draft, base_dir) if modelfile.draft else None
    if draft_path is not None and base_path is not None and same_path(draft_path, base_path):
        raise InvalidInput(f"DRAFT must not reference the same local path as FROM: {draft_path}")
    adapters = []
    for adapter in modelfile.adapters:
        path = _existing_path(adapter, base_dir)
        if path is None:
            raise InvalidInput(f"ADAPTER {adapter!r}: no such file (paths are relative to the Modelfile)")
        adapters.append(path)
    return CreateSpec(
        base=None if base_path is not None else modelfile.from_,
        base_path=base_path,
        adapters=tuple(adapters),
        projector=projector,
        template=modelfile.template,
        system=modelfile.system,
        parameters=dict(modelfile.parameters),
        messages=modelfile.messages,
        license=modelfile.license,
        quantize=quantize,
        draft=modelfile.draft if modelfile.draft and draft_path is None else None,
        draft_path=draft_path,
        draft_quantize=draft_quantize,
    )


def _existing_path(value: str, base_dir: Path) -> Path | None:
    """``value`` as a path that exists (``~`` expanded, relative to ``base_dir``), else None."""
    if not value or "\0" in value:
        return None
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = base_dir / path
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):  # missing, or a name too long for the file system: a model name
        return None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a FIFO or a device would block or never end
        raise InvalidInput(f"{value!r:.200} is not a regular file: give a GGUF file or a folder of them")
    return path


def create_model(
    store: Store,
    target: LocalRef,
    spec: CreateSpec,
    *,
    base_model: Callable[[ModelRef], Manifest],
    on_event: EventSink = ignore,
    cancel: CancelToken = NEVER,
) -> Manifest:
    """Make ``target`` from ``spec`` and record it; returns its manifest.

    ``base_model`` gives the manifest a FROM name stands for (pulling an
    ``hf.co/`` reference first): the facade's ``ensure``. Raises InvalidInput
    for what the spec gets wrong (bad template, adapter for another
    architecture, quantizing what is quantized already), ModelNotFound for a
    FROM that is neither a model nor a file, and whatever importing and
    quantizing raise. Nothing is recorded unless everything succeeded.
    """
    if sum((spec.base is not None, spec.base_path is not None, bool(spec.base_blobs))) != 1:
        raise InvalidInput("a model is made FROM one model or from GGUF files")
    _check_size(spec)
    _check_texts(spec)
    _check_template(spec.template)
    if sum((spec.draft is not None, spec.draft_path is not None, bool(spec.draft_blobs))) > 1:
        raise InvalidInput("a model takes one DRAFT: a model name or GGUF files")
    if spec.draft_quantize and not _has_draft(spec):
        raise InvalidInput("draft_quantize needs a DRAFT model")
    if spec.base is not None:
        base = model_named("FROM", spec.base, base_model)
        adapters = _adapters(store, base.architecture, base.config.adapters, spec, on_event, cancel)
        draft = _draft(
            store, spec, store.blob_path(base.files[0].sha256), base.reference, base.config.draft,
            base_model, on_event, cancel,
        )  # fmt: skip
        projector = _projector(store, spec, base.shape.n_embd if base.shape else 0, on_event, cancel)
        config = replace(_layered(base.config, spec), parent=base.reference, adapters=adapters, draft=draft)
        config = replace(config, projector=projector or config.projector)
        license = _license(base.license, spec.license)
        if spec.quantize:
            if len(base.files) != 1:
                parts = len(base.files)
                raise InvalidInput(f"{base.reference} is split into {parts} files: quantizing needs one file")
            source = store.blob_path(base.files[0].sha256)
            return _import(store, target, source, base.reference, config, license, spec, on_event, cancel)
        manifest = replace(
            base, name=target.name, tag=target.tag, created=now_iso(), license=license, config=config
        )
        on_event(Status("writing manifest"))
        store.ensure()
        with store.store_lock():
            for file in manifest.blob_files:
                if not store.has_blob(file.sha256):  # collected by another process meanwhile
                    raise ModelNotFound(f"the weights {file.path} are no longer in the store: create again")
            store.save(manifest)
        return manifest
    if spec.base_blobs and spec.projector is None:  # /api/create's files: a projector among them is set apart
        spec = _projector_blob(store, spec)
    with _scratch(store) as scratch:
        if spec.base_blobs:
            source = _blob_folder(store, scratch, spec.base_blobs)
            origin = ", ".join(name for name, _ in spec.base_blobs)
        else:
            source = spec.base_path or Path()
            origin = str(source)
        source, written = as_gguf(source, scratch, on_event=on_event, cancel=cancel)  # a HF folder: converted
        header = _peek(source)
        own = ModelConfig(
            template=header.chat_template, template_source="gguf" if header.chat_template else None
        )
        adapters = _adapters(store, header.architecture, (), spec, on_event, cancel)
        draft = _draft(store, spec, _first_file(source), origin, None, base_model, on_event, cancel)
        projector = _projector(store, spec, header.shape.n_embd, on_event, cancel)
        config = replace(
            _layered(own, spec), parent=origin, adapters=adapters, draft=draft, projector=projector
        )
        license = _license(header.license, spec.license)
        return _import(
            store, target, source, origin, config, license, spec, on_event, cancel, scratch, written
        )


def _peek(source: Path) -> GGUFInfo:
    """The header of the model's first file (cheap), for the template and licence it brings."""
    from engine.store.gguf_io import read_header

    first = _first_file(source)
    return read_header(first, label=first.name)


def _first_file(source: Path) -> Path:
    """The part the import reads its facts from, found the import's way."""
    from engine.ingest.local_source import model_files

    return model_files(source)[0]


def _has_draft(spec: CreateSpec) -> bool:
    return spec.draft is not None or spec.draft_path is not None or bool(spec.draft_blobs)


def _draft(
    store: Store,
    spec: CreateSpec,
    target: Path,
    target_label: str,
    inherited: DraftModel | None,
    base_model: Callable[[ModelRef], Manifest],
    on_event: EventSink,
    cancel: CancelToken,
) -> DraftModel | None:
    """The new model's draft: the one DRAFT names (checked against ``target``'s tokens), else the base's."""
    if not _has_draft(spec):
        return inherited
    if spec.draft is not None and not spec.draft_quantize:
        manifest = draft_by_name(spec.draft, base_model)
        return draft_from_model(manifest, store, target, target_label=target_label, named=spec.draft)
    with _scratch(store) as scratch:
        if spec.draft is not None:
            manifest = draft_by_name(spec.draft, base_model)
            source, named = store.blob_path(manifest.files[0].sha256), spec.draft
            if len(manifest.files) != 1:
                raise InvalidInput(
                    f"DRAFT {spec.draft} is split into {len(manifest.files)} files: quantizing needs one"
                )
        elif spec.draft_blobs:
            folder = scratch / "draft"
            folder.mkdir()
            source, named = _blob_folder(store, folder, spec.draft_blobs), spec.draft_blobs[0][0]
        else:
            source = spec.draft_path or Path()
            named = str(source)
        from engine.ingest.local_source import model_files

        parts = model_files(source)
        if spec.draft_quantize:
            single = _single_file(source)
            quantized = scratch / _quantized_name(single, spec.draft_quantize)
            _quantize(single, quantized, spec.draft_quantize, on_event, cancel)
            parts = [quantized]
        return draft_from_files(
            store, parts, target, target_label=target_label, named=named, on_event=on_event, cancel=cancel
        )


def _import(
    store: Store,
    target: LocalRef,
    source: Path,
    origin: str,
    config: ModelConfig,
    license: str | None,
    spec: CreateSpec,
    on_event: EventSink,
    cancel: CancelToken,
    scratch: Path | None = None,
    written: Written | None = None,
) -> Manifest:
    """Import ``source`` (quantized first when asked) under ``target`` with ``config``: one manifest write.

    ``written``: the digest a conversion took of ``source`` as it wrote it, so it is not hashed twice.
    """
    from engine.ingest.local import import_gguf

    if not spec.quantize:
        return import_gguf(
            store, source, ref=target, config=config, origin=origin, license=license,
            written=written, on_event=on_event, cancel=cancel,
        )  # fmt: skip
    with _scratch(store) if scratch is None else _given(scratch) as folder:
        single = _single_file(source)
        quantized = folder / _quantized_name(single, spec.quantize)
        _quantize(single, quantized, spec.quantize, on_event, cancel)
        return import_gguf(
            store, quantized, ref=target, config=config, origin=origin, license=license,
            on_event=on_event, cancel=cancel,
        )  # fmt: skip


def _blob_folder(store: Store, scratch: Path, blobs: tuple[tuple[str, str], ...]) -> Path:
    """Uploaded blobs under the names the client gave: one file as it is, split parts linked in a folder."""
    for name, sha256 in blobs:
        if not store.has_blob(sha256):
            raise ModelNotFound(f"blob sha256:{sha256} ({name}) not found: upload it first")
    if is_hf_upload([name for name, _ in blobs]):  # safetensors and config.json: converted by the caller
        return gather([(name, store.blob_path(sha256)) for name, sha256 in blobs], scratch / "upload")
    if len(blobs) == 1:
        return store.blob_path(blobs[0][1])
    for name, sha256 in blobs:
        if not _plain_name(name) or not name.lower().endswith(".gguf"):
            raise InvalidInput(
                f"file name {name!r:.80}: a plain GGUF file name is expected (part-00001-of-00002.gguf)"
            )
        try:
            os.link(store.blob_path(sha256), scratch / name)
        except OSError as error:
            raise LlamadeckError(
                f"cannot gather the uploaded parts in {scratch}: {error.strerror}"
            ) from error
    return scratch


def _plain_name(name: str) -> bool:
    return (
        bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name
    )


def _layered(base: ModelConfig, spec: CreateSpec) -> ModelConfig:
    template, source = base.template, base.template_source
    if spec.template is not None and spec.template != base.template:  # the same text keeps its origin
        template, source = spec.template, SOURCE_MODELFILE
    parameters = dict(base.parameters)
    if spec.parameters:
        parameters = {
            **{k: v for k, v in base.parameters.items() if k not in spec.parameters},
            **spec.parameters,
        }
    return ModelConfig(
        template=template,
        template_source=source,
        system=spec.system if spec.system is not None else base.system,
        parameters=parameters,
        parent=base.parent,
        messages=spec.messages or base.messages,
        adapters=base.adapters,
        projector=base.projector,
    )


def _license(base: str | None, added: tuple[str, ...]) -> str | None:
    """The base's licence with the new texts after it; a text it has already is not added twice.

    (So ``show --modelfile`` fed back to ``create`` gives the same licence, not two copies.)
    """
    whole = base or ""
    texts = [whole] if whole else []
    for text in added:
        if whole and text.startswith(whole + _LICENSE_SEPARATOR):  # the whole licence again, as show wrote it
            texts = [text]
        elif text and text != whole and text not in texts:
            texts.append(text)
    return _LICENSE_SEPARATOR.join(texts) if texts else None


def _check_size(spec: CreateSpec) -> None:
    """A model records no more than a Modelfile may hold, whichever door it came in by."""
    if len(spec.messages) > MAX_MESSAGES:
        raise InvalidInput(
            f"a model takes at most {MAX_MESSAGES:,} MESSAGE turns; this one has {len(spec.messages):,}"
        )
    texts = [
        spec.template or "",
        spec.system or "",
        *spec.license,
        *(content for _, content in spec.messages),
    ]
    size = sum(map(len, texts))
    if size > MAX_MODELFILE_BYTES:
        raise InvalidInput(
            f"TEMPLATE, SYSTEM, MESSAGE and LICENSE hold {size / 2**20:.1f} MiB of text; "
            f"a model takes at most {MAX_MODELFILE_BYTES // 2**20} MiB, as a Modelfile does"
        )


def _check_texts(spec: CreateSpec) -> None:
    """Every text must be storable as UTF-8: JSON may carry lone surrogates that no file can hold."""
    texts = [("TEMPLATE", spec.template), ("SYSTEM", spec.system)]
    texts += [(f"MESSAGE {i}", content) for i, (_, content) in enumerate(spec.messages, 1)]
    texts += [("LICENSE", text) for text in spec.license]
    stops = spec.parameters.get("stop")
    texts += [("PARAMETER stop", str(s)) for s in stops] if isinstance(stops, list) else []
    for what, text in texts:
        if text is not None:
            check_unicode(text, what)


def _check_template(template: str | None) -> None:
    """Refuse a template that cannot render a one-turn chat, now rather than at every chat."""
    if template is None:
        return
    from engine.templates.message import Message
    from engine.templates.render import template_for

    try:
        renderer = template_for(template, SOURCE_MODELFILE, bos_token="", eos_token="", raw=None)
        if renderer is not None:
            renderer.render([Message("user", "Hello")])
    except TemplateError as error:
        raise InvalidInput(f"TEMPLATE cannot be used: {error}") from error


def _quantize(source: Path, target: Path, quant: str, on_event: EventSink, cancel: CancelToken) -> None:
    from engine.runtime.quantizer import quantize

    on_event(Status(f"quantizing to {quant.upper()}"))
    quantize(source, target, quant, on_event=on_event, cancel=cancel)


def _quantized_name(source: Path, quant: str) -> str:
    """``Model-F16.gguf`` quantized to Q4_K_M is stored as ``Model-Q4_K_M.gguf``."""
    stem = re.sub(r"[-_.](?:f16|f32|bf16)$", "", source.stem, flags=re.IGNORECASE)
    if stem.startswith("sha256-"):  # a stored blob: its name says nothing
        stem = "model"
    return f"{stem}-{quant.upper()}.gguf"


def _single_file(path: Path) -> Path:
    """The one file to quantize, found as the import finds a model's files (llama.cpp quantizes one)."""
    from engine.ingest.local_source import model_files

    files = model_files(path)
    if len(files) != 1:
        raise InvalidInput(f"{path} is split into {len(files)} files: quantizing needs one file")
    return files[0]


class _given:
    """A folder that is there already, as a context manager (so both branches read alike)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __enter__(self) -> Path:
        return self._path

    def __exit__(self, *_: object) -> None:
        return None


class _scratch:
    """A temporary folder inside the store (same file system, so the result is linked, not copied)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._path: Path | None = None

    def __enter__(self) -> Path:
        self._store.ensure()
        try:
            self._path = Path(tempfile.mkdtemp(prefix="create-", dir=self._store.partial))
        except OSError as error:
            where = self._store.partial
            raise LlamadeckError(f"cannot make a working folder in {where}: {error.strerror}") from error
        return self._path

    def __exit__(self, *_: object) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)


def _adapters(
    store: Store,
    architecture: str,
    base: tuple[ModelFile, ...],
    spec: CreateSpec,
    on_event: EventSink,
    cancel: CancelToken,
) -> tuple[ModelFile, ...]:
    """The base's adapters and the new ones, checked against the model and stored as blobs."""
    if not spec.adapters:
        return base
    from engine.ingest.local import import_file
    from engine.runtime.adapters import check_adapter

    added = list(base)
    for path in spec.adapters:
        check_adapter(path, architecture=architecture)
        file = import_file(store, path, on_event=on_event, cancel=cancel)
        if all(a.sha256 != file.sha256 for a in added):  # one adapter applied twice is not two adapters
            added.append(file)
    return tuple(added)


def _is_projector(path: Path) -> bool:
    from engine.store.gguf_io import read_raw_header
    from engine.store.projector import PROJECTOR_LIMITS, is_projector

    try:
        return is_projector(read_raw_header(path, label=path.name, limits=PROJECTOR_LIMITS))
    except (LlamadeckError, OSError):  # not a readable GGUF, or a model too large for the bounds
        return False


def _projector_blob(store: Store, spec: CreateSpec) -> CreateSpec:
    """``spec`` with an uploaded projector blob moved from ``base_blobs`` to ``projector``."""
    found = [(name, sha) for name, sha in spec.base_blobs if _is_projector(store.blob_path(sha))]
    if not found:
        return spec
    if len(found) > 1:
        raise InvalidInput("a model takes one vision projector; the files hold " + str(len(found)))
    rest = tuple(blob for blob in spec.base_blobs if blob not in found)
    if not rest:
        raise InvalidInput(f"{found[0][0]!r:.80} is a vision projector: give the model's weights too")
    return replace(spec, base_blobs=rest, projector=store.blob_path(found[0][1]))


def _projector(
    store: Store, spec: CreateSpec, n_embd: int, on_event: EventSink, cancel: CancelToken
) -> ModelFile | None:
    """The spec's projector, checked (a projector GGUF of the model's embedding width) and stored."""
    if spec.projector is None:
        return None
    from engine.ingest.local import import_file
    from engine.store.projector import read_projector

    label = spec.projector.name
    info = read_projector(spec.projector, label=label)
    if info.projection_dim and n_embd and info.projection_dim != n_embd:
        raise InvalidInput(
            f"projector {label} maps images to {info.projection_dim}-wide embeddings; "
            f"the model's are {n_embd} wide: it belongs to another model"
        )
    return import_file(store, spec.projector, on_event=on_event, cancel=cancel)
