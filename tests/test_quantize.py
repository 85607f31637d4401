"""Quantizing F16/F32 GGUFs in a child process (engine/runtime/quantizer.py), checked with llama.cpp."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from engine.cancel import CancelToken
from engine.errors import Cancelled, DiskFull, InvalidInput
from engine.events import Event, Progress, Status
from engine.runtime.quantizer import (
    QUANTIZE_TARGETS,
    QuantizeError,
    check_source,
    quantize,
    quantize_target,
)
from engine.store.gguf_io import read_header
from tests.support import tiny_gguf
from tests.support.greedy import greedy_tokens
from tests.support.tiny_gguf import tiny_vocab


def greedy(path: Path, prompt: str = "hello world", n: int = 8) -> list[int]:
    """A few greedy tokens from the model at ``path``, through the engine's runtime."""
    return greedy_tokens(path, prompt, n)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty directory of the test's own (tmp_path also holds the isolated homes)."""
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def write_wide_f16(path: Path, *, n_embd: int = 1024, n_ff: int = 4096, n_layers: int = 2) -> Path:
    """An F16 llama big enough (~60 MB) that quantizing it takes a while: for the cancel test."""
    pool = (np.random.default_rng(0).standard_normal(1 << 20) * 0.02).astype(np.float16)

    def weights(shape: tuple[int, int]) -> np.ndarray:
        return np.resize(pool, shape)

    head = 64
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    writer.add_context_length(512)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_embd // head)
    writer.add_head_count_kv(1)
    writer.add_rope_dimension_count(head)
    writer.add_layer_norm_rms_eps(1e-5)
    tokens, scores, types = tiny_vocab()
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_tensor("token_embd.weight", weights((len(tokens), n_embd)))
    for i in range(n_layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", weights((n_embd, n_embd)))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weights((head, n_embd)))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weights((head, n_embd)))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weights((n_embd, n_embd)))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weights((n_ff, n_embd)))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weights((n_ff, n_embd)))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weights((n_embd, n_ff)))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_odd_f16(path: Path) -> None:
    """An F16 GGUF of an architecture llama.cpp does not know: its quantizer refuses it."""
    writer = gguf.GGUFWriter(path, "notanarch")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    writer.add_block_count(1)
    writer.add_tensor("blk.0.w.weight", np.ones((64, 64), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize("quant", ["Q8_0", "Q4_0"])
@pytest.mark.parametrize("source", ["F16", "F32"])
def test_quantized_model_loads_and_generates(
    tiny_models: dict[str, Path], out: Path, quant: str, source: str
) -> None:
    target = out / f"tiny-{quant}.gguf"
    quantize(tiny_models[source], target, quant)
    info = read_header(target, label=target.name)
    assert info.file_type == QUANTIZE_TARGETS[quant]
    assert target.stat().st_size < tiny_models[source].stat().st_size
    tokens = greedy(target)
    assert len(tokens) == 8
    if quant == "Q8_0":  # 8 bits keep the tiny model's greedy choice where F16 had it
        assert tokens[:2] == greedy(tiny_models["F16"])[:2]
    assert [p.name for p in out.iterdir()] == [target.name]


def test_progress_counts_every_tensor_up_to_the_total(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    events: list[Event] = []
    quantize(tiny_models["F16"], tmp_path / "out.gguf", "q8_0", on_event=events.append, label="tiny")
    progress = [e for e in events if isinstance(e, Progress)]
    total = read_header(tiny_models["F16"], label="tiny").tensor_count
    assert [p.completed for p in progress] == list(range(1, total + 1))
    assert {p.total for p in progress} == {total}
    assert {(p.action, p.file) for p in progress} == {("quantizing", "tiny")}
    assert progress[-1].fraction == 1.0 and progress[-1].eta == 0.0


def test_k_quant_of_rows_shorter_than_256_falls_back_and_says_so(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """The tiny model's rows are 128 wide; K-quant blocks are 256: llama.cpp picks a legacy type for those."""
    events: list[Event] = []
    target = tmp_path / "tiny-Q4_K_M.gguf"
    quantize(tiny_models["F16"], target, "Q4_K_M", on_event=events.append)
    notes = [e.message for e in events if isinstance(e, Status)]
    assert len(notes) == 1 and "fallback" in notes[0] and "Q4_K_M" in notes[0]
    assert read_header(target, label="t").file_type == QUANTIZE_TARGETS["Q4_K_M"]
    assert len(greedy(target)) == 8


def test_an_already_quantized_model_is_refused(tiny_models: dict[str, Path], out: Path) -> None:
    with pytest.raises(InvalidInput, match=r"only supported for F16, BF16 and F32 models.*already Q8_0"):
        quantize(tiny_models["Q8_0"], out / "out.gguf", "Q4_0")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(("source", "kind"), [("F16", "F16"), ("F32", "F32")])
def test_f16_and_f32_sources_are_accepted(tiny_models: dict[str, Path], source: str, kind: str) -> None:
    assert check_source(tiny_models[source]) == kind


def test_an_unknown_target_lists_the_valid_ones(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unsupported quantization type Q9_9") as caught:
        quantize(tiny_models["F16"], tmp_path / "out.gguf", "Q9_9")
    assert "Q4_K_M" in str(caught.value) and "Q8_0" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "canonical"), [("q4_k_m", "Q4_K_M"), ("Q4_K", "Q4_K_M"), (" q8_0 ", "Q8_0")]
)
def test_target_names_read_as_ollama_reads_them(name: str, canonical: str) -> None:
    assert quantize_target(name)[0] == canonical


def test_cancel_kills_the_child_and_leaves_nothing(tmp_path: Path, out: Path) -> None:
    source = write_wide_f16(tmp_path / "wide-F16.gguf")
    token = CancelToken()
    seen: list[Progress] = []

    def on_event(event: Event) -> None:
        if isinstance(event, Progress):
            seen.append(event)
            token.cancel()  # after the first tensor: the child still has most of its work ahead

    with pytest.raises(Cancelled):
        quantize(source, out / "wide-Q4_K_M.gguf", "Q4_K_M", on_event=on_event, cancel=token, threads=1)
    # one tensor of several: a child left running would have reported the rest before the pipe closed
    assert len(seen) == 1 and seen[0].completed < seen[0].total
    assert list(out.iterdir()) == []  # no target, no partial


def test_a_killed_parent_takes_the_child_and_its_partial_with_it(tmp_path: Path, out: Path) -> None:
    """A front end killed mid-quantize (SIGKILL: no cleanup runs) leaves no child running and no partial."""
    source = write_wide_f16(tmp_path / "wide-F16.gguf")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from engine.runtime.quantizer import quantize\n"
        "def on_event(event):\n"
        "    print('started', flush=True)\n"
        "    import time; time.sleep(60)\n"
        f"quantize(Path({str(source)!r}), Path({str(out / 'x.gguf')!r}), 'Q4_K_M',\n"
        "         on_event=on_event, threads=1)\n"
    )
    root = Path(__file__).resolve().parent.parent
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE)
    assert parent.stdout is not None and parent.stdout.readline() == b"started\n"
    assert [p.name for p in out.iterdir()][0].startswith(".x.gguf.")  # the partial, being written
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 300  # a hang guard: a loaded machine may be slow
    while list(out.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(out.iterdir()) == []


def test_a_cancelled_token_stops_before_the_child_starts(tiny_models: dict[str, Path], out: Path) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        quantize(tiny_models["F16"], out / "out.gguf", "Q8_0", cancel=token)
    assert list(out.iterdir()) == []


def test_a_failure_is_one_clear_line_and_leaves_nothing(out: Path) -> None:
    """A model llama.cpp cannot read (an architecture it does not know): its reason, no partial, no target."""
    source = out / "odd-F16.gguf"
    write_odd_f16(source)
    with pytest.raises(QuantizeError) as caught:
        quantize(source, out / "out.gguf", "Q8_0")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("quantizing odd-F16.gguf to Q8_0 failed: ")
    assert "notanarch" in message
    assert sorted(p.name for p in out.iterdir()) == ["odd-F16.gguf"]


def test_a_missing_output_directory_is_a_clear_error(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(QuantizeError, match="such is not a directory"):
        quantize(tiny_models["F16"], tmp_path / "no" / "such" / "out.gguf", "Q8_0")


def test_a_full_disk_is_disk_full_and_leaves_nothing(
    tiny_models: dict[str, Path], out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama.cpp reports a failed write as "iostream error": a nearly full disk after it is a full disk."""
    from engine.runtime import quantizer

    monkeypatch.setattr(quantizer, "_FULL_BELOW", 1 << 62)  # every disk is "full" once the child fails
    source = out / "odd-F16.gguf"
    write_odd_f16(source)
    with pytest.raises(DiskFull, match="no space left"):
        quantize(source, out / "x.gguf", "Q8_0")
    assert [p.name for p in out.iterdir()] == ["odd-F16.gguf"]


def test_the_child_prints_nothing_to_the_terminal(
    tiny_models: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    quantize(tiny_models["F16"], tmp_path / "out.gguf", "Q8_0")
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_the_tiny_fixture_dims_suit_the_legacy_blocks() -> None:
    """Q8_0/Q4_0 blocks are 32 wide: every row of the tiny model is whole blocks (so no fallback)."""
    assert tiny_gguf.N_EMBD % 32 == 0 and tiny_gguf.N_FF % 32 == 0
    assert tiny_gguf.N_EMBD % 256 != 0  # why K-quants fall back (see the test above)
