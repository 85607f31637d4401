"""A GGUF header's key/values as Ollama's show gives them (engine.store.gguf_metadata), on real files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import gguf
import pytest

from engine.errors import IntegrityError
from engine.store import gguf_metadata
from engine.store.gguf_metadata import read_metadata
from tests.support.tiny_gguf import CHAT_TEMPLATE, N_VOCAB, tiny_vocab, write_tiny_gguf


def write_header(path: Path, **values: object) -> Path:
    """A GGUF of key/values only (no tensors), each written with the type its Python value suggests."""
    writer = gguf.GGUFWriter(path, "llama")
    for key, value in values.items():
        key = key.replace("__", ".")
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint64(key, value)
        elif isinstance(value, float):
            writer.add_float64(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_array(key, value)  # type: ignore[arg-type]
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    extra: dict[str, int | float] = {"llama.attention.layer_norm_epsilon": 1e-6}
    return write_tiny_gguf(tmp_path_factory.mktemp("meta") / "tiny.gguf", extra=extra)[0]


def test_every_key_comes_with_its_own_name_and_arrays_are_null(tiny: Path) -> None:
    info = read_metadata(tiny, label="tiny")
    assert info["general.architecture"] == "llama" and info["general.name"] == "Tiny Llama"
    assert info["llama.block_count"] == 2 and info["llama.context_length"] == 2048
    assert info["llama.embedding_length"] == 128 and info["llama.attention.head_count_kv"] == 1
    assert info["llama.rope.freq_base"] == 10000.0
    assert info["llama.attention.layer_norm_rms_epsilon"] == 1e-05  # as Go writes a float32: not 9.99e-06
    assert info["llama.attention.layer_norm_epsilon"] == 1e-06
    assert info["tokenizer.ggml.model"] == "llama" and info["tokenizer.ggml.bos_token_id"] == 1
    assert info["tokenizer.ggml.add_bos_token"] is True
    assert info["tokenizer.chat_template"] == CHAT_TEMPLATE
    for big in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        assert big in info and info[big] is None  # as Ollama: the key, its value null
    json.dumps(info, allow_nan=False)  # what a JSON response needs


def test_verbose_gives_the_arrays_whole(tiny: Path) -> None:
    info = read_metadata(tiny, label="tiny", verbose=True)
    tokens, scores, types = tiny_vocab()
    assert info["tokenizer.ggml.tokens"] == tokens and len(tokens) == N_VOCAB
    assert info["tokenizer.ggml.scores"] == pytest.approx(scores)
    assert info["tokenizer.ggml.token_type"] == [int(t) for t in types]


def test_values_json_cannot_carry_are_null(tmp_path: Path) -> None:
    path = write_header(
        tmp_path / "odd.gguf",
        general__flag=True,
        llama__nan=float("nan"),
        llama__inf=float("-inf"),
        llama__big=2**40,
        general__languages=["en", "fr"],
    )
    info = read_metadata(path, label="odd")
    assert info["general.flag"] is True and info["llama.big"] == 2**40
    assert info["llama.nan"] is None and info["llama.inf"] is None
    assert info["general.languages"] is None
    assert read_metadata(path, label="odd", verbose=True)["general.languages"] == ["en", "fr"]
    json.dumps(info, allow_nan=False)


def test_what_is_past_the_bounds_is_left_out_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gguf_metadata, "MAX_STRING", 16)
    monkeypatch.setattr(gguf_metadata, "MAX_ARRAY_ELEMENTS", 3)
    monkeypatch.setattr(gguf_metadata, "MAX_KEYS", 4)
    path = write_header(
        tmp_path / "long.gguf",
        general__short="ok",
        general__long="x" * 17,
        llama__a=[1, 2, 3],
        llama__b=[4],
        llama__c=5,
    )
    info = read_metadata(path, label="long", verbose=True)
    # four keys read (b and c are past MAX_KEYS); "general.architecture" is a key too long to show,
    # "x" * 17 a value too long; the array fits the budget of elements
    assert info == {"general.short": "ok", "general.long": None, "llama.a": [1, 2, 3]}
    monkeypatch.setattr(gguf_metadata, "MAX_ARRAY_ELEMENTS", 2)
    assert read_metadata(path, label="long", verbose=True)["llama.a"] is None


def test_an_empty_array_stays_empty(tmp_path: Path) -> None:
    key = b"general.tags"
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
    header += struct.pack("<IIQ", 9, 8, 0)  # an array of strings, no elements (gguf-py will not write one)
    (tmp_path / "empty.gguf").write_bytes(header)
    assert read_metadata(tmp_path / "empty.gguf", label="empty") == {"general.tags": []}


def test_a_truncated_or_foreign_file_is_an_integrity_error(tiny: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny.read_bytes()[:4000])  # inside the vocabulary
    with pytest.raises(IntegrityError, match="^cut is not a valid GGUF file: .* runs past the end"):
        read_metadata(cut, label="cut")
    other = tmp_path / "other.gguf"
    other.write_bytes(b"PK\x03\x04" + bytes(60))
    with pytest.raises(IntegrityError, match="^other is not a valid GGUF file"):
        read_metadata(other, label="other")
