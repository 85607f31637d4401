"""Re-checking what the store holds: the same two checks a pull makes before it registers a file."""

from __future__ import annotations

from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.errors import IntegrityError, InvalidInput
from engine.events import EventSink
from engine.store.gguf_io import GGUFInfo, verify_structure
from engine.store.manifest import ModelFile
from engine.store.model_store import Store
from engine.store.projector import ProjectorInfo, read_projector
from engine.store.transfer import ProgressMeter, hash_file


def _hashed(store: Store, file: ModelFile, sink: EventSink, cancel: CancelToken) -> Path:
    blob = store.blob_path(file.sha256)
    if not blob.is_file():
        raise IntegrityError(f"{file.path}: missing ({blob})")
    meter = ProgressMeter(sink, "verifying", file.path, file.size)
    if hash_file(blob, meter, cancel=cancel) != file.sha256:
        raise IntegrityError(f"{file.path}: sha256 mismatch, the file is corrupt ({blob})")
    return blob


def inspect_blob(store: Store, file: ModelFile, sink: EventSink, cancel: CancelToken = NEVER) -> GGUFInfo:
    """The header of a stored file that is present, hashes to its name and is a sound GGUF.

    Raises IntegrityError saying which of the three it is not (Cancelled when cancelled).
    """
    return verify_structure(_hashed(store, file, sink, cancel), label=file.path)


def inspect_projector(
    store: Store, file: ModelFile, sink: EventSink, cancel: CancelToken = NEVER
) -> ProjectorInfo:
    """``inspect_blob`` for a vision projector: present, hashes to its name, a whole projector GGUF."""
    blob = _hashed(store, file, sink, cancel)
    try:
        return read_projector(blob, label=file.path)
    except InvalidInput as error:
        raise IntegrityError(str(error)) from error


def check_blob(
    store: Store, file: ModelFile, sink: EventSink, cancel: CancelToken = NEVER, *, projector: bool = False
) -> str | None:
    """None when the stored file (a projector when ``projector``) is sound; else what is wrong with it."""
    try:
        (inspect_projector if projector else inspect_blob)(store, file, sink, cancel)
    except IntegrityError as error:
        return str(error)
    return None
