"""The projector in memory: an image is encoded by mtmd and decoded into a sequence between text tokens,
the same image is encoded once, and what follows an image is the same however often it is evaluated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from engine.errors import InvalidInput, LoadError
from engine.runtime.llama.context import Batch, Context
from engine.runtime.llama.model import Model
from engine.runtime.llama.vision import Projector
from tests.support.images import image_bytes
from tests.support.tiny_gguf import N_EMBD, write_tiny_gguf
from tests.support.tiny_mmproj import IMAGE_TOKENS, write_tiny_mmproj


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Model, Projector, Path]]:
    d = tmp_path_factory.mktemp("vision-runtime")
    model = Model.load(write_tiny_gguf(d / "Tiny-Q8_0.gguf")[0], n_gpu_layers=0, label="tiny")
    projector = Projector.load(write_tiny_mmproj(d / "mmproj.gguf"), model, n_threads=1, use_gpu=False)
    yield model, projector, d
    projector.free()
    model.free()


def logits_after_image(model: Model, projector: Projector, image: bytes) -> np.ndarray:
    """Text, the image, then one more token: the last token's logits."""
    ctx = Context(model, n_ctx=256, n_batch=64)
    batch = Batch(64)
    try:
        head = model.tokenize("look:", add_special=True)
        batch.add_run(head, 0, 0, logits_last=False)
        ctx.decode(batch)
        pos = projector.eval_into(ctx, projector.encode(image), seq=0, pos=len(head))
        assert pos == len(head) + IMAGE_TOKENS
        batch.clear()
        index = batch.add(model.tokenize(" what", add_special=False)[0], pos, 0, True)
        ctx.decode(batch)
        row = llama_cpp.llama_get_logits_ith(ctx.ptr, index)
        return np.ctypeslib.as_array(row, shape=(model.n_vocab,)).copy()
    finally:
        batch.free()
        ctx.free()


def test_an_image_is_decoded_into_a_sequence_and_encoded_once(loaded: tuple[Model, Projector, Path]) -> None:
    model, projector, _ = loaded
    red, blue = image_bytes("PNG", (40, 30), (255, 0, 0)), image_bytes("JPEG", (30, 40), (0, 0, 255))
    before = projector.encodes
    first = logits_after_image(model, projector, red)
    again = logits_after_image(model, projector, red)  # the next turn of an image chat
    other = logits_after_image(model, projector, blue)
    assert projector.encodes - before == 2  # red once, blue once
    assert np.array_equal(first, again) and not np.allclose(first, other)  # the image is what was seen
    encoded = projector.encode(red)
    assert (
        encoded.n_tokens == encoded.n_pos == IMAGE_TOKENS and len(encoded.embeddings) == IMAGE_TOKENS * N_EMBD
    )


def test_a_bad_image_is_invalid_input_not_a_crash(loaded: tuple[Model, Projector, Path]) -> None:
    _, projector, _ = loaded
    with pytest.raises(InvalidInput, match="not a JPEG, PNG or WebP"):
        projector.encode(b"GIF89a....")


def test_a_projector_for_another_width_is_a_load_error(loaded: tuple[Model, Projector, Path]) -> None:
    model, _, d = loaded
    wide = write_tiny_mmproj(d / "mmproj-wide.gguf", n_embd_text=2 * N_EMBD)
    with pytest.raises(LoadError, match="could not load the vision projector"):
        Projector.load(wide, model, n_threads=1, use_gpu=False)
    with pytest.raises(LoadError, match="not a vision projector"):
        Projector.load(d / "Tiny-Q8_0.gguf", model, n_threads=1, use_gpu=False)


def test_a_vision_model_loads_its_projector_in_its_worker_and_still_chats(
    loaded: tuple[Model, Projector, Path],
) -> None:
    from engine import Engine
    from engine.events import Done
    from engine.machine.memory import Machine

    _, _, d = loaded
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    try:
        made = engine.create("eyes", f"FROM {d / 'Tiny-Q8_0.gguf'}\nFROM {d / 'mmproj.gguf'}\n")
        events = list(engine.generate("eyes", "hello", max_tokens=2, temperature=0))
        assert isinstance(events[-1], Done) and events[-1].error is None
        (resident,) = engine.loaded()
        assert resident.reference == made.reference
        assert any("projector:" in line and "mlp" in line for line in engine.logs())  # mtmd, in the worker
        red, blue = image_bytes("PNG", (40, 30), (255, 0, 0)), image_bytes("WEBP", (30, 40), (0, 0, 255))
        first = [{"role": "user", "content": "what is it?", "images": [red]}]
        events = list(
            engine.chat("eyes", first, conversation="c1", options={"num_predict": 4, "temperature": 0})
        )
        done = events[-1]
        assert isinstance(done, Done) and done.error is None and done.completion_tokens > 0
        reply = "".join(e.text for e in events[:-1] if hasattr(e, "text"))
        second = [*first, {"role": "assistant", "content": reply}, {"role": "user", "content": "and?"}]
        again = list(engine.chat("eyes", second, conversation="c1", options={"num_predict": 4}))[-1]
        assert isinstance(again, Done) and again.error is None
        assert (
            again.cached_tokens > IMAGE_TOKENS
        )  # the image's cells were kept: not evaluated, nor encoded, again
        with_blue = list(engine.generate("eyes", "and this?", images=[blue], max_tokens=3))[-1]
        assert isinstance(with_blue, Done) and with_blue.error is None
    finally:
        engine.close()
