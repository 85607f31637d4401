"""Re-checking what the store holds: the same two checks a pull makes before it registers a file."""

from __future__ import annotations

from engine.cancel import NEVER, CancelToken
from engine.errors import IntegrityError
from engine.events import EventSink
from engine.store.gguf_io import GGUFInfo, verify_structure
from engine.store.manifest import ModelFile
from engine.store.model_store import Store
from engine.store.transfer import ProgressMeter, hash_file


def inspect_blob(store: Store, file: ModelFile, sink: EventSink, cancel: CancelToken = NEVER) -> GGUFInfo:
    """The header of a stored file that is present, hashes to its name and is a sound GGUF.

    Raises IntegrityError saying which of the three it is not (Cancelled when cancelled).
    """
    blob = store.blob_path(file.sha256)
    if not blob.is_file():
        raise IntegrityError(f"{file.path}: missing ({blob})")
    meter = ProgressMeter(sink, "verifying", file.path, file.size)
    if hash_file(blob, meter, cancel=cancel) != file.sha256:
        raise IntegrityError(f"{file.path}: sha256 mismatch, the file is corrupt ({blob})")
    return verify_structure(blob, label=file.path)


def check_blob(store: Store, file: ModelFile, sink: EventSink, cancel: CancelToken = NEVER) -> str | None:
    """None when the stored file is sound; else what is wrong with it."""
    try:
        inspect_blob(store, file, sink, cancel)
    except IntegrityError as error:
        return str(error)
    return None
