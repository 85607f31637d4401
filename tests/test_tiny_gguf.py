"""The generated fixtures are real GGUF models that the real llama.cpp loads and runs.

On a GPU machine, after installing the CUDA build of llama-cpp-python
(``shared/gpu/build-llama-cuda.sh``), this file is the first to run: the
fixtures once crashed CUDA builds (see tests/support/tiny_gguf.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.store.gguf_io import verify_structure
from tests.support.tiny_gguf import N_CTX_TRAIN, N_LAYERS, N_VOCAB, write_tiny_gguf


@pytest.fixture(scope="module")
def llama_cpp():
    """llama_cpp with its log routed the engine's way.

    Not a callback of this module's own: llama.cpp keeps the pointer for the
    life of the process, and a ctypes callback collected with this module's
    fixture crashed the next model load of the test run (a segfault in the TUI tests).
    """
    import llama_cpp

    from engine.runtime.llama.log import route_llama_log

    route_llama_log()
    yield llama_cpp


@pytest.mark.parametrize("quant", ["F32", "F16", "Q8_0", "Q4_0"])
def test_llama_cpp_loads_and_generates(llama_cpp, tiny_models: dict[str, Path], quant: str) -> None:
    model = llama_cpp.Llama(str(tiny_models[quant]), n_ctx=128, verbose=False)
    out = model.create_completion("hello world", max_tokens=4, temperature=0)
    assert out["usage"]["completion_tokens"] > 0
    assert model.n_vocab() == N_VOCAB
    assert model.metadata["tokenizer.chat_template"].startswith("{% for message in messages %}")


def test_header_facts_read_back(tiny_models: dict[str, Path]) -> None:
    info = verify_structure(tiny_models["Q8_0"], label="tiny")
    assert info.architecture == "llama"
    assert info.shape.n_layers == N_LAYERS
    assert info.shape.context_length == N_CTX_TRAIN
    assert info.shape.n_vocab == N_VOCAB
    assert info.file_type == 7  # MOSTLY_Q8_0


def test_split_model_loads_from_its_first_part(llama_cpp, tmp_path: Path) -> None:
    parts = write_tiny_gguf(tmp_path / "Split-Q8_0.gguf", split_tensors=8)
    assert [p.name for p in parts] == [f"Split-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    model = llama_cpp.Llama(str(parts[0]), n_ctx=64, verbose=False)
    assert model.n_vocab() == N_VOCAB
