"""Writing the GGUF: the header through ``gguf.GGUFWriter``, then the tensors one by one, hashed as written.

``GGUFWriter`` writes the header, the metadata and the tensor table (it
needs only each tensor's shape, type and size). Then the tensor bytes are
appended here, tensor by tensor: read with ``pread`` in chunks of whole rows,
converted (dtype, permutation, ``+1``), written through ``output.Output``
(hashed and pushed to disk on two threads while the converter goes on; the
sha256 is ready when the last byte lands) with ``Progress`` events and a
cancel check per chunk. Only a tensor that must be transformed whole (a q/k
permutation) is held in memory at once, so the peak is about one tensor.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.cancel import NEVER, CancelToken
from engine.convert.archs import OutTensor, architecture, plan
from engine.convert.output import Output
from engine.convert.packing import Writer
from engine.convert.safetensors import (
    ITEM_SIZES,
    TensorEntry,
    read_bytes,
    read_chunks,
    read_tensors,
    weight_files,
)
from engine.convert.vocab import MAX_TOKENIZER_FILE, add_vocab, load_vocab, read_json
from engine.errors import InvalidInput
from engine.events import EventSink, Progress, Status, ignore
from engine.store.transfer import ProgressMeter, Written

ALIGNMENT = 32
_TENSOR_EVENTS_EVERY = 0.5  # seconds: the bytes meter reports every 0.1 s already
_SIDE_FILES = (  # every small file the converter or gguf.SpecialVocab reads: bounded before any is read
    "config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
    "special_tokens_map.json", "chat_template.json", "chat_template.jinja", "merges.txt", "added_tokens.json",
)  # fmt: skip


@dataclass(frozen=True)
class Converted:
    path: Path
    sha256: str
    size: int
    arch: str
    tensors: int
    file_type: int  # gguf.LlamaFileType: 1 F16, 32 BF16
    written: Written  # the digest and the file it holds for: the import need not hash it again


def convert_folder(
    folder: Path,
    out: Path,
    *,
    name: str | None = None,
    on_event: EventSink = ignore,
    cancel: CancelToken = NEVER,
) -> Converted:
    """Convert the Hugging Face model in ``folder`` to a GGUF at ``out`` (which must not exist).

    Raises InvalidInput (an architecture, tokenizer or tensor llamadeck does
    not convert; pickled weights), IntegrityError (a malformed safetensors
    file or tokenizer), Cancelled. On failure ``out`` is removed.
    """
    for side in _SIDE_FILES:
        if (folder / side).is_file() and (folder / side).stat().st_size > MAX_TOKENIZER_FILE:
            raise InvalidInput(f"{side} is larger than {MAX_TOKENIZER_FILE:,} bytes")
    config = read_json(folder / "config.json")
    if not isinstance(config, dict):
        raise InvalidInput("config.json is missing or not a JSON object: not a Hugging Face model folder")
    hf, arch, hp = architecture(config)
    on_event(Status(f"converting {hf} from safetensors"))
    tensors = read_tensors(weight_files(folder))
    layout = plan(hf, arch, hp, tensors)
    vocab_size = hp.get("vocab_size") if isinstance(hp.get("vocab_size"), int) else None
    vocab = load_vocab(folder, vocab_size)
    if arch in ("gemma", "gemma2", "gemma3"):
        vocab = replace(vocab, add_space_prefix=False)  # as llama.cpp's Gemma*Model.set_vocab
    try:
        written = _write(out, folder, layout, vocab, name or folder.name, on_event, cancel)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    size = written.identity[2]
    return Converted(out, written.sha256, size, arch, len(layout.tensors), layout.file_type, written)


def _write(
    out: Path, folder: Path, layout: Any, vocab: Any, name: str, sink: EventSink, cancel: CancelToken
) -> Written:
    import gguf

    logging.getLogger("gguf.gguf_writer").setLevel(logging.ERROR)
    writer = Writer(out, layout.arch)  # gguf.GGUFWriter, with big arrays packed in bulk
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    layout.metadata(writer)
    add_vocab(writer, folder, vocab)
    if layout.arch == "gemma" and len(vocab.tokens) > 107:
        writer.add_eot_token_id(107)  # <end_of_turn>, as llama.cpp's GemmaModel.set_vocab sets it
    for t in layout.tensors:
        kind = gguf.GGMLQuantizationType[t.out_type]
        writer.add_tensor_info(t.name, t.shape, np.dtype(np.float16), t.nbytes, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    total = sum(t.nbytes for t in layout.tensors)
    meter = ProgressMeter(sink, "converting", out.name, total)
    target = Output(out, meter, cancel=cancel)  # hashes the header already written, then appends
    fds: dict[Path, int] = {}

    def fd_of(path: Path) -> int:
        if path not in fds:
            fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            if hasattr(os, "posix_fadvise"):  # read front to back: a larger readahead
                os.posix_fadvise(fds[path], 0, 0, os.POSIX_FADV_SEQUENTIAL)
        return fds[path]

    started, reported = time.monotonic(), float("-inf")  # the first tensor is reported at once
    try:
        _pad(target)
        for i, t in enumerate(layout.tensors):
            cancel.check()
            for piece in _tensor_bytes(t, fd_of):
                target.write(piece)
            _pad(target)
            now = time.monotonic()
            if now - reported >= _TENSOR_EVENTS_EVERY or i + 1 == len(layout.tensors):
                reported = now
                rate = (i + 1) / max(now - started, 1e-6)
                left = (len(layout.tensors) - i - 1) / rate
                sink(Progress("converting", out.name, i + 1, len(layout.tensors), rate, left, unit="tensors"))
        meter.finish()
        return target.finish()
    except BaseException:
        target.close()
        raise
    finally:
        for fd in fds.values():
            os.close(fd)


def _pad(target: Output) -> None:
    extra = -target.size % ALIGNMENT
    if extra:
        target.write(bytes(extra))


def _tensor_bytes(t: OutTensor, fd_of: Callable[[Path], int]) -> Any:
    """The tensor's bytes in GGUF's type, in pieces."""
    if t.data is not None:
        yield np.ascontiguousarray(t.data, dtype=np.float32).tobytes()
        return
    source = t.source
    assert source is not None
    if t.transform == "permute":
        data = _array(read_bytes(source, fd_of(source.path)), source.dtype)
        yield _cast(_permute(data.reshape(source.shape), t.heads).reshape(-1), source.dtype, t.out_type)
        return
    for part in t.parts or (source,):
        yield from _part_bytes(t, part, fd_of(part.path))


def _part_bytes(t: OutTensor, source: TensorEntry, fd: int) -> Any:
    row = source.shape[-1] if source.shape else 1
    for chunk in read_chunks(source, fd, row):
        if source.dtype == t.out_type and t.transform is None:
            yield chunk
            continue
        data = _array(chunk, source.dtype)
        if t.transform == "plus_one":
            data = _to_f32(data, source.dtype) + np.float32(1)
            yield _cast(data, "F32", t.out_type)
        else:
            yield _cast(data, source.dtype, t.out_type)


def _array(data: bytes | bytearray, dtype: str) -> np.ndarray[Any, Any]:
    kind = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}[dtype]
    assert len(data) % ITEM_SIZES[dtype] == 0
    return np.frombuffer(data, dtype=kind)


def _to_f32(data: np.ndarray[Any, Any], dtype: str) -> np.ndarray[Any, Any]:
    if dtype == "BF16":
        return (data.astype(np.uint32) << 16).view(np.float32)
    return data.astype(np.float32)


def _cast(data: np.ndarray[Any, Any], dtype: str, out_type: str) -> bytes:
    """``data`` (of safetensors ``dtype``) as bytes of GGUF ``out_type``."""
    if dtype == out_type:
        return data.tobytes()
    wide = _to_f32(data, dtype)
    if out_type == "F32":
        return wide.tobytes()
    if out_type == "F16":
        return wide.astype(np.float16).tobytes()
    bits = wide.view(np.uint32)  # round to nearest even, NaN kept quiet: gguf.quants' BF16 rule
    bits = np.where((bits & 0x7FFFFFFF) > 0x7F800000, (bits & 0xFFFF0000) | (64 << 16), bits)
    return ((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16).astype(np.uint16).tobytes()


def _permute(weights: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    """Hugging Face's rotate-half q/k rows to llama.cpp's interleaved rope (``LlamaModel.permute``)."""
    rows = weights.shape[0]
    if heads <= 0 or rows % (heads * 2):
        raise InvalidInput(f"a q/k weight of {rows} rows cannot be split into {heads} heads")
    return (
        weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )
