"""Images in the shared KV pool: prompts with images, more than the pool holds, all finish as alone.

An image's tokens take cells like text (one placeholder per image token in
the sequence), so a request holding an image can be parked for lack of
cells and resumed: from its saved cells (CPU), or by evaluating its sequence
again, which feeds the image again from the request's bytes (the projector's
cache by content hash: no second encode).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.events import Done
from engine.runtime.llama.model import Model
from engine.runtime.llama.vision import Projector
from engine.runtime.request import GREEDY, ImageInput, Request
from engine.runtime.scheduler import Scheduler
from engine.runtime.vision_prompt import placeholder
from tests.support.images import image_bytes
from tests.support.tiny_gguf import write_tiny_gguf
from tests.support.tiny_mmproj import IMAGE_TOKENS, write_tiny_mmproj

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 250, 0), (0, 250, 250), (250, 0, 250)]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Model, Projector]]:
    d = tmp_path_factory.mktemp("vision-pool")
    model = Model.load(write_tiny_gguf(d / "Tiny-Q8_0.gguf")[0], n_gpu_layers=0, label="tiny")
    projector = Projector.load(write_tiny_mmproj(d / "mmproj.gguf"), model, n_threads=1, use_gpu=False)
    yield model, projector
    projector.free()
    model.free()


def make(model: Model, projector: Projector, **options: object) -> Scheduler:
    settings: dict[str, object] = {"n_ctx_per_seq": 256, "n_parallel": 6, "n_threads": 1, "flash_attn": "off"}
    settings.update(options)
    scheduler = Scheduler(model, **settings)  # type: ignore[arg-type]
    scheduler.projector = projector
    return scheduler


def request(model: Model, i: int) -> Request:
    """Text, an image of its own colour, more text: the reply depends on all three."""
    data = image_bytes("PNG", (28, 28), COLORS[i])
    head = model.tokenize(f"picture {i} of the river town, look:", add_special=True)
    tail = model.tokenize(f" and say what market number {i} sells", add_special=False)
    tokens = [*head, *[placeholder(data)] * IMAGE_TOKENS, *tail]
    return Request(tokens, GREEDY, 60, images=(ImageInput(len(head), IMAGE_TOKENS, data),))


def alone(model: Model, projector: Projector, req: Request) -> tuple[str, Done]:
    with make(model, projector, n_parallel=1) as scheduler:
        return scheduler.submit(req).collect()


@pytest.mark.parametrize("save_states", [True, False], ids=["cells-saved", "evaluated-again"])
def test_image_requests_parked_and_resumed_finish_each_as_alone(
    loaded: tuple[Model, Projector], save_states: bool
) -> None:
    model, projector = loaded
    requests = [request(model, i) for i in range(len(COLORS))]
    expected = [alone(model, projector, req) for req in requests]
    encodes = projector.encodes
    # 6 requests of ~80 cells each want ~480 cells; the pool has 256: some must be parked and resumed
    with make(model, projector, kv_cells=256, save_states=save_states) as scheduler:
        results = [handle.collect() for handle in scheduler.submit_many(requests)]
        stats = scheduler.stats()
    assert [done.error for _, done in results] == [None] * len(requests)
    assert [text for text, _ in results] == [text for text, _ in expected]
    assert [(d.reason, d.completion_tokens) for _, d in results] == [
        (d.reason, d.completion_tokens) for _, d in expected
    ]
    assert stats.parks > 0 and stats.paused == 0 and stats.queued == 0 and 0 < stats.kv_used <= 256
    assert projector.encodes == encodes  # every image came from the projector's cache, however often fed
