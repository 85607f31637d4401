"""A vision projector in the memory plan: its weights and compute buffer go with the first GPU layer (or
stay in RAM), the images a worker keeps are host memory, and a non-causal image is one ubatch; the
compute buffer estimate is checked against what llama.cpp's clip.cpp reserves."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from engine.machine.memory import Machine
from engine.machine.offload import plan_offload
from engine.machine.projector import CACHED_IMAGES, ProjectorCost, projector_cost
from engine.options import LoadOptions
from engine.store.gguf_io import read_header
from engine.store.projector import read_projector
from engine.units import GIB, MIB
from tests.support.tiny_gguf import N_EMBD, write_tiny_gguf
from tests.support.tiny_mmproj import IMAGE_TOKENS, TINY, Tower, write_tiny_mmproj

TINY_GRAPH = 4 * 3 * 28 * 28 + 2 * 3 * 4 * 14 * 14  # the f32 image and its f16 patches: 14,112 bytes


def tiny_cost(tmp_path: Path, tower: Tower = TINY) -> tuple[ProjectorCost, Path]:
    path = write_tiny_mmproj(tmp_path / f"mmproj-{tower.image_size}-{tower.width}.gguf", tower=tower)
    return projector_cost(read_projector(path), path.stat().st_size), path


def test_the_tiny_projector_costs_its_file_its_image_stage_and_its_four_tokens(tmp_path: Path) -> None:
    cost, path = tiny_cost(tmp_path)
    assert cost.weights == path.stat().st_size
    assert cost.image_tokens == IMAGE_TOKENS == 4 and cost.n_embd == N_EMBD and not cost.non_causal
    assert cost.graph == TINY_GRAPH  # larger than its one layer's activations: 4 * 5 * (128 + 5 * 64)
    assert cost.device == cost.weights + TINY_GRAPH
    assert cost.cache == CACHED_IMAGES * 4 * N_EMBD * 4


def test_patches_merge_and_gemma3_images_are_non_causal(tmp_path: Path) -> None:
    info = dataclasses.replace(
        read_projector(write_tiny_mmproj(tmp_path / "m.gguf")),
        projector_type="gemma3",
        image_size=896,
        patch_size=14,
        width=1152,
        feed_forward=4304,
        heads=16,
        projection_dim=2560,
    )
    gemma = projector_cost(info, 851 * MIB)
    assert gemma.image_tokens == 256 and gemma.non_causal  # 64 x 64 patches, pooled 4 x 4
    assert gemma.graph == 4 * 4096 * (4304 + 5 * 1152)  # the layers' activations, flash attention on
    scores = projector_cost(info, 851 * MIB, flash_attention=False).graph - gemma.graph
    assert scores == 4 * 4096 * 4096 * 16  # Ollama's term: every head's scores


@pytest.mark.parametrize(
    "tower", [Tower(), Tower(image_size=336, width=256, ff=1024, layers=2, heads=4)], ids=["tiny", "576"]
)
def test_the_estimate_covers_what_clip_reserves(tmp_path: Path, tower: Tower) -> None:
    """clip.cpp logs its compute buffer when it reserves it (warmup); the plan's is at least that."""
    import llama_cpp
    from llama_cpp import mtmd_cpp

    from engine.runtime.llama.log import LLAMA_LOG, route_mtmd_log

    route_mtmd_log()
    cost, path = tiny_cost(tmp_path, tower)
    text = write_tiny_gguf(tmp_path / "tiny-Q8_0.gguf")[0]
    model = llama_cpp.llama_model_load_from_file(str(text).encode(), llama_cpp.llama_model_default_params())
    params = mtmd_cpp.mtmd_context_params_default()
    params.use_gpu, params.n_threads, params.print_timings, params.warmup = False, 1, False, True
    LLAMA_LOG.clear()
    ctx = mtmd_cpp.mtmd_init_from_file(str(path).encode(), model, params)
    try:
        assert ctx
        found = [re.search(r"CPU compute buffer size = +([\d.]+) MiB", line) for line in LLAMA_LOG]
        (logged,) = [float(m.group(1)) * MIB for m in found if m]
    finally:
        mtmd_cpp.mtmd_free(ctx)
        llama_cpp.llama_model_free(model)
    assert logged - 0.005 * MIB <= cost.graph <= 1.5 * logged + 0.005 * MIB  # the log rounds to 0.01 MiB


def test_the_projector_goes_with_the_first_gpu_layer_or_stays_in_ram(tmp_path: Path) -> None:
    cost, _ = tiny_cost(tmp_path)
    info = read_header(write_tiny_gguf(tmp_path / "tiny-Q8_0.gguf")[0], label="tiny")
    gpu = Machine(free_ram=64 * GIB, gpu_free_vram=8 * GIB)
    for num_gpu in (None, 1, 0):
        bare = plan_offload(info.tensor_bytes, info.shape, gpu, n_ctx=2048, num_gpu=num_gpu)
        seeing = plan_offload(info.tensor_bytes, info.shape, gpu, n_ctx=2048, num_gpu=num_gpu, projector=cost)
        assert seeing.n_gpu_layers == bare.n_gpu_layers
        if bare.n_gpu_layers:  # mtmd loads it on the GPU when any layer is there
            assert (seeing.vram - bare.vram, seeing.ram - bare.ram) == (cost.device, cost.cache)
        else:
            assert (seeing.vram - bare.vram, seeing.ram - bare.ram) == (0, cost.device + cost.cache)
    cpu = Machine(free_ram=64 * GIB, gpu_free_vram=None)
    bare = plan_offload(info.tensor_bytes, info.shape, cpu, n_ctx=2048)
    seeing = plan_offload(info.tensor_bytes, info.shape, cpu, n_ctx=2048, projector=cost)
    assert seeing.ram - bare.ram == cost.device + cost.cache and seeing.vram == bare.vram == 0


def test_a_card_with_room_for_the_model_but_not_its_projector_takes_fewer_layers(tmp_path: Path) -> None:
    info = read_header(write_tiny_gguf(tmp_path / "tiny-Q8_0.gguf")[0], label="tiny")
    big = ProjectorCost(weights=600 * MIB, graph=100 * MIB, image_tokens=576, n_embd=N_EMBD)
    whole = plan_offload(info.tensor_bytes, info.shape, Machine(64 * GIB, 8 * GIB), n_ctx=2048)
    assert whole.full
    card = Machine(64 * GIB, whole.vram + 457 * MIB + 200 * MIB)  # the model fits; its projector does not
    assert plan_offload(info.tensor_bytes, info.shape, card, n_ctx=2048).full
    plan = plan_offload(info.tensor_bytes, info.shape, card, n_ctx=2048, projector=big)
    assert plan.n_gpu_layers == 0 and "CPU only" in plan.reason
    asked = plan_offload(info.tensor_bytes, info.shape, card, n_ctx=2048, num_gpu=3, projector=big)
    assert not asked.fits  # the fit check counts it: num_gpu all of them may fail to load


def test_a_non_causal_image_longer_than_a_ubatch_grows_the_graph(tmp_path: Path) -> None:
    info = read_header(write_tiny_gguf(tmp_path / "tiny-Q8_0.gguf")[0], label="tiny")
    gpu = Machine(free_ram=64 * GIB, gpu_free_vram=8 * GIB)
    causal = ProjectorCost(weights=0, graph=0, image_tokens=1024, n_embd=N_EMBD)
    plans = [
        plan_offload(
            info.tensor_bytes, info.shape, gpu, n_ctx=4096, projector=dataclasses.replace(causal, **k)
        )
        for k in ({}, {"non_causal": True}, {"non_causal": True, "image_tokens": 256})
    ]
    assert plans[1].vram > plans[0].vram == plans[2].vram  # 1024 tokens in one ubatch; 256 fit in 512


def test_a_vision_model_is_planned_with_its_projector(tmp_path: Path) -> None:
    from engine import Engine
    from engine.runtime import loader
    from engine.store.model_store import Store

    text = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    mmproj = write_tiny_mmproj(tmp_path / "mmproj.gguf")
    engine = Engine(tmp_path / "home", machine=lambda: Machine(free_ram=16 * GIB, gpu_free_vram=None))
    try:
        made = engine.create("eyes", f"FROM {text}\nFROM {mmproj}\n")
        plain = engine.create("plain", f"FROM {text}\n")
    finally:
        engine.close()
    store = Store(tmp_path / "home")
    cost = loader.projector_cost(store, made, LoadOptions())
    assert cost is not None and cost.weights == mmproj.stat().st_size and cost.image_tokens == IMAGE_TOKENS
    assert loader.projector_cost(store, plain, LoadOptions()) is None
    # the projector is no longer counted as a tensor of the model's: once, apart
    assert loader.tensor_bytes(store, made) == loader.tensor_bytes(store, plain)
    cpu = Machine(free_ram=16 * GIB, gpu_free_vram=None)
    tensors = loader.tensor_bytes(store, made)
    _, seeing = loader.resolve(made, tensors, cpu, LoadOptions(), projector=cost)
    _, blind = loader.resolve(made, tensors, cpu, LoadOptions())
    assert seeing.ram - blind.ram == cost.device + cost.cache


def test_the_plan_counts_as_many_cached_images_as_a_worker_keeps() -> None:
    from engine.runtime.llama import vision

    assert vision.CACHED_IMAGES == CACHED_IMAGES


def test_a_pull_counts_the_projector_it_fetches_in_each_variants_need() -> None:
    from engine.machine.memory import estimate_memory
    from engine.machine.quant import Variant, pick_variant
    from engine.shape import ModelShape

    gemma_4b = ModelShape(
        34, 2560, 8, 4, 256, 131_072, 262_208
    )  # layers, width, heads, kv heads, head, ctx, vocab
    q8, q4 = Variant("Q8_0", 4_130 * MIB), Variant("Q4_K_M", 2_490 * MIB)
    assert (
        estimate_memory(q8.size, gemma_4b, projector=851 * MIB)
        == estimate_memory(q8.size, gemma_4b) + 851 * MIB
    )
    card = Machine(free_ram=64 * GIB, gpu_free_vram=estimate_memory(q8.size, gemma_4b) + 100 * MIB)
    assert pick_variant([q8, q4], gemma_4b, card).variant is q8
    assert pick_variant([q8, q4], gemma_4b, card, projector=851 * MIB).variant is q4  # its mmproj-F16
