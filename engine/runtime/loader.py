"""From a stored model and load options to a model running in its worker process: plan, load, size.

What the registry keeps for a loaded model is a ``Runtime``: the worker
process that holds the llama.cpp model and its scheduler
(``worker/client.py``), the offload plan it was loaded with and the
settings it was resolved to. Nothing here imports llama.cpp: the engine's
own process never runs it, so an abort in llama.cpp takes down one model's
worker, not the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.errors import ModelCrashed
from engine.events import Embeddings
from engine.machine.memory import Machine
from engine.machine.offload import (
    DraftWeights,
    OffloadPlan,
    default_context_length,
    default_num_parallel,
    default_sequences,
    plan_offload,
)
from engine.machine.physical import physical_cores
from engine.machine.projector import ProjectorCost
from engine.machine.projector import projector_cost as cost_of_projector
from engine.options import LoadOptions, SamplingOptions
from engine.runtime.request import Handle, Request
from engine.runtime.stats import SchedulerStats
from engine.runtime.worker.client import CrashHook, Worker
from engine.runtime.worker.crashes import CrashLedger, embed_key, request_key
from engine.runtime.worker.spec import LoadSettings, LoadSpec
from engine.shape import ModelShape
from engine.store.gguf_io import GGUFInfo, verify_structure
from engine.store.manifest import Manifest
from engine.store.model_store import Store
from engine.store.projector import read_projector
from engine.store.tensor_bytes import TensorBytes

log = logging.getLogger("llamadeck.engine")

MIN_CONTEXT = 256  # a GGUF claiming a 16-token training context still gets room for a prompt and a reply

__all__ = ["LoadSettings", "Runtime", "load_runtime", "max_tokens", "read_headers", "resolve", "tensor_bytes"]


@dataclass
class Runtime:
    """A loaded model: its worker process, and how it was planned; what the registry keeps and closes."""

    manifest: Manifest
    worker: Worker
    plan: OffloadPlan
    settings: LoadSettings
    load_seconds: float
    crashes: CrashLedger | None = None  # what crashed a model before: such a request is refused

    @property
    def model(self) -> Worker:
        """The model's vocabulary as the engine uses it (BOS, FIM tokens, ``tokenize``), from its worker."""
        return self.worker

    def submit(self, request: Request, *, max_queue: int | None = None) -> Handle:
        """Queue a generation in the worker (refused at once if this very request crashed it before).

        ``max_queue``: how many requests may wait for a slot; with that many
        waiting already this one is refused (QueueFull), as Ollama's OLLAMA_MAX_QUEUE.
        """
        if self.crashes is not None:
            self.crashes.check_request(self.manifest.load_id, request_key(request), self.manifest.reference)
        limit = None if max_queue is None else self.settings.num_parallel + max_queue
        return self.worker.submit(request, limit=limit)

    def stats(self) -> SchedulerStats | None:
        """The scheduler's snapshot; None once the worker has crashed."""
        return self.worker.stats()

    def forget(self, conversation: str) -> None:
        self.worker.forget(conversation)

    def embed(self, texts: list[str], *, truncate: bool = True, cancel: CancelToken = NEVER) -> Embeddings:
        """Embeddings and the tokens they took, made in the worker (its second context, made on first use)."""
        if self.crashes is not None:
            key = embed_key(texts, truncate)
            self.crashes.check_request(self.manifest.load_id, key, self.manifest.reference)
        embeddings: Embeddings = self.worker.embed(texts, truncate=truncate, cancel=cancel)
        return embeddings

    def close(self) -> None:
        self.worker.close()


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
    sizes: nearly all tensor data) count with the small "other" tensors. A
    vision projector is planned apart (``projector_cost``).
    """
    if headers is None:
        headers = read_headers(store, manifest)
    total = TensorBytes(other=sum(f.size for f in manifest.config.adapters))
    for header in headers:
        total = total + header.tensor_bytes
    return total


def projector_cost(store: Store, manifest: Manifest, load: LoadOptions) -> ProjectorCost | None:
    """The vision projector's weights, compute buffer and image tokens for the plan; None without one.

    Its header is checked (IntegrityError for a damaged blob, InvalidInput for one that is no projector).
    """
    projector = manifest.config.projector
    if projector is None:
        return None
    info = read_projector(store.blob_path(projector.sha256), label=f"the projector of {manifest.reference}")
    return cost_of_projector(info, projector.size, flash_attention=load.flash_attn != "off")


def draft_path(store: Store, manifest: Manifest) -> Path | None:
    """The path llama.cpp should open for the model's draft model (Modelfile DRAFT); None without one."""
    draft = manifest.config.draft
    if draft is None:
        return None
    if len(draft.files) == 1:
        return store.blob_path(draft.files[0].sha256)
    return store.split_view(draft.files)


def draft_weights(store: Store, manifest: Manifest) -> DraftWeights | None:
    """The draft model's tensor table and shape, its headers read and checked (IntegrityError if damaged)."""
    draft = manifest.config.draft
    if draft is None:
        return None
    headers = [verify_structure(store.blob_path(f.sha256), label=f"draft {f.path}") for f in draft.files]
    total = TensorBytes()
    for header in headers:
        total = total + header.tensor_bytes
    return DraftWeights(total, headers[0].shape)


def resolve(
    manifest: Manifest,
    tensors: TensorBytes,
    machine: Machine,
    load: LoadOptions,
    *,
    draft: DraftWeights | None = None,
    projector: ProjectorCost | None = None,
) -> tuple[LoadSettings, OffloadPlan]:
    """Decide every automatic load option for this machine and plan the offload.

    ``draft``: the draft model's weights (``draft_weights``), planned with the model and counted in it;
    ``projector``: the vision projector's cost (``projector_cost``), likewise.
    """
    shape = manifest.shape or ModelShape(0, 0, 1, 1, 0, manifest.context_length, 0)
    flash = load.flash_attn != "off"
    n_ctx = load.num_ctx
    if n_ctx is None:  # automatic: the machine's tier, capped at what the model was trained for
        n_ctx = default_context_length(
            tensors,
            shape,
            machine,
            kv_type=load.kv_cache_type,
            flash_attention=flash,
            draft=draft,
            projector=projector,
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
    # the pool holds this many full contexts: num_parallel's when given (each of them may fill its
    # context, as in Ollama), else 4 where they fit whole (1 where not); short chats share it, many at once
    contexts = load.num_parallel or default_num_parallel(
        tensors,
        shape,
        machine,
        n_ctx=n_ctx,
        kv_type=load.kv_cache_type,
        flash_attention=flash,
        draft=draft,
        projector=projector,
    )
    plan = plan_offload(
        tensors,
        shape,
        machine,
        n_ctx=n_ctx,
        num_parallel=contexts,
        kv_type=load.kv_cache_type,
        flash_attention=flash,
        kv_unified=True,
        num_gpu=load.num_gpu,
        draft=draft,
        projector=projector,
    )
    n_ctx = max(n_ctx, 2)  # num_ctx 1 holds no prompt and no reply: 2 gets a clear "prompt too long"
    settings = LoadSettings(
        n_ctx=n_ctx,
        num_parallel=load.num_parallel or default_sequences(n_ctx * contexts),
        kv_cells=n_ctx * contexts,
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
    crashes: CrashLedger | None = None,
    on_crash: CrashHook | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> Runtime:
    """Start a worker and load the weights in it; raises IntegrityError, LoadError, ModelCrashed or Cancelled.

    ``headers``: the parts' headers from ``read_headers`` (the plan's), so they are not parsed again.
    ``crashes`` refuses a model that crashed while loading before, records
    one that crashes now, and is handed to the Runtime for its requests;
    ``on_crash`` hears of a worker that dies after the load (see ``Worker.start``).
    """
    if crashes is not None:
        crashes.check_model(manifest.load_id, manifest.reference)
    spec = LoadSpec(
        path=model_path(store, manifest),
        label=manifest.reference,
        settings=settings,
        adapters=tuple((store.blob_path(f.sha256), 1.0, f.path) for f in manifest.config.adapters),
        headers=tuple(headers),
        draft=draft_path(store, manifest),
        projector=store.blob_path(manifest.config.projector.sha256) if manifest.config.projector else None,
    )
    try:
        worker = Worker.start(spec, cancel, on_crash=on_crash, on_progress=on_progress)
    except ModelCrashed as crash:
        if crashes is not None:
            crashes.crashed_loading(manifest.load_id, crash.cause)
        raise
    assert worker.facts is not None
    return Runtime(manifest, worker, plan, settings, worker.facts.load_seconds, crashes)


def max_tokens(options: SamplingOptions) -> int | None:
    """Ollama's num_predict: -1 until the context is full, -2 fill it (the same here), else a count."""
    return None if options.num_predict < 0 else options.num_predict
