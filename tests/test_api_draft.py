"""A draft model through the API and the CLI: ``/api/create``'s ``draft_files``; ``show`` and ``ps`` name it.

The ``ollama`` Python client has no ``draft_files`` argument (0.6.3), so it uploads the blobs and
reads ``show``; the create itself is the JSON Ollama's CLI sends, posted with httpx.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.chain_gguf import write_chain_gguf
from tests.support.tiny_gguf import tiny_vocab, write_tiny_gguf

LLAMADECK = str(Path(sys.executable).parent / "llamadeck")
GIB = 1 << 30


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("api-draft")
    tokens, scores, types = tiny_vocab()
    return {
        "target": write_tiny_gguf(d / "Target-Q8_0.gguf", quant="Q8_0", seed=1)[0],
        "draft": write_tiny_gguf(d / "Draft-Q4_0.gguf", quant="Q4_0", seed=2)[0],
        "f16": write_tiny_gguf(d / "Draft-F16.gguf", quant="F16", seed=3)[0],
        "foreign": write_chain_gguf(
            d / "Foreign.gguf", {}, vocab=([*tokens[:9], "x9", *tokens[10:]], scores, types)
        ),
    }


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 * GIB, gpu_free_vram=None))
    yield engine
    engine.close()


@pytest.fixture
def base_url(engine: Engine) -> Iterator[str]:
    with running_api(engine) as url:
        yield url


def digest_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def create(base_url: str, weights: dict[str, Path], **body: object) -> httpx.Response:
    client = ollama.Client(host=base_url)
    files = {"Target-Q8_0.gguf": client.create_blob(weights["target"])}
    return httpx.post(
        f"{base_url}/api/create", json={"model": "fast", "files": files, "stream": False, **body}, timeout=60
    )


def test_create_with_draft_files_then_show_and_ps_name_the_draft(
    base_url: str, engine: Engine, weights: dict[str, Path]
) -> None:
    client = ollama.Client(host=base_url)
    draft_digest = client.create_blob(weights["draft"])
    made = create(base_url, weights, draft_files={"Draft-Q4_0.gguf": draft_digest})
    assert made.status_code == 200 and made.json() == {"status": "success"}, made.text
    shown = client.show("fast")
    assert shown.modelfile and f"DRAFT {engine.blob_path(draft_digest)}\n" in shown.modelfile
    raw = httpx.post(f"{base_url}/api/show", json={"model": "fast"}).json()
    assert raw["draft"] == {
        "model": "Draft-Q4_0.gguf",
        "digest": draft_digest.removeprefix("sha256:"),
        "size": weights["draft"].stat().st_size,
        "family": "llama",
        "parameter_size": raw["draft"]["parameter_size"],
        "quantization_level": "Q4_0",
    }
    assert "draft" not in httpx.post(f"{base_url}/api/show", json={"model": "fast"}).json()["details"]
    reply = client.generate("fast", "hello", options={"num_predict": 2}, keep_alive=300)
    assert reply.done
    [running] = httpx.get(f"{base_url}/api/ps").json()["models"]
    assert running["draft"]["model"] == "Draft-Q4_0.gguf"
    assert client.ps().models[0].model == "fast:latest"  # Ollama's client still parses the answer
    listed = subprocess.run(
        [LLAMADECK, "ps"],
        env=os.environ | {"LLAMADECK_HOST": base_url.removeprefix("http://")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "DRAFT", "ID"] and row.split()[:2] == [
        "fast:latest",
        "Draft-Q4_0.gguf",
    ]


def test_create_from_a_stored_model_with_draft_files(
    base_url: str, engine: Engine, weights: dict[str, Path]
) -> None:
    engine.create("base", f"FROM {weights['target']}\n")
    digest = ollama.Client(host=base_url).create_blob(weights["draft"])
    body = {"model": "fast", "from": "base", "draft_files": {"Draft-Q4_0.gguf": digest}, "stream": False}
    answer = httpx.post(f"{base_url}/api/create", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    made = engine.resolve("fast")
    assert made.config.draft is not None and made.config.draft.files[0].sha256 == digest.removeprefix(
        "sha256:"
    )
    assert made.files == engine.resolve("base").files


def test_cli_create_with_draft_quantize_then_show_names_the_draft(
    engine: Engine, weights: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {weights['target']}\nDRAFT {weights['f16']}\n")
    made = subprocess.run(
        [LLAMADECK, "create", "fast", "-f", str(tmp_path / "Modelfile"), "--draft-quantize", "Q8_0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    shown = subprocess.run([LLAMADECK, "show", "fast"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    [line] = [line for line in shown.stdout.splitlines() if line.strip().startswith("draft")]
    assert line.split()[1:3] == ["Draft-F16.gguf", "(Q8_0,"]  # what DRAFT named, quantized


def test_a_model_without_a_draft_shows_none(base_url: str, weights: dict[str, Path]) -> None:
    assert create(base_url, weights).status_code == 200
    assert "draft" not in httpx.post(f"{base_url}/api/show", json={"model": "fast"}).json()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"draft_quantize": "q8_0"}, "--draft-quantize requires a DRAFT model"),
        ({"draft_files": {"../escape.gguf": "sha256:" + "a" * 64}}, "draft_files: invalid file path"),
        ({"draft_files": {"d.gguf": ""}}, "invalid digest format"),
        ({"draft_files": ["d.gguf"]}, "draft_files must be an object"),
    ],
)
def test_bad_draft_requests_are_400(
    base_url: str, weights: dict[str, Path], body: dict, message: str
) -> None:
    answer = create(base_url, weights, **body)
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text


def test_a_draft_blob_never_uploaded_is_404_as_for_files(base_url: str, weights: dict[str, Path]) -> None:
    answer = create(base_url, weights, draft_files={"d.gguf": "sha256:" + "0" * 64})
    assert answer.status_code == 404 and "not found: upload it first" in answer.json()["error"]


def test_a_draft_of_another_vocabulary_is_400_and_nothing_is_made(
    base_url: str, engine: Engine, weights: dict[str, Path]
) -> None:
    digest = ollama.Client(host=base_url).create_blob(weights["foreign"])
    answer = create(base_url, weights, draft_files={"Foreign.gguf": digest})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert "token 9 is 'x9' in it" in error and "\n" not in error
    assert httpx.post(f"{base_url}/api/show", json={"model": "fast"}).status_code == 404


def test_create_streams_the_draft_steps(base_url: str, weights: dict[str, Path]) -> None:
    client = ollama.Client(host=base_url)
    digest = client.create_blob(weights["draft"])
    with httpx.stream(
        "POST",
        f"{base_url}/api/create",
        json={
            "model": "fast",
            "files": {"T.gguf": client.create_blob(weights["target"])},
            "draft_files": {"D.gguf": digest},
        },
        timeout=60,
    ) as streamed:
        statuses = [json.loads(line).get("status") for line in streamed.iter_lines() if line]
    assert "storing the draft model" in statuses and statuses[-1] == "success"
