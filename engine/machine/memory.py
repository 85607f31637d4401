"""The machine a model runs on and the memory a model needs there.

Pure functions of plain dataclasses: the probe (``engine.machine.gpu``) fills a
``Machine``, the header fills a ``ModelShape``, and the quant pick, ``pull
--list`` and the layer planner (``engine.machine.offload``) share the KV cache
arithmetic here; the pick and ``pull --list`` ask the one ``fit`` function
where a model would go.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from engine.errors import InvalidOption
from engine.shape import ModelShape
from engine.units import MIB

DEFAULT_CONTEXT = 4096
N_BATCH = 512  # llama.cpp's default logical batch
FIXED_OVERHEAD = 256 * MIB
# KV cache types llama.cpp takes for type_k/type_v (the names of its -ctk/-ctv and Ollama's
# OLLAMA_KV_CACHE_TYPE) -> ggml's (elements per block, bytes per block): f16 2 bytes an element,
# q8_0 1.0625, q4_0 0.5625; the block types need flash attention and heads a multiple of 32 wide
KV_CACHE_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4),
    "f16": (1, 2),
    "bf16": (1, 2),
    "q8_0": (32, 34),
    "q5_1": (32, 24),
    "q5_0": (32, 22),
    "q4_1": (32, 20),
    "q4_0": (32, 18),
    "iq4_nl": (32, 18),
}


@dataclass(frozen=True)
class Machine:
    """Memory free for a model right now, as the device probe saw it."""

    free_ram: int  # bytes
    gpu_free_vram: int | None  # bytes across usable GPUs; None: no GPU offload

    @property
    def has_gpu(self) -> bool:
        """Whether llama.cpp can offload to a GPU here at all."""
        return self.gpu_free_vram is not None


class Fit(enum.Enum):
    """Where a model of a given memory need would run whole."""

    VRAM = "VRAM"
    RAM = "RAM"
    NONE = ""


def fit(need: int, machine: Machine) -> Fit:
    """Where ``need`` bytes fit on ``machine``: all in VRAM first, else in RAM, else nowhere."""
    if machine.gpu_free_vram is not None and need <= machine.gpu_free_vram:
        return Fit.VRAM
    if need <= machine.free_ram:
        return Fit.RAM
    return Fit.NONE


def kv_bytes_per_cell(shape: ModelShape, kv_type: str = "f16") -> int:
    """Bytes of K and V for one position in one layer: ``2 * n_kv_heads * head_dim`` elements.

    Grouped-query attention is why this uses ``n_kv_heads`` and not
    ``n_head``; a model whose layers differ in KV heads is counted at its
    largest (``ModelShape`` keeps the maximum), which is on the safe side.
    """
    if kv_type not in KV_CACHE_TYPES:
        known = ", ".join(KV_CACHE_TYPES)
        raise InvalidOption(f"unknown KV cache type {kv_type!r}: use one of {known}")
    block, block_bytes = KV_CACHE_TYPES[kv_type]
    row = shape.n_kv_heads * shape.head_dim
    return 2 * -(-row // block) * block_bytes


def kv_cache_bytes(shape: ModelShape, n_ctx: int, *, num_parallel: int = 1, kv_type: str = "f16") -> int:
    """Size of the KV cache: K and V, per layer, per position, per KV head, for every slot.

    Each of ``num_parallel`` sequences gets its own ``n_ctx`` positions
    (llama.cpp's ``n_ctx`` is the total: Ollama passes ``num_ctx *
    num_parallel``). Sliding-window layers (Gemma 3) need less when llama.cpp
    is told so; by default (``swa_full``) they take the full size, as here.
    """
    return shape.n_layers * n_ctx * num_parallel * kv_bytes_per_cell(shape, kv_type)


def default_context(trained: int) -> int:
    """The context we load with unless told otherwise: 4096, or less if trained shorter.

    The memory estimate and the runtime both use it, so the pick sizes the
    model the way it will actually be loaded.
    """
    return min(DEFAULT_CONTEXT, trained) if trained > 0 else DEFAULT_CONTEXT


def estimate_memory(
    weights_bytes: int,
    shape: ModelShape,
    n_ctx: int | None = None,
    *,
    num_parallel: int = 1,
    kv_type: str = "f16",
    projector: int = 0,
) -> int:
    """Bytes needed to load and run a model: weights + KV cache + overhead (+ a vision projector's bytes).

    The overhead is what llama.cpp allocates besides weights and cache: a
    fixed 256 MiB for the runtime, scratch and graph, plus the compute buffer
    that holds one batch of f32 logits (``n_vocab * 512 * 4``), which for a
    262k-token vocabulary like Gemma 3's is itself 512 MiB. ``n_ctx`` is the
    context of one sequence and defaults to 4096, or the trained context if
    shorter; the KV cache counts ``num_parallel`` of them, in ``kv_type``.
    ``projector``: the size of the vision projector pulled with the model
    (before its header is read, only its file: Ollama's ``projectorWeights``).
    ``engine.machine.offload`` splits the same need between GPU and CPU.
    """
    ctx = default_context(shape.context_length) if n_ctx is None else n_ctx
    if ctx <= 0:
        raise ValueError(f"context length must be positive, not {ctx}")
    if num_parallel < 1:
        raise ValueError(f"num_parallel must be at least 1, not {num_parallel}")
    compute = shape.n_vocab * N_BATCH * 4
    kv = kv_cache_bytes(shape, ctx, num_parallel=num_parallel, kv_type=kv_type)
    return weights_bytes + kv + FIXED_OVERHEAD + compute + projector
