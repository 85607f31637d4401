"""Quant names, the memory estimate and the pick: pure functions, so tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import NoGGUFInRepo, UnknownQuant
from engine.machine.memory import DEFAULT_CONTEXT, Machine, estimate_memory, kv_cache_bytes
from engine.machine.quant import (
    QUANTS,
    Variant,
    normalize_quant,
    pick_variant,
    quality_rank,
    quant_from_file_type,
    quant_from_filename,
)
from engine.shape import ModelShape
from engine.units import format_gib, format_size

GiB = 1024**3
MiB = 1024**2

LLAMA3_8B = ModelShape(
    n_layers=32,
    n_embd=4096,
    n_head=32,
    n_kv_heads=8,
    head_dim=128,
    context_length=8192,
    n_vocab=128256,
)

# bartowski/Meta-Llama-3-8B-Instruct-GGUF file sizes.
SIZES: dict[str, int] = {
    "F16": 16_068_891_328,
    "Q8_0": 8_540_775_616,
    "Q6_K": 6_596_006_592,
    "Q5_K_M": 5_732_987_072,
    "Q5_K_S": 5_599_293_632,
    "Q4_K_M": 4_920_734_400,
    "Q4_K_S": 4_692_669_632,
    "IQ4_XS": 4_447_667_392,
    "Q3_K_L": 4_321_957_056,
    "Q3_K_M": 4_018_917_568,
    "IQ3_M": 3_784_823_488,
    "Q3_K_S": 3_664_514_240,
    "Q2_K": 3_179_133_120,
    "IQ2_M": 2_948_494_528,
}
ALL = tuple(SIZES)


def variants(*quants: str) -> list[Variant]:
    return [Variant(q, SIZES[q]) for q in quants]


def need(quant: str) -> int:
    return estimate_memory(SIZES[quant], LLAMA3_8B)


def cpu(ram_gib: float) -> Machine:
    return Machine(free_ram=int(ram_gib * GiB), gpu_free_vram=None)


def gpu(vram_gib: float, ram_gib: float = 64) -> Machine:
    return Machine(free_ram=int(ram_gib * GiB), gpu_free_vram=int(vram_gib * GiB))


# --- quant names ------------------------------------------------------------


def test_quants_are_unique_and_ranked_in_order() -> None:
    assert len(set(QUANTS)) == len(QUANTS)
    assert [quality_rank(q) for q in QUANTS] == list(range(len(QUANTS)))


@pytest.mark.parametrize(
    ("better", "worse"),
    [
        ("F32", "BF16"),
        ("BF16", "F16"),
        ("F16", "Q8_0"),
        ("Q8_0", "Q6_K_L"),
        ("Q6_K_L", "Q6_K"),
        ("Q6_K", "Q5_K_L"),
        ("Q5_K_L", "Q5_K_M"),
        ("Q5_K_M", "Q5_K_S"),
        ("Q5_K_S", "Q5_1"),
        ("Q5_1", "Q5_0"),
        ("Q5_0", "Q4_K_L"),
        ("Q4_K_XL", "Q4_K_M"),
        ("Q4_K_L", "Q4_K_M"),
        ("Q4_K_M", "Q4_K_S"),
        ("Q4_K_S", "IQ4_XS"),
        ("IQ4_NL", "IQ4_XS"),
        ("IQ4_XS", "Q4_0"),
        ("Q4_1", "Q4_0"),
        ("Q4_0", "MXFP4"),
        ("MXFP4", "Q3_K_L"),
        ("Q3_K_XL", "Q3_K_L"),
        ("Q3_K_L", "Q3_K_M"),
        ("Q3_K_M", "IQ3_M"),
        ("IQ3_M", "Q3_K_S"),
        ("Q3_K_S", "IQ3_XXS"),
        ("Q2_K_L", "Q2_K"),
        ("Q2_K", "IQ2_M"),
        ("IQ2_M", "IQ2_XXS"),
        ("IQ2_XXS", "IQ1_M"),
        ("IQ1_M", "IQ1_S"),
        ("IQ1_S", "TQ1_0"),
        ("Q8_K_XL", "Q8_0"),
        ("F16", "Q8_K_XL"),
    ],
)
def test_quality_order(better: str, worse: str) -> None:
    assert quality_rank(better) < quality_rank(worse)


@pytest.mark.parametrize(
    ("quant", "same_as"),
    [
        ("q4_k_m", "Q4_K_M"),
        ("UD-Q4_K_XL", "Q4_K_XL"),
        ("ud-iq1_s", "IQ1_S"),
        ("FP16", "F16"),
        ("Q4_K", "Q4_K_M"),
        ("MXFP4_MOE", "MXFP4"),
    ],
)
def test_quality_rank_ignores_case_prefix_and_aliases(quant: str, same_as: str) -> None:
    assert quality_rank(quant) == quality_rank(same_as)


@pytest.mark.parametrize("quant", ["Q4_0_4_4", "IQ4_KS_R4", "whatever", ""])
def test_unknown_quants_rank_after_every_known_one(quant: str) -> None:
    assert quality_rank(quant) == len(QUANTS)
    assert all(quality_rank(q) < quality_rank(quant) for q in QUANTS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("q4_k_m", "Q4_K_M"), (" Q8_0 ", "Q8_0"), ("ud-q4_k_xl", "UD-Q4_K_XL"), ("bf16", "BF16")],
)
def test_normalize_quant(text: str, expected: str) -> None:
    assert normalize_quant(text) == expected


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        # from the brief
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("model.q8_0.gguf", "Q8_0"),
        ("Q8_0/Model-Q8_0-00001-of-00002.gguf", "Q8_0"),
        ("gemma-3-270m-it-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
        ("model-f16.gguf", "F16"),
        ("ggml-model-bf16.gguf", "BF16"),
        ("mmproj-model-f16.gguf", "F16"),
        ("model.gguf", None),
        # bartowski
        ("Meta-Llama-3.1-8B-Instruct-Q6_K_L.gguf", "Q6_K_L"),
        ("Meta-Llama-3.1-8B-Instruct-IQ4_XS.gguf", "IQ4_XS"),
        ("Meta-Llama-3.1-8B-Instruct-IQ2_XXS.gguf", "IQ2_XXS"),
        ("Meta-Llama-3.1-8B-Instruct-Q3_K_XL.gguf", "Q3_K_XL"),
        ("Meta-Llama-3.1-8B-Instruct-f32.gguf", "F32"),
        ("Qwen2.5-7B-Instruct-Q4_0_4_4.gguf", "Q4_0_4_4"),
        (
            "Meta-Llama-3.1-70B-Instruct-Q8_0/Meta-Llama-3.1-70B-Instruct-Q8_0-00001-of-00002.gguf",
            "Q8_0",
        ),
        ("Qwen2-VL-7B-Instruct-Q5_K_S.gguf", "Q5_K_S"),
        # unsloth
        ("Qwen3-8B-UD-Q8_K_XL.gguf", "UD-Q8_K_XL"),
        ("gemma-3-270m-it-BF16.gguf", "BF16"),
        ("gemma-3-4b-it-GGUF/mmproj-F16.gguf", "F16"),
        ("UD-Q2_K_XL/DeepSeek-R1-0528-UD-Q2_K_XL-00001-of-00006.gguf", "UD-Q2_K_XL"),
        ("DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00003-of-00003.gguf", "UD-IQ1_S"),
        ("BF16/Qwen3-235B-A22B-BF16-00001-of-00010.gguf", "BF16"),
        ("Qwen3-30B-A3B-UD-TQ1_0.gguf", "UD-TQ1_0"),
        ("gpt-oss-20b-F16.gguf", "F16"),
        # TheBloke
        ("llama-2-7b-chat.Q4_K_M.gguf", "Q4_K_M"),
        ("mistral-7b-instruct-v0.2.Q5_K_S.gguf", "Q5_K_S"),
        ("mixtral-8x7b-instruct-v0.1.Q3_K_M.gguf", "Q3_K_M"),
        ("tinyllama-1.1b-chat-v1.0.Q8_0.gguf", "Q8_0"),
        ("phi-2.Q2_K.gguf", "Q2_K"),
        # lmstudio-community
        ("Meta-Llama-3-8B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("gemma-2-9b-it-IQ4_NL.gguf", "IQ4_NL"),
        ("Qwen2.5-Coder-32B-Instruct-Q3_K_L.gguf", "Q3_K_L"),
        # ggml-org
        ("gemma-3-1b-it-Q4_K_M.gguf", "Q4_K_M"),
        ("gpt-oss-20b-mxfp4.gguf", "MXFP4"),
        ("SmolVLM-256M-Instruct-Q8_0.gguf", "Q8_0"),
        ("mmproj-SmolVLM-256M-Instruct-f16.gguf", "F16"),
        # Qwen, Microsoft, others
        ("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", "Q4_K_M"),
        ("Phi-3-mini-4k-instruct-fp16.gguf", "F16"),
        ("Phi-3-mini-4k-instruct-q4.gguf", None),
        ("DeepSeek-R1-0528-IQ4_KS_R4-00001-of-00009.gguf", "IQ4_KS_R4"),
        ("Q4_K_M/model-00001-of-00002.gguf", "Q4_K_M"),
        ("IQ2_XS/sub/model-00002-of-00002.gguf", "IQ2_XS"),
        ("Q8_0-to-Q4_K_M.gguf", "Q4_K_M"),
        ("some\\windows\\path\\model-Q6_K.gguf", "Q6_K"),
        ("MODEL-Q4_K_M.GGUF", "Q4_K_M"),
        # look-alikes that are not quants
        ("Qwen2-7B-Instruct.gguf", None),
        ("Mistral-7B-v0.3.gguf", None),
        ("model-00001-of-00002.gguf", None),
        ("xQ4_K_M.gguf", None),
        ("model-Q4_K_M-imat.gguf", "Q4_K_M"),
        ("model-Q4_K_M_imatrix.gguf", "Q4_K_M"),
        ("model-\u212a-Q4_\u212a_M.gguf", None),
    ],
)
def test_quant_from_filename(filename: str, expected: str | None) -> None:
    assert quant_from_filename(filename) == expected


@given(st.text())
def test_quant_from_filename_never_raises_and_returns_a_clean_name(text: str) -> None:
    quant = quant_from_filename(text)
    assert quant is None or (quant == normalize_quant(quant) and quant.isascii() and quant.strip())


@pytest.mark.parametrize(
    ("file_type", "expected"),
    [
        (0, "F32"),
        (1, "F16"),
        (2, "Q4_0"),
        (7, "Q8_0"),
        (15, "Q4_K_M"),
        (18, "Q6_K"),
        (30, "IQ4_XS"),
        (32, "BF16"),
        (38, "MXFP4"),
        (15 | 1024, "Q4_K_M"),  # LLAMA_FTYPE_GUESSED
        (4, None),
        (33, None),
        (999, None),
        (-1, None),
    ],
)
def test_quant_from_file_type(file_type: int, expected: str | None) -> None:
    assert quant_from_file_type(file_type) == expected


def test_file_type_table_matches_the_gguf_package() -> None:
    gguf = pytest.importorskip("gguf")
    for member in gguf.LlamaFileType:
        if member.name == "GUESSED":
            continue
        name = member.name.removeprefix("MOSTLY_").removeprefix("ALL_").removesuffix("_MOE")
        assert quant_from_file_type(member.value) == name
        assert name in QUANTS, f"{name} has no quality rank"


# --- memory estimate --------------------------------------------------------


def test_kv_cache_of_llama3_8b_at_4096_is_512_mib() -> None:
    assert kv_cache_bytes(LLAMA3_8B, 4096) == 512 * MiB


def test_estimate_memory_adds_kv_fixed_overhead_and_logits() -> None:
    weights = 4_920_734_400
    expected = weights + 512 * MiB + 256 * MiB + 128256 * 512 * 4
    assert estimate_memory(weights, LLAMA3_8B) == expected
    assert estimate_memory(weights, LLAMA3_8B, DEFAULT_CONTEXT) == expected


def test_estimate_memory_scales_kv_with_context() -> None:
    at_4k = estimate_memory(0, LLAMA3_8B, 4096)
    assert estimate_memory(0, LLAMA3_8B, 8192) - at_4k == 512 * MiB


@pytest.mark.parametrize(("trained", "used"), [(2048, 2048), (4096, 4096), (131072, 4096), (0, 4096)])
def test_default_context_is_4096_or_the_trained_context_if_shorter(trained: int, used: int) -> None:
    shape = ModelShape(
        n_layers=2, n_embd=64, n_head=4, n_kv_heads=2, head_dim=16, context_length=trained, n_vocab=0
    )
    assert estimate_memory(0, shape) == kv_cache_bytes(shape, used) + 256 * MiB


def test_estimate_memory_refuses_a_non_positive_context() -> None:
    with pytest.raises(ValueError):
        estimate_memory(0, LLAMA3_8B, 0)


def test_machine_has_gpu() -> None:
    assert not Machine(free_ram=GiB, gpu_free_vram=None).has_gpu
    assert Machine(free_ram=GiB, gpu_free_vram=0).has_gpu


# --- the pick ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "available", "machine", "picked"),
    [
        ("cpu plenty of RAM", ALL, cpu(22), "Q4_K_M"),
        ("cpu just enough for Q4_K_M", ALL, cpu(5.6), "Q4_K_M"),
        ("cpu too little for Q4_K_M", ALL, cpu(5.5), "Q4_K_S"),
        ("cpu little RAM", ALL, cpu(4.8), "Q3_K_M"),
        ("cpu very little RAM", ALL, cpu(4.0), "Q2_K"),
        ("cpu never bigger than Q4_K_M", ALL, cpu(500), "Q4_K_M"),
        ("no Q4_K_M in repo", ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_S", "Q3_K_M"), cpu(22), "Q4_K_S"),
        ("no Q4_K_M, little RAM", ("Q8_0", "Q6_K", "Q4_K_S", "IQ3_M", "Q2_K"), cpu(5.0), "IQ3_M"),
        ("only F16 and Q8_0", ("F16", "Q8_0"), cpu(22), "Q8_0"),
        ("only F16 and Q8_0, lots of RAM", ("F16", "Q8_0"), cpu(100), "Q8_0"),
        ("only big ones", ("F16", "Q8_0", "Q6_K", "Q5_K_M"), cpu(22), "Q5_K_M"),
        ("gpu big VRAM", ALL, gpu(24), "Q8_0"),
        ("gpu big VRAM, little RAM", ALL, gpu(24, ram_gib=2), "Q8_0"),
        ("gpu 8 GiB", ALL, gpu(8), "Q6_K"),
        ("gpu 7 GiB", ALL, gpu(7), "Q5_K_M"),
        ("gpu 6.3 GiB", ALL, gpu(6.3), "Q5_K_S"),
        ("gpu 4 GiB", ALL, gpu(4), "Q2_K"),
        ("gpu too small falls back to CPU", ALL, gpu(2, ram_gib=16), "Q4_K_M"),
        ("gpu zero VRAM falls back to CPU", ALL, gpu(0, ram_gib=16), "Q4_K_M"),
        ("gpu with only float weights", ("F16",), gpu(24), "F16"),
        ("nothing fits on CPU", ALL, cpu(2), "IQ2_M"),
        ("nothing fits anywhere", ALL, gpu(1, ram_gib=2), "IQ2_M"),
        ("nothing fits, only F16/Q8_0", ("F16", "Q8_0"), cpu(8), "Q8_0"),
    ],
)
def test_pick(case: str, available: tuple[str, ...], machine: Machine, picked: str) -> None:
    choice = pick_variant(variants(*reversed(available)), LLAMA3_8B, machine)
    assert choice.variant.quant == picked, case
    assert choice.need == need(picked)
    assert choice.reason.startswith(f"picked {picked} ({format_size(SIZES[picked])}): ")


def test_gpu_never_picks_float_weights_while_a_quant_exists() -> None:
    same = [Variant("BF16", 16 * GiB), Variant("F16", 16 * GiB), Variant("Q8_0", 8 * GiB)]
    assert pick_variant(same, LLAMA3_8B, gpu(80)).variant.quant == "Q8_0"
    floats = [Variant("F16", 16 * GiB), Variant("BF16", 16 * GiB)]
    assert pick_variant(floats, LLAMA3_8B, gpu(80)).variant.quant == "BF16"


def test_gpu_prefers_q8_0_to_the_bigger_dynamic_q8() -> None:
    available = [Variant("UD-Q8_K_XL", 10 * GiB), Variant("Q8_0", 8 * GiB), Variant("Q6_K", 6 * GiB)]
    assert pick_variant(available, LLAMA3_8B, gpu(80)).variant.quant == "Q8_0"


def test_unsloth_dynamic_quant_wins_on_gpu_but_not_on_cpu() -> None:
    available = [Variant("Q4_K_M", 5 * GiB), Variant("UD-Q4_K_XL", 5_500 * MiB), Variant("Q3_K_M", 4 * GiB)]
    assert pick_variant(available, LLAMA3_8B, gpu(8)).variant.quant == "UD-Q4_K_XL"
    assert pick_variant(available, LLAMA3_8B, cpu(64)).variant.quant == "Q4_K_M"


def test_pick_returns_the_callers_variant_unchanged() -> None:
    mine = Variant("q4_k_m", SIZES["Q4_K_M"])
    assert pick_variant([mine], LLAMA3_8B, cpu(22)).variant is mine


@pytest.mark.parametrize(
    ("machine", "available", "reason"),
    [
        (cpu(22), ALL, "picked Q4_K_M (4.9 GB): CPU only, fits in 22.0 GiB free RAM"),
        (gpu(8), ALL, "picked Q6_K (6.6 GB): fits fully in 8.0 GiB free VRAM"),
        (gpu(23.5), ALL, "picked Q8_0 (8.5 GB): fits fully in 23.5 GiB free VRAM"),
        (
            gpu(2, ram_gib=16),
            ALL,
            "picked Q4_K_M (4.9 GB): none fits in 2.0 GiB free VRAM; fits in 16.0 GiB free RAM",
        ),
        (cpu(2), ALL, "picked IQ2_M (2.9 GB): the smallest; needs 3.7 GiB but only 2.0 GiB free RAM"),
        (
            gpu(1, ram_gib=2),
            ("Q8_0", "Q2_K"),
            "picked Q2_K (3.2 GB): the smallest; needs 4.0 GiB but only 2.0 GiB free RAM"
            " and 1.0 GiB free VRAM",
        ),
    ],
)
def test_reason_strings(machine: Machine, available: tuple[str, ...], reason: str) -> None:
    assert pick_variant(variants(*available), LLAMA3_8B, machine).reason == reason


@pytest.mark.parametrize(
    ("requested", "machine", "reason"),
    [
        ("q8_0", cpu(4), "picked Q8_0 (8.5 GB): as requested; needs 8.9 GiB but only 4.0 GiB free RAM"),
        ("Q8_0", cpu(22), "picked Q8_0 (8.5 GB): as requested; CPU only, fits in 22.0 GiB free RAM"),
        ("f16", gpu(24), "picked F16 (16 GB): as requested; fits fully in 24.0 GiB free VRAM"),
        (
            "Q8_0",
            gpu(4, ram_gib=22),
            "picked Q8_0 (8.5 GB): as requested; too big for 4.0 GiB free VRAM, fits in 22.0 GiB free RAM",
        ),
        ("iq2_m", gpu(80), "picked IQ2_M (2.9 GB): as requested; fits fully in 80.0 GiB free VRAM"),
    ],
)
def test_explicit_quant_wins_even_if_it_does_not_fit(requested: str, machine: Machine, reason: str) -> None:
    choice = pick_variant(variants(*ALL), LLAMA3_8B, machine, quant=requested)
    assert choice.variant.quant == normalize_quant(requested)
    assert choice.reason == reason


def test_unknown_explicit_quant_lists_the_available_ones_best_first() -> None:
    with pytest.raises(UnknownQuant) as error:
        pick_variant(variants("Q2_K", "Q8_0", "Q4_K_M"), LLAMA3_8B, cpu(22), quant="q5_k_m")
    assert str(error.value) == "no Q5_K_M in this repository; available: Q8_0, Q4_K_M, Q2_K"


def test_explicit_quant_without_the_ud_prefix_finds_the_dynamic_file() -> None:
    available = [Variant("UD-Q4_K_XL", 5 * GiB), Variant("Q4_K_M", 5 * GiB)]
    choice = pick_variant(available, LLAMA3_8B, cpu(22), quant="q4_k_xl")
    assert choice.variant.quant == "UD-Q4_K_XL"


def test_explicit_quant_matches_exactly_before_the_ud_fallback() -> None:
    available = [Variant("UD-Q4_K_M", 5 * GiB), Variant("Q4_K_M", 5 * GiB)]
    assert pick_variant(available, LLAMA3_8B, cpu(22), quant="Q4_K_M").variant.quant == "Q4_K_M"


def test_pick_with_a_longer_context_needs_more() -> None:
    long = pick_variant(variants(*ALL), LLAMA3_8B, cpu(22), n_ctx=8192)
    assert long.need == need("Q4_K_M") + 512 * MiB
    assert pick_variant(variants(*ALL), LLAMA3_8B, cpu(6), n_ctx=8192).variant.quant == "Q4_K_S"


def test_pick_from_nothing_says_there_are_no_gguf_files() -> None:
    with pytest.raises(NoGGUFInRepo):
        pick_variant([], LLAMA3_8B, cpu(22))


_variant = st.builds(
    Variant,
    quant=st.sampled_from([*QUANTS, "UD-Q4_K_XL", "UD-IQ1_S", "Q4_0_4_4", "mystery"]),
    size=st.integers(min_value=1, max_value=200 * GiB),
)
_machine = st.builds(
    Machine,
    free_ram=st.integers(min_value=0, max_value=256 * GiB),
    gpu_free_vram=st.none() | st.integers(min_value=0, max_value=160 * GiB),
)


@given(st.lists(_variant, min_size=1, max_size=12), _machine)
def test_pick_always_returns_one_of_the_variants_and_a_fit_when_there_is_one(
    available: list[Variant], machine: Machine
) -> None:
    choice = pick_variant(available, LLAMA3_8B, machine)
    assert choice.variant in available
    assert choice.need == estimate_memory(choice.variant.size, LLAMA3_8B)
    assert choice.reason.startswith(f"picked {normalize_quant(choice.variant.quant)} (")
    limit = max(machine.free_ram, machine.gpu_free_vram or 0)
    fits = [v for v in available if estimate_memory(v.size, LLAMA3_8B) <= limit]
    if fits:
        assert choice.need <= limit
    else:
        assert choice.variant.size == min(v.size for v in available)


# --- units ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1 KB"),
        (170_000, "170 KB"),
        (250_000_000, "250 MB"),
        (1_500_000, "1.5 MB"),
        (4_920_734_400, "4.9 GB"),
        (16_068_891_328, "16 GB"),
        (2_000_000_000_000, "2 TB"),
        (-1_500_000, "-1.5 MB"),
    ],
)
def test_format_size_matches_ollama(n: int, text: str) -> None:
    assert format_size(n) == text


@pytest.mark.parametrize(("n", "text"), [(22 * GiB, "22.0 GiB"), (GiB // 2, "0.5 GiB"), (0, "0.0 GiB")])
def test_format_gib(n: int, text: str) -> None:
    assert format_gib(n) == text
