"""From a stored model and load options to a running scheduler: plan, load, size the context.

What the registry keeps for a loaded model is a ``Runtime``: the llama.cpp
model, the scheduler that owns its context, the offload plan it was loaded
with and the settings it was resolved to. Embeddings get a second context,
made the first time someone asks for one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.events import Embeddings
from engine.machine.memory import Machine
from engine.machine.offload import OffloadPlan, default_context_length, default_num_parallel, plan_offload
from engine.machine.physical import physical_cores
from engine.options import LoadOptions, SamplingOptions
from engine.runtime.llama.backend import supports_gpu_offload
from engine.runtime.llama.embedder import Embedder
from engine.runtime.llama.model import AdapterSpec, Model
from engine.runtime.scheduler import Scheduler
from engine.shape import ModelShape
from engine.store.gguf_io import GGUFInfo, verify_structure
from engine.store.manifest import Manifest
from engine.store.model_store import Store
from engine.store.tensor_bytes import TensorBytes

log = logging.getLogger("llamadeck.engine")

MIN_CONTEXT = 256  # a GGUF claiming a 16-token training context still gets room for a prompt and a reply


@dataclass(frozen=True)
class LoadSettings:
    """Load options with every automatic value decided: what the model is really loaded with."""

    n_ctx: int  # per conversation
    num_parallel: int
    n_gpu_layers: int
    n_threads: int
    n_batch: int
    kv_type: str
    flash_attn: str


@dataclass
class Runtime:
    """A loaded model: what the registry keeps and closes."""

    manifest: Manifest
    model: Model
    scheduler: Scheduler
    plan: OffloadPlan
    settings: LoadSettings
    load_seconds: float
    _embedder: Embedder | None = None
    _embed_lock: threading.Lock = field(default_factory=threading.Lock)

    def embed(self, texts: list[str], *, truncate: bool = True, cancel: CancelToken = NEVER) -> Embeddings:
        """Embeddings from a second context (made on first use), with the tokens they took.

        The lock guards only the embedder's making and freeing: callers share
        it and take turns per batch on the compute thread, so a long request
        does not hold every other embed of the model back until it ends.
        """
        with self._embed_lock:
            if self._embedder is None:
                self._embedder = Embedder(self.model, n_threads=self.settings.n_threads)
            embedder = self._embedder
        return embedder.embed(texts, truncate=truncate, cancel=cancel)

    def close(self) -> None:
        self.scheduler.close()
        with self._embed_lock:
            if self._embedder is not None:
                self._embedder.free()
                self._embedder = None
        self.model.free()


def model_path(store: Store, manifest: Manifest) -> Path:
    """The path llama.cpp should open.

    A split model is found by llama.cpp through its part names
    (``X-00001-of-00003.gguf`` next to ``X-00002-...``), so its blobs get a
    directory of correctly named symlinks, named for every part and refreshed
    on each load (``Store.split_view``): a re-pulled model never runs old shards.
    """
    if len(manifest.files) == 1:
        return store.blob_path(manifest.files[0].sha256)
    return store.split_view(manifest.files)


def adapter_specs(store: Store, manifest: Manifest) -> list[AdapterSpec]:
    """The manifest's LoRA adapters (Modelfile ``ADAPTER``), as blobs, at Ollama's scale of 1."""
    return [AdapterSpec(store.blob_path(f.sha256), 1.0, f.path) for f in manifest.config.adapters]


def read_headers(store: Store, manifest: Manifest) -> tuple[GGUFInfo, ...]:
    """Every part's header, read and checked (``verify_structure``) once per load.

    The plan adds up their tensor tables (``tensor_bytes``), then
    ``load_runtime`` hands them to ``Model.load``, which does not parse them
    again. Raises IntegrityError for a damaged blob: before anything is
    unloaded to make room for it.
    """
    return tuple(verify_structure(store.blob_path(f.sha256), label=f.path) for f in manifest.files)


def tensor_bytes(
    store: Store, manifest: Manifest, *, headers: Sequence[GGUFInfo] | None = None
) -> TensorBytes:
    """The tensor table of every part, added up (a header read is milliseconds).

    ``headers`` are the parts' headers from ``read_headers``; None reads them.
    LoRA adapters live beside the layers they change; their bytes (the file
    sizes: nearly all tensor data) count with the small "other" tensors.
    """
    if headers is None:
        headers = read_headers(store, manifest)
    total = TensorBytes(other=sum(f.size for f in manifest.config.adapters))
    for header in headers:
        total = total + header.tensor_bytes
    return total


def resolve(
    manifest: Manifest, tensors: TensorBytes, machine: Machine, load: LoadOptions
) -> tuple[LoadSettings, OffloadPlan]:
    """Decide every automatic load option for this machine and plan the offload."""
    shape = manifest.shape or ModelShape(0, 0, 1, 1, 0, manifest.context_length, 0)
    flash = load.flash_attn != "off"
    n_ctx = load.num_ctx
    if n_ctx is None:  # automatic: the machine's tier, capped at what the model was trained for
        n_ctx = default_context_length(
            tensors, shape, machine, kv_type=load.kv_cache_type, flash_attention=flash
        )
        if manifest.context_length > 0:
            n_ctx = max(min(n_ctx, manifest.context_length), MIN_CONTEXT)
    elif manifest.context_length > 0 and n_ctx > manifest.context_length:
        # asked for more than the model was trained for: Ollama caps it too (a billion-token context
        # would spend half a minute failing to allocate, then answer 500)
        log.warning(
            "num_ctx %d is more than %s was trained for: using %d",
            n_ctx,
            manifest.reference,
            manifest.context_length,
        )
        n_ctx = manifest.context_length
    parallel = load.num_parallel or default_num_parallel(
        tensors, shape, machine, n_ctx=n_ctx, kv_type=load.kv_cache_type, flash_attention=flash
    )
    plan = plan_offload(
        tensors,
        shape,
        machine,
        n_ctx=n_ctx,
        num_parallel=parallel,
        kv_type=load.kv_cache_type,
        flash_attention=flash,
        num_gpu=load.num_gpu,
    )
    settings = LoadSettings(
        n_ctx=max(n_ctx, 2),  # num_ctx 1 holds no prompt and no reply: 2 gets a clear "prompt too long"
        num_parallel=parallel,
        n_gpu_layers=plan.n_gpu_layers,
        n_threads=load.num_thread or physical_cores(),
        n_batch=load.num_batch,
        kv_type=load.kv_cache_type,
        flash_attn=load.flash_attn,
    )
    return settings, plan


def load_runtime(
    store: Store,
    manifest: Manifest,
    settings: LoadSettings,
    plan: OffloadPlan,
    cancel: CancelToken = NEVER,
    *,
    headers: Sequence[GGUFInfo] = (),
) -> Runtime:
    """Load the weights and start the scheduler; raises IntegrityError, LoadError or Cancelled.

    ``headers``: the parts' headers from ``read_headers`` (the plan's), so they are not parsed again.
    """
    started = time.perf_counter()
    model = Model.load(
        model_path(store, manifest),
        n_gpu_layers=settings.n_gpu_layers if supports_gpu_offload() else 0,
        cancel=cancel,
        label=manifest.reference,
        adapters=adapter_specs(store, manifest),
        headers=headers,
    )
    try:
        scheduler = Scheduler(
            model,
            n_ctx_per_seq=settings.n_ctx,
            n_parallel=settings.num_parallel,
            n_threads=settings.n_threads,
            n_batch=settings.n_batch,
            flash_attn=settings.flash_attn,
            type_k=settings.kv_type,
            type_v=settings.kv_type,
        )
    except BaseException:
        model.free()
        raise
    return Runtime(manifest, model, scheduler, plan, settings, time.perf_counter() - started)


def max_tokens(options: SamplingOptions) -> int | None:
    """Ollama's num_predict: -1 until the context is full, -2 fill it (the same here), else a count."""
    return None if options.num_predict < 0 else options.num_predict
