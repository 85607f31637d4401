"""Re-checking what the store holds: the same two checks a pull makes before it registers a file."""

from __future__ import annotations

from engine.errors import IntegrityError
from engine.events import EventSink
from engine.gguf_io import verify_structure
from engine.store import ModelFile, Store
from engine.transfer import ProgressMeter, hash_file


def check_blob(store: Store, file: ModelFile, sink: EventSink) -> str | None:
    """None when the blob is present, hashes to its name and is a sound GGUF; else the problem."""
    blob = store.blob_path(file.sha256)
    if not blob.is_file():
        return f"{file.path}: missing ({blob})"
    if hash_file(blob, ProgressMeter(sink, "verifying", file.path, file.size)) != file.sha256:
        return f"{file.path}: sha256 mismatch, the file is corrupt ({blob})"
    try:
        verify_structure(blob, label=file.path)
    except IntegrityError as error:
        return str(error)
    return None
