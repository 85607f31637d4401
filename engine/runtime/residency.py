"""Which loaded model serves a request: reuse the resident one, or plan the memory and load it.

The registry (``registry.py``) knows nothing of llama.cpp; this module gives
it what it needs for one model: the key a loaded model is matched by, the
memory the load will need (asked only when a load is really due), and the
load itself (``loader.py``). A loaded model is matched by the options the
request asked for. The automatic ones (context, slots, GPU layers) are
decided once, when it loads: decided again per request they would see the
memory the model itself now takes, differ, and reload it every time.

Importing this module loads llama.cpp (through the loader): import it where
a model is about to run.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from engine.cancel import CancelToken
from engine.machine.memory import Machine, estimate_memory
from engine.machine.offload import OffloadPlan
from engine.options import LoadOptions
from engine.runtime import loader
from engine.runtime.loader import Runtime
from engine.runtime.loading import LoadBoard
from engine.runtime.registry import Registry, Resident
from engine.runtime.request import Request
from engine.runtime.worker.client import Worker
from engine.runtime.worker.crashes import CrashLedger, embed_key, request_key
from engine.store.gguf_io import GGUFInfo
from engine.store.manifest import Manifest
from engine.store.model_store import Store


def use_model(
    registry: Registry[Runtime],
    store: Store,
    machine: Callable[[], Machine],
    manifest: Manifest,
    load: LoadOptions,
    *,
    keep_alive: float | None,
    cancel: CancelToken,
    crashes: CrashLedger | None = None,
    loads: LoadBoard | None = None,
) -> AbstractContextManager[tuple[Resident[Runtime], bool]]:
    """The loaded model for ``manifest`` with ``load`` options, loading it (and making room) first.

    Use it in a ``with`` block, which yields (resident, loaded_now); the
    keep-alive clock starts when the block ends. The same weights loaded with
    other options, or what the name held before, are unloaded first when idle.
    A model whose worker crashes is dropped from the registry at once, and
    ``crashes`` remembers what it was serving (see ``worker/crashes.py``).
    """
    # the weights and their adapters: two names may share one but not the other
    key = (manifest.load_id, load)
    stale = [
        r
        for r in registry.residents()
        if (r.key[0] == manifest.load_id or r.name == manifest.reference) and r.key != key and not r.users
    ]
    if stale:  # the same weights with other options, or the name's old weights: reload, as Ollama does
        registry.unload(lambda r: r in stale)
    decided: list[tuple[loader.LoadSettings, OffloadPlan, tuple[GGUFInfo, ...]]] = []

    def decide() -> tuple[loader.LoadSettings, OffloadPlan, tuple[GGUFInfo, ...]]:
        """Probe the machine and plan: only when the model is really to be loaded."""
        if not decided:
            headers = loader.read_headers(store, manifest)  # read once: the load takes them
            tensors = loader.tensor_bytes(store, manifest, headers=headers)
            draft = loader.draft_weights(store, manifest)  # a DRAFT model's memory counts with the model's
            projector = loader.projector_cost(store, manifest, load)  # and a vision projector's
            plan = loader.resolve(manifest, tensors, machine(), load, draft=draft, projector=projector)
            decided.append((*plan, headers))
        return decided[0]

    def need() -> int:
        settings, plan, _ = decide()
        if manifest.shape is None:
            return plan.vram + plan.ram
        kv = estimate_memory(0, manifest.shape, settings.n_ctx, num_parallel=settings.num_parallel)
        return max(plan.vram + plan.ram, kv)

    def crashed(
        worker: Worker, cause: str, requests: list[Request], embeds: list[tuple[list[str], bool]]
    ) -> None:
        if crashes is not None:
            keys = [request_key(r) for r in requests] + [embed_key(t, truncate) for t, truncate in embeds]
            crashes.crashed_serving(manifest.load_id, cause, keys)
        registry.discard(lambda r: r.payload.worker is worker)

    def load_it(token: CancelToken) -> tuple[Runtime, int]:
        settings, plan, headers = decide()
        board = loads or LoadBoard()  # ``loads`` shows the load while it runs (``Engine.loading``)
        load = board.begin(manifest.reference)
        try:
            runtime = loader.load_runtime(
                store,
                manifest,
                settings,
                plan,
                token,
                headers=headers,
                crashes=crashes,
                on_crash=crashed,
                on_progress=lambda fraction: board.advance(load, fraction),
            )
        finally:
            board.end(load)
        return runtime, plan.vram + plan.ram

    return registry.use(key, manifest.reference, load_it, need=need, keep_alive=keep_alive, cancel=cancel)
