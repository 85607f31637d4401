"""Reading GGUF headers and checking a GGUF file's structure.

We scan the binary format ourselves instead of using ``gguf.GGUFReader``,
which materialises every array: the demo Gemma 3 header (262,144 tokens)
took it 8-9 s, and 6-7 s even through our plain-ndarray workaround. The
engine needs a dozen keys, so the scanner keeps those and skips the rest:
arrays of numbers in one step, arrays of strings by walking their length
prefixes. ``bench/header.py`` measured 15 ms for that Gemma header and 30 ms
for 262k tokens plus 262k merges (GGUFReader 13-19 s, a naive
``struct.unpack_from`` loop that decodes every string 0.33 s). The first
scan in a process also imports gguf (and numpy) for the ggml block sizes,
70-100 ms. The scanner reads any buffer, so the Hub reader can parse the
first megabytes of a remote file and learn from ``HeaderIncomplete`` how
much more to fetch.

The tensor table is also summed the way llama.cpp places tensors on devices
(``tensor_bytes.TensorBytes``), and a model's header values are held against
what llama.cpp would abort on (``gguf_values``). An adapter, which is no model,
is read within tight ``ScanLimits`` by ``read_raw_header``: its metadata is
bounded before it is walked.

Format (GGUF v2/v3, little-endian): magic ``GGUF``, u32 version, u64 tensor
count, u64 KV count; KV pairs (string key, u32 type, value); tensor infos
(string name, u32 n_dims, n_dims x u64 dims, u32 ggml type, u64 offset);
tensor data from the next multiple of ``general.alignment`` (default 32).
A string is a u64 length and its bytes; an array a u32 element type, a u64
count and the elements.
"""

from __future__ import annotations

import array
import math
import mmap
import os
import re
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from engine.errors import IntegrityError
from engine.shape import ModelShape
from engine.store.gguf_values import check_values
from engine.store.tensor_bytes import ByLayer, TensorBytes
from engine.text import one_line

_T = TypeVar("_T")
_MAGIC = b"GGUF"
_VERSIONS = (2, 3)  # v1 (u32 counts) is refused by llama.cpp too
_STRING, _ARRAY, _UINT32 = 8, 9, 4
# value type -> one element, for every fixed-size type
_FIXED = {
    kind: struct.Struct("<" + fmt)
    for kind, fmt in zip((0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12), "BbHhIif?Qqd", strict=True)
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_PREFIX = struct.Struct("<4sIQQ")  # magic, version, tensor count, kv count
_TYPE_OFFSET = struct.Struct("<IQ")  # a tensor's ggml type and data offset

_MAX_DIMS = 4  # GGML_MAX_DIMS
_MAX_NAME = 64  # GGML_MAX_NAME counts the terminating NUL: names are shorter
_MAX_KEY = 1 << 16  # a key is a short dotted name; a longer one is refused before it is copied
_SHOWN_MAX = 80  # characters of a key or tensor name quoted in a message
_MAX_LAYER_ARRAY = 1 << 20  # a per-layer array longer than this is not a model
_MAX_HEADER = 1 << 30  # when the file size is unknown; real headers are under 20 MB
_MIN_KV = 8 + 4 + 1  # key length, type, the smallest value
_MIN_TENSOR = 8 + 4 + 4 + 8  # name length, n_dims, type, offset
_TYPICAL_KV, _TYPICAL_TENSOR = 64, 96  # sizes for the estimate of a short read: a little generous
_DEFAULT_ALIGNMENT = 32
_ARCH = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

_STRING_KEYS = frozenset(
    {"general.architecture", "general.name", "general.license", "general.size_label", "general.type"}
    | {"tokenizer.chat_template", "tokenizer.ggml.model", "adapter.type", "clip.projector_type"}
)
_TOKENS = "tokenizer.ggml.tokens"  # only its length (n_vocab) is needed
_TOKEN_TYPES = "tokenizer.ggml.token_type"  # only whether it has byte tokens
_BYTE_TOKEN, _INT32 = 6, 5  # llama_token_type BYTE; the GGUF value type of token types
_MAX_VOCAB = 1 << 22  # token types looked at (16 MiB); real vocabularies are under 1M tokens
# per-architecture numbers that some models give per layer: the largest is what memory needs
_LAYER_SUFFIXES = (
    ".block_count",
    ".embedding_length",
    ".context_length",
    ".vocab_size",
    ".attention.head_count",
    ".attention.head_count_kv",
    ".attention.key_length",
    ".expert_used_count",
)


class HeaderIncomplete(Exception):
    """The buffer ends before the header does: read at least ``needed`` bytes and scan again.

    ``needed`` is a lower bound on the header's size (always more than the
    buffer held). ``estimate`` (>= ``needed``) is a generous guess: it
    extrapolates a partly read array of strings from the strings seen and
    counts what is left at typical sizes, so one more read usually does.
    """

    def __init__(self, needed: int, estimate: int = 0) -> None:
        super().__init__(f"the GGUF header needs at least {needed} bytes")
        self.needed = needed
        self.estimate = max(needed, estimate)


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
    data_end: int  # where the last tensor's data ends: the file must be at least this long
    tensor_count: int
    split_index: int  # split.no: 0 for the first part and for unsplit files
    last_tensor: str = ""  # the tensor that ends at data_end, for messages
    tensor_bytes: TensorBytes = TensorBytes()  # this file's tensors by layer (one part of a split model)
    matrix_elements: tuple[tuple[int, int], ...] = ()  # (ggml type, elements) of tensors of 2+ dimensions


@dataclass(frozen=True)
class ScanLimits:
    """Bounds on what a scan walks: a header past them is refused before it is walked.

    A model's header needs none but the defaults (a vocabulary is an array of
    262k strings); an adapter's is small, so ``ADAPTER_LIMITS`` refuses a
    "LoRA" whose metadata would take seconds to walk.
    """

    kvs: int = 1_000_000
    tensors: int = 1_000_000
    array: int | None = None  # elements of one metadata array; None: any


@dataclass(frozen=True)
class RawHeader:
    """A GGUF header as written, for a caller that reads it itself (an adapter is no model).

    ``strings`` are the shown strings (``general.type``, ``adapter.type``,
    ...), ``numbers`` every scalar, ``tensors`` the table as
    ``(name, ggml dims)``.
    """

    strings: dict[str, str]
    numbers: dict[str, Any]
    tensors: tuple[tuple[str, tuple[int, ...]], ...]


@cache
def _ggml_sizes() -> dict[int, tuple[int, int]]:
    """ggml type -> (block size, bytes per block); gguf pulls numpy, so only when a tensor needs it."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(kind): (int(block), int(size)) for kind, (block, size) in GGML_QUANT_SIZES.items()}


class _Scanner:
    """Bounds-checked reads over one buffer.

    ``rest`` is the least the header still holds after the item being read,
    so a short buffer reports a useful lower bound and an absurd length is
    caught before anything is walked; ``likely`` is the same at typical sizes.
    """

    def __init__(self, buffer: Any, label: str, file_size: int | None) -> None:
        self.buf = buffer
        self.end = len(buffer)
        self.label = label
        self.sized = file_size is not None
        self.limit = file_size if file_size is not None else max(_MAX_HEADER, self.end)
        self.rest = self.likely = 0

    def left(self, kvs: int, tensors: int) -> None:
        """Say how many key/values and tensor infos follow the item about to be read."""
        self.rest = kvs * _MIN_KV + tensors * _MIN_TENSOR
        self.likely = kvs * _TYPICAL_KV + tensors * _TYPICAL_TENSOR

    def fail(self, why: str) -> IntegrityError:
        return IntegrityError(f"{self.label} is not a valid GGUF file: {why}")

    def fits(self, end: int, what: str) -> None:
        """Refuse ``what`` when the header could not hold bytes up to ``end``."""
        if end + self.rest <= self.limit:
            return
        if self.sized:
            raise IntegrityError(
                f"{self.label} is truncated or damaged: {what} runs past the end of the file "
                f"({self.limit} bytes)"
            )
        raise self.fail(f"{what} claims more than {_MAX_HEADER} bytes of header")

    def need(self, end: int, what: str, likely_end: int = 0) -> None:
        """Make sure bytes up to ``end`` can be read now, or say why not."""
        self.fits(end, what)
        if end > self.end:
            raise HeaderIncomplete(end + self.rest, max(end, likely_end) + self.likely)

    def u32(self, off: int, what: str) -> int:
        self.need(off + 4, what)
        return int(_U32.unpack_from(self.buf, off)[0])

    def u64(self, off: int, what: str) -> int:
        self.need(off + 8, what)
        return int(_U64.unpack_from(self.buf, off)[0])

    def string(self, off: int, what: str, longest: int | None = None) -> tuple[bytes, int]:
        start = off + 8
        length = self.u64(off, what)
        end = start + length
        self.fits(end, what)
        if longest is not None and length > longest:  # refused before it is copied, or read from afar
            raise self.fail(f"{what} is {length} bytes long (at most {longest})")
        self.need(end, what)
        return bytes(self.buf[start:end]), end

    def skip_strings(self, off: int, count: int, what: str, after: int = 0) -> int:
        """Walk ``count`` length-prefixed strings without reading them: the hot loop of a scan.

        The loop checks nothing: a read past the buffer raises, and where it
        stopped says what is missing. ``after`` is what likely follows the
        array, for the estimate of a short read.
        """
        self.fits(off + 8 * count, what)
        unpack = _U64.unpack_from
        buf, start, index = self.buf, off, count
        try:
            for index in range(count):  # noqa: B007  (index tells where a short read stopped)
                off += unpack(buf, off)[0] + 8
        except (struct.error, OverflowError):  # string ``index`` starts at ``off``, past the buffer's end
            left = count - index
            mean = max(8, (off - start) // index) if index else 8
            likely_end = off + left * mean * 5 // 4 + after  # later strings tend to be longer
            self.rest += 8 * (left - 1)
            culprit = index - 1 if off > self.end else index
            self.need(off + 8, f"{what} (string {culprit})", likely_end)  # raises: off + 8 > end
        self.need(off, f"{what} (string {count - 1})", off + after)  # the last string may overrun
        return off

    def array(
        self, off: int, key: str, largest: bool, vocabulary: bool, most: int | None = None
    ) -> tuple[int, Any, int]:
        """An array's length, its largest element when asked and numeric (else None), and its end.

        An array of more than ``most`` elements is refused before it is walked.
        """
        what = f"the array {key}"
        kind = self.u32(off, what)
        count = self.u64(off + 4, what)
        if most is not None and count > most:
            raise self.fail(f"{what} has {count} elements (at most {most})")
        off += 12
        if kind == _STRING:  # a vocabulary is followed by its scores (f32) and token types (i32)
            return count, None, self.skip_strings(off, count, what, 8 * count if vocabulary else 0)
        element = _FIXED.get(kind)
        if element is None:
            raise self.fail(f"{what} has unsupported element type {kind}")
        end = off + count * element.size
        self.need(end, what)
        if not largest or count == 0:
            return count, None, end
        if count > _MAX_LAYER_ARRAY:
            raise self.fail(f"{what} has {count} elements")
        values = struct.unpack_from(f"<{count}{element.format[-1]}", self.buf, off)
        return count, max(values), end


@dataclass
class _Metadata:
    """The kept key/values: strings we show, numbers (scalars and per-layer maxima), n_vocab."""

    strings: dict[str, str]
    numbers: dict[str, Any]
    n_vocab: int | None
    end: int
    byte_tokens: bool = False  # tokenizer.ggml.token_type has a BYTE token


@dataclass(frozen=True)
class _Tensors:
    count: int
    elements: int
    header_end: int
    data_end: int
    last: str
    by_layer: TensorBytes
    matrix_elements: dict[int, int]  # ggml type -> elements of the tensors of 2 or more dimensions
    table: tuple[tuple[str, tuple[int, ...]], ...]  # (name, dims), only when asked to keep it


def scan_header(buffer: Any, *, label: str, file_size: int | None = None) -> GGUFInfo:
    """Parse the GGUF header at the start of ``buffer`` (bytes, memoryview or mmap).

    Raises ``HeaderIncomplete`` when the buffer ends before the header does
    (read more and scan again) and IntegrityError naming ``label`` when the
    bytes are not a GGUF llama.cpp could load, or hold values it would abort
    on (``gguf_values``). With ``file_size`` (the whole file's length)
    anything claimed past it is damage, never a short read.

        info = scan_header(first_mebibyte, label="model.gguf")
    """
    scan = _Scanner(buffer, label, file_size)
    meta, tensors = _scan(scan, ScanLimits(), keep_table=False)
    return _info(scan, meta, tensors)


def _scan(scan: _Scanner, limits: ScanLimits, *, keep_table: bool) -> tuple[_Metadata, _Tensors]:
    buffer = scan.buf
    head = bytes(buffer[:4])
    if not _MAGIC.startswith(head):
        raise scan.fail(f"bad magic {head!r}")
    scan.need(_PREFIX.size, "the file header")
    _, version, tensor_count, kv_count = _PREFIX.unpack_from(buffer, 0)
    if version not in _VERSIONS:
        raise scan.fail(f"unsupported GGUF version {version} (llama.cpp reads versions 2 and 3)")
    if kv_count > limits.kvs or tensor_count > limits.tensors:
        raise scan.fail(
            f"absurd counts ({kv_count} keys, {tensor_count} tensors; "
            f"at most {limits.kvs} and {limits.tensors})"
        )
    meta = _scan_kvs(scan, _PREFIX.size, kv_count, tensor_count, limits.array)
    alignment = meta.numbers.get("general.alignment", _DEFAULT_ALIGNMENT)
    if alignment <= 0 or alignment & (alignment - 1):
        raise scan.fail(f"general.alignment {alignment} is not a power of two")
    return meta, _scan_tensors(scan, meta.end, tensor_count, alignment, keep_table)


def _has_byte_tokens(scan: _Scanner, end: int, count: int) -> bool:
    """Whether the i32 token types ending at ``end`` include BYTE (one C-speed pass, no numpy)."""
    types = array.array("i", bytes(scan.buf[end - 4 * count : end]))
    if sys.byteorder == "big":
        types.byteswap()
    return _BYTE_TOKEN in types


def _scan_kvs(scan: _Scanner, off: int, kv_count: int, tensor_count: int, most: int | None) -> _Metadata:
    meta = _Metadata({}, {}, None, off)
    seen: set[bytes] = set()
    for index in range(kv_count):
        scan.left(kv_count - index - 1, tensor_count)
        raw, off = scan.string(off, f"key {index}", _MAX_KEY)
        try:
            key = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise scan.fail(f"key {index} is not UTF-8 ({raw[:64]!r})") from None
        shown = one_line(key, _SHOWN_MAX)
        if raw in seen:
            raise scan.fail(f"duplicate key {shown}")
        seen.add(raw)
        kind = scan.u32(off, f"the type of {shown}")
        off += 4
        if key == "general.alignment" and kind != _UINT32:
            raise scan.fail("general.alignment is not a u32")
        if kind == _STRING and key in _STRING_KEYS:
            raw, off = scan.string(off, f"the value of {shown}")
            meta.strings[key] = raw.decode("utf-8", errors="replace")  # as written: front ends escape
        elif kind == _STRING:
            off = scan.skip_strings(off, 1, f"the value of {shown}")
        elif kind == _ARRAY:
            element_kind = scan.u32(off, f"the array {shown}")
            count, largest, off = scan.array(off, shown, key.endswith(_LAYER_SUFFIXES), key == _TOKENS, most)
            if key == _TOKENS:
                meta.n_vocab = count
            elif key == _TOKEN_TYPES and element_kind == _INT32 and count <= _MAX_VOCAB:
                meta.byte_tokens = _has_byte_tokens(scan, off, count)
            elif largest is not None:
                meta.numbers[key] = largest
        elif (element := _FIXED.get(kind)) is not None:
            scan.need(off + element.size, f"the value of {shown}")
            meta.numbers[key] = element.unpack_from(scan.buf, off)[0]  # scalars are cheap: keep them all
            off += element.size
        else:
            raise scan.fail(f"{shown} has unknown value type {kind}")
    scan.left(0, tensor_count)
    meta.end = off
    return meta


def _scan_tensors(scan: _Scanner, off: int, count: int, alignment: int, keep_table: bool) -> _Tensors:
    """Walk the tensor table: sizes from ggml's block sizes, offsets aligned, names unique."""
    sizes = _ggml_sizes() if count else {}
    names: set[bytes] = set()
    by_layer = ByLayer()
    matrices: dict[int, int] = {}
    table: list[tuple[str, tuple[int, ...]]] = []
    elements, data_end, last = 0, 0, ""
    for index in range(count):
        scan.left(0, count - index - 1)
        length = scan.u64(off, f"the name of tensor {index}")
        if length >= _MAX_NAME:  # before it is copied
            raise scan.fail(f"tensor {index} has a name of {length} bytes (at most {_MAX_NAME - 1})")
        raw, off = scan.string(off, f"the name of tensor {index}")
        name = one_line(raw.decode("utf-8", errors="replace"), _SHOWN_MAX)
        if raw in names:
            raise scan.fail(f"duplicate tensor {name}")
        names.add(raw)
        n_dims = scan.u32(off, f"tensor {name}")
        if n_dims > _MAX_DIMS:
            raise scan.fail(f"tensor {name} has {n_dims} dimensions")
        scan.need(off + 4 + 8 * n_dims + _TYPE_OFFSET.size, f"tensor {name}")
        dims = struct.unpack_from(f"<{n_dims}Q", scan.buf, off + 4)
        kind, offset = _TYPE_OFFSET.unpack_from(scan.buf, off + 4 + 8 * n_dims)
        off += 4 + 8 * n_dims + _TYPE_OFFSET.size
        n = math.prod(dims)
        if n >= 1 << 63:
            raise scan.fail(f"tensor {name} has {n} elements")
        if kind not in sizes:
            raise scan.fail(f"tensor {name} has unknown ggml type {kind}")
        block, block_bytes = sizes[kind]
        if dims and dims[0] % block:
            raise scan.fail(f"tensor {name}'s rows ({dims[0]}) are not whole blocks of {block}")
        if offset % alignment:
            raise scan.fail(f"tensor {name} starts at offset {offset}, not a multiple of {alignment}")
        size = n * block_bytes // block
        end = offset + size
        if end > data_end or not last:
            data_end, last = end, name
        elements += n
        by_layer.add(raw, size)
        if n_dims >= 2:
            matrices[kind] = matrices.get(kind, 0) + n
        if keep_table:
            table.append((raw.decode("utf-8", errors="replace"), tuple(dims)))
    scan.left(0, 0)
    header_end = off + -off % alignment
    # with no tensors nothing needs to follow the table (a writer may leave the padding out)
    data_end = header_end + data_end if count else off
    return _Tensors(count, elements, header_end, data_end, last, by_layer.done(), matrices, tuple(table))


def _info(scan: _Scanner, meta: _Metadata, tensors: _Tensors) -> GGUFInfo:
    def number(key: str, default: int = 0) -> int:
        value = meta.numbers.get(key)
        if value is None:
            return default
        if not math.isfinite(value) or value < 0:
            raise scan.fail(f"{key} is {value}")
        return int(value)

    split_index = number("split.no")
    arch = meta.strings.get("general.architecture", "")
    if not arch and split_index == 0:  # only the later parts of a split model may leave it out
        raise scan.fail("it has no general.architecture")
    if arch and not _ARCH.fullmatch(arch):
        raise IntegrityError(f"{scan.label} has an invalid architecture name {ascii(arch)}")
    n_embd = number(f"{arch}.embedding_length")
    n_head = number(f"{arch}.attention.head_count", 1) or 1
    shape = ModelShape(
        n_layers=number(f"{arch}.block_count"),
        n_embd=n_embd,
        n_head=n_head,
        n_kv_heads=number(f"{arch}.attention.head_count_kv", n_head),
        head_dim=number(f"{arch}.attention.key_length", n_embd // n_head),
        context_length=number(f"{arch}.context_length"),
        n_vocab=meta.n_vocab if meta.n_vocab is not None else number(f"{arch}.vocab_size"),
    )
    first_part = bool(arch) and split_index == 0
    _check_shape(scan, shape, first_part=first_part)
    if first_part:
        check_values(scan.label, arch, meta.numbers, meta.strings, byte_tokens=meta.byte_tokens)
    return GGUFInfo(
        architecture=arch,
        name=meta.strings.get("general.name"),
        file_type=number("general.file_type") if "general.file_type" in meta.numbers else None,
        shape=shape,
        chat_template=meta.strings.get("tokenizer.chat_template"),
        license=meta.strings.get("general.license"),
        size_label=meta.strings.get("general.size_label"),
        parameter_count=tensors.elements,
        split_count=number("split.count", 1) or 1,
        header_end=tensors.header_end,
        data_end=tensors.data_end,
        tensor_count=tensors.count,
        split_index=split_index,
        last_tensor=tensors.last,
        tensor_bytes=tensors.by_layer,
        matrix_elements=tuple(sorted(tensors.matrix_elements.items())),
    )


_MAX_SHAPE_NUMBER = 2**31 - 1  # llama.cpp keeps these in 32-bit ints


def _check_shape(scan: _Scanner, shape: ModelShape, *, first_part: bool) -> None:
    """Numbers llama.cpp would crash or overflow on (a model with no layers aborts the process)."""
    for name, value in vars(shape).items():
        if value > _MAX_SHAPE_NUMBER:
            raise scan.fail(f"its {name.replace('_', ' ')} is {value}, more than llama.cpp can take")
    if first_part and shape.n_layers == 0:
        raise scan.fail("it has no layers (block_count is 0 or missing)")


def read_header(path: Path, *, label: str) -> GGUFInfo:
    """The header of a local GGUF file, scanned through a memory map: only its pages are read."""
    return _mapped(path, label, lambda view, size: scan_header(view, label=label, file_size=size))


def read_raw_header(path: Path, *, label: str, limits: ScanLimits) -> RawHeader:
    """A local GGUF's header as written, within ``limits``, its tensor table kept; no model checks.

    For GGUFs that are not models (an adapter has no layers of its own).
    Raises IntegrityError naming ``label`` for a malformed, truncated or
    oversized header, or tensor data past the end of the file.
    """

    def scan(view: Any, size: int) -> RawHeader:
        scanner = _Scanner(view, label, size)
        meta, tensors = _scan(scanner, limits, keep_table=True)
        if tensors.data_end > size:
            raise IntegrityError(f"{label} is truncated: tensor {tensors.last} ends past byte {size}")
        return RawHeader(meta.strings, meta.numbers, tensors.table)

    return _mapped(path, label, scan)


def _mapped(path: Path, label: str, scan: Callable[[Any, int], _T]) -> _T:
    """``scan(view, size)`` over a read-only memory map of the file."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0:  # mmap refuses an empty file
            raise IntegrityError(f"{label} is empty, not a GGUF file")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            try:
                return scan(view, size)
            except HeaderIncomplete as error:  # not with the whole file at hand; a guard all the same
                raise IntegrityError(f"{label} is truncated inside its header ({size} bytes)") from error


def check_data_inside(info: GGUFInfo, size: int, *, label: str) -> None:
    """Raise IntegrityError when the tensor data ``info`` describes does not fit in ``size`` bytes.

    For a caller that already has the header (read remotely before the
    download) and need not read it again.
    """
    if info.data_end > size:
        raise IntegrityError(
            f"{label} is truncated: tensor {info.last_tensor} ends at byte {info.data_end} of {size}"
        )


def verify_structure(path: Path, *, label: str) -> GGUFInfo:
    """Check magic, version, the tensor table and that all tensor data lies inside the file.

    Raises IntegrityError naming ``label`` when anything is off; this runs
    before a model is registered, so a truncated or mangled file never is.
    """
    info = read_header(path, label=label)
    check_data_inside(info, path.stat().st_size, label=label)
    return info
