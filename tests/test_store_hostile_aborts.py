"""GGUF headers built to abort llama.cpp or to cost seconds and gigabytes: refused by the header scan.

Issue 18, findings 2 and 5. Everything here stays in Python (no llama.cpp):
the scan must refuse the file before llama.cpp sees it. The end-to-end cases
(``run`` exiting 134, the server dying) are in ``test_cli_hostile_aborts.py``
and ``test_api_hostile_aborts.py``, where a subprocess takes the abort.
"""

from __future__ import annotations

import math
from pathlib import Path

import gguf
import numpy as np
import pytest

from engine.errors import IntegrityError, InvalidInput
from engine.runtime.adapters import ADAPTER_LIMITS, check_adapter, read_adapter
from engine.runtime.quantizer import check_source
from engine.store.gguf_io import scan_header, verify_structure
from tests.support.hostile_gguf import HOSTILE_HEADERS, write_hostile
from tests.support.tiny_gguf import write_tiny_gguf
from tests.support.tiny_lora import write_tiny_lora


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-headers")


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_a_header_llama_cpp_would_abort_on_is_refused_naming_the_key(hostile_dir: Path, case: str) -> None:
    """What verify, create, import and every load call, and what a pull scans of the remote header."""
    path = write_hostile(hostile_dir, case)
    key = HOSTILE_HEADERS[case][1]
    with pytest.raises(IntegrityError, match="would abort on") as caught:
        verify_structure(path, label="bad.gguf")
    message = str(caught.value)
    assert key in message and message.startswith("bad.gguf ") and "\n" not in message
    with pytest.raises(IntegrityError, match=key.replace(".", r"\.")):
        scan_header(path.read_bytes(), label="remote.gguf", file_size=path.stat().st_size)


@pytest.mark.parametrize(
    "extra",
    [
        {"llama.expert_count": 2, "llama.expert_used_count": 2},
        {"llama.expert_count": 8, "llama.expert_used_count": 2, "llama.expert_group_count": 4}
        | {"llama.expert_group_used_count": 2},
        {"llama.nextn_predict_layers": 2},
    ],
    ids=["experts", "expert-groups", "nextn-as-many-as-layers"],
)
def test_headers_llama_cpp_takes_are_not_refused(tmp_path: Path, extra: dict[str, int]) -> None:
    """The rules are llama.cpp's own: a header that fits them passes (missing tensors: llama.cpp says)."""
    path = write_tiny_gguf(tmp_path / "ok.gguf", extra=extra)[0]
    assert verify_structure(path, label="ok.gguf").architecture == "llama"


@pytest.mark.parametrize(("eps", "tokenizer"), [(0.0, "llama"), (1e-6, "t5"), (1e-6, "gpt2")])
def test_an_epsilon_of_zero_and_other_tokenizers_pass(tmp_path: Path, eps: float, tokenizer: str) -> None:
    path = write_tiny_gguf(tmp_path / "ok.gguf", rms_eps=eps, tokenizer_model=tokenizer)[0]
    verify_structure(path, label="ok.gguf")


def test_a_nan_anywhere_in_the_header_is_refused(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "rope.gguf", extra={"llama.rope.freq_base_swa": math.nan})[0]
    with pytest.raises(IntegrityError, match=r"llama\.rope\.freq_base_swa is NaN"):
        verify_structure(path, label="rope.gguf")


# -- finding 5: adapters read by the bounded scanner --------------------------------------------


def test_an_adapter_with_a_huge_metadata_array_is_refused_before_it_is_walked(tmp_path: Path) -> None:
    """The outside pass used 2,000,000 strings (50 s, 2.3 GB in gguf.GGUFReader); past the limit is enough."""
    assert ADAPTER_LIMITS.array is not None
    hostile = write_tiny_lora(tmp_path / "huge.gguf", junk_strings=ADAPTER_LIMITS.array + 1)
    with pytest.raises(IntegrityError) as caught:
        check_adapter(hostile, architecture="llama")
    message = str(caught.value)
    assert message.startswith("adapter huge.gguf ") and "llamadeck.junk" in message
    assert f"at most {ADAPTER_LIMITS.array}" in message and "\n" not in message


def test_an_adapter_with_too_many_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_type("adapter")
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    for index in range(ADAPTER_LIMITS.kvs):
        writer.add_uint32(f"junk.{index}", index)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(IntegrityError, match=f"at most {ADAPTER_LIMITS.kvs}"):
        read_adapter(path)


def test_a_small_metadata_array_in_an_adapter_is_fine(tmp_path: Path) -> None:
    path = write_tiny_lora(tmp_path / "tags.gguf", junk_strings=100)
    assert check_adapter(path, architecture="llama").rank == 4


def test_an_adapter_is_read_once_per_version_of_its_file(tmp_path: Path) -> None:
    """Each load checks its adapters: the same file is not parsed again, a changed one is."""
    path = write_tiny_lora(tmp_path / "lora.gguf", rank=4)
    first = read_adapter(path)
    assert read_adapter(path) is first
    write_tiny_lora(tmp_path / "other.gguf", rank=8).replace(path)
    again = read_adapter(path)
    assert again is not first and again.rank == 8
    path.write_bytes(b"GGUF but broken")
    with pytest.raises(IntegrityError):
        read_adapter(path)
    with pytest.raises(InvalidInput, match="made for 'llama' models"):
        check_adapter(write_tiny_lora(tmp_path / "l.gguf"), architecture="gemma3")


@pytest.mark.parametrize(("dtype", "kind"), [(np.float16, "F16"), (np.float32, "F32")])
def test_the_quantizer_guesses_a_source_without_file_type_from_the_header_scan(
    tmp_path: Path, dtype: type, kind: str
) -> None:
    """No general.file_type: the largest tensors decide, from the scan (no parse of a 100k-string array)."""
    path = tmp_path / "untyped.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_array("llamadeck.junk", ["x"] * 100_000)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(64, dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.ones((64, 64), dtype=dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert check_source(path) == kind
