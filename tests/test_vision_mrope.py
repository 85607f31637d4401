"""M-RoPE vision models (Qwen2-VL, Qwen2.5-VL): an image takes n cells but fewer positions.

Each test compares the scheduler against llama.cpp's own multimodal loop
(``mtmd_helper_eval_chunks``, then greedy decoding at the positions it
returns) or against the same request run alone, so a position off by one
anywhere (prefill, decode, a kept prefix, a parked and resumed sequence)
changes the text.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import llama_cpp
import pytest
from llama_cpp import mtmd_cpp

from engine.images import decode_image
from engine.runtime.llama.compute import COMPUTE
from engine.runtime.llama.context import Batch, Context
from engine.runtime.llama.model import Model
from engine.runtime.llama.sampler import Sampler
from engine.runtime.llama.vision import Projector
from engine.runtime.request import GREEDY, ImageInput, Request
from engine.runtime.scheduler import Scheduler
from engine.runtime.slots import Run, Slot
from engine.runtime.vision_prompt import placeholder
from tests.support.images import image_bytes
from tests.support.tiny_qwen2vl import write_tiny_qwen2vl, write_tiny_qwen2vl_mmproj

KINDS = ["qwen2vl_merger", "qwen2.5vl_merger"]
N_REPLY = 12


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("mrope")
    write_tiny_qwen2vl(d / "qwen2vl-Q8_0.gguf")
    for kind in KINDS:
        write_tiny_qwen2vl_mmproj(d / f"mmproj-{kind}.gguf", projector_type=kind)
    return d


@pytest.fixture(scope="module", params=KINDS)
def loaded(files: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Model, Projector]]:
    model = Model.load(files / "qwen2vl-Q8_0.gguf", n_gpu_layers=0, label="qwen2vl")
    projector = Projector.load(files / f"mmproj-{request.param}.gguf", model, n_threads=1, use_gpu=False)
    assert projector.mrope
    yield model, projector
    projector.free()
    model.free()


def chunked(projector: Projector, text: str, image: bytes) -> tuple[object, list[int], ImageInput]:
    """mtmd's own split of ``text`` (one media marker) and ``image``: its chunks, and the same prompt as
    the scheduler takes it (text chunks' tokens, the image's placeholders)."""
    decoded = decode_image(image)
    pixels = (ctypes.c_uint8 * len(decoded.pixels)).from_buffer_copy(decoded.pixels)
    bitmap = mtmd_cpp.mtmd_bitmap_init(decoded.width, decoded.height, pixels)
    chunks = mtmd_cpp.mtmd_input_chunks_init()
    raw = text.encode()
    prompt = mtmd_cpp.mtmd_input_text(raw, len(raw), True, True)
    bitmaps = (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bitmap)
    assert mtmd_cpp.mtmd_tokenize(projector._ctx, chunks, ctypes.byref(prompt), bitmaps, 1) == 0
    mtmd_cpp.mtmd_bitmap_free(bitmap)
    tokens: list[int] = []
    found: list[ImageInput] = []
    for i in range(mtmd_cpp.mtmd_input_chunks_size(chunks)):
        chunk = mtmd_cpp.mtmd_input_chunks_get(chunks, i)
        if mtmd_cpp.mtmd_input_chunk_get_type(chunk) == mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_TEXT:
            n = ctypes.c_size_t()
            ids = mtmd_cpp.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
            tokens += [ids[k] for k in range(n.value)]
        else:
            n_tokens = mtmd_cpp.mtmd_input_chunk_get_n_tokens(chunk)
            assert mtmd_cpp.mtmd_input_chunk_get_n_pos(chunk) < n_tokens  # the M-RoPE case
            found.append(ImageInput(len(tokens), n_tokens, image))
            tokens += [placeholder(image)] * n_tokens
    (only,) = found
    return chunks, tokens, only


def mtmd_reply(model: Model, projector: Projector, text: str, image: bytes) -> str:
    """llama.cpp's own path: ``mtmd_helper_eval_chunks``, then greedy tokens from the position it returns."""

    def run() -> str:
        chunks, _, _ = chunked(projector, text, image)
        # the scheduler's context settings: the same arithmetic, so the same greedy tokens
        ctx = Context(model, n_ctx=256, n_batch=512, n_threads=1, flash_attn="off", kv_unified=True)
        batch = Batch(64)
        sampler = Sampler(model, temperature=0, repeat_penalty=1.0, seed=42)
        try:
            n_past = llama_cpp.llama_pos(0)
            done = mtmd_cpp.mtmd_helper_eval_chunks(
                projector._ctx, ctx.ptr, chunks, 0, 0, 512, True, ctypes.byref(n_past)
            )
            assert done == 0
            pos, index, out = n_past.value, -1, []
            for _ in range(N_REPLY):
                token = sampler.sample(ctx, index)
                if model.is_eog(token):
                    break
                out.append(token)
                batch.clear()
                index = batch.add(token, pos, 0, True)
                pos += 1
                ctx.decode(batch)
            return model.detokenize(out)
        finally:
            sampler.free()
            batch.free()
            ctx.free()
            mtmd_cpp.mtmd_input_chunks_free(chunks)

    return COMPUTE.call(run)


def image_request(projector: Projector, text: str, image: bytes, **fields: object) -> Request:
    chunks, tokens, found = COMPUTE.call(lambda: chunked(projector, text, image))
    mtmd_cpp.mtmd_input_chunks_free(chunks)
    return Request(tokens, GREEDY, N_REPLY, images=(found,), **fields)  # type: ignore[arg-type]


def make(model: Model, projector: Projector, **options: object) -> Scheduler:
    settings: dict[str, object] = {"n_ctx_per_seq": 256, "n_parallel": 2, "n_threads": 1, "flash_attn": "off"}
    settings.update(options)
    scheduler = Scheduler(model, **settings)  # type: ignore[arg-type]
    scheduler.projector = projector
    return scheduler


def alone(model: Model, projector: Projector, req: Request) -> str:
    with make(model, projector, n_parallel=1) as scheduler:
        text, done = scheduler.submit(req).collect()
    assert done.error is None
    return text


RED = image_bytes("PNG", (40, 30), (255, 0, 0))
WIDE = image_bytes("JPEG", (200, 60), (0, 90, 255))


@pytest.mark.parametrize("image", [RED, WIDE], ids=["4x3-grid", "wide-grid"])
def test_an_image_chat_replies_as_llama_cpps_own_mtmd_loop(
    loaded: tuple[Model, Projector], image: bytes
) -> None:
    model, projector = loaded
    text = f"what is in this picture? {mtmd_cpp.mtmd_default_marker().decode()} tell me about it"
    expected = mtmd_reply(model, projector, text, image)
    assert expected  # (a reply that ended at once would compare nothing)
    assert alone(model, projector, image_request(projector, text, image)) == expected


def test_a_prompt_holds_an_image_as_mtmds_own_split(loaded: tuple[Model, Projector]) -> None:
    """The tokens around each image (Qwen2-VL's <|vision_start|> and <|vision_end|>) as mtmd_tokenize puts
    them: the engine's prompt and llama.cpp's are the same tokens, so the replies above are the same too."""
    from engine.runtime.vision_prompt import ImageMarks
    from engine.templates.message import Message

    model, projector = loaded
    before, after = COMPUTE.call(projector.wrap)
    assert list(before) == model.tokenize("<|vision_start|>", add_special=False)
    assert list(after) == model.tokenize("<|vision_end|>", add_special=False)

    def count(images: list[bytes]) -> list[int]:
        return COMPUTE.call(lambda: [projector.count(image) for image in images])

    (marked,), marks = ImageMarks.of([Message("user", " tell me", images=(WIDE,))], count, projector.wrap)
    assert marks is not None
    ours = marks.tokenize(model, "look:" + marked.content, 10_000, add_special=True, parse_special=True)
    chunks, theirs, _ = COMPUTE.call(
        lambda: chunked(projector, f"look:{mtmd_cpp.mtmd_default_marker().decode()} tell me", WIDE)
    )
    mtmd_cpp.mtmd_input_chunks_free(chunks)
    assert ours == theirs


def test_the_second_turn_reuses_the_images_cells(loaded: tuple[Model, Projector]) -> None:
    model, projector = loaded
    marker = mtmd_cpp.mtmd_default_marker().decode()
    first = image_request(projector, f"look {marker} and say", WIDE, conversation="c")
    with make(model, projector) as scheduler:
        reply, done = scheduler.submit(first).collect()
        assert done.error is None
        encodes = projector.encodes
        (image,) = first.images
        more = model.tokenize(f"{reply} and now the river?", add_special=False)
        second = Request([*first.tokens, *more], GREEDY, N_REPLY, conversation="c", images=first.images)
        again, done = scheduler.submit(second).collect()
    assert done.error is None and done.cached_tokens >= image.start + image.n_tokens  # not evaluated again
    assert projector.encodes == encodes  # nor encoded again
    assert again == alone(model, projector, second)  # and every position after the image as in one go


def test_an_mrope_image_chat_beside_a_text_chat(loaded: tuple[Model, Projector]) -> None:
    model, projector = loaded
    marker = mtmd_cpp.mtmd_default_marker().decode()
    looking = image_request(projector, f"picture: {marker} what colour?", RED)
    talking = Request(model.tokenize("tell me about the river town market"), GREEDY, N_REPLY)
    expected = [alone(model, projector, looking), alone(model, projector, talking)]
    with make(model, projector) as scheduler:
        results = [handle.collect() for handle in scheduler.submit_many([looking, talking])]
    assert [done.error for _, done in results] == [None, None]
    assert [text for text, _ in results] == expected


@pytest.mark.parametrize("save_states", [True, False], ids=["cells-saved", "evaluated-again"])
def test_mrope_image_chats_parked_and_resumed_finish_each_as_alone(
    loaded: tuple[Model, Projector], save_states: bool
) -> None:
    model, projector = loaded
    marker = mtmd_cpp.mtmd_default_marker().decode()
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 250, 0)]
    asks = [
        image_request(projector, f"picture {i}: {marker} what market?", image_bytes("PNG", (56, 28), colour))
        for i, colour in enumerate(colours)
    ]
    # longer replies, so that running sequences alone outgrow the pool
    requests = [Request(ask.tokens, GREEDY, 40, images=ask.images) for ask in asks]
    expected = [alone(model, projector, req) for req in requests]
    need = sum(len(req.tokens) + 40 for req in requests)
    cells = max(len(requests[0].tokens) + 48, need // 2)
    options = {"n_parallel": 4, "n_ctx_per_seq": cells, "kv_cells": cells, "save_states": save_states}
    with make(model, projector, **options) as scheduler:
        results = [handle.collect() for handle in scheduler.submit_many(requests)]
        stats = scheduler.stats()
    assert [done.error for _, done in results] == [None] * len(requests)
    assert [text for text, _ in results] == expected
    assert stats.parks > 0


def test_another_conversation_copies_an_images_cells_up_to_a_position(
    loaded: tuple[Model, Projector],
) -> None:
    model, projector = loaded
    marker = mtmd_cpp.mtmd_default_marker().decode()
    base = image_request(projector, f"the long story of the river town in pictures: {marker} and then", WIDE)
    (image,) = base.images
    tail = model.tokenize(" chapter two begins", add_special=False)
    other = Request([*base.tokens, *tail], GREEDY, 8, conversation="c", images=base.images)
    expected = alone(model, projector, other)
    with make(model, projector) as scheduler:
        first = replace(base, conversation="b")
        assert scheduler.submit(first).collect()[1].error is None  # "b" keeps its sequence and its reply
        text, done = scheduler.submit(other).collect()
    # "c" takes the other sequence and copies b's prefix into it: seq_cp up to a position, not a cell count
    assert done.error is None and done.cached_tokens > image.start + image.n_tokens
    assert text == expected


def test_a_slot_places_its_tokens_after_an_images_positions() -> None:
    slot: Slot[object] = Slot(0)
    # 3 text tokens, a 12-token image over 4 positions, 2 text tokens
    slot.hold([1, 2, 3, *[-5] * 12, 7, 8], [Run(3, 12, 4)])
    assert slot.next_pos == 17 - 12 + 4
    assert [slot.pos_of(i) for i in (0, 2, 3, 9, 14, 15, 16)] == [0, 2, 3, 3, 3, 7, 8]
    assert slot.last_pos() == 8 and slot.cut(9) == 3 and slot.cut(15) == 15
    slot.truncate(15)
    assert slot.next_pos == 7 and slot.last_pos() == 3  # all its cells sit at the image's first position
    slot.truncate(3)
    assert slot.runs == [] and slot.next_pos == 3


def test_a_qwen2vl_model_chats_about_images_through_the_engine_and_the_ollama_client(files: Path) -> None:
    """Refused with a 400 before: now an image chat, its next turn from the image's cells, over the API."""
    import ollama

    from engine import Engine
    from engine.events import Done
    from engine.machine.memory import Machine
    from tests.support.api_server import running_api

    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    try:
        engine.create(
            "qwen-eyes", f"FROM {files / 'qwen2vl-Q8_0.gguf'}\nFROM {files / 'mmproj-qwen2vl_merger.gguf'}\n"
        )
        first = [{"role": "user", "content": "what is it?", "images": [WIDE]}]
        options = {"num_predict": 6, "temperature": 0}
        events = list(engine.chat("qwen-eyes", first, conversation="q", options=options))
        done = events[-1]
        assert isinstance(done, Done) and done.error is None and done.completion_tokens > 0
        reply = "".join(e.text for e in events[:-1] if hasattr(e, "text"))
        second = [*first, {"role": "assistant", "content": reply}, {"role": "user", "content": "and?"}]
        again = list(engine.chat("qwen-eyes", second, conversation="q", options=options))[-1]
        assert (
            isinstance(again, Done) and again.error is None and again.cached_tokens > done.prompt_tokens - 4
        )
        with running_api(engine) as server:
            answer = ollama.Client(host=server).chat("qwen-eyes", first, options=options)
        assert answer.done and answer.message.content == reply  # the same reply, over HTTP
    finally:
        engine.close()
