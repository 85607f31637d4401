"""Importing a GGUF from a local path into the store: no network, no copy when a hard link will do.

    manifest = import_gguf(store, Path("~/models/Qwen2.5-0.5B-Q4_K_M.gguf").expanduser(),
                           ref=LocalRef("qwen2.5-0.5b", "q4_k_m"))

The source is a ``.gguf`` file (any regular file whose bytes are GGUF: an
Ollama blob has no extension), the first part of a split model
(``…-00001-of-0000N.gguf``, every part beside it), a folder holding one
model (its one ``.gguf``, or one split model's parts), or the parts as a
sequence in order.

Each file is read once to hash it (``importing`` progress, cancellable), then
enters the store under its sha256 like any pulled blob:

* a **hard link** when the store is on the same file system and the file
  system allows it (``EXDEV``, ``EPERM`` from ``protected_hardlinks``,
  ``EMLINK`` … fall back to a copy). The link's inode is checked to be the
  one that was hashed, with its size and time unchanged.
  Caveat: a hard link *is* the user's file, so editing the original in place
  (not replacing it: most tools write a new file and rename) changes the blob
  too; ``verify`` re-hashes and reports it, and importing again repairs it.
  Ollama never links: ``ollama create`` copies every byte into its blob store.
* a **copy** otherwise: into the blob's partial path, hashed again while
  written (so a file that changed between the two reads is refused), fsynced
  and renamed into ``blobs/``: never a half blob.

The blob is never a symlink to the user's file. Every file is checked as a
pull checks it (GGUF header, tensor data inside the file, layers, split
numbering) before anything is written, and again in its partial place before
it becomes a blob; the manifest is written last, under the store lock, while
the blob locks are held, so ``prune`` and garbage collection never take a
blob an import is about to name and two imports of one file take turns.

This module runs the import and writes the manifest; finding and opening the
files is ``local_source``'s job, hashing and storing their bytes ``blob_import``'s.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.errors import IntegrityError, InvalidInput
from engine.events import EventSink, Status, ignore
from engine.ingest.blob_import import hash_part, store_blob
from engine.ingest.local_source import (
    Part,
    check_split,
    clean_stem,
    model_files,
    open_part,
    path_kind,
    stored_names,
)
from engine.machine.quant import quant_from_file_type, quant_from_filename
from engine.option_parsing import parse_options
from engine.store.blob_locks import blob_locks
from engine.store.clock import now_iso
from engine.store.manifest import MAX_TEXT, Manifest, ModelConfig, ModelFile
from engine.store.model_store import Store
from engine.store.refs import LocalRef
from engine.store.transfer import Written
from engine.templates.known import template_and_source
from engine.templates.render import SOURCE_MODELFILE
from engine.text import one_line


def import_gguf(
    store: Store,
    source: Path | Sequence[Path],
    *,
    ref: LocalRef,
    config: ModelConfig | None = None,
    origin: str | None = None,
    license: str | None = None,
    link: bool = True,
    written: Written | None = None,
    on_event: EventSink = ignore,
    cancel: CancelToken = NEVER,
) -> Manifest:
    """Put a local GGUF model into the store under ``ref`` (replacing what that name held); its manifest.

    ``config`` (an Ollama model's template, system prompt and parameters)
    overrides what the GGUF says: its template wins over the GGUF's
    ``tokenizer.chat_template`` (recorded with ``template_source`` as given,
    "modelfile" when not). ``origin`` is what the manifest records as the
    source ("ollama llama3.2:3b"); the path otherwise. ``license`` replaces
    the GGUF's ``general.license``. ``link=False`` always copies. ``written``: the
    digest its writer took of a one-file ``source`` (a conversion), used while the file is unchanged.

    Raises InvalidInput (not a file or folder this can import; a missing
    split part), IntegrityError (not a GGUF, truncated, no layers, changed
    while read), InvalidOption (a bad parameter in ``config``), DiskFull and
    Cancelled; in every case nothing is left half-written in the store.
    """
    if not isinstance(ref, LocalRef):
        raise InvalidInput(f"an import is stored under a local name (NAME:TAG), not {one_line(str(ref))}")
    merged = _config(config)
    store.ensure()
    parts: list[Part] = []
    try:
        for i, path in enumerate(model_files(source)):
            parts.append(open_part(path, i))
        check_split(parts)
        for part, name in zip(parts, stored_names(parts, ref), strict=True):
            part.name = name
        header = parts[0].header
        _check_text(merged.template or header.chat_template, "chat template", parts[0].label)
        for part in parts:
            cancel.check()
            if written is not None and len(parts) == 1 and written.holds_for(part.info):
                part.sha256 = written.sha256  # hashed as it was written: not read a second time
                continue
            on_event(Status(f"importing {part.label}"))
            part.sha256 = hash_part(part, on_event, cancel)
        files = tuple(ModelFile(p.name, p.sha256, p.info.st_size) for p in parts)
        if len({f.sha256 for f in files}) != len(files):
            raise InvalidInput("two parts of the split model are the same file: nothing imported")
        with blob_locks(store, [f.sha256 for f in files], on_event, cancel):
            created: list[Path] = []
            try:
                for part in parts:
                    if store_blob(store, part, link=link, sink=on_event, cancel=cancel):
                        created.append(store.blob_path(part.sha256))
                origin = origin or one_line(str(_given(source)), None)
                manifest = _manifest(parts, files, ref, merged, origin, license)
                with store.store_lock():
                    store.save(manifest)
            except BaseException:
                for blob in created:  # no manifest names them: take back what this import added
                    with contextlib.suppress(OSError):
                        blob.unlink()
                raise
    finally:
        for part in parts:
            with contextlib.suppress(OSError):
                os.close(part.fd)
    on_event(Status(f"success: {manifest.reference}"))
    return manifest


def import_file(
    store: Store,
    source: Path,
    *,
    link: bool = True,
    on_event: EventSink = ignore,
    cancel: CancelToken = NEVER,
) -> ModelFile:
    """Put one GGUF file (a LoRA adapter) into ``blobs/`` as ``import_gguf`` does, and describe it.

    Only the GGUF magic is checked here: the caller checks what the file must
    be (``engine.runtime.adapters.check_adapter``). No manifest names the
    blob yet, so garbage collection may take it until one does: write the
    manifest that names it soon, and import again if ``verify`` finds it missing.
    """
    path = Path(source)
    kind = path_kind(path)
    if kind != "file":
        raise InvalidInput(
            f"cannot import {one_line(str(path))}: it is {'a directory' if kind == 'directory' else kind}"
        )
    part = open_part(path, 0, model=False)
    try:
        part.name = clean_stem(path.name.removesuffix(".gguf")) + ".gguf"
        store.ensure()
        part.sha256 = hash_part(part, on_event, cancel)
        with blob_locks(store, [part.sha256], on_event, cancel):
            store_blob(store, part, link=link, sink=on_event, cancel=cancel)
    finally:
        os.close(part.fd)
    return ModelFile(part.name, part.sha256, part.info.st_size)


def _given(source: Path | Sequence[Path]) -> Path:
    return Path(source) if isinstance(source, str | os.PathLike) else Path(source[0])


# -- the manifest --------------------------------------------------------------------------


def _config(config: ModelConfig | None) -> ModelConfig:
    """The caller's config, checked: its parameters parsed as any request's options would be."""
    if config is None:
        return ModelConfig()
    parameters = parse_options(config.parameters, source="the imported model's parameters")
    _check_text(config.system, "system prompt", "the imported model's config")
    template_source = config.template_source or (SOURCE_MODELFILE if config.template else None)
    return replace(config, template_source=template_source, parameters=parameters)


def _check_text(text: str | None, what: str, where: str) -> None:
    if text is not None and len(text) > MAX_TEXT:
        raise IntegrityError(
            f"{where} has a {what} of {len(text):,} characters; "
            f"llamadeck keeps up to {MAX_TEXT:,}: not imported"
        )


def _manifest(
    parts: list[Part],
    files: tuple[ModelFile, ...],
    ref: LocalRef,
    config: ModelConfig,
    source: str,
    license: str | None,
) -> Manifest:
    first = parts[0].header
    quant = quant_from_file_type(first.file_type) if first.file_type is not None else None
    template, template_source = template_and_source(first.architecture, first.chat_template)
    if config.template is not None:
        template, template_source = config.template, config.template_source
    from engine.ingest.hub.listing import license_text

    return Manifest(
        name=ref.name,
        tag=ref.tag,
        source=source[:MAX_TEXT],
        revision=None,
        files=files,
        quant=quant or quant_from_filename(str(parts[0].path.name)),
        architecture=first.architecture,
        parameters=sum(p.header.parameter_count for p in parts),
        context_length=first.shape.context_length,
        shape=first.shape,
        created=now_iso(),
        size_label=first.size_label,
        license=license_text(license or first.license),
        config=replace(config, template=template, template_source=template_source),
    )


__all__ = ["import_file", "import_gguf"]
