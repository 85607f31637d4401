"""``create`` from a Hugging Face safetensors folder: the Modelfile's ``FROM ./folder``, the CLI, and
``/api/create`` with the folder's files uploaded as blobs by the real ``ollama`` client."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from engine import Done, Engine, InvalidInput, Machine, Progress, Token
from engine.convert.writer import convert_folder
from engine.ingest.local import import_gguf
from engine.store.model_store import Store
from engine.store.refs import LocalRef
from tests.support.api_server import running_api
from tests.support.cli import assert_one_line_error, llamadeck
from tests.support.hf_tiny import write_tiny_hf

GIB = 1 << 30


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 * GIB, gpu_free_vram=None))
    yield engine
    engine.close()


def _chat(engine: Engine, name: str) -> Done:
    events = list(
        engine.chat(name, [{"role": "user", "content": "Hi"}], options={"num_predict": 3, "seed": 1})
    )
    assert all(isinstance(e, Token) for e in events[:-1]) and isinstance(events[-1], Done)
    return events[-1]


def test_from_a_safetensors_folder_converts_imports_and_chats(engine: Engine, tmp_path: Path) -> None:
    write_tiny_hf(tmp_path / "Tiny-Qwen3", "qwen3")
    seen: list[object] = []
    made = engine.create(
        "tq", "FROM ./Tiny-Qwen3\nSYSTEM Be brief.\n", base_dir=tmp_path, on_event=seen.append
    )
    assert (made.architecture, made.quant, made.config.system) == ("qwen3", "BF16", "Be brief.")
    assert made.config.template and "<|start|>" in made.config.template  # tokenizer_config's chat template
    assert any(isinstance(e, Progress) and e.action == "converting" for e in seen)
    assert _chat(engine, "tq").completion_tokens > 0
    assert not list((engine.home / "partial").glob("create-*"))  # the converted file went into blobs


def test_the_converted_file_is_hashed_once_while_written(engine: Engine, tmp_path: Path) -> None:
    write_tiny_hf(tmp_path / "m", "llama")
    seen: list[object] = []
    made = engine.create("once", "FROM ./m\n", base_dir=tmp_path, on_event=seen.append)
    actions = {e.action for e in seen if isinstance(e, Progress)}
    assert "converting" in actions and "importing" not in actions  # the import took the writer's digest
    [report] = engine.verify(["once"])  # ... and that digest is the file's
    assert report.problems == []
    assert (
        hashlib.sha256(
            engine.home.joinpath("blobs", f"sha256-{made.files[0].sha256}").read_bytes()
        ).hexdigest()
        == made.files[0].sha256
    )


def test_a_digest_is_not_trusted_for_a_file_changed_after_it_was_written(
    engine: Engine, tmp_path: Path
) -> None:
    converted = convert_folder(write_tiny_hf(tmp_path / "m", "llama"), tmp_path / "m.gguf")
    with open(converted.path, "r+b") as f:  # the same size, other bytes, a later time
        f.seek(-1, 2)
        f.write(b"\x01")
    was = converted.path.stat().st_mtime_ns  # a later time even where the clock's tick is coarse
    os.utime(converted.path, ns=(was, converted.written.identity[3] + 10**9))
    seen: list[object] = []
    made = import_gguf(
        Store(engine.home), converted.path, ref=LocalRef("changed", "latest"),
        written=converted.written, on_event=seen.append,
    )  # fmt: skip
    assert any(isinstance(e, Progress) and e.action == "importing" for e in seen)  # hashed again
    assert made.files[0].sha256 == hashlib.sha256(converted.path.read_bytes()).hexdigest() != converted.sha256


def test_from_a_folder_with_quantize_stores_only_the_quantized_model(engine: Engine, tmp_path: Path) -> None:
    write_tiny_hf(tmp_path / "m", "llama")
    made = engine.create("small", "FROM ./m\n", base_dir=tmp_path, quantize="q8_0")
    assert (made.architecture, made.quant, len(made.files)) == ("llama", "Q8_0", 1)
    assert _chat(engine, "small").completion_tokens > 0


def test_an_architecture_it_cannot_convert_records_nothing(engine: Engine, tmp_path: Path) -> None:
    folder = write_tiny_hf(tmp_path / "m", "llama")
    text = (folder / "config.json").read_text().replace("LlamaForCausalLM", "GPT2LMHeadModel")
    (folder / "config.json").write_text(text)
    with pytest.raises(InvalidInput, match="cannot convert GPT2LMHeadModel models; llamadeck converts"):
        engine.create("nope", "FROM ./m\n", base_dir=tmp_path)
    assert engine.list_models() == []


def test_cli_create_from_a_folder(tmp_path: Path) -> None:
    write_tiny_hf(tmp_path / "g", "gemma3")
    (tmp_path / "Modelfile").write_text("FROM ./g\n")
    made = llamadeck("create", "tiny-gemma", cwd=tmp_path)
    assert made.returncode == 0 and "created tiny-gemma:latest" in made.stdout
    listed = llamadeck("list")
    assert "tiny-gemma" in listed.stdout
    (tmp_path / "g" / "model.safetensors").write_bytes(b"\xff" * 4)  # an untrusted header: a one-line error
    assert_one_line_error(llamadeck("create", "bad", cwd=tmp_path), "safetensors")


def test_a_folder_uploaded_with_ollamas_client_is_converted(engine: Engine, tmp_path: Path) -> None:
    folder = write_tiny_hf(tmp_path / "p", "phi3")
    with running_api(engine) as url:
        client = ollama.Client(host=url)
        files = {
            p.name: client.create_blob(p) for p in sorted(folder.iterdir())
        }  # as ``ollama create`` sends
        statuses = [s.status for s in client.create(model="tiny-phi", files=files, stream=True)]
        assert statuses[-1] == "success"
        shown = client.show("tiny-phi")
        assert shown.details.family == "phi3" or shown.modelinfo["general.architecture"] == "phi3"
        with pytest.raises(ollama.ResponseError) as refused:
            client.create(model="half", files={"config.json": files["config.json"]})
        assert refused.value.status_code == 400
