"""The machine a model runs on and the memory a model needs there.

Pure functions of plain dataclasses: the probe (``engine.gpu``) fills a
``Machine``, the header fills a ``ModelShape``, and the quant pick, ``pull
--list`` and (later) the layer planner all ask the one ``fit`` function here
where a model would go.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from engine.model import ModelShape
from engine.units import MIB

DEFAULT_CONTEXT = 4096
N_BATCH = 512  # llama.cpp's default logical batch
FIXED_OVERHEAD = 256 * MIB


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


def kv_cache_bytes(shape: ModelShape, n_ctx: int) -> int:
    """Size of an f16 KV cache: K and V, per layer, per position, per KV head.

    Grouped-query attention is why this uses ``n_kv_heads`` and not
    ``n_head``. Sliding-window layers (Gemma 3) need less in reality; the
    estimate stays on the safe side.
    """
    return 2 * shape.n_layers * n_ctx * shape.n_kv_heads * shape.head_dim * 2


def default_context(trained: int) -> int:
    """The context we load with unless told otherwise: 4096, or less if trained shorter.

    The memory estimate and the runtime both use it, so the pick sizes the
    model the way it will actually be loaded.
    """
    return min(DEFAULT_CONTEXT, trained) if trained > 0 else DEFAULT_CONTEXT


def estimate_memory(weights_bytes: int, shape: ModelShape, n_ctx: int | None = None) -> int:
    """Bytes needed to load and run a model: weights + KV cache + overhead.

    The overhead is what llama.cpp allocates besides weights and cache: a
    fixed 256 MiB for the runtime, scratch and graph, plus the compute buffer
    that holds one batch of f32 logits (``n_vocab * 512 * 4``), which for a
    262k-token vocabulary like Gemma 3's is itself 512 MiB. ``n_ctx``
    defaults to 4096, or the trained context if shorter.
    """
    ctx = default_context(shape.context_length) if n_ctx is None else n_ctx
    if ctx <= 0:
        raise ValueError(f"context length must be positive, not {ctx}")
    compute = shape.n_vocab * N_BATCH * 4
    return weights_bytes + kv_cache_bytes(shape, ctx) + FIXED_OVERHEAD + compute
