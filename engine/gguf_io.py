"""Reading GGUF headers and checking a GGUF file's structure.

All parsing goes through the ``gguf`` package (maintained with llama.cpp), so
new metadata types and versions arrive with it rather than with us.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import IntegrityError
from engine.model import ModelShape


@dataclass(frozen=True)
class GGUFInfo:
    """What the engine needs to know of a model before and after it has it."""

    architecture: str  # "" in the second and later parts of a split model
    name: str | None
    file_type: int | None  # general.file_type (llama_ftype)
    shape: ModelShape
    chat_template: str | None
    license: str | None
    size_label: str | None
    parameter_count: int  # elements of the tensors in this file (one part of a split model)
    split_count: int
    header_end: int  # offset where tensor data starts


def _open_reader(path: Path) -> Any:
    """A GGUFReader over a plain ndarray view of the memory map.

    GGUFReader slices its ``np.memmap`` once per value; every memmap slice
    pays ``memmap.__array_finalize__``, which makes a 262k-token vocabulary
    (Gemma 3) take about 10 s to parse. The same slices of a plain ndarray
    view (which keeps the map alive) take about 3 s.
    """
    import numpy as np
    from gguf import GGUFReader  # numpy-heavy: only where a header is read

    class PlainViewReader(GGUFReader):
        @property
        def data(self) -> Any:
            return self._plain

        @data.setter
        def data(self, value: Any) -> None:
            self._plain = value.view(np.ndarray) if isinstance(value, np.memmap) else value

    return PlainViewReader(path, "r")


def _scalar(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None or not field.types:
        return None
    value = field.contents()
    if isinstance(value, list):  # per-layer arrays (e.g. head counts): the largest is what memory needs
        numbers = [v for v in value if isinstance(v, int | float)]
        return max(numbers) if numbers else None
    return value


def _shape(reader: Any, arch: str) -> ModelShape:
    def number(key: str, default: int = 0) -> int:
        value = _scalar(reader, f"{arch}.{key}")
        return int(value) if value is not None else default

    n_embd = number("embedding_length")
    n_head = number("attention.head_count", 1) or 1
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    n_vocab = len(tokens.data) if tokens is not None else number("vocab_size")
    return ModelShape(
        n_layers=number("block_count"),
        n_embd=n_embd,
        n_head=n_head,
        n_kv_heads=number("attention.head_count_kv", n_head),
        head_dim=number("attention.key_length", n_embd // n_head),
        context_length=number("context_length"),
        n_vocab=n_vocab,
    )


def _info(reader: Any) -> GGUFInfo:
    arch = _scalar(reader, "general.architecture") or ""  # absent from the later parts of a split
    file_type = _scalar(reader, "general.file_type")
    return GGUFInfo(
        architecture=arch,
        name=_scalar(reader, "general.name"),
        file_type=int(file_type) if file_type is not None else None,
        shape=_shape(reader, arch),
        chat_template=_scalar(reader, "tokenizer.chat_template"),
        license=_scalar(reader, "general.license"),
        size_label=_scalar(reader, "general.size_label"),
        parameter_count=sum(int(t.n_elements) for t in reader.tensors),
        split_count=int(_scalar(reader, "split.count") or 1),
        header_end=int(reader.data_offset),
    )


def parse_header(path: Path, available: int) -> GGUFInfo | None:
    """Parse a header of which only the first ``available`` bytes are real.

    The rest of ``path`` is a sparse hole that reads as zeros. Returns None when
    the header runs past ``available`` (fetch more and call again): the parse
    is trusted only if every byte it consumed was real.
    """
    try:
        reader = _open_reader(path)
    except Exception:  # zeros past the real bytes can fail anywhere in the parse: fetch more
        return None
    if reader.data_offset > available:
        return None
    return _info(reader)


def verify_structure(path: Path, *, label: str) -> GGUFInfo:
    """Check magic, version, the tensor table and that all tensor data lies inside the file.

    Raises IntegrityError naming ``label`` when anything is off; this runs
    before a model is registered, so a truncated or mangled file never is.
    """
    size = path.stat().st_size
    try:
        reader = _open_reader(path)
        info = _info(reader)
    except Exception as error:  # the gguf reader raises bare ValueErrors, numpy errors, ...
        raise IntegrityError(f"{label} is not a valid GGUF file ({error})") from error
    for tensor in reader.tensors:
        end = int(tensor.data_offset) + int(tensor.n_bytes)
        if end > size:
            raise IntegrityError(f"{label} is truncated: tensor {tensor.name} ends at byte {end} of {size}")
    return info
