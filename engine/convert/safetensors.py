"""Reading safetensors files whose header nobody vouches for.

A safetensors file is an 8-byte little-endian header length, a JSON header
naming each tensor's dtype, shape and byte range, then the bytes. The file
comes from the Hub or a user's folder, so the header is untrusted: its size is
bounded before it is read, and every tensor's range must lie inside the file,
match its shape and dtype exactly, and overlap no other. Tensors are read with
``pread`` (never a memory map), so reading a 20 GB model keeps the process as
small as the chunk being read.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import IntegrityError, InvalidInput
from engine.text import one_line

MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own bound
MAX_TENSORS = 1_000_000
MAX_NAME = 512
MAX_DIMS = 8
ITEM_SIZES = {
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F64": 8,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
READ_CHUNK = 16 * 1024 * 1024
PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors file: where its bytes lie (absolute offsets in ``path``)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    path: Path
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def count(self) -> int:
        return math.prod(self.shape)


def read_header(path: Path) -> list[TensorEntry]:
    """The tensors ``path`` holds, checked against its size; IntegrityError naming what is wrong."""
    label = one_line(path.name, None)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise IntegrityError(f"{label} is too short to be a safetensors file ({size} bytes)")
            (length,) = struct.unpack("<Q", f.read(8))
            if length > MAX_HEADER:
                raise IntegrityError(
                    f"{label}: a safetensors header of {length:,} bytes (at most {MAX_HEADER:,} are read)"
                )
            if 8 + length > size:
                raise IntegrityError(f"{label}: the header says {length:,} bytes but the file is {size:,}")
            raw = f.read(length)
    except OSError as error:
        raise InvalidInput(f"cannot read {label}: {error.strerror}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise IntegrityError(f"{label}: the safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise IntegrityError(f"{label}: the safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    if len(header) > MAX_TENSORS:
        raise IntegrityError(f"{label}: {len(header):,} tensors (at most {MAX_TENSORS:,})")
    data_start, data_size = 8 + length, size - 8 - length
    entries = [_entry(label, name, value, path, data_start, data_size) for name, value in header.items()]
    entries.sort(key=lambda e: (e.start, e.end))
    for before, after in zip(entries, entries[1:], strict=False):
        if after.start < before.end:
            raise IntegrityError(f"{label}: tensors {before.name!r} and {after.name!r} overlap")
    return entries


def _entry(
    label: str, name: object, value: object, path: Path, data_start: int, data_size: int
) -> TensorEntry:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise IntegrityError(f"{label}: a tensor name that is empty or too long")
    shown = one_line(name, 80)
    if not isinstance(value, dict):
        raise IntegrityError(f"{label}: tensor {shown!r} is not described by an object")
    dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in ITEM_SIZES:
        raise IntegrityError(f"{label}: tensor {shown!r} has an unknown dtype {one_line(str(dtype), 20)!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape)
    ):
        raise IntegrityError(f"{label}: tensor {shown!r} has a malformed shape")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise IntegrityError(f"{label}: tensor {shown!r} has malformed data_offsets")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise IntegrityError(f"{label}: tensor {shown!r} lies outside the file (truncated?)")
    if end - begin != math.prod(shape) * ITEM_SIZES[dtype]:
        raise IntegrityError(
            f"{label}: tensor {shown!r} has {end - begin:,} bytes, not what {dtype}{shape} needs"
        )
    return TensorEntry(name, dtype, tuple(shape), path, data_start + begin, data_start + end)


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a Hugging Face model folder; pickled weights are refused, never read.

    ``consolidated*.safetensors`` (Mistral's own layout beside the HF one) is
    left out when HF-layout files are there, as Ollama does.
    """
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    tensors = [n for n in names if n.endswith(".safetensors")]
    hf = [n for n in tensors if not n.startswith("consolidated")]
    chosen = hf or tensors
    if not chosen:
        pickled = [n for n in names if n.endswith(PICKLED)]
        if pickled:
            raise InvalidInput(
                f"{one_line(pickled[0], 60)} holds pickled PyTorch weights, which llamadeck refuses (loading "
                "a pickle runs code): use the model's .safetensors files"
            )
        raise InvalidInput(f"{one_line(str(folder))} holds no .safetensors weights")
    return [folder / n for n in chosen]


def read_tensors(files: list[Path]) -> dict[str, TensorEntry]:
    """Every tensor of the model's files by name; a name in two files is refused."""
    found: dict[str, TensorEntry] = {}
    for path in files:
        for entry in read_header(path):
            if entry.name in found:
                raise IntegrityError(f"tensor {one_line(entry.name, 80)!r} is in two files: {path.name}")
            found[entry.name] = entry
    return found


def read_bytes(entry: TensorEntry, fd: int) -> bytearray:
    """The whole tensor (for the transforms that need it whole)."""
    buffer = bytearray(entry.nbytes)
    view = memoryview(buffer)
    done = 0
    while done < entry.nbytes:
        n = os.preadv(fd, [view[done : done + READ_CHUNK]], entry.start + done)
        if n <= 0:
            raise IntegrityError(
                f"{entry.path.name} ended inside tensor {entry.name!r}: it changed while read"
            )
        done += n
    return buffer


def read_chunks(entry: TensorEntry, fd: int, rows: int) -> Iterator[bytes]:
    """The tensor in pieces of whole rows (``rows`` items each), about ``READ_CHUNK`` bytes each."""
    item = ITEM_SIZES[entry.dtype]
    step = max(rows * item, (READ_CHUNK // max(rows * item, 1)) * rows * item)
    at = entry.start
    while at < entry.end:
        want = min(step, entry.end - at)
        data = os.pread(fd, want, at)
        if len(data) != want:
            raise IntegrityError(
                f"{entry.path.name} ended inside tensor {entry.name!r}: it changed while read"
            )
        at += want
        yield data
