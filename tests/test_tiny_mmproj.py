"""The tiny projector fixture is a real ``mmproj`` GGUF: llama.cpp's ``mtmd`` loads it beside the tiny
text model and turns an image into embeddings of the text model's width."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.store.gguf_io import ScanLimits, read_raw_header
from tests.support.tiny_gguf import N_EMBD, write_tiny_gguf
from tests.support.tiny_mmproj import IMAGE_TOKENS, write_tiny_mmproj


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    import llama_cpp

    from engine.runtime.llama.log import route_llama_log

    route_llama_log()
    path = write_tiny_gguf(tmp_path_factory.mktemp("vision") / "tiny-Q8_0.gguf")[0]
    params = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    assert model
    yield model
    llama_cpp.llama_model_free(model)


def _mtmd(projector: Path, model: object) -> object:
    from llama_cpp import mtmd_cpp

    params = mtmd_cpp.mtmd_context_params_default()
    params.use_gpu = False
    params.n_threads = 1
    params.print_timings = False
    params.warmup = False
    return mtmd_cpp.mtmd_init_from_file(str(projector).encode(), model, params)


def test_mtmd_loads_the_projector_and_encodes_an_image(text_model: object, tmp_path: Path) -> None:
    from llama_cpp import mtmd_cpp

    ctx = _mtmd(write_tiny_mmproj(tmp_path / "mmproj-tiny-F16.gguf"), text_model)
    assert ctx
    try:
        assert mtmd_cpp.mtmd_support_vision(ctx)
        pixels = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)  # 30 wide, 20 high
        data = (ctypes.c_uint8 * pixels.size).from_buffer_copy(pixels.tobytes())
        bitmap = mtmd_cpp.mtmd_bitmap_init(30, 20, data)
        chunks = mtmd_cpp.mtmd_input_chunks_init()
        prompt = b"look: " + mtmd_cpp.mtmd_default_marker() + b" what is it?"
        text = mtmd_cpp.mtmd_input_text(prompt, len(prompt), True, True)  # text, length, add/parse special
        bitmaps = (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bitmap)
        assert mtmd_cpp.mtmd_tokenize(ctx, chunks, ctypes.byref(text), bitmaps, 1) == 0
        kinds = [
            mtmd_cpp.mtmd_input_chunk_get_type(mtmd_cpp.mtmd_input_chunks_get(chunks, i))
            for i in range(mtmd_cpp.mtmd_input_chunks_size(chunks))
        ]
        assert kinds == [mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_TEXT, mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_IMAGE, 0]
        image = mtmd_cpp.mtmd_input_chunks_get(chunks, 1)
        assert mtmd_cpp.mtmd_input_chunk_get_n_tokens(image) == IMAGE_TOKENS
        assert mtmd_cpp.mtmd_encode_chunk(ctx, image) == 0
        out = mtmd_cpp.mtmd_get_output_embd(ctx)
        embd = np.ctypeslib.as_array(out, shape=(IMAGE_TOKENS * N_EMBD,)).copy()
        assert np.isfinite(embd).all() and embd.std() > 0
        mtmd_cpp.mtmd_input_chunks_free(chunks)
        mtmd_cpp.mtmd_bitmap_free(bitmap)
    finally:
        mtmd_cpp.mtmd_free(ctx)


def test_a_projector_of_another_width_is_refused(text_model: object, tmp_path: Path) -> None:
    """mtmd checks the projector's output width against the text model's, and says no instead of crashing."""
    from llama_cpp import mtmd_cpp

    ctx = _mtmd(write_tiny_mmproj(tmp_path / "mmproj-wide.gguf", n_embd_text=2 * N_EMBD), text_model)
    if ctx:  # pragma: no cover (only if mtmd stopped checking)
        mtmd_cpp.mtmd_free(ctx)
    assert not ctx


def test_header_says_clip_and_mlp(tmp_path: Path) -> None:
    header = read_raw_header(write_tiny_mmproj(tmp_path / "mmproj.gguf"), label="tiny", limits=ScanLimits())
    assert header.strings["general.architecture"] == "clip"
    assert header.strings["clip.projector_type"] == "mlp"
