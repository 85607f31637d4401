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
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import re
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.errors import Cancelled, DiskFull, IntegrityError, InvalidInput
from engine.events import EventSink, Status, ignore
from engine.machine.quant import quant_from_file_type, quant_from_filename
from engine.options import parse_options
from engine.store.blob_locks import blob_locks
from engine.store.clock import now_iso
from engine.store.files import file_kind, os_error
from engine.store.gguf_io import GGUFInfo, HeaderIncomplete, check_data_inside, scan_header, verify_structure
from engine.store.manifest import MAX_TEXT, Manifest, ModelConfig, ModelFile
from engine.store.model_store import Store
from engine.store.refs import LocalRef
from engine.store.transfer import CHUNK, HashingFile, ProgressMeter, Written
from engine.templates.known import template_and_source
from engine.templates.render import SOURCE_MODELFILE
from engine.text import one_line
from engine.units import format_size

SPLIT_NAME = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # follows symlinks (a user's or HF's); never blocks
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_PARTS = 9999
_EXPECTED = (
    "a .gguf file, the first part of a split model (…-00001-of-0000N.gguf) "
    "or a folder holding one model's GGUF file(s)"
)


@dataclass
class _Part:
    """One file being imported: its open descriptor and what it was when opened."""

    path: Path  # as given (or found in the folder)
    name: str  # the name the store records (``ModelFile.path``)
    fd: int
    info: os.stat_result
    _header: GGUFInfo | None  # None for a file imported as bytes only (``import_file``)
    sha256: str = ""

    @property
    def header(self) -> GGUFInfo:
        assert self._header is not None
        return self._header

    @property
    def label(self) -> str:
        return one_line(str(self.path), None)

    def unchanged(self) -> bool:
        now = os.fstat(self.fd)
        return (now.st_size, now.st_mtime_ns) == (self.info.st_size, self.info.st_mtime_ns)


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
    parts: list[_Part] = []
    try:
        for i, path in enumerate(model_files(source)):
            parts.append(_open_part(path, i))
        _check_split(parts)
        for part, name in zip(parts, _stored_names(parts, ref), strict=True):
            part.name = name
        header = parts[0].header
        _check_text(merged.template or header.chat_template, "chat template", parts[0].label)
        for part in parts:
            cancel.check()
            if written is not None and len(parts) == 1 and written.holds_for(part.info):
                part.sha256 = written.sha256  # hashed as it was written: not read a second time
                continue
            on_event(Status(f"importing {part.label}"))
            part.sha256 = _hash(part, on_event, cancel)
        files = tuple(ModelFile(p.name, p.sha256, p.info.st_size) for p in parts)
        if len({f.sha256 for f in files}) != len(files):
            raise InvalidInput("two parts of the split model are the same file: nothing imported")
        with blob_locks(store, [f.sha256 for f in files], on_event, cancel):
            created: list[Path] = []
            try:
                for part in parts:
                    if _store_blob(store, part, link=link, sink=on_event, cancel=cancel):
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
    kind = _kind_of(path)
    if kind != "file":
        raise InvalidInput(
            f"cannot import {one_line(str(path))}: it is {'a directory' if kind == 'directory' else kind}"
        )
    part = _open_part(path, 0, model=False)
    try:
        part.name = _clean_stem(path.name.removesuffix(".gguf")) + ".gguf"
        store.ensure()
        part.sha256 = _hash(part, on_event, cancel)
        with blob_locks(store, [part.sha256], on_event, cancel):
            _store_blob(store, part, link=link, sink=on_event, cancel=cancel)
    finally:
        os.close(part.fd)
    return ModelFile(part.name, part.sha256, part.info.st_size)


# -- the source ----------------------------------------------------------------------------


def _given(source: Path | Sequence[Path]) -> Path:
    return Path(source) if isinstance(source, str | os.PathLike) else Path(source[0])


def model_files(source: Path | Sequence[Path]) -> list[Path]:
    """The files to import, in part order; InvalidInput naming what is wrong with ``source``.

    A file, a split model's first part, a folder of one model (projectors set aside), or the parts.
    """
    if not isinstance(source, str | os.PathLike):
        paths = [Path(p) for p in source]
        if not paths:
            raise InvalidInput(f"nothing to import: give {_EXPECTED}")
        if len(paths) > _MAX_PARTS:
            raise InvalidInput(f"{len(paths)} parts: a split model has at most {_MAX_PARTS}")
        return paths
    path = Path(source)
    kind = _kind_of(path)
    if kind == "directory":
        return _from_folder(path)
    if kind == "missing":
        raise InvalidInput(f"cannot import {one_line(str(path))}: it does not exist")
    if kind != "file":
        raise InvalidInput(f"cannot import {one_line(str(path))}: it is {kind}; give {_EXPECTED}")
    split = SPLIT_NAME.match(path.name)
    if split is None:
        return [path]
    part, count = int(split["part"]), int(split["count"])
    if part != 1:
        first = f"{split['stem']}-00001-of-{split['count']}.gguf"
        raise InvalidInput(
            f"{one_line(str(path))} is part {part} of {count}: give the first part ({one_line(first)})"
        )
    return _split_siblings(path.parent, split["stem"], count, path.name)


def _kind_of(path: Path) -> str:
    """ "file", "directory", or what else ``path`` is (following symlinks), as a phrase."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a symlink to nothing (dangling)" if os.path.islink(path) else "missing"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symlink loop"
        if error.errno == errno.ENAMETOOLONG:
            return "a path too long for the file system"
        return f"unreadable ({error.strerror})"
    except ValueError:  # an embedded NUL
        return "not a valid path"
    kind = file_kind(mode)  # stat follows symlinks: never "symlink" here
    return kind if kind in ("file", "directory") else f"a {kind}"


def _split_siblings(folder: Path, stem: str, count: int, first: str) -> list[Path]:
    names = [
        first[: -len("00001-of-00000.gguf")] + f"{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)
    ]
    names[0] = first
    paths = [folder / name for name in names]
    missing = [str(i) for i, p in enumerate(paths, 1) if _kind_of(p) != "file"]
    if missing:
        which = f"part{'s' if len(missing) > 1 else ''} {', '.join(missing[:10])}"
        raise InvalidInput(
            f"split part missing: {which} of {count} of {one_line(str(stem))} "
            f"not found beside {one_line(str(folder / first))}"
        )
    return paths


def _from_folder(folder: Path) -> list[Path]:
    """The one model in a folder: its one .gguf, or one split model's parts (projectors set aside)."""
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.name.lower().endswith(".gguf"))
    except OSError as error:
        raise InvalidInput(f"cannot list {one_line(str(folder))}: {error.strerror}") from None
    ggufs = [n for n in names if not n.startswith(".") and _kind_of(folder / n) == "file"]
    models = [n for n in ggufs if "mmproj" not in n.lower()]
    if len(models) == 1 and not SPLIT_NAME.match(models[0]):
        return [folder / models[0]]
    splits = {(m["stem"], int(m["count"])) for n in models if (m := SPLIT_NAME.match(n))}
    if len(splits) == 1 and all(SPLIT_NAME.match(n) for n in models):
        stem, count = splits.pop()
        first = next((n for n in models if int(SPLIT_NAME.match(n)["part"]) == 1), None)  # type: ignore[index]
        if first is None:
            raise InvalidInput(
                f"split part missing: part 1 of {count} of {one_line(str(stem))} in {one_line(str(folder))}"
            )
        return _split_siblings(folder, stem, count, first)
    listed = ", ".join(one_line(str(n)) for n in models[:4]) + (", …" if len(models) > 4 else "")
    found = f"{len(models)} model files ({listed})" if models else "no GGUF file"
    shown = one_line(str(folder))
    raise InvalidInput(f"cannot import the folder {shown}: it holds {found}; give {_EXPECTED}")


def _open_part(path: Path, index: int, *, model: bool = True) -> _Part:
    """Open one file without blocking (a FIFO never hangs) and read its GGUF header from that descriptor."""
    label = one_line(str(path), None)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise InvalidInput(f"cannot import {label}: it does not exist") from None
    except OSError as error:
        kind = _kind_of(path)
        why = kind if kind not in ("file", "directory") else (error.strerror or str(error))
        raise InvalidInput(f"cannot import {label}: {why}; give {_EXPECTED}") from None
    except ValueError:
        raise InvalidInput(f"cannot import {label}: not a valid path") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else _kind_of(path)
            raise InvalidInput(f"cannot import {label}: it is {kind}, not a file; give {_EXPECTED}")
        if info.st_size == 0:
            raise IntegrityError(f"{label} is empty (0 bytes), not a GGUF file")
        if not model:
            if os.pread(fd, 4, 0) != b"GGUF":
                raise IntegrityError(f"{label} is not a GGUF file (it does not start with GGUF)")
            return _Part(path, path.name, fd, info, None)
        header = _read_header(fd, info.st_size, label)
        if index == 0 and header.split_index == 0 and not header.architecture:
            raise IntegrityError(f"{label} has no general.architecture: not a model llama.cpp can load")
        return _Part(path, path.name, fd, info, header)
    except BaseException:
        os.close(fd)
        raise


def _read_header(fd: int, size: int, label: str) -> GGUFInfo:
    """The header scanned through a memory map of ``fd``, and the tensor data checked to lie inside."""
    try:
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as view:
            info = scan_header(view, label=label, file_size=size)
    except HeaderIncomplete:
        raise IntegrityError(f"{label} is truncated inside its GGUF header ({size} bytes)") from None
    except (OSError, ValueError) as error:
        raise IntegrityError(f"cannot read {label}: {error}") from None
    check_data_inside(info, size, label=label)
    return info


def _check_split(parts: list[_Part]) -> None:
    """Every part's header agrees with its place: part i of N, N the number of files."""
    count = len(parts)
    first = parts[0]
    if count == 1 and first.header.split_count > 1:
        raise InvalidInput(
            f"{first.label} is part {first.header.split_index + 1} of {first.header.split_count} of a split "
            "model: give the first part (named …-00001-of-0000N.gguf) or the folder holding every part"
        )
    for i, part in enumerate(parts):
        header = part.header
        if count > 1 and (header.split_count != count or header.split_index != i):
            says = f"part {header.split_index + 1} of {header.split_count}"
            raise IntegrityError(
                f"{part.label} is not part {i + 1} of {count} of this split model (its header says {says})"
            )
    if first.header.shape.n_layers == 0:  # later parts carry no shape; the scan checks the first
        raise IntegrityError(f"{first.label} has no layers (block_count is 0 or missing)")


def _clean_stem(text: str) -> str:
    stem = _UNSAFE_NAME.sub("_", text).strip("._-")[:120]
    return stem or "model"


def _stored_names(parts: list[_Part], ref: LocalRef) -> list[str]:
    """File names the store records: the source's, made safe; split parts named as llama.cpp wants."""
    fallback = _clean_stem(f"{ref.name}-{ref.tag}")
    if len(parts) == 1:
        name = parts[0].path.name
        if name.lower().endswith(".gguf"):
            return [_clean_stem(name[: -len(".gguf")]) + ".gguf"]
        return [f"{fallback}.gguf"]
    split = SPLIT_NAME.match(parts[0].path.name)
    stem = _clean_stem(split["stem"]) if split else fallback
    return [f"{stem}-{i:05d}-of-{len(parts):05d}.gguf" for i in range(1, len(parts) + 1)]


# -- hashing and storing -------------------------------------------------------------------


def _hash(part: _Part, sink: EventSink, cancel: CancelToken) -> str:
    """sha256 of the open file; IntegrityError when it changed size or time meanwhile."""
    digest = hashlib.sha256()
    meter = ProgressMeter(sink, "importing", part.label, part.info.st_size)
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    offset = 0
    while True:
        cancel.check()
        try:
            n = os.preadv(part.fd, [buffer], offset)
        except OSError as error:
            raise IntegrityError(f"cannot read {part.label}: {error.strerror}") from None
        if not n:
            break
        digest.update(view[:n])
        offset += n
        meter.advance(n)
    meter.finish()
    if offset != part.info.st_size or not part.unchanged():
        raise IntegrityError(
            f"{part.label} changed while it was read: nothing imported; try again once nothing writes it"
        )
    return digest.hexdigest()


def _same_inode(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _store_blob(store: Store, part: _Part, *, link: bool, sink: EventSink, cancel: CancelToken) -> bool:
    """Make sure ``blobs/sha256-<sha256>`` holds the part (hold its lock); True when this call stored it."""
    blob = store.blob_path(part.sha256)
    try:
        existing: os.stat_result | None = os.lstat(blob)
    except FileNotFoundError:
        existing = None
    except OSError as error:
        raise os_error(error, "cannot use the blob", blob) from error
    regular = existing is not None and stat.S_ISREG(existing.st_mode)
    if (
        regular
        and existing is not None
        and (_same_inode(existing, part.info) or _sound(store, part, sink, cancel))
    ):
        sink(Status(f"{part.label}: already in the store"))
        return False
    if existing is not None and not stat.S_ISDIR(existing.st_mode):
        blob.unlink(missing_ok=True)  # damaged, or a symlink someone put there: never written through
    partial = store.prepare_partial(part.sha256)
    partial.unlink(
        missing_ok=True
    )  # a download of the same bytes in progress is superseded: we hold the lock
    try:
        how = "linked" if link and _link(part, partial) else _copy(store, part, partial, sink, cancel)
        if part._header is not None:
            verify_structure(partial, label=part.label)
        store.commit_blob(partial, part.sha256)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    sink(Status(f"{part.label}: {how} into the store"))
    return True


def _sound(store: Store, part: _Part, sink: EventSink, cancel: CancelToken) -> bool:
    """Whether a stored blob of the same digest still hashes to it (pulling again is how users repair)."""
    from engine.store.verify import check_blob

    problem = check_blob(store, ModelFile(part.name, part.sha256, part.info.st_size), sink, cancel)
    if problem is not None:
        sink(Status(f"{part.label}: the stored copy is damaged; replacing it"))
    return problem is None


def _link(part: _Part, partial: Path) -> bool:
    """Hard-link the file that was hashed to ``partial``; False when the file system will not.

    The path is linked (``/proc/self/fd`` links are refused across mounts in
    some sandboxes) and the link's inode compared with the open file's, so a
    file renamed over the source meanwhile is never the one stored.
    """
    try:
        os.link(os.path.realpath(part.path), partial)
    except OSError:
        return False  # EXDEV, EPERM (protected_hardlinks), EMLINK, no hard links at all: copy instead
    try:
        linked = os.lstat(partial)
    except OSError:
        return False
    if not _same_inode(linked, part.info) or not part.unchanged():
        partial.unlink(missing_ok=True)
        if not part.unchanged():
            raise IntegrityError(f"{part.label} changed while it was imported: nothing imported; try again")
        return False
    return True


def _copy(store: Store, part: _Part, partial: Path, sink: EventSink, cancel: CancelToken) -> str:
    """Copy the open file into ``partial``, hashing again as it goes; IntegrityError if the bytes differ."""
    free = shutil.disk_usage(store.partial).free
    if part.info.st_size > free:
        raise DiskFull(
            f"not enough disk space in {store.home} to copy {part.label}: "
            f"need {format_size(part.info.st_size)}, "
            f"{format_size(free)} free; nothing changed"
        )
    meter = ProgressMeter(sink, "copying", part.label, part.info.st_size)
    try:
        out = HashingFile(partial, meter)
    except OSError as error:
        raise os_error(error, "cannot write", partial) from error
    try:
        offset = 0
        while True:
            cancel.check()
            data = os.pread(part.fd, CHUNK, offset)
            if not data:
                break
            out.write(data)
            offset += len(data)
    except Cancelled:
        out.close()
        raise
    except OSError as error:
        out.close()
        raise os_error(error, f"cannot copy {part.label} to", partial) from error
    except BaseException:
        out.close()
        raise
    meter.finish()
    try:
        digest = out.finish()
    except OSError as error:
        raise os_error(error, "cannot write", partial) from error
    if digest != part.sha256 or not part.unchanged():
        raise IntegrityError(f"{part.label} changed while it was copied: nothing imported; try again")
    return "copied"


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
    parts: list[_Part],
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


__all__ = ["SPLIT_NAME", "import_file", "import_gguf", "model_files"]
