"""A GGUF header's key/values as written, for ``show``: Ollama's ``model_info`` and the capabilities.

``gguf_io`` keeps a dozen keys for the engine's own use; ``show`` wants them
all, as Ollama's ``/api/show`` gives them (``server/routes.go``,
``getModelData``): every scalar and string under its own key, and arrays
(the vocabulary, merges, scores, token types) as ``None`` (JSON ``null``,
what Ollama's decoder gives for an array it did not keep) unless
``verbose``, when they come whole. An empty array stays ``[]``.

Read through a memory map, arrays skipped by their lengths, so a 262k-token
vocabulary costs a walk over its length prefixes, not a decode. A header
past the bounds (more keys, longer strings or more array elements than any
real model has) is shown in part: the rest is left out or ``None``, never a
response of gigabytes. Float32 values are given in their shortest spelling
(``1e-05``, not ``9.999999747378752e-06``), as Go's JSON writes a float32
(array elements, such as a vocabulary's scores, keep Python's spelling: it is cheaper);
NaN and the infinities, which JSON cannot carry, are ``None``.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import IntegrityError

__all__ = ["MAX_ARRAY_ELEMENTS", "MAX_KEYS", "MAX_STRING", "read_metadata"]

MAX_KEYS = 1 << 16  # keys shown; real models have under a hundred
MAX_STRING = 1 << 16  # bytes of one string value shown; a longer one (a huge template) is None
MAX_ARRAY_ELEMENTS = 4 << 20  # elements of all arrays together with verbose (Gemma 3's vocabulary: 786k)

_PREFIX = struct.Struct("<4sIQQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_STRING, _ARRAY, _FLOAT32, _FLOAT64 = 8, 9, 6, 12
_FIXED = {
    kind: struct.Struct("<" + fmt)
    for kind, fmt in zip((0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12), "BbHhIif?Qqd", strict=True)
}


def _float32(value: float) -> float | None:
    """The shortest decimal that reads back as the same float32 (Go's ``json.Marshal`` of a float32).

    None for NaN and the infinities, which JSON cannot carry.
    """
    if not math.isfinite(value):
        return None
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        short = float(f"{value:.{digits}g}")
        if struct.pack("<f", short) == packed:
            return short
    return value


@dataclass
class _Reader:
    view: Any
    size: int
    label: str
    budget: int  # array elements still to decode

    def fail(self, why: str) -> IntegrityError:
        return IntegrityError(f"{self.label} is not a valid GGUF file: {why}")

    def need(self, end: int, what: str) -> None:
        if end > self.size:
            raise self.fail(f"{what} runs past the end of the file")

    def u32(self, off: int, what: str) -> int:
        self.need(off + 4, what)
        return int(_U32.unpack_from(self.view, off)[0])

    def u64(self, off: int, what: str) -> int:
        self.need(off + 8, what)
        return int(_U64.unpack_from(self.view, off)[0])

    def string(self, off: int, what: str, keep: bool = True) -> tuple[str | None, int]:
        length = self.u64(off, what)
        end = off + 8 + length
        self.need(end, what)
        if not keep or length > MAX_STRING:
            return None, end
        return bytes(self.view[off + 8 : end]).decode("utf-8", errors="replace"), end

    def strings(self, off: int, count: int, what: str, keep: bool) -> tuple[list[Any] | None, int]:
        """``count`` length-prefixed strings from ``off``: decoded when ``keep``, else only walked.

        The hot loop of a vocabulary: no check per string; a read past the end raises here.
        """
        if off + 8 * count > self.size:
            raise self.fail(f"{what} runs past the end of the file")
        unpack, view = _U64.unpack_from, self.view
        values: list[Any] = []
        try:
            if keep:
                for _ in range(count):
                    length = unpack(view, off)[0]
                    values.append(view[off + 8 : off + 8 + length].decode("utf-8", errors="replace"))
                    off += length + 8
            else:
                for _ in range(count):
                    off += unpack(view, off)[0] + 8
        except (struct.error, OverflowError):
            raise self.fail(f"{what} runs past the end of the file") from None
        self.need(off, what)
        return (values if keep else None), off

    def scalar(self, kind: int, off: int, what: str) -> tuple[Any, int]:
        element = _FIXED.get(kind)
        if element is None:
            raise self.fail(f"{what} has unknown value type {kind}")
        self.need(off + element.size, what)
        value = element.unpack_from(self.view, off)[0]
        if kind == _FLOAT32:
            value = _float32(value)
        elif kind == _FLOAT64 and not math.isfinite(value):
            value = None
        return value, off + element.size

    def array(self, off: int, what: str, verbose: bool) -> tuple[list[Any] | None, int]:
        kind = self.u32(off, what)
        count = self.u64(off + 4, what)
        off += 12
        keep = verbose and count <= self.budget
        if count == 0:
            return [], off
        if keep:
            self.budget -= count
        if kind == _STRING:
            return self.strings(off, count, what, keep)
        element = _FIXED.get(kind)
        if element is None:
            raise self.fail(f"{what} has unsupported element type {kind}")
        end = off + count * element.size
        self.need(end, what)
        if not keep:
            return None, end
        items = list(struct.unpack_from(f"<{count}{element.format[-1]}", self.view, off))
        if kind in (_FLOAT32, _FLOAT64):
            items = [v if math.isfinite(v) else None for v in items]
        return items, end


def read_metadata(path: Path, *, label: str, verbose: bool = False) -> dict[str, Any]:
    """Every key/value of a local GGUF's header, in file order; arrays ``None`` unless ``verbose``.

    Raises IntegrityError naming ``label`` for a file that is not a GGUF or
    whose header runs past its end::

        read_metadata(blob, label="gemma3:270m")["gemma3.block_count"]   # 18
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size < _PREFIX.size:
            raise IntegrityError(f"{label} is not a valid GGUF file: {size} bytes")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return _read(_Reader(view, size, label, MAX_ARRAY_ELEMENTS), verbose)


def _read(reader: _Reader, verbose: bool) -> dict[str, Any]:
    magic, version, _tensors, kv_count = _PREFIX.unpack_from(reader.view, 0)
    if magic != b"GGUF" or version not in (2, 3):
        raise reader.fail(f"magic {magic!r}, version {version}")
    found: dict[str, Any] = {}
    off = _PREFIX.size
    for index in range(min(kv_count, MAX_KEYS)):
        key, off = reader.string(off, f"key {index}")
        what = f"the value of key {index}"
        kind = reader.u32(off, what)
        off += 4
        value: Any
        if kind == _STRING:
            value, off = reader.string(off, what)
        elif kind == _ARRAY:
            value, off = reader.array(off, what, verbose)
        else:
            value, off = reader.scalar(kind, off, what)
        if key is not None:
            found[key] = value
    return found
