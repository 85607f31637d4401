"""A model loaded in this process: the llama.cpp weights, the scheduler on their context, an embedder.

This is what a worker process holds (``child.py``); nothing in the engine's
own process makes one. Importing it loads llama.cpp.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.events import Embeddings
from engine.runtime.llama.backend import supports_gpu_offload
from engine.runtime.llama.embedder import Embedder
from engine.runtime.llama.model import AdapterSpec, Model
from engine.runtime.llama.vision import Projector
from engine.runtime.scheduler import Scheduler
from engine.runtime.worker.spec import LoadSpec, ModelFacts


class LoadedModel:
    """Weights, their scheduler and (made on first use) an embedder; ``close`` frees them all.

    ``draft`` is the draft model's weights (``LoadSpec.draft``), which the
    scheduler drafts with in a context of its own (``speculation.py``).
    """

    def __init__(
        self,
        model: Model,
        scheduler: Scheduler,
        n_threads: int,
        load_seconds: float,
        projector: Projector | None = None,
        draft: Model | None = None,
    ) -> None:
        self.model = model
        self.draft = draft
        self.scheduler = scheduler
        self.projector = projector  # images into the model's sequences (``runtime.llama.vision``)
        scheduler.projector = projector
        self.load_seconds = load_seconds
        self._n_threads = n_threads
        self._embedder: Embedder | None = None
        self._embed_lock = threading.Lock()

    @classmethod
    def load(
        cls, spec: LoadSpec, cancel: CancelToken = NEVER, progress: Callable[[float], None] | None = None
    ) -> LoadedModel:
        """Load the weights and start the scheduler; raises IntegrityError, LoadError or Cancelled.

        ``progress`` gets llama.cpp's load progress, 0.0 to 1.0. A draft model
        (``spec.draft``) whose vocabulary differs from the target's is a LoadError."""
        started = time.perf_counter()
        settings = spec.settings
        model = Model.load(
            spec.path,
            n_gpu_layers=settings.n_gpu_layers if supports_gpu_offload() else 0,
            cancel=cancel,
            progress=progress,
            label=spec.label,
            adapters=[AdapterSpec(Path(path), scale, label) for path, scale, label in spec.adapters],
            headers=spec.headers,
        )
        projector = None
        draft: Model | None = None
        try:
            if spec.projector is not None:
                projector = Projector.load(
                    spec.projector,
                    model,
                    n_threads=settings.n_threads,
                    use_gpu=settings.n_gpu_layers != 0 and supports_gpu_offload(),
                    label=f"the projector of {spec.label}",
                )
            if spec.draft is not None:
                draft = Model.load(
                    spec.draft,
                    n_gpu_layers=-1 if model.n_gpu_layers else 0,  # small: all of it wherever the target is
                    cancel=cancel,
                    label=f"the draft model {spec.draft.name}",
                )
            scheduler = Scheduler(
                model,
                n_ctx_per_seq=settings.n_ctx,
                n_parallel=settings.num_parallel,
                kv_cells=settings.kv_cells or None,
                n_threads=settings.n_threads,
                n_batch=settings.n_batch,
                flash_attn=settings.flash_attn,
                type_k=settings.kv_type,
                type_v=settings.kv_type,
                draft=draft,
            )
        except BaseException:
            if projector is not None:
                projector.free()
            if draft is not None:
                draft.free()
            model.free()
            raise
        return cls(model, scheduler, settings.n_threads, time.perf_counter() - started, projector, draft)

    def facts(self) -> ModelFacts:
        model = self.model
        return ModelFacts(
            bos_text=model.bos_text,
            eos_text=model.eos_text,
            n_vocab=model.n_vocab,
            load_seconds=self.load_seconds,
            bos=model.bos,
            add_bos=model.add_bos,
            fim=model.fim,
        )

    def image_tokens(self, images: list[bytes]) -> list[int]:
        """Each image's token count in a prompt, on the compute thread (which owns the projector)."""
        from engine.errors import InvalidInput

        projector = self.projector
        if projector is None:
            raise InvalidInput("this model has no vision projector")
        return count_images(projector, images)

    def image_wrap(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The tokens before and after each image in a prompt (``Projector.wrap``)."""
        from engine.errors import InvalidInput
        from engine.runtime.llama.compute import COMPUTE

        projector = self.projector
        if projector is None:
            raise InvalidInput("this model has no vision projector")
        return COMPUTE.call(projector.wrap)

    @property
    def embed_batches(self) -> int:
        """Embedding batches decoded so far, all callers together (0 before the first embed)."""
        return self._embedder.batches if self._embedder is not None else 0

    def embed(self, texts: list[str], *, truncate: bool = True, cancel: CancelToken = NEVER) -> Embeddings:
        """Embeddings from a second context (made on first use), with the tokens they took.

        The lock guards only the embedder's making and freeing: callers share
        it and take turns per batch on the compute thread, so a long request
        does not hold every other embed of the model back until it ends.
        """
        with self._embed_lock:
            if self._embedder is None:
                self._embedder = Embedder(self.model, n_threads=self._n_threads)
            embedder = self._embedder
        return embedder.embed(texts, truncate=truncate, cancel=cancel)

    def close(self) -> None:
        self.scheduler.close()
        with self._embed_lock:
            if self._embedder is not None:
                self._embedder.free()
                self._embedder = None
        if self.projector is not None:  # after the scheduler: nothing decodes an image any more
            self.projector.free()
        if self.draft is not None:
            self.draft.free()
        self.model.free()


def count_images(projector: Projector, images: list[bytes]) -> list[int]:
    """Each image's token count, one compute call per distinct image.

    Counting decodes and splits the image (seconds for a 40-megapixel one) on
    the compute thread, which every decode of every model shares: one call for
    all of a request's images held every other stream still for as long as
    sixteen such images took (a 5 KB PNG of zeros each: ~50 s on 2 cores).
    Now the streams step between images, and an image sent twice is counted once.
    """
    import functools
    import hashlib

    from engine.runtime.llama.compute import COMPUTE

    counted: dict[str, int] = {}
    counts = []
    for image in images:
        key = hashlib.sha256(image).hexdigest()
        if key not in counted:
            counted[key] = COMPUTE.call(functools.partial(projector.count, image))
        counts.append(counted[key])
    return counts
