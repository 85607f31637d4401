"""Where ``create`` meets the converter: a Hugging Face folder or upload becomes a GGUF in the scratch folder.

``create`` calls ``as_gguf`` on whatever its FROM names: a folder with
``config.json`` beside safetensors weights is converted into the create's
scratch folder inside the store (same file system: the import links it),
and the import then hashes, verifies and records it like any GGUF file;
anything else passes through unchanged. Uploaded ``/api/create`` files are
gathered under their names first (``gather``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.errors import InvalidInput, LlamadeckError
from engine.events import EventSink, Status, ignore
from engine.store.transfer import Written

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def is_hf_folder(path: Path) -> bool:
    """True for a folder holding a Hugging Face model (config.json beside its weights), not GGUF files."""
    return path.is_dir() and (path / "config.json").is_file()


def is_hf_upload(names: Sequence[str]) -> bool:
    """True when uploaded files are (part of) a Hugging Face model, not GGUF files: converted, or refused
    with what is missing."""
    return any(n.endswith(".safetensors") or n.rsplit("/", 1)[-1] == "config.json" for n in names)


def gather(blobs: Sequence[tuple[str, Path]], folder: Path) -> Path:
    """Hard-link uploaded blobs into ``folder`` under their relative names; returns ``folder``.

    The names were checked by the API as Go's ``fs.ValidPath`` (relative, no
    ``..``); they are checked again here since this is where they become paths.
    """
    for name, blob in blobs:
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") or "\0" in p for p in parts):
            raise InvalidInput(f"file name {name!r:.80}: a relative path without '..' is expected")
        target = folder.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(blob, target)
        except FileExistsError:
            raise InvalidInput(f"file name {name!r:.80} is given twice") from None
        except OSError as error:
            raise LlamadeckError(f"cannot gather the uploaded files in {folder}: {error.strerror}") from error
    return folder


def as_gguf(
    source: Path, scratch: Path, *, on_event: EventSink = ignore, cancel: CancelToken = NEVER
) -> tuple[Path, Written | None]:
    """``source`` itself, or for a Hugging Face model folder the GGUF converted from it into ``scratch``
    with the digest taken while it was written (so the import does not read it again)."""
    if not is_hf_folder(source):
        return source, None
    from engine.convert.writer import convert_folder  # numpy and gguf: only when converting

    stem = _UNSAFE.sub("-", source.resolve().name).strip("-.") or "model"
    out = scratch / f"{stem}.gguf"
    converted = convert_folder(source, out, name=stem, on_event=on_event, cancel=cancel)
    kind = "BF16" if converted.file_type == 32 else "F16"
    final = out.with_name(f"{stem}-{kind}.gguf")  # the import names the tag after the file's quant
    out.rename(final)  # the same inode, size and time: ``written`` still holds
    on_event(Status(f"converted {converted.tensors} tensors ({converted.arch}, {kind})"))
    return final, converted.written
