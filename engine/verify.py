"""Re-checking what the store holds: the same two checks a pull makes before it registers a file."""

from __future__ import annotations

from engine.errors import IntegrityError
from engine.events import EventSink
from engine.gguf_io import GGUFInfo, verify_structure
from engine.store import ModelFile, Store
from engine.transfer import ProgressMeter, hash_file


def inspect_blob(store: Store, file: ModelFile, sink: EventSink) -> GGUFInfo:
    """The header of a stored file that is present, hashes to its name and is a sound GGUF.

    Raises IntegrityError saying which of the three it is not.
    """
    blob = store.blob_path(file.sha256)
    if not blob.is_file():
        raise IntegrityError(f"{file.path}: missing ({blob})")
    if hash_file(blob, ProgressMeter(sink, "verifying", file.path, file.size)) != file.sha256:
        raise IntegrityError(f"{file.path}: sha256 mismatch, the file is corrupt ({blob})")
    return verify_structure(blob, label=file.path)


def check_blob(store: Store, file: ModelFile, sink: EventSink) -> str | None:
    """None when the stored file is sound; else what is wrong with it."""
    try:
        inspect_blob(store, file, sink)
    except IntegrityError as error:
        return str(error)
    return None
