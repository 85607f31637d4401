r"""The GPU offload plan: how many layers llama.cpp should put on the GPU, and what that costs.

A pure function of the GGUF's tensor table (``tensor_bytes.TensorBytes``), the
model's shape, the machine and the load options; no I/O, no llama_cpp. The
runtime passes ``plan.n_gpu_layers`` to llama.cpp and shows ``plan.reason``.

How llama.cpp places a model (``llama-model.cpp`` ``load_tensors`` and
``llama-kv-cache.cpp`` in the llama.cpp that llama-cpp-python 0.3.36 vendors):

- ``n_gpu_layers`` counts the output layer first: ``i_gpu_start = n_layer + 1
  - n_gpu_layers``, so 1 offloads only the output layer, k offloads it and the
  last k - 1 repeating layers, and ``n_layer + 1`` (or -1) offloads all ("offloaded
  33/33 layers to GPU" for a 32-layer model). Older llama.cpp, and Ollama's
  old ``EstimateGPULayers``, counted repeating layers first and the output
  layer last; the plan follows the code that ships.
- The input layer (``token_embd``) always stays in RAM. A model without
  ``output.weight`` (tied embeddings) gets a second copy of ``token_embd`` with
  the output layer when that is on the GPU.
- With ``offload_kqv`` (the default) each layer's K and V live with the layer.
  The cache holds ``pad(n_ctx, 256)`` cells per sequence for every one of
  ``n_seq_max`` sequences; sliding-window layers take the full size unless
  ``swa_full`` is off (it is on by default).
- Compute buffers are sized by reserving the worst-case graph: one ubatch of
  512 tokens, each with logits, against the full cache. The formulas are
  Ollama's for llama (``fs/ggml/ggml.go`` ``GraphSize``, before it handed
  fitting to llama.cpp's ``--fit``): logits ``4 * T * (n_embd + n_vocab)``;
  without flash attention the f32 attention scores ``4 * T * (1 + 4 * n_embd
  + n_kv * (1 + n_head))``; the buffer is the larger of the two. With flash
  attention the scores are never materialised, only the mask and its f16
  copy (``_FA_MASK`` bytes a cell and token) and a few activations. For a
  Llama 3 8B at 8k these give 560 MiB without and 258.5 MiB with flash
  attention, the ``CUDA0 compute buffer size`` figures that model's
  llama.cpp logs commonly show (to be confirmed here: see below). The host
  keeps the inputs (embeddings, the f32 mask: ``CUDA_Host compute buffer``).
- When some layers stay on the CPU, llama.cpp still runs their matrix
  products for prompt batches (32 tokens and more) on the GPU (``op_offload``,
  on by default), copying the weights over: the GPU's compute buffer then
  also holds the largest CPU-side layer. At ``n_gpu_layers`` 0 on a GPU
  build that copy still happens (the output matrix or a layer, plus logits).
- The driver's own share (CUDA context, cuBLAS workspace) never appears in
  llama.cpp's log: the plan keeps ``VRAM_RESERVE`` free, Ollama's per-GPU
  minimum (457 MiB, ``ml/device.go`` ``MinimumMemory``). llama.cpp's own
  ``--fit`` keeps 1 GiB.

``vram`` is what llama.cpp will allocate on the GPU (weights, KV, compute),
not counting the reserve; ``ram`` is what it keeps in host memory (weights
left on the CPU, their KV, host compute and output buffers) plus the
runtime's fixed 256 MiB (``memory.FIXED_OVERHEAD``). Weights are
memory-mapped, so their RAM is page cache that llama.cpp reads from.

Slots and context, as Ollama chooses them (``server/sched.go``,
``server/routes.go`` at 2026-08): ``num_parallel`` was "4 if the model with
4 x the context fits whole on the GPU (or, on a CPU, in RAM), else 1" from
2024-05, 2 from 2025-04, and since 2025-07 it is 1 unless
``OLLAMA_NUM_PARALLEL`` says otherwise, because guessing it complicated their
new layer allocation. Our scheduler decodes every slot in one batch (4
streams gave 2.5x one on the H100, 1.8x on 2 CPU cores), so
``default_num_parallel`` keeps the 4-or-1 rule. The default context is
Ollama's VRAM tier (4k below 23 GiB, 32k from 23 GiB, 256k from 47 GiB; 4k on
a CPU), capped at the trained context, stepped down 256k -> 32k -> 4k while
the model would not fit whole (Ollama steps down after a failed load).

Not checked on a GPU yet: no device was lent to the session that wrote this.
On the CPU (llama.cpp 0.3.36 here) the KV cache matched llama.cpp's logged
buffers to the byte for the tiny fixture and the demo Gemma (f16 and q8_0,
1 and 4 slots), and the compute buffers came within 1% (logits, attention
without flash attention) or under the rounded-up ``_FA_MASK``. To check the
GPU side against llama.cpp's real VRAM use (goal: within 10%), run
``bench/gpu_check.sh`` on the GPU machine (its header says how): its
``bench/gpu_probe.py plan`` loads random-weight models of real shapes at the
planned layers, context and slots and compares the plan with the buffers
llama.cpp logs. Its "plan / llama.cpp" should be within 10%, and nvidia-smi's
figure within ``plan.vram + VRAM_RESERVE``; the per-device figures say which
term is off (model: weights; KV; compute), and ``compute_bytes`` takes a
measured compute buffer. Its 3 GiB row is a partial offload (op_offload's copies).

A vision projector (``projector=``, ``engine.machine.projector``) goes where
llama.cpp's ``mtmd`` loads it: on the GPU with its compute buffer when any
layer is there (so the first GPU layer costs that much more, as Ollama's
``gpuZeroOverhead``), else in RAM; the embeddings of the images the worker
keeps are host memory either way, and a non-causal projector's image (Gemma
3's) is one ubatch, so the worst-case graph holds at least its tokens.

A draft model (Modelfile DRAFT, ``draft=``) is planned first and whole: it is
small, and speculating pays only when it runs fast. On a GPU it takes its
weights, its own KV cache (the same context and slots) and compute buffer
out of the free VRAM when they fit, else it stays on the CPU; either way its
bytes are in ``vram``/``ram``, so the memory budget counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.errors import InvalidOption
from engine.machine.memory import FIXED_OVERHEAD, KV_CACHE_TYPES, Machine, kv_bytes_per_cell
from engine.machine.projector import ProjectorCost
from engine.options import DRAFT_OUTPUTS
from engine.shape import ModelShape
from engine.store.tensor_bytes import TensorBytes
from engine.units import GIB, MIB, format_gib

N_UBATCH = 512  # llama.cpp's default physical batch: the worst-case graph it reserves buffers for
KV_PAD = 256  # llama.cpp pads each sequence's cells to a multiple of this
VRAM_RESERVE = 457 * MIB  # Ollama's per-GPU minimum: CUDA context and workspaces llama.cpp never logs
DEFAULT_PARALLEL = (
    4  # full contexts in the pool when the model fits whole with them (Ollama's old defaultParallel)
)
SHORT_CHAT = (
    512  # cells of a short chat: a pool of n cells decodes n / SHORT_CHAT sequences together by default
)
MAX_SEQUENCES = 64
# Ollama's default context by VRAM (server/routes.go); the steps down are its nextLowerAutoNumCtx
CONTEXT_TIERS: tuple[tuple[int, int], ...] = ((47 * GIB, 262_144), (23 * GIB, 32_768), (0, 4096))
_F32 = 4
# Bytes of compute buffer per (cache cell, batch token) of flash attention's mask and its f16 copy: CPU
# buffers of llama.cpp 0.3.36 grew 2.75 bytes per cell and token over the activations (64- and
# 128-wide heads, 2k and 8k cells); rounded up
_FA_MASK = 3


@dataclass(frozen=True)
class OffloadPlan:
    """Where a model's layers go and the memory that takes on each side.

    ``n_gpu_layers`` is llama.cpp's: 0 to ``n_layers + 1``, the output layer
    counted first (see the module's docstring).
    """

    n_gpu_layers: int
    n_layers: int  # the model's repeating layers: llama.cpp counts n_layers + 1 with the output layer
    vram: int  # bytes llama.cpp will allocate on the GPU: weights, KV cache, compute buffers
    ram: int  # bytes in host memory: weights and KV left on the CPU, host buffers, runtime overhead
    reason: str  # one line for people: what was chosen and why
    fits: bool = True  # False when an explicit num_gpu needs more VRAM than is free
    draft_gpu_layers: int = 0  # the draft model's layers on the GPU: all of them (n_layers + 1) or 0

    @property
    def full(self) -> bool:
        """Every layer, the output layer too, is on the GPU."""
        return self.n_gpu_layers > self.n_layers

    @property
    def layers_label(self) -> str:
        """``24/33``, as llama.cpp's "offloaded 24/33 layers to GPU" says it."""
        return f"{self.n_gpu_layers}/{self.n_layers + 1}"


@dataclass(frozen=True)
class DraftWeights:
    """A draft model's tensor table and shape: what it adds to its target's plan."""

    tensors: TensorBytes
    shape: ModelShape


@dataclass(frozen=True)
class _Costs:
    """The sizes a plan adds up, computed once per request."""

    layers: tuple[int, ...]  # weight bytes per repeating layer (the "other" tensors ride with layer 0)
    output_gpu: int  # the output layer on the GPU (a tied model's second copy of token_embd included)
    output_cpu: int  # the output layer's weights when it stays on the CPU (no second copy)
    token_embd: int
    kv_layer: int  # KV bytes of one layer, all slots
    logits: int  # the output batch's f32 logits (and hidden states)
    attention: int  # the attention of one layer over the whole cache, with its mask and activations
    graph: int  # the GPU's compute buffer: the larger of the two, or a measured figure
    host_small: int  # the host's compute buffer when the GPU runs the graph: inputs and mask
    host_output: int  # the host's output buffer: a row of logits per sequence, and per draft token verified
    projector: int = 0  # a vision projector's weights and compute buffer: on the GPU unless k is 0
    images: int = 0  # host bytes of the encoded images a worker keeps

    def vram(self, k: int) -> int:
        """Bytes on the GPU with ``n_gpu_layers = k``, on a machine with a GPU backend."""
        if k == 0:  # op_offload: prompt batches still copy a matrix over and run it there
            return self.logits + max(self.output_cpu, *self.layers, 0)
        on_gpu = min(k - 1, len(self.layers))
        cpu_layers = self.layers[: len(self.layers) - on_gpu]
        weights = self.output_gpu + sum(self.layers[len(cpu_layers) :])
        copies = max(cpu_layers, default=0)  # op_offload's copy of a CPU layer during prompt batches
        return weights + on_gpu * self.kv_layer + self.graph + copies + self.projector

    def ram(self, k: int) -> int:
        """Bytes in host memory with ``n_gpu_layers = k`` (k = 0 on a machine without a GPU)."""
        on_gpu = min(max(k - 1, 0), len(self.layers))
        n_cpu = len(self.layers) - on_gpu
        weights = self.token_embd + sum(self.layers[:n_cpu]) + (self.output_cpu if k == 0 else 0)
        if k == 0:
            compute = max(self.logits, self.attention)
        elif n_cpu:  # the CPU layers attend over their KV where it lives
            compute = max(self.host_small, self.attention)
        else:
            compute = self.host_small
        projector = self.projector if k == 0 else 0
        return (
            weights
            + n_cpu * self.kv_layer
            + compute
            + self.host_output
            + FIXED_OVERHEAD
            + projector
            + self.images
        )


def plan_offload(
    tensors: TensorBytes,
    shape: ModelShape,
    machine: Machine,
    *,
    n_ctx: int,
    num_parallel: int = 1,
    kv_type: str = "f16",
    flash_attention: bool = True,
    kv_unified: bool = False,
    num_gpu: int | None = None,
    compute_bytes: int | None = None,
    reserve: int = VRAM_RESERVE,
    n_ubatch: int = N_UBATCH,
    draft: DraftWeights | None = None,
    projector: ProjectorCost | None = None,
) -> OffloadPlan:
    """The most layers that fit in free VRAM less ``reserve``, or exactly ``num_gpu`` when given.

    ``n_ctx`` is one sequence's context; ``num_parallel`` sequences each get
    that many cells. ``num_gpu`` is Ollama's option (None or -1: plan it);
    more than the model has means all. ``compute_bytes`` replaces the
    estimate of the GPU's compute buffer (a figure measured on the card).
    On a machine without GPU offload the plan is always 0 layers. ``draft``
    (a draft model) is placed first, whole, and counted in ``vram``/``ram``;
    ``projector`` (a vision projector's cost) goes with the first GPU layer.

        plan = plan_offload(info.tensor_bytes, info.shape, machine, n_ctx=8192)
        plan.n_gpu_layers, plan.reason  # 33, "all 33 layers fit in 22.1 GiB free VRAM (5.6 GiB needed)"

    Raises InvalidOption for a context, slot count, KV type or num_gpu llama.cpp would refuse.
    """
    if projector is not None and projector.non_causal:  # the image is one ubatch
        n_ubatch = max(n_ubatch, projector.image_tokens)
    costs = _costs(tensors, shape, n_ctx, num_parallel, kv_type, flash_attention, kv_unified, n_ubatch)
    if projector is not None:
        costs = replace(costs, projector=projector.device, images=projector.cache)
    if compute_bytes is not None:
        if compute_bytes < 0:
            raise InvalidOption(f"a compute buffer cannot be {compute_bytes} bytes")
        costs = replace(costs, graph=compute_bytes)
    if num_gpu is not None and num_gpu < -1:
        raise InvalidOption(f"num_gpu must be -1 (plan it), 0 (CPU only) or a layer count, not {num_gpu}")
    n_total = len(costs.layers) + 1
    asked = None if num_gpu is None or num_gpu < 0 else num_gpu
    free = machine.gpu_free_vram
    placed = _place_draft(
        draft, free, reserve, n_ctx, num_parallel, kv_type, flash_attention, kv_unified, n_ubatch
    )
    plan = _plan_target(costs, n_total, asked, free, reserve + placed.vram)
    if draft is None:
        return plan
    return replace(
        plan,
        vram=plan.vram + placed.vram,
        ram=plan.ram + placed.ram,
        reason=plan.reason + placed.reason,
        draft_gpu_layers=placed.layers,
    )


@dataclass(frozen=True)
class _Placed:
    """Where the draft model goes: its GPU layers, the bytes it takes on each side, a note for the reason."""

    layers: int = 0
    vram: int = 0
    ram: int = 0
    reason: str = ""


def _place_draft(
    draft: DraftWeights | None,
    free: int | None,
    reserve: int,
    n_ctx: int,
    num_parallel: int,
    kv_type: str,
    flash_attention: bool,
    kv_unified: bool,
    n_ubatch: int,
) -> _Placed:
    """The draft whole on the GPU when it fits in free VRAM, else whole on the CPU."""
    if draft is None:
        return _Placed()
    costs = _costs(
        draft.tensors, draft.shape, n_ctx, num_parallel, kv_type, flash_attention, kv_unified, n_ubatch
    )
    whole = len(costs.layers) + 1
    if free is not None and costs.vram(whole) <= free - reserve:
        vram = costs.vram(whole)
        return _Placed(
            whole, vram, costs.ram(whole) - FIXED_OVERHEAD, f"; draft model on the GPU ({format_gib(vram)})"
        )
    ram = costs.ram(0) - FIXED_OVERHEAD
    where = "CPU only" if free is None else "it does not fit in VRAM"
    return _Placed(0, 0, ram, f"; draft model on the CPU ({where}, {format_gib(ram)})")


def _plan_target(
    costs: _Costs, n_total: int, asked: int | None, free: int | None, reserve: int
) -> OffloadPlan:
    """The target model's layers, with ``reserve`` (the driver's share and a draft's) kept free."""
    if free is None:
        reason = "CPU only: llama.cpp has no GPU backend here"
        if asked:
            reason += f" (num_gpu {asked} has no effect)"
        return OffloadPlan(0, n_total - 1, 0, costs.ram(0), reason)

    usable = free - reserve
    best = max((k for k in range(1, n_total + 1) if costs.vram(k) <= usable), default=0)
    if asked is not None:
        k = min(asked, n_total)
        vram = costs.vram(k)
        reason = _asked_reason(asked, k, n_total, vram, free, best)
        return OffloadPlan(k, n_total - 1, vram, costs.ram(k), reason, fits=vram <= usable)

    vram = costs.vram(best)
    if best == n_total:
        reason = f"all {n_total} layers fit in {format_gib(free)} free VRAM ({format_gib(vram)} needed)"
    elif best:
        on_gpu = f"{format_gib(vram)} of {format_gib(free)} free VRAM"
        reason = f"{best}/{n_total} layers on the GPU: {on_gpu}; the rest on the CPU"
    else:
        reason = (
            f"CPU only: not even the output layer fits in {format_gib(free)} free VRAM "
            f"(it needs {format_gib(costs.vram(1))})"
        )
    return OffloadPlan(best, n_total - 1, vram, costs.ram(best), reason)


def default_num_parallel(
    tensors: TensorBytes,
    shape: ModelShape,
    machine: Machine,
    *,
    n_ctx: int,
    kv_type: str = "f16",
    flash_attention: bool = True,
    reserve: int = VRAM_RESERVE,
    draft: DraftWeights | None = None,
    projector: ProjectorCost | None = None,
) -> int:
    """4 slots when the model with 4 contexts fits whole on the GPU (on a CPU: in free RAM), else 1.

    Ollama's rule from 2024-05 to 2025-04 (``pickBestFullFitByLibrary`` tried
    ``defaultParallel`` = 4, then 1). Choose ``n_ctx`` first
    (``default_context_length``), then the slots for it.
    """
    plan = plan_offload(
        tensors,
        shape,
        machine,
        n_ctx=n_ctx,
        num_parallel=DEFAULT_PARALLEL,
        kv_type=kv_type,
        flash_attention=flash_attention,
        reserve=reserve,
        draft=draft,
        projector=projector,
    )
    whole = plan.full if machine.has_gpu else plan.ram <= machine.free_ram
    return DEFAULT_PARALLEL if whole else 1


def default_sequences(kv_cells: int) -> int:
    """Sequences decoded together by default: as many short chats (``SHORT_CHAT`` cells) as the pool
    holds, 4 to ``MAX_SEQUENCES``. They share the pool's cells (``runtime/slots.py``), so more of them
    cost only their logits (n_vocab floats each); a pool that runs short parks one and resumes it."""
    return max(4, min(MAX_SEQUENCES, kv_cells // SHORT_CHAT))


def default_context_length(
    tensors: TensorBytes,
    shape: ModelShape,
    machine: Machine,
    *,
    num_parallel: int = 1,
    kv_type: str = "f16",
    flash_attention: bool = True,
    reserve: int = VRAM_RESERVE,
    draft: DraftWeights | None = None,
    projector: ProjectorCost | None = None,
) -> int:
    """Ollama's default context for this machine: a tier by free VRAM, capped and stepped down to fit.

    4096 on a CPU and below 23 GiB of VRAM, 32768 from 23 GiB, 262144 from
    47 GiB (Ollama looks at total VRAM; the probe gives free), never more
    than the model was trained for, and one step lower (262144 -> 32768 ->
    4096) while the model would not fit whole on the GPU with it.
    """
    trained = shape.context_length
    vram = machine.gpu_free_vram or 0
    tier = next(ctx for floor, ctx in CONTEXT_TIERS if vram >= floor)
    steps = [ctx for _, ctx in CONTEXT_TIERS if ctx <= tier]
    for ctx in steps:
        n_ctx = min(ctx, trained) if trained > 0 else ctx
        if ctx == steps[-1] or not machine.has_gpu:
            return n_ctx
        plan = plan_offload(
            tensors,
            shape,
            machine,
            n_ctx=n_ctx,
            num_parallel=num_parallel,
            kv_type=kv_type,
            flash_attention=flash_attention,
            reserve=reserve,
            draft=draft,
            projector=projector,
        )
        if plan.full:
            return n_ctx
    raise AssertionError("unreachable: the last tier always returns")


def _asked_reason(asked: int, k: int, n_total: int, vram: int, free: int, best: int) -> str:
    if k == 0:
        return "CPU only: num_gpu 0"
    where = f"all {n_total} layers" if k == n_total else f"{k}/{n_total} layers"
    reason = f"num_gpu {asked}: {where} on the GPU, {format_gib(vram)} of {format_gib(free)} free VRAM"
    if k > best:
        reason += f"; more than fits: the load may fail (the plan would offload {best})"
    return reason


def _costs(
    tensors: TensorBytes,
    shape: ModelShape,
    n_ctx: int,
    num_parallel: int,
    kv_type: str,
    flash_attention: bool,
    kv_unified: bool,
    n_ubatch: int,
) -> _Costs:
    if n_ctx <= 0:
        raise InvalidOption(f"the context must be at least 1 token, not {n_ctx}")
    if num_parallel < 1:
        raise InvalidOption(f"num_parallel must be at least 1, not {num_parallel}")
    if n_ubatch < 1:
        raise InvalidOption(f"the batch must be at least 1 token, not {n_ubatch}")
    kv_cell = kv_bytes_per_cell(shape, kv_type)  # raises for an unknown type
    block = KV_CACHE_TYPES[kv_type][0]
    if block > 1 and not flash_attention:
        raise InvalidOption(f"a {kv_type} KV cache needs flash attention (llama.cpp's rule for a V cache)")
    if shape.head_dim % block:
        raise InvalidOption(
            f"a {kv_type} KV cache needs heads a multiple of {block} wide; this model's are {shape.head_dim}"
        )
    per_seq = _pad(n_ctx)
    cells = _pad(n_ctx * num_parallel) if kv_unified else per_seq * num_parallel
    n_kv = cells if kv_unified else per_seq  # what one stream attends over in the reserved graph
    tokens = min(n_ubatch, cells)
    n_layers = max(shape.n_layers, len(tensors.layers))
    layers = [*tensors.layers, *[0] * (n_layers - len(tensors.layers))]
    if layers:
        layers[0] += tensors.other
    logits = _F32 * tokens * (shape.n_embd + shape.n_vocab)
    mask = n_kv * tokens * _F32  # an f32 input; flash attention casts it to f16 on the device
    activations = _F32 * tokens * 4 * shape.n_embd
    if flash_attention:  # 3 bytes a mask element: llama.cpp's CPU buffer measured 2.75 (see _FA_MASK)
        attention = activations + n_kv * tokens * _FA_MASK + _F32 * tokens * shape.n_head * shape.head_dim
    else:  # Ollama's llama formula: f32 scores of every head over the cache, the mask, 4 activations
        attention = _F32 * tokens * (1 + 4 * shape.n_embd + n_kv * (1 + shape.n_head))
    return _Costs(
        layers=tuple(layers),
        output_gpu=tensors.output + (tensors.token_embd if tensors.tied_output else 0),
        output_cpu=tensors.output,
        token_embd=tensors.token_embd + (0 if layers else tensors.other),
        kv_layer=cells * kv_cell,
        logits=logits,
        attention=attention,
        graph=max(logits, attention),
        host_small=_F32 * tokens * shape.n_embd + mask,  # the inputs: embeddings and mask
        host_output=_F32 * shape.n_vocab * (num_parallel + DRAFT_OUTPUTS),
    )


def _pad(n: int) -> int:
    return -(-n // KV_PAD) * KV_PAD
