"""The llama.cpp wrapper (engine/runtime/llama/) on tiny real GGUFs: loading, tokens, samplers, embeddings.

Besides the random tiny model of ``tests/support/tiny_gguf.py`` this file
writes a "chain" model: the same tiny llama whose layers add nothing, so the
next greedy token is a fixed function of the last one. It lets the scheduler
tests make llama.cpp emit exact token sequences (byte tokens of one
character, a stop string across tokens, an end of text) with no mock.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from engine.cancel import CancelToken
from engine.errors import Cancelled, IntegrityError, InvalidInput, InvalidOption, LoadError, PromptTooLong
from engine.machine.gpu import llama_gpu_offload
from engine.machine.physical import _topology_cores, physical_cores
from engine.runtime.llama import log as llama_log
from engine.runtime.llama.backend import supports_gpu_offload
from engine.runtime.llama.context import Batch, Context
from engine.runtime.llama.embedder import Embedder
from engine.runtime.llama.model import Model
from engine.runtime.llama.sampler import Sampler
from engine.store import gguf_io
from engine.store.gguf_io import verify_structure
from tests.support.chain_gguf import byte_token, token_id, write_chain_gguf
from tests.support.tiny_gguf import CHAT_TEMPLATE, N_EMBD, N_VOCAB, write_tiny_gguf


@pytest.fixture(scope="module")
def model(tiny_models: dict[str, Path]) -> Iterator[Model]:
    loaded = Model.load(tiny_models["Q8_0"], n_gpu_layers=0)
    yield loaded
    loaded.free()


@pytest.fixture
def ctx(model: Model) -> Iterator[Context]:
    context = Context(model, n_ctx=512, n_seq_max=2, n_threads=2, flash_attn="off")
    yield context
    context.free()


# -- loading -------------------------------------------------------------------------------------


def test_model_exposes_vocabulary_and_metadata(model: Model) -> None:
    assert (model.n_vocab, model.n_ctx_train, model.n_layers, model.n_embd) == (N_VOCAB, 2048, 2, N_EMBD)
    assert (model.bos_text, model.eos_text) == ("<s>", "</s>")
    assert model.chat_template == CHAT_TEMPLATE
    assert model.architecture == "llama" and model.meta("general.name") == "Tiny Llama"
    assert model.meta("no.such.key") is None


def test_tokenize_and_pieces_round_trip_with_byte_tokens(model: Model) -> None:
    tokens = model.tokenize("hello €")
    assert tokens[0] == model.bos and model.tokenize("hello €", add_special=False) == tokens[1:]
    assert tokens[-3:] == [byte_token(0xE2), byte_token(0x82), byte_token(0xAC)]
    assert [model.piece(t) for t in tokens[-3:]] == [b"\xe2", b"\x82", b"\xac"]  # exactly, no padding
    assert model.detokenize(tokens) == " hello €"
    im_start = token_id("<|im_start|>")
    assert model.tokenize("<|im_start|>", add_special=False) == [im_start]
    assert im_start not in model.tokenize("<|im_start|>", add_special=False, parse_special=False)
    assert model.piece(im_start) == b"" and model.piece(im_start, special=True) == b"<|im_start|>"


def test_end_of_generation_tokens(model: Model) -> None:
    assert model.is_eog(model.eos) and model.is_eog(token_id("<|im_end|>"))
    assert not model.is_eog(model.bos) and not model.is_eog(token_id("▁hello"))


def _corrupt(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_truncated_file_is_an_integrity_error(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    whole = tiny_models["Q8_0"].read_bytes()
    for cut in (len(whole) // 2, 100, len(whole) - 1):
        bad = _corrupt(tmp_path / f"cut-{cut}.gguf", whole[:cut])
        with pytest.raises(IntegrityError, match="truncated"):
            Model.load(bad, n_gpu_layers=0)


def test_random_bytes_and_wrong_magic_are_integrity_errors(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(IntegrityError, match="not a valid GGUF"):
        Model.load(_corrupt(tmp_path / "random.gguf", os.urandom(4096)), n_gpu_layers=0)
    whole = tiny_models["Q8_0"].read_bytes()
    with pytest.raises(IntegrityError, match="bad magic"):
        Model.load(_corrupt(tmp_path / "magic.gguf", b"GGML" + whole[4:]), n_gpu_layers=0)
    with pytest.raises(IntegrityError, match="missing"):
        Model.load(tmp_path / "absent.gguf", n_gpu_layers=0)


def test_tensor_offset_past_the_end_is_an_integrity_error(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    source = tiny_models["Q8_0"]
    last = gguf.GGUFReader(source).tensors[-1]
    # where the tensor's u64 data offset is written
    at = last.field.offset + sum(part.nbytes for part in last.field.parts[:-1])
    data = bytearray(source.read_bytes())
    data[at : at + 8] = struct.pack("<Q", 1 << 30)
    with pytest.raises(IntegrityError, match=f"truncated.*{last.name}"):
        Model.load(_corrupt(tmp_path / "offset.gguf", bytes(data)), n_gpu_layers=0)


def test_headers_read_to_plan_the_load_are_not_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = write_tiny_gguf(tmp_path / "Split-Q8_0.gguf", split_tensors=8)
    headers = [verify_structure(part, label=part.name) for part in parts]
    scan = gguf_io.scan_header
    scanned: list[str] = []

    def counting(buffer: object, *, label: str, file_size: int | None = None) -> gguf_io.GGUFInfo:
        scanned.append(label)
        return scan(buffer, label=label, file_size=file_size)

    monkeypatch.setattr(gguf_io, "scan_header", counting)
    Model.load(parts[0], n_gpu_layers=0, headers=headers).free()
    assert scanned == []
    Model.load(parts[0], n_gpu_layers=0, headers=headers[:1]).free()  # a part without its header is read
    assert scanned == [parts[1].name, parts[2].name]


def test_a_part_cut_after_its_header_was_read_is_still_refused(tmp_path: Path) -> None:
    parts = write_tiny_gguf(tmp_path / "Split-Q8_0.gguf", split_tensors=8)
    headers = [verify_structure(part, label=part.name) for part in parts]
    os.truncate(parts[2], parts[2].stat().st_size - 1)
    with pytest.raises(IntegrityError, match=f"{parts[2].name} is truncated"):
        Model.load(parts[0], n_gpu_layers=0, headers=headers)
    parts[1].unlink()
    with pytest.raises(IntegrityError, match=f"{parts[1].name} is missing"):
        Model.load(parts[0], n_gpu_layers=0, headers=headers)


def test_llama_cpp_refusal_is_a_load_error_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(path, "notanarch")
    writer.add_block_count(1)  # structurally sound: only llama.cpp knows the architecture is not one
    writer.add_tensor("x.weight", np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(LoadError, match="could not load alien.gguf: .*notanarch") as caught:
        Model.load(path, n_gpu_layers=0)
    assert "\n" not in str(caught.value)


def test_cancel_during_load(tiny_models: dict[str, Path]) -> None:
    token = CancelToken()
    seen: list[float] = []

    def cancel_on_first_progress(fraction: float) -> None:
        seen.append(fraction)
        token.cancel()

    with pytest.raises(Cancelled):
        Model.load(tiny_models["F16"], n_gpu_layers=0, cancel=token, progress=cancel_on_first_progress)
    assert seen  # llama.cpp did call back, and stopped at the first answer
    with pytest.raises(Cancelled):  # cancelled before: llama.cpp is not even asked
        Model.load(tiny_models["F16"], n_gpu_layers=0, cancel=token)


def test_progress_reaches_one(tiny_models: dict[str, Path]) -> None:
    seen: list[float] = []
    Model.load(tiny_models["F32"], n_gpu_layers=0, progress=seen.append).free()
    assert seen and seen[-1] == pytest.approx(1.0)


def test_llama_log_goes_to_ring_buffer_and_capped_file(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "state" / "llama.log"
    llama_log.set_log_file(log, max_bytes=4096)
    try:
        for _ in range(3):
            Model.load(tiny_models["F32"], n_gpu_layers=0).free()
        assert llama_log.log_file() == log
        assert any("llama_model_loader" in line for line in llama_log.LLAMA_LOG)
        rotated = tmp_path / "state" / "llama.log.1"
        assert log.stat().st_size <= 4096 and rotated.stat().st_size <= 4096
        assert "load_tensors" in log.read_text() + rotated.read_text()
    finally:
        llama_log.set_log_file(None)


def test_default_log_path_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert llama_log.default_log_path() == tmp_path / "llamadeck" / "llama.log"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")  # not absolute: ignored, as the spec says
    assert llama_log.default_log_path() == Path.home() / ".local" / "state" / "llamadeck" / "llama.log"


def test_gpu_offload_probe_goes_through_the_wrapper() -> None:
    assert llama_gpu_offload() is supports_gpu_offload()


def test_physical_cores(tmp_path: Path) -> None:
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)
    for cpu, (package, core) in enumerate([(0, 0), (0, 0), (0, 1), (1, 0)]):  # 2 SMT siblings on core 0
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    (tmp_path / "cpu4").mkdir()  # offline: no topology
    assert _topology_cores(tmp_path) == 3


# -- contexts, batches, samplers -----------------------------------------------------------------


def _generate(
    model: Model, ctx: Context, sampler: Sampler, prompt: list[int], n: int, seq: int = 0
) -> list[int]:
    batch = Batch(512)
    ctx.seq_rm(seq)
    index = batch.add_run(prompt, 0, seq, logits_last=True)
    ctx.decode(batch)
    out = []
    for pos in range(len(prompt), len(prompt) + n):
        token = sampler.sample(ctx, index)
        out.append(token)
        batch.clear()
        index = batch.add(token, pos, seq, True)
        ctx.decode(batch)
    batch.free()
    return out


def test_sampler_with_a_seed_is_deterministic(model: Model, ctx: Context) -> None:
    prompt = model.tokenize("the capital of France")

    def run(**options: object) -> list[int]:
        sampler = Sampler(model, temperature=1.5, top_k=0, top_p=1.0, **options)  # type: ignore[arg-type]
        try:
            return _generate(model, ctx, sampler, prompt, 24)
        finally:
            sampler.free()

    assert run(seed=7) == run(seed=7)
    assert run(seed=7) != run(seed=8)
    unseeded = Sampler(model, seed=None)
    assert 0 <= unseeded.seed < 2**32 and Sampler(model, seed=-1).seed != unseeded.seed


def test_temperature_zero_is_greedy_and_independent_of_seed(model: Model, ctx: Context) -> None:
    prompt = model.tokenize("hello world")
    samplers = [Sampler(model, temperature=0, repeat_penalty=1.0, seed=s) for s in (1, 2)]
    runs = [_generate(model, ctx, sampler, prompt, 16) for sampler in samplers]
    assert runs[0] == runs[1]


def test_mirostat_and_penalties_build(model: Model, ctx: Context) -> None:
    prompt = model.tokenize("hello")
    for options in ({"mirostat": 1}, {"mirostat": 2}, {"repeat_last_n": -1, "presence_penalty": 0.5}):
        sampler = Sampler(model, seed=1, context_size=256, **options)  # type: ignore[arg-type]
        assert len(_generate(model, ctx, sampler, prompt, 4)) == 4
        sampler.free()
    with pytest.raises(InvalidOption, match="mirostat"):
        Sampler(model, mirostat=3)
    with pytest.raises(InvalidOption, match="temperature"):
        Sampler(model, temperature=float("nan"))


def test_sequence_state_saved_and_restored_gives_the_same_continuation(model: Model, ctx: Context) -> None:
    prompt = model.tokenize("the capital of France is")
    greedy = Sampler(model, temperature=0, repeat_penalty=1.0)
    batch = Batch(64)
    batch.add_run(prompt, 0, 0, logits_last=True)
    ctx.decode(batch)
    saved = ctx.state_get(0)
    assert ctx.seq_pos_max(0) == len(prompt) - 1 and len(saved) == ctx.state_size(0) > 0
    ctx.seq_rm(0)
    assert ctx.seq_pos_max(0) == -1 and ctx.state_set(1, saved) and ctx.seq_pos_max(1) == len(prompt) - 1
    ctx.seq_rm(1, len(prompt) - 1)  # evaluate the last token again for its logits
    batch.clear()
    index = batch.add(prompt[-1], len(prompt) - 1, 1, True)
    ctx.decode(batch)
    first = greedy.sample(ctx, index)
    assert first == _generate(model, ctx, greedy, prompt, 1)[0]
    batch.free()


def test_context_rejects_unknown_settings(model: Model) -> None:
    with pytest.raises(InvalidOption, match="flash_attn"):
        Context(model, n_ctx=256, flash_attn="maybe")
    with pytest.raises(InvalidOption, match="KV cache type"):
        Context(model, n_ctx=256, type_k="q3_k")


def test_batch_positions_and_logits(model: Model, ctx: Context) -> None:
    batch = Batch(8)
    assert batch.add_run([5, 6, 7], 10, 1, logits_last=True) == 2 and batch.add(9, 4, 0, False) == 3
    raw = batch.raw
    assert [raw.token[i] for i in range(4)] == [5, 6, 7, 9]
    assert [raw.pos[i] for i in range(4)] == [10, 11, 12, 4]
    assert [raw.seq_id[i][0] for i in range(4)] == [1, 1, 1, 0]
    assert [raw.logits[i] for i in range(4)] == [0, 0, 1, 0]
    with pytest.raises(ValueError, match="overflow"):
        batch.add_run(list(range(5)), 0, 0, logits_last=False)
    batch.free()


# -- embeddings ----------------------------------------------------------------------------------


def test_embeddings_are_unit_vectors_one_per_text(tmp_path: Path) -> None:
    path = write_chain_gguf(tmp_path / "embed.gguf", {token_id("h"): 2, token_id("w"): 2}, pooling=1)
    model = Model.load(path, n_gpu_layers=0)
    embedder = Embedder(model, n_ctx=256, n_threads=2)
    try:
        texts = ["hello", "world", "hello", "x " * 300]
        embedded = embedder.embed(texts)
        vectors = embedded.vectors
        assert embedder.pooling == "mean" and len(vectors) == 4
        counts = [len(model.tokenize(t, add_special=True, parse_special=False)) for t in texts]
        assert counts[-1] > embedder.n_ctx  # the long text is cut to the context, and counted so
        assert embedded.prompt_tokens == sum(min(n, embedder.n_ctx) for n in counts)
        assert all(len(v) == N_EMBD for v in vectors)
        assert all(sum(x * x for x in v) == pytest.approx(1.0, abs=1e-5) for v in vectors)
        assert vectors[0] == pytest.approx(vectors[2]) and vectors[0] != pytest.approx(vectors[1])
        with pytest.raises(PromptTooLong):
            embedder.embed(["x " * 300], truncate=False)
    finally:
        embedder.free()
        model.free()


def test_a_model_without_pooling_cannot_embed(model: Model) -> None:
    with pytest.raises(InvalidInput, match="cannot make embeddings: it is a text-generation model"):
        Embedder(model, n_ctx=256)
