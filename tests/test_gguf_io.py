"""Header scanning agrees with gguf.GGUFReader, survives short and hostile input, skims vocabularies."""

from __future__ import annotations

import functools
import mmap
import shutil
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import IntegrityError
from engine.shape import ModelShape
from engine.store.gguf_io import (
    GGUFInfo,
    HeaderIncomplete,
    check_data_inside,
    read_header,
    scan_header,
    verify_structure,
)
from engine.store.tensor_bytes import TensorBytes
from tests.support.tiny_gguf import write_tiny_gguf

BIG_VOCAB = 262_144

# -- hand-made headers ---------------------------------------------------------

U8, U16, U32, I32, F32, BOOL, STRING, ARRAY, U64 = 0, 2, 4, 5, 6, 7, 8, 9, 10
_FORMATS = {U8: "B", U16: "H", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q"}


def gstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str | bytes, kind: int, value: Any) -> bytes:
    """One key/value; ``value`` a number, a string, or a (element type, values) array."""
    if kind == STRING:
        payload = gstr(value)
    elif kind == ARRAY:
        elem, items = value
        body = b"".join(gstr(i) if elem == STRING else struct.pack("<" + _FORMATS[elem], i) for i in items)
        payload = struct.pack("<IQ", elem, len(items)) + body
    else:
        payload = struct.pack("<" + _FORMATS[kind], value)
    return gstr(key) + struct.pack("<I", kind) + payload


def tensor(name: str, dims: Sequence[int], ggml_type: int = 0, offset: int = 0) -> bytes:
    return (
        gstr(name) + struct.pack(f"<I{len(dims)}Q", len(dims), *dims) + struct.pack("<IQ", ggml_type, offset)
    )


def llama_kvs(arch: str = "llama") -> list[bytes]:
    return [
        kv("general.architecture", STRING, arch),
        kv(f"{arch}.block_count", U32, 2),
        kv(f"{arch}.embedding_length", U32, 64),
        kv(f"{arch}.attention.head_count", U32, 4),
        kv(f"{arch}.context_length", U32, 2048),
    ]


def header(
    kvs: Sequence[bytes], tensors: Sequence[bytes] = (), *, version: int = 3, magic: bytes = b"GGUF"
) -> bytes:
    return magic + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs) + b"".join(tensors)


def with_data(head: bytes, data_bytes: int, alignment: int = 32) -> bytes:
    return head + bytes(-len(head) % alignment + data_bytes)


# -- what gguf.GGUFReader says -------------------------------------------------


def reader_info(path: Path) -> GGUFInfo:
    """The same facts through gguf.GGUFReader, the reference implementation."""
    from gguf import GGUFReader

    reader = GGUFReader(path)

    def field(key: str) -> Any:
        found = reader.fields.get(key)
        if found is None:
            return None
        value = found.contents()
        return max(value) if isinstance(value, list) else value

    arch = field("general.architecture") or ""

    def number(key: str, default: int = 0) -> int:
        value = field(f"{arch}.{key}")
        return int(value) if value is not None else default

    tokens = reader.fields.get("tokenizer.ggml.tokens")
    n_embd, n_head = number("embedding_length"), number("attention.head_count", 1) or 1
    layers: dict[int, int] = {}
    token_embd = output = other = 0
    for t in reader.tensors:  # grouped by name the plain way, to check the scanner's grouping
        parts = t.name.split(".")
        if parts[0] == "blk" and parts[1].isdigit():
            layers[int(parts[1])] = layers.get(int(parts[1]), 0) + int(t.n_bytes)
        elif parts[0] == "token_embd":
            token_embd += int(t.n_bytes)
        elif parts[0] in ("output", "output_norm"):
            output += int(t.n_bytes)
        else:
            other += int(t.n_bytes)
    by_layer = TensorBytes(
        layers=tuple(layers.get(i, 0) for i in range(max(layers) + 1)) if layers else (),
        token_embd=token_embd,
        output=output,
        other=other,
        has_output_weight=any(t.name == "output.weight" for t in reader.tensors),
    )
    ends = [(int(t.data_offset) + int(t.n_bytes), t.name) for t in reader.tensors]
    data_end, last = max(ends, key=lambda end: end[0])  # max keeps the first of equal ends
    matrices: dict[int, int] = {}
    for t in reader.tensors:
        if len(t.shape) >= 2:
            matrices[int(t.tensor_type)] = matrices.get(int(t.tensor_type), 0) + int(t.n_elements)
    return GGUFInfo(
        architecture=arch,
        name=field("general.name"),
        file_type=field("general.file_type"),
        shape=ModelShape(
            n_layers=number("block_count"),
            n_embd=n_embd,
            n_head=n_head,
            n_kv_heads=number("attention.head_count_kv", n_head),
            head_dim=number("attention.key_length", n_embd // n_head),
            context_length=number("context_length"),
            n_vocab=len(tokens.data) if tokens is not None else number("vocab_size"),
        ),
        chat_template=field("tokenizer.chat_template"),
        license=field("general.license"),
        size_label=field("general.size_label"),
        parameter_count=sum(int(t.n_elements) for t in reader.tensors),
        split_count=int(field("split.count") or 1),
        header_end=int(reader.data_offset),
        data_end=data_end,
        tensor_count=len(reader.tensors),
        split_index=int(field("split.no") or 0),
        last_tensor=last,
        tensor_bytes=by_layer,
        matrix_elements=tuple(sorted(matrices.items())),
    )


@pytest.fixture(scope="module")
def split_parts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_tiny_gguf(tmp_path_factory.mktemp("split") / "Split-Q8_0.gguf", split_tensors=8)


@pytest.fixture(scope="session")
def big_vocab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Gemma-size vocabulary with as many merges: written once per session (a few seconds)."""
    import gguf
    import numpy as np

    path = tmp_path_factory.mktemp("vocab") / "Vocab-Q8_0.gguf"
    writer = gguf.GGUFWriter(path, "gemma3")
    writer.add_block_count(18)
    writer.add_token_list([f"tok{i}" if i % 3 else f"▁piece{i}" for i in range(BIG_VOCAB)])
    writer.add_token_scores([0.0] * BIG_VOCAB)
    writer.add_token_types([1] * BIG_VOCAB)
    writer.add_token_merges([f"t{i % 977} ok{i}" for i in range(BIG_VOCAB)])
    writer.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def header_bytes(path: Path) -> bytes:
    """The file up to the end of its tensor table: the least that scans."""
    data = path.read_bytes()
    info = scan_header(data, label="x")
    end = info.header_end
    while end > 0:  # the padding before the data is not needed: find where the table ends
        try:
            scan_header(data[: end - 1], label="x")
        except HeaderIncomplete:
            return data[:end]
        end -= 1
    raise AssertionError("unreachable")


# -- agreement -----------------------------------------------------------------


@pytest.mark.parametrize("quant", ["F32", "F16", "Q8_0", "Q4_0"])
def test_header_matches_gguf_reader(tiny_models: dict[str, Path], quant: str) -> None:
    ours = read_header(tiny_models[quant], label="tiny")
    assert ours == reader_info(tiny_models[quant])
    assert ours.data_end == tiny_models[quant].stat().st_size
    assert ours.architecture == "llama" and ours.name == "Tiny Llama" and ours.shape.n_vocab == 512


def test_split_parts_match_gguf_reader(split_parts: list[Path]) -> None:
    infos = [verify_structure(part, label=part.name) for part in split_parts]
    assert infos == [reader_info(part) for part in split_parts]
    assert [i.split_index for i in infos] == [0, 1, 2]
    assert [i.architecture for i in infos] == ["llama", "", ""]  # later parts carry no metadata
    assert {i.split_count for i in infos} == {3}
    assert sum(i.tensor_count for i in infos) == 21


def test_tensor_bytes_group_the_tiny_model_by_layer(tiny_models: dict[str, Path]) -> None:
    info = read_header(tiny_models["Q8_0"], label="tiny")
    table = info.tensor_bytes
    assert len(table.layers) == 2 and table.layers[0] == table.layers[1] > 0
    assert table.token_embd == 512 * 128 * 34 // 32  # Q8_0: 34 bytes a block of 32
    assert table.output == 512 * 128 * 34 // 32 + 128 * 4  # output.weight and the F32 output_norm
    assert table.other == 0 and table.has_output_weight and not table.tied_output
    assert table.total == info.data_end - info.header_end  # every tensor's data, no padding between


def test_split_parts_add_up_to_the_whole_model(split_parts: list[Path], tmp_path: Path) -> None:
    whole = read_header(write_tiny_gguf(tmp_path / "Whole-Q8_0.gguf")[0], label="whole").tensor_bytes
    parts = [read_header(part, label=part.name).tensor_bytes for part in split_parts]
    assert sum(parts, TensorBytes()) == whole
    assert not all(part.has_output_weight for part in parts)  # only the part holding it says so


def test_tensor_names_sort_into_llama_cpp_layers() -> None:
    names = {
        "token_embd.weight": 64,
        "blk.0.attn_q.weight": 64,
        "blk.0.ffn_norm.weight": 32,
        "blk.2.attn_q.weight": 64,  # blk.1 is missing: it counts 0
        "blk.x.attn_q.weight": 32,  # not a layer number
        "blk.512.attn_q.weight": 32,  # past llama.cpp's LLAMA_MAX_LAYERS
        "blk.": 32,
        "rope_freqs.weight": 32,
        "output_norm.weight": 32,
    }
    tensors, offset = [], 0
    for name, n in names.items():  # F32: 4 bytes an element, each tensor after the last
        tensors.append(tensor(name, [n], 0, offset))
        offset += 4 * n
    info = scan_header(with_data(header(llama_kvs(), tensors), offset), label="names")
    table = info.tensor_bytes
    assert table == TensorBytes(layers=(256 + 128, 0, 256), token_embd=256, output=128, other=4 * 128)
    assert table.tied_output  # no output.weight: llama.cpp reuses token_embd


def test_any_buffer_kind_scans_the_same(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["Q4_0"]
    data = path.read_bytes()
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
        from_mmap = scan_header(view, label="tiny")
    assert scan_header(data, label="tiny") == scan_header(memoryview(data), label="tiny") == from_mmap


def test_big_vocabulary_with_merges_is_counted_not_read(big_vocab: Path) -> None:
    info = verify_structure(big_vocab, label="vocab")
    assert info.shape.n_vocab == BIG_VOCAB
    assert info.architecture == "gemma3" and info.shape.n_layers == 18
    assert info.tensor_count == 1 and info.parameter_count == 64
    assert info.header_end > 8 * 2 * BIG_VOCAB  # the walk went through both string arrays


# -- short buffers -------------------------------------------------------------


def test_every_short_buffer_asks_for_more(tiny_models: dict[str, Path]) -> None:
    head = header_bytes(tiny_models["Q8_0"])
    full = scan_header(head, label="tiny")
    cuts = sorted({*range(0, 200), *range(200, len(head), 7), len(head) - 1})
    for cut in cuts:
        with pytest.raises(HeaderIncomplete) as caught:
            scan_header(head[:cut], label="tiny")
        assert cut < caught.value.needed <= len(head), cut  # a lower bound, and progress
        assert caught.value.estimate >= caught.value.needed
    assert full == read_header(tiny_models["Q8_0"], label="tiny")


@pytest.mark.parametrize("use_estimate", [False, True])
def test_reading_what_is_asked_for_reaches_the_header(big_vocab: Path, use_estimate: bool) -> None:
    data = memoryview(big_vocab.read_bytes())
    have, reads = 1 << 20, 1
    while True:
        try:
            info = scan_header(data[:have], label="vocab")
            break
        except HeaderIncomplete as error:
            assert have < error.needed <= len(data)
            have = error.estimate if use_estimate else error.needed
            reads += 1
            assert reads < 100  # the lower bound alone halves what is missing of an array per read
    assert info == read_header(big_vocab, label="vocab")
    if use_estimate:  # the estimate extrapolates the tokens, then the merges
        assert reads <= 4, reads


def test_a_file_cut_in_its_header_is_damaged_not_incomplete(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_models["Q8_0"].read_bytes()[:5000])
    with pytest.raises(IntegrityError, match=r"^cut\.gguf is truncated or damaged"):
        read_header(cut, label="cut.gguf")
    with pytest.raises(IntegrityError, match="truncated or damaged"):
        scan_header(cut.read_bytes(), label="cut.gguf", file_size=5000)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.gguf"
    empty.touch()
    with pytest.raises(IntegrityError, match="empty.gguf is empty"):
        verify_structure(empty, label="empty.gguf")


# -- structure -----------------------------------------------------------------


def test_truncated_file_names_the_tensor(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    short = tmp_path / "short.gguf"
    shutil.copyfile(tiny_models["Q8_0"], short)
    size = short.stat().st_size
    with open(short, "r+b") as file:
        file.truncate(size - 100)
    info = read_header(short, label="short.gguf")  # the header itself is whole
    assert info.last_tensor == "output.weight"  # the tensor whose data ends last
    pattern = rf"^short\.gguf is truncated: tensor output\.weight ends at byte {size} of {size - 100}$"
    with pytest.raises(IntegrityError, match=pattern):
        verify_structure(short, label="short.gguf")
    check_data_inside(info, size, label="short.gguf")
    with pytest.raises(IntegrityError, match=pattern):
        check_data_inside(info, size - 100, label="short.gguf")


def test_hand_made_header_gives_its_facts() -> None:
    kvs = [
        *llama_kvs(),
        kv("llama.attention.head_count_kv", ARRAY, (I32, [2, 8, 4])),  # per layer: the largest counts
        kv("general.name", STRING, "evil\x1b[31m name"),  # kept as written: front ends escape
        kv("general.license", STRING, b"caf\xe9"),  # not UTF-8: replaced, not refused
        kv("general.file_type", U32, 15),
        kv("general.alignment", U32, 64),
        kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["a", "bb", ""])),
        kv("tokenizer.ggml.scores", ARRAY, (F32, [0.0, 1.0, 2.0])),
        kv("some.flag", BOOL, True),
    ]
    head = header(kvs, [tensor("w", [64, 2], 0, 0), tensor("b", [64], 0, 512)])
    info = scan_header(with_data(head, 512 + 256, alignment=64), label="hand")
    assert info.shape == ModelShape(2, 64, 4, 8, 16, 2048, 3)
    assert (info.name, info.license, info.file_type) == ("evil\x1b[31m name", "caf\ufffd", 15)
    assert info.header_end % 64 == 0 and info.header_end >= len(head)
    assert (info.data_end, info.last_tensor) == (info.header_end + 512 + 256, "b")
    assert info.parameter_count == 192 and info.tensor_count == 2


def test_no_tensors_needs_no_padding() -> None:
    head = header(llama_kvs())
    info = scan_header(head, label="vocab-only", file_size=len(head))
    assert info.tensor_count == 0 and info.data_end == len(head) <= info.header_end


@pytest.mark.parametrize(
    ("arch", "split_no"),
    [("llama\x1b]0;pwned\x07", 0), ("a" * 65, 0), ("lla ma", 0), ("ll\u00e4ma", 0), ("", 0), ("\n", 1)],
)
def test_hostile_architecture_is_refused(arch: str, split_no: int) -> None:
    kvs = [kv("general.architecture", STRING, arch), kv("split.no", U16, split_no)]
    refused = r"^evil\.gguf (has an invalid architecture name|.*has no general\.architecture)"
    with pytest.raises(IntegrityError, match=refused) as caught:
        scan_header(header(kvs), label="evil.gguf")
    assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)


def test_later_split_parts_may_leave_the_architecture_out() -> None:
    info = scan_header(header([kv("split.no", U16, 2), kv("split.count", U16, 3)]), label="part3")
    assert (info.architecture, info.split_index, info.split_count) == ("", 2, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GGML" + bytes(20), "bad magic"),
        (b"\x00", "bad magic"),
        (header(llama_kvs(), version=1), "unsupported GGUF version 1"),
        (header(llama_kvs(), version=0x03000000), "unsupported GGUF version"),  # big-endian
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 2_000_000), "absurd counts"),
        (b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0), "absurd counts"),
        (header([kv(b"\xff\xfe", U32, 1)]), "key 0 is not UTF-8"),
        (header([*llama_kvs(), kv("llama.block_count", U32, 3)]), "duplicate key"),
        (header([llama_kvs()[0], *llama_kvs()[2:]]), "has no layers"),  # llama.cpp aborts on 0 layers
        (header([llama_kvs()[0], kv("llama.block_count", U32, 0), *llama_kvs()[2:]]), "has no layers"),
        (header([*llama_kvs()[:4], kv("llama.context_length", U64, 2**32 - 1)]), "more than llama.cpp"),
        (header([gstr("x") + struct.pack("<I", 13)]), "unknown value type 13"),
        (header([gstr("x") + struct.pack("<IIQ", ARRAY, ARRAY, 1)]), "unsupported element type 9"),
        (header([gstr("x") + struct.pack("<IQ", STRING, 1 << 62)]), "claims more than"),
        (header([gstr("x") + struct.pack("<IIQ", ARRAY, STRING, 1 << 60)]), "claims more than"),
        (header([gstr("x") + struct.pack("<IIQ", ARRAY, U64, 1 << 60)]), "claims more than"),
        (header([struct.pack("<Q", 1 << 63)]), "claims more than"),
        (header([*llama_kvs(), kv("general.alignment", U32, 48)]), "not a power of two"),
        (header([*llama_kvs(), kv("general.alignment", U64, 64)]), "alignment is not a u32"),
        (header([*llama_kvs(), kv("llama.attention.head_count_kv", I32, -1)]), "head_count_kv is -1"),
        (header(llama_kvs(), [tensor("w", [1, 1, 1, 1, 1])]), "5 dimensions"),
        (header(llama_kvs(), [tensor("w", [4], ggml_type=4)]), "unknown ggml type 4"),
        (header(llama_kvs(), [tensor("w", [4], ggml_type=99)]), "unknown ggml type 99"),
        (header(llama_kvs(), [tensor("w", [48], ggml_type=8)]), "not whole blocks of 32"),
        (header(llama_kvs(), [tensor("w", [4], offset=16)]), "not a multiple of 32"),
        (header(llama_kvs(), [tensor("w", [1 << 32, 1 << 32])]), "elements"),
        (header(llama_kvs(), [tensor("w", [4]), tensor("w", [4], offset=32)]), "duplicate tensor w"),
        (header(llama_kvs(), [tensor("x" * 64, [4])]), "name of 64 bytes"),
    ],
)
def test_malformed_headers_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=rf"^bad\.gguf .*{message}"):
        scan_header(data + bytes(4096), label="bad.gguf")


def test_lengths_past_a_known_file_size_are_damage() -> None:
    data = header([gstr("x") + struct.pack("<IQ", STRING, 1 << 20)])
    with pytest.raises(HeaderIncomplete):
        scan_header(data, label="remote.gguf")
    with pytest.raises(IntegrityError, match="runs past the end of the file"):
        scan_header(data, label="remote.gguf", file_size=1 << 19)


# -- fuzzing -------------------------------------------------------------------


def _scan_or_refuse(data: bytes, file_size: int | None = None) -> None:
    try:
        scan_header(data, label="fuzz.gguf", file_size=file_size)
    except IntegrityError as error:
        assert str(error).startswith("fuzz.gguf ") and "\n" not in str(error)
    except HeaderIncomplete as error:
        assert file_size is None and error.needed > len(data)


@functools.cache
def fuzz_seeds() -> tuple[bytes, ...]:
    """Headers to mutate: a tiny model's, a later split part's, a hand-made one with per-layer arrays."""
    with tempfile.TemporaryDirectory() as tmp:
        whole = write_tiny_gguf(Path(tmp) / "Seed-Q4_0.gguf", quant="Q4_0")[0]
        part = write_tiny_gguf(Path(tmp) / "Part-Q8_0.gguf", split_tensors=8)[2]
        kvs = [*llama_kvs(), kv("llama.attention.head_count_kv", ARRAY, (U16, [1, 2, 3]))]
        return header_bytes(whole), header_bytes(part), header(kvs, [tensor("w", [32, 2], 8, 0)])


_FUZZ = settings(max_examples=300, deadline=None)


@_FUZZ
@given(data=st.data())
def test_flipped_bytes_only_ever_refuse(data: st.DataObject) -> None:
    seed = bytearray(fuzz_seeds()[data.draw(st.integers(0, 2))])
    for _ in range(data.draw(st.integers(1, 8))):
        seed[data.draw(st.integers(0, len(seed) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(seed)))
    _scan_or_refuse(bytes(seed[:cut]))
    _scan_or_refuse(bytes(seed[:cut]), file_size=cut)


@_FUZZ
@given(data=st.data())
def test_huge_lengths_and_counts_only_ever_refuse(data: st.DataObject) -> None:
    seed = bytearray(fuzz_seeds()[data.draw(st.integers(0, 2))])
    at = data.draw(st.integers(4, len(seed) - 8))
    value = data.draw(st.sampled_from([1 << 63, (1 << 64) - 1, 1 << 32, 1 << 40, 0xFFFFFFFF, 5, 0]))
    width = data.draw(st.sampled_from([4, 8]))
    seed[at : at + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    _scan_or_refuse(bytes(seed))
    _scan_or_refuse(bytes(seed), file_size=len(seed))


@_FUZZ
@given(tail=st.binary(max_size=512), version=st.sampled_from([2, 3]))
def test_random_bytes_after_the_magic_only_ever_refuse(tail: bytes, version: int) -> None:
    _scan_or_refuse(b"GGUF" + struct.pack("<I", version) + tail)
