"""GGUFs built to abort llama.cpp or to cost seconds and gigabytes, given to the command line.

Issue 18, findings 2 and 5. ``llamadeck run`` on a model whose header holds
a value llama.cpp asserts on ended with exit 134 and a gdb backtrace;
``create``, ``pull`` and ``verify`` let such a file through. Each command runs
as a child process, so an abort fails its test and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.store.model_store import Store
from tests.support.cli import assert_one_line_error, llamadeck
from tests.support.fake_hub import FakeHub
from tests.support.hostile_gguf import FOUND, HOSTILE_HEADERS, smuggle, write_hostile
from tests.support.tiny_gguf import write_tiny_gguf
from tests.support.tiny_lora import write_tiny_lora


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-hostile")


def store() -> Store:
    return Store(Path(os.environ["LLAMADECK_HOME"]))


@pytest.mark.parametrize("case", [*FOUND, "wordpiece-with-byte-tokens"])
def test_run_refuses_a_stored_model_llama_cpp_would_abort_on(hostile_dir: Path, case: str) -> None:
    """As a store written before the check holds it: one line naming the key, exit 1 (was 134)."""
    smuggle(store(), "bad", write_hostile(hostile_dir, case))
    result = llamadeck("run", "bad", "hello")
    assert_one_line_error(result, f"{case}.gguf", HOSTILE_HEADERS[case][1])


def test_verify_reports_a_stored_model_llama_cpp_would_abort_on(
    hostile_dir: Path, tiny_models: dict[str, Path]
) -> None:
    smuggle(store(), "good", tiny_models["Q8_0"])
    smuggle(store(), "nan", write_hostile(hostile_dir, "nan-eps"))
    smuggle(store(), "none", write_hostile(hostile_dir, "tokenizer-none"))
    result = llamadeck("verify")
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok      good:latest") for line in lines), result.stdout
    assert any(
        line.startswith("FAILED  nan:latest") and "layer_norm_rms_epsilon is NaN" in line for line in lines
    )
    assert any(line.startswith("FAILED  none:latest") and "tokenizer.ggml.model" in line for line in lines)


@pytest.mark.parametrize("case", FOUND)
def test_create_refuses_a_header_llama_cpp_would_abort_on(
    hostile_dir: Path, tmp_path: Path, case: str
) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {write_hostile(hostile_dir, case)}\n")
    assert_one_line_error(llamadeck("create", "bad", cwd=tmp_path), HOSTILE_HEADERS[case][1])
    assert "bad:latest" not in llamadeck("list").stdout


def test_pull_refuses_a_header_llama_cpp_would_abort_on(hostile_dir: Path) -> None:
    """The remote header is scanned before the download: nothing is fetched, nothing registered."""
    with FakeHub() as hub:
        hub.add_repo("acme/Bad-GGUF", {"Bad-Q8_0.gguf": write_hostile(hostile_dir, "more-used-than-experts")})
        result = llamadeck("pull", "acme/Bad-GGUF", hub=hub)
    assert_one_line_error(result, "expert_used_count")
    assert llamadeck("list").stdout.splitlines() == ["NAME   ID   SIZE   QUANT   MODIFIED"]


def test_create_refuses_an_adapter_with_oversized_metadata(tmp_path: Path) -> None:
    """Finding 5: an 18 MB "LoRA" of 2,000,000 strings took 50 s and 2.3 GB; now one line, at once."""
    model = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    lora = write_tiny_lora(tmp_path / "huge-lora.gguf", junk_strings=100_000)
    (tmp_path / "Modelfile").write_text(f"FROM {model}\nADAPTER {lora}\n")
    assert_one_line_error(llamadeck("create", "lora", cwd=tmp_path), "huge-lora.gguf", "llamadeck.junk")
    assert "lora:latest" not in llamadeck("list").stdout
