"""The offload planner on real model shapes: layers, VRAM and RAM as llama.cpp will place them."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import InvalidOption
from engine.machine.memory import FIXED_OVERHEAD, Machine, estimate_memory, kv_cache_bytes
from engine.machine.offload import (
    VRAM_RESERVE,
    OffloadPlan,
    default_context_length,
    default_num_parallel,
    plan_offload,
)
from engine.options import DRAFT_OUTPUTS
from engine.shape import ModelShape
from engine.store.gguf_io import read_header
from engine.store.tensor_bytes import TensorBytes
from engine.units import GIB, MIB
from tests.support.tiny_gguf import write_tiny_gguf

# -- real models' tensor tables ------------------------------------------------
#
# Built from each model's real tensor shapes and the ggml types llama.cpp's quantizer
# (llama-quant.cpp, LLAMA_FTYPE_MOSTLY_Q4_K_M) gives them: Q4_K everywhere, Q6_K for
# output.weight, and for attn_v and ffn_down in the layers where use_more_bits(i, n) holds
# (the first and last eighth, and every third in between); attn_v of a 70B is Q5_K
# elsewhere. Norms and biases stay F32. Bytes per 256 elements are ggml's block sizes.
# Each table must add up to the published file size less the header (vocabulary and
# merges: 5-8 MB); ``test_tables_add_up_to_the_published_files`` checks that.

Q4_K, Q5_K, Q6_K, F32 = 144, 176, 210, 1024  # bytes per 256 elements


def _bytes(elements: int, per_256: int) -> int:
    return elements * per_256 // 256


def _more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def q4_k_m_table(
    *,
    n_layers: int,
    n_embd: int,
    n_ff: int,
    kv_width: int,
    n_vocab: int,
    biases: bool = False,
    llama_70b: bool = False,
) -> TensorBytes:
    """Bytes per layer of a llama-like model quantized to Q4_K_M."""
    layers = []
    for i in range(n_layers):
        more = _more_bits(i, n_layers)
        v_type = Q6_K if more else (Q5_K if llama_70b else Q4_K)
        layer = (
            2 * _bytes(n_embd * n_embd, Q4_K)  # attn_q, attn_output
            + _bytes(n_embd * kv_width, Q4_K)  # attn_k
            + _bytes(n_embd * kv_width, v_type)  # attn_v
            + 2 * _bytes(n_embd * n_ff, Q4_K)  # ffn_gate, ffn_up
            + _bytes(n_embd * n_ff, Q6_K if more else Q4_K)  # ffn_down
            + 2 * _bytes(n_embd, F32)  # attn_norm, ffn_norm
        )
        if biases:  # Qwen2: q, k and v have biases
            layer += _bytes(n_embd + 2 * kv_width, F32)
        layers.append(layer)
    return TensorBytes(
        layers=tuple(layers),
        token_embd=_bytes(n_vocab * n_embd, Q4_K),
        output=_bytes(n_vocab * n_embd, Q6_K) + _bytes(n_embd, F32),
        has_output_weight=True,
    )


LLAMA_8B = ModelShape(
    n_layers=32, n_embd=4096, n_head=32, n_kv_heads=8, head_dim=128, context_length=131072, n_vocab=128256
)
LLAMA_8B_Q4_K_M = q4_k_m_table(
    n_layers=32, n_embd=4096, n_ff=14336, kv_width=1024, n_vocab=128256
) + TensorBytes(other=64 * 4)  # Llama 3.1's rope_freqs (F32, head_dim / 2)

LLAMA_70B = ModelShape(
    n_layers=80, n_embd=8192, n_head=64, n_kv_heads=8, head_dim=128, context_length=131072, n_vocab=128256
)
LLAMA_70B_Q4_K_M = q4_k_m_table(
    n_layers=80, n_embd=8192, n_ff=28672, kv_width=1024, n_vocab=128256, llama_70b=True
) + TensorBytes(other=64 * 4)

QWEN_7B = ModelShape(
    n_layers=28, n_embd=3584, n_head=28, n_kv_heads=4, head_dim=128, context_length=32768, n_vocab=152064
)
QWEN_7B_Q4_K_M = q4_k_m_table(n_layers=28, n_embd=3584, n_ff=18944, kv_width=512, n_vocab=152064, biases=True)

# Gemma 3 270M Q4_K_M, the demo model: its tensor table as read from the GGUF the demo
# package assembles (gguf.GGUFReader, tensor n_bytes summed per blk.N). No output.weight:
# the output layer is token_embd (Q8_0) again.
GEMMA_270M = ModelShape(
    n_layers=18, n_embd=640, n_head=4, n_kv_heads=1, head_dim=256, context_length=32768, n_vocab=262144
)
_G_MORE, _G = 3_995_648, 3_596_288  # layers with Q6_K ffn_down and Q8_0 attn_v, the others
GEMMA_270M_Q4_K_M = TensorBytes(
    layers=tuple(_G_MORE if _more_bits(i, 18) else _G for i in range(18)),
    token_embd=178_257_920,
    output=2_560,
)
GEMMA_FILE, GEMMA_HEADER = 253_113_024, 6_525_120

CPU = Machine(free_ram=64 * GIB, gpu_free_vram=None)


def card(gib: float, ram_gib: float = 64) -> Machine:
    return Machine(free_ram=int(ram_gib * GIB), gpu_free_vram=int(gib * GIB))


def gib(n: int) -> float:
    return round(n / GIB, 1)


# -- the tables themselves -----------------------------------------------------


@pytest.mark.parametrize(
    ("table", "published"),
    [
        (LLAMA_8B_Q4_K_M, 4.92e9),  # bartowski/Meta-Llama-3.1-8B-Instruct-GGUF Q4_K_M: 4.92 GB
        (LLAMA_70B_Q4_K_M, 42.5e9),  # bartowski/Meta-Llama-3.1-70B-Instruct-GGUF Q4_K_M: 42.5 GB
        (QWEN_7B_Q4_K_M, 4.68e9),  # Qwen/Qwen2.5-7B-Instruct-GGUF and bartowski's Q4_K_M: 4.68 GB
    ],
)
def test_tables_add_up_to_the_published_files(table: TensorBytes, published: float) -> None:
    # the rest is the header (vocabulary and merges, 5-8 MB) and the rounding of the published size
    assert table.total == pytest.approx(published, rel=0.003)


def test_gemma_table_is_the_demo_file_less_its_header() -> None:
    assert GEMMA_270M_Q4_K_M.total == GEMMA_FILE - GEMMA_HEADER
    assert GEMMA_270M_Q4_K_M.tied_output


# -- plans -----------------------------------------------------------------------
#
# model, tensor table, card (GiB free; None: no GPU backend), context, slots, KV type
#   -> n_gpu_layers, VRAM (GiB, one decimal)
PLANS = [
    ("8B 8k on 8 GiB", LLAMA_8B, LLAMA_8B_Q4_K_M, 8, 8192, 1, "f16", 33, 5.6),
    ("8B 8k x4 on 8 GiB", LLAMA_8B, LLAMA_8B_Q4_K_M, 8, 8192, 4, "f16", 28, 7.4),
    ("8B 8k x4 q8_0 on 8 GiB", LLAMA_8B, LLAMA_8B_Q4_K_M, 8, 8192, 4, "q8_0", 33, 6.7),
    ("8B 8k on 24 GiB", LLAMA_8B, LLAMA_8B_Q4_K_M, 24, 8192, 1, "f16", 33, 5.6),
    ("8B 8k x4 on 24 GiB", LLAMA_8B, LLAMA_8B_Q4_K_M, 24, 8192, 4, "f16", 33, 8.6),
    ("70B 8k on 24 GiB", LLAMA_70B, LLAMA_70B_Q4_K_M, 24, 8192, 1, "f16", 44, 23.4),
    ("70B 8k q8_0 on 24 GiB", LLAMA_70B, LLAMA_70B_Q4_K_M, 24, 8192, 1, "q8_0", 45, 23.3),
    ("70B 8k on 80 GiB", LLAMA_70B, LLAMA_70B_Q4_K_M, 80, 8192, 1, "f16", 81, 41.8),
    ("Qwen 7B 8k on 8 GiB", QWEN_7B, QWEN_7B_Q4_K_M, 8, 8192, 1, "f16", 29, 4.8),
    ("Qwen 7B 32k x4 on 8 GiB", QWEN_7B, QWEN_7B_Q4_K_M, 8, 32768, 4, "f16", 18, 7.3),
    ("Gemma 270M 8k on 8 GiB", GEMMA_270M, GEMMA_270M_Q4_K_M, 8, 8192, 1, "f16", 19, 0.9),
    ("8B 8k CPU only", LLAMA_8B, LLAMA_8B_Q4_K_M, None, 8192, 1, "f16", 0, 0.0),
]


@pytest.mark.parametrize(
    ("label", "shape", "table", "vram", "ctx", "slots", "kv_type", "layers", "vram_gib"),
    PLANS,
    ids=[p[0] for p in PLANS],
)
def test_plan_table(
    label: str,
    shape: ModelShape,
    table: TensorBytes,
    vram: float | None,
    ctx: int,
    slots: int,
    kv_type: str,
    layers: int,
    vram_gib: float,
) -> None:
    machine = CPU if vram is None else card(vram)
    plan = plan_offload(table, shape, machine, n_ctx=ctx, num_parallel=slots, kv_type=kv_type)
    assert (plan.n_gpu_layers, gib(plan.vram)) == (layers, vram_gib)
    assert plan.fits
    if machine.gpu_free_vram is not None:
        assert plan.vram <= machine.gpu_free_vram - VRAM_RESERVE
        if not plan.full:  # one more layer would not fit
            more = plan_offload(
                table, shape, machine, n_ctx=ctx, num_parallel=slots, kv_type=kv_type, num_gpu=layers + 1
            )
            assert not more.fits


# -- what the plan adds up -------------------------------------------------------

LLAMA_8B_KV_LAYER_8K = 8192 * 8 * 128 * 2 * 2  # cells x KV width x (K, V) x f16: 32 MiB a layer
LOGITS_8B = 4 * 512 * (4096 + 128256)  # 258.5 MiB: llama.cpp's compute buffer for the 8B, flash attention on
SCORES_8B_8K = 4 * 512 * (1 + 4 * 4096 + 8192 * (1 + 32))  # 560 MiB: the same without flash attention


def test_full_offload_is_weights_kv_and_the_compute_buffer() -> None:
    plan = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), n_ctx=8192)
    weights = LLAMA_8B_Q4_K_M.total - LLAMA_8B_Q4_K_M.token_embd  # the input layer stays in RAM
    assert plan.vram == weights + 32 * LLAMA_8B_KV_LAYER_8K + LOGITS_8B
    assert (round(LOGITS_8B / MIB, 2), round(SCORES_8B_8K / MIB, 2)) == (258.5, 560.0)
    assert plan.layers_label == "33/33" and plan.full


def test_flash_attention_off_costs_the_attention_scores() -> None:
    on = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), n_ctx=8192, flash_attention=True)
    off = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), n_ctx=8192, flash_attention=False)
    assert off.vram - on.vram == SCORES_8B_8K - LOGITS_8B


def test_partial_offload_takes_the_output_layer_first_then_the_last_layers() -> None:
    table = LLAMA_8B_Q4_K_M
    plan = plan_offload(table, LLAMA_8B, card(24), n_ctx=8192, num_gpu=25)
    on_gpu = table.layers[8:]  # 24 repeating layers: blk.8 to blk.31
    copies = table.layers[0] + table.other  # op_offload copies the largest CPU layer for prompt batches
    assert plan.vram == table.output + sum(on_gpu) + 24 * LLAMA_8B_KV_LAYER_8K + LOGITS_8B + copies
    cpu_weights = table.token_embd + sum(table.layers[:8]) + table.other
    host = 4 * 512 * 4096 + 4 * 8192 * 512  # inputs: embeddings and the f32 mask
    attention = 4 * 512 * 4 * 4096 + 3 * 8192 * 512 + 4 * 512 * 32 * 128
    logits_out = 4 * 128256 * (1 + DRAFT_OUTPUTS)  # one row of logits per slot, and per draft token verified
    assert (
        plan.ram
        == cpu_weights + 8 * LLAMA_8B_KV_LAYER_8K + max(host, attention) + logits_out + FIXED_OVERHEAD
    )
    only_output = plan_offload(table, LLAMA_8B, card(24), n_ctx=8192, num_gpu=1)
    assert only_output.vram == table.output + LOGITS_8B + copies
    assert only_output.layers_label == "1/33" and only_output.reason.startswith("num_gpu 1: 1/33 layers")


def test_a_tied_output_layer_copies_the_embeddings_to_the_gpu() -> None:
    plan = plan_offload(GEMMA_270M_Q4_K_M, GEMMA_270M, card(8), n_ctx=8192, num_gpu=1)
    logits = 4 * 512 * (640 + 262144)
    assert plan.vram == GEMMA_270M_Q4_K_M.token_embd + 2_560 + logits + max(GEMMA_270M_Q4_K_M.layers)
    assert plan.ram > GEMMA_270M_Q4_K_M.token_embd  # and the input layer keeps its own in RAM


def test_more_slots_grow_only_the_kv_cache() -> None:
    one = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), n_ctx=8192)
    four = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), n_ctx=8192, num_parallel=4)
    assert four.vram - one.vram == 3 * 32 * LLAMA_8B_KV_LAYER_8K  # 3 GiB more, nothing else
    unified = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), n_ctx=8192, num_parallel=4, kv_unified=True)
    assert unified.vram == four.vram  # flash attention's buffers barely see the longer shared cache


def test_contexts_are_padded_to_256_cells_per_slot() -> None:
    exact = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), n_ctx=8192, num_parallel=2)
    ragged = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), n_ctx=8000, num_parallel=2)
    assert ragged == exact


def test_q8_0_cache_nearly_doubles_the_context_that_fits() -> None:
    def longest(kv_type: str) -> int:  # the longest context, in steps of 1024, with every layer on 8 GiB
        low, high = 1, 256
        while low < high:
            mid = (low + high + 1) // 2
            plan = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(8), n_ctx=mid * 1024, kv_type=kv_type)
            low, high = (mid, high) if plan.full else (low, mid - 1)
        return low * 1024

    f16, q8_0, q4_0 = longest("f16"), longest("q8_0"), longest("q4_0")
    assert (f16, q8_0, q4_0) == (24576, 46080, 87040)
    assert 1.8 < q8_0 / f16 < 2 / 1.0625 + 0.01  # a q8_0 cell is 1.0625/2 of an f16 one; the rest is compute


def test_cpu_only_machine_gets_no_layers_whatever_is_asked() -> None:
    plan = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, CPU, n_ctx=8192)
    assert (plan.n_gpu_layers, plan.vram, plan.reason) == (
        0,
        0,
        "CPU only: llama.cpp has no GPU backend here",
    )
    weights = LLAMA_8B_Q4_K_M.total
    logits_out = 4 * 128256 * (1 + DRAFT_OUTPUTS)
    assert plan.ram == weights + 32 * LLAMA_8B_KV_LAYER_8K + LOGITS_8B + logits_out + FIXED_OVERHEAD
    asked = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, CPU, n_ctx=8192, num_gpu=20)
    assert asked.n_gpu_layers == 0 and asked.reason.endswith("(num_gpu 20 has no effect)")


def test_explicit_num_gpu_over_the_plan_warns() -> None:
    planned = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(8), n_ctx=8192, num_parallel=4)
    assert planned.n_gpu_layers == 28
    over = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(8), n_ctx=8192, num_parallel=4, num_gpu=99)
    assert (over.n_gpu_layers, over.fits, gib(over.vram)) == (33, False, 8.6)
    assert over.reason == (
        "num_gpu 99: all 33 layers on the GPU, 8.6 GiB of 8.0 GiB free VRAM;"
        " more than fits: the load may fail (the plan would offload 28)"
    )


def test_explicit_num_gpu_under_the_plan_is_taken() -> None:
    under = plan_offload(LLAMA_70B_Q4_K_M, LLAMA_70B, card(24), n_ctx=8192, num_gpu=20)
    assert (under.n_gpu_layers, under.fits, gib(under.vram)) == (20, True, 11.4)
    assert under.reason == "num_gpu 20: 20/81 layers on the GPU, 11.4 GiB of 24.0 GiB free VRAM"
    cpu = plan_offload(LLAMA_70B_Q4_K_M, LLAMA_70B, card(24), n_ctx=8192, num_gpu=0)
    assert (cpu.n_gpu_layers, cpu.reason) == (0, "CPU only: num_gpu 0")
    auto = plan_offload(LLAMA_70B_Q4_K_M, LLAMA_70B, card(24), n_ctx=8192, num_gpu=-1)
    assert auto == plan_offload(LLAMA_70B_Q4_K_M, LLAMA_70B, card(24), n_ctx=8192)


def test_reasons_say_what_was_chosen() -> None:
    full = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), n_ctx=8192)
    assert full.reason == "all 33 layers fit in 24.0 GiB free VRAM (5.6 GiB needed)"
    partial = plan_offload(LLAMA_70B_Q4_K_M, LLAMA_70B, card(24), n_ctx=8192)
    assert partial.reason == "44/81 layers on the GPU: 23.4 GiB of 24.0 GiB free VRAM; the rest on the CPU"
    tiny_card = plan_offload(LLAMA_70B_Q4_K_M, LLAMA_70B, card(1), n_ctx=8192)
    assert tiny_card.n_gpu_layers == 0
    assert (
        tiny_card.reason == "CPU only: not even the output layer fits in 1.0 GiB free VRAM (it needs 1.6 GiB)"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kv_type": "q8_0", "flash_attention": False}, "q8_0 KV cache needs flash attention"),
        ({"kv_type": "q5"}, "unknown KV cache type 'q5'"),
        ({"num_gpu": -2}, "num_gpu must be -1"),
        ({"n_ctx": 0}, "at least 1 token"),
        ({"num_parallel": 0}, "num_parallel must be at least 1"),
        ({"compute_bytes": -1}, "compute buffer"),
    ],
)
def test_options_llama_cpp_would_refuse_are_refused(options: dict[str, object], message: str) -> None:
    kwargs: dict[str, object] = {"n_ctx": 8192} | options
    with pytest.raises(InvalidOption, match=message):
        plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), **kwargs)  # type: ignore[arg-type]


def test_quantized_cache_needs_heads_a_multiple_of_32_wide() -> None:
    narrow = ModelShape(
        n_layers=2, n_embd=64, n_head=4, n_kv_heads=4, head_dim=16, context_length=2048, n_vocab=512
    )
    with pytest.raises(InvalidOption, match="heads a multiple of 32 wide; this model's are 16"):
        plan_offload(TensorBytes(layers=(1000, 1000)), narrow, card(8), n_ctx=2048, kv_type="q8_0")


def test_measured_compute_buffer_replaces_the_estimate() -> None:
    plan = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), n_ctx=8192, compute_bytes=300 * MIB)
    estimated = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, card(24), n_ctx=8192)
    assert plan.vram - estimated.vram == 300 * MIB - LOGITS_8B


# -- a real file ---------------------------------------------------------------


def test_tiny_gguf_plans_from_its_header(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "tiny-Q8_0.gguf", quant="Q8_0")[0]
    info = read_header(path, label="tiny")
    table = info.tensor_bytes
    assert len(table.layers) == info.shape.n_layers == 2 and table.has_output_weight
    plan = plan_offload(table, info.shape, card(8), n_ctx=2048)
    assert plan.layers_label == "3/3"
    kv = 2 * 2048 * (1 * 64) * 2 * 2  # 2 layers, 2048 cells, one 64-wide KV head, K and V, f16
    logits = 4 * 512 * (128 + 512)
    attention = 4 * 512 * 4 * 128 + 3 * 2048 * 512 + 4 * 512 * 2 * 64
    assert plan.vram == sum(table.layers) + table.output + table.other + kv + max(logits, attention)
    assert plan_offload(table, info.shape, CPU, n_ctx=2048).n_gpu_layers == 0


# -- defaults ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "table", "machine", "expected"),
    [
        (LLAMA_8B, LLAMA_8B_Q4_K_M, card(24), 4),  # 4 x 8k and the weights fit whole
        (LLAMA_8B, LLAMA_8B_Q4_K_M, card(8), 1),  # 4 x 8k would not
        (LLAMA_70B, LLAMA_70B_Q4_K_M, card(24), 1),  # nor does the 70B with one
        (LLAMA_8B, LLAMA_8B_Q4_K_M, CPU, 4),  # 64 GiB of RAM
        (LLAMA_8B, LLAMA_8B_Q4_K_M, Machine(free_ram=8 * GIB, gpu_free_vram=None), 1),
    ],
)
def test_default_slots_are_4_when_they_fit_whole_else_1(
    shape: ModelShape, table: TensorBytes, machine: Machine, expected: int
) -> None:
    assert default_num_parallel(table, shape, machine, n_ctx=8192) == expected


@pytest.mark.parametrize(
    ("shape", "table", "machine", "expected"),
    [
        (LLAMA_8B, LLAMA_8B_Q4_K_M, CPU, 4096),
        (LLAMA_8B, LLAMA_8B_Q4_K_M, card(8), 4096),
        (LLAMA_8B, LLAMA_8B_Q4_K_M, card(24), 32768),
        (LLAMA_8B, LLAMA_8B_Q4_K_M, card(48), 131072),  # the 256k tier, capped at the trained 128k
        (LLAMA_70B, LLAMA_70B_Q4_K_M, card(48), 4096),  # 128k and 32k would not fit whole
        (LLAMA_70B, LLAMA_70B_Q4_K_M, card(78), 32768),  # the H100 here: 128k would need 79.3 GiB
        (GEMMA_270M, GEMMA_270M_Q4_K_M, card(24), 32768),  # trained for 32k
    ],
)
def test_default_context_follows_ollamas_vram_tiers(
    shape: ModelShape, table: TensorBytes, machine: Machine, expected: int
) -> None:
    assert default_context_length(table, shape, machine) == expected


def test_defaults_fit_together() -> None:
    machine = card(24)
    ctx = default_context_length(LLAMA_8B_Q4_K_M, LLAMA_8B, machine)
    slots = default_num_parallel(LLAMA_8B_Q4_K_M, LLAMA_8B, machine, n_ctx=ctx)
    plan = plan_offload(LLAMA_8B_Q4_K_M, LLAMA_8B, machine, n_ctx=ctx, num_parallel=slots)
    assert (ctx, slots, plan.full) == (32768, 4, True)
    assert gib(plan.vram) == 20.6  # 4 x 32k of f16 KV (16 GiB) and the weights


# -- the shared memory estimate --------------------------------------------------


def test_estimate_memory_counts_every_slot_and_the_cache_type() -> None:
    one = estimate_memory(0, LLAMA_8B, 8192)
    assert estimate_memory(0, LLAMA_8B, 8192, num_parallel=4) - one == 3 * 1024 * MIB
    assert kv_cache_bytes(LLAMA_8B, 8192, num_parallel=4, kv_type="q8_0") == 4 * 1024 * MIB * 17 // 32
    assert kv_cache_bytes(LLAMA_8B, 8192, kv_type="q4_0") == 1024 * MIB * 9 // 32
    with pytest.raises(ValueError, match="num_parallel"):
        estimate_memory(0, LLAMA_8B, 8192, num_parallel=0)


def test_plan_is_a_plain_value() -> None:
    plan = OffloadPlan(n_gpu_layers=10, n_layers=32, vram=1, ram=2, reason="r")
    assert not plan.full and plan.layers_label == "10/33" and plan.fits
