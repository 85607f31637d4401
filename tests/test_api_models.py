"""Ollama's model-management routes on a real uvicorn, driven by the real ``ollama`` client and httpx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from api.limits import MAX_JSON_BYTES
from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

GIB = 1024**3
TINY = "hf.co/acme/Tiny-GGUF:Q8_0"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("api-repos")
    return {
        "tiny": write_tiny_gguf(d / "Tiny-Q8_0.gguf", quant="Q8_0")[0],
        "big": write_tiny_gguf(d / "Big-Q8_0.gguf", quant="Q8_0", pad_bytes=60 * 1000 * 1000, seed=2)[0],
    }


@pytest.fixture
def hub(files: dict[str, Path]) -> Iterator[FakeHub]:
    with FakeHub() as fake, fake.patch_endpoint():
        fake.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": files["tiny"], "README.md": b"# Tiny\n"})
        fake.add_repo("acme/Big-GGUF", {"Big-Q8_0.gguf": files["big"]})
        yield fake


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 * GIB, gpu_free_vram=None))
    yield engine
    engine.close()


@pytest.fixture
def base_url(engine: Engine) -> Iterator[str]:
    with running_api(engine) as url:
        yield url


@pytest.fixture
def pulled(engine: Engine, hub: FakeHub) -> str:
    engine.pull(TINY)
    return TINY


def test_root_says_ollama_is_running_and_version_parses(base_url: str) -> None:
    assert httpx.get(base_url).text == "Ollama is running"
    version = httpx.get(f"{base_url}/api/version").json()["version"]
    assert all(part.isdigit() for part in version.split("."))


def test_list_shows_pulled_models_with_ollamas_fields(base_url: str, pulled: str) -> None:
    models = ollama.Client(host=base_url).list().models
    assert [m.model for m in models] == [pulled]
    (model,) = models
    assert model.size and model.digest and len(model.digest) == 64
    assert model.details is not None
    assert model.details.format == "gguf" and model.details.family == "llama"
    assert model.details.quantization_level == "Q8_0" and model.details.parameter_size
    raw = httpx.get(f"{base_url}/api/tags").json()["models"][0]
    assert {"name", "model", "modified_at", "size", "digest", "details"} <= raw.keys()


def test_list_is_empty_without_models(base_url: str) -> None:
    assert ollama.Client(host=base_url).list().models == []


def test_show_gives_template_details_and_model_info(base_url: str, pulled: str) -> None:
    shown = ollama.Client(host=base_url).show(pulled)
    assert shown.details is not None and shown.details.format == "gguf"
    assert shown.modelinfo is not None and shown.modelinfo["general.architecture"] == "llama"
    assert shown.template and shown.modelfile and f"FROM {pulled}" in shown.modelfile
    assert shown.license and "mit" in shown.license.lower()


def test_show_of_an_unknown_model_is_404_in_ollamas_words(base_url: str) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=base_url).show("nothing-here")
    assert caught.value.status_code == 404
    assert caught.value.error == "model 'nothing-here' not found"


def test_pull_streams_progress_and_success(base_url: str, engine: Engine, hub: FakeHub) -> None:
    statuses = list(ollama.Client(host=base_url).pull(TINY, stream=True))
    assert statuses[0].status == "pulling manifest"
    assert statuses[-1].status == "success"
    downloads = [s for s in statuses if s.total]
    assert downloads and downloads[-1].completed == downloads[-1].total
    assert any(s.status == "verifying sha256 digest" for s in statuses)
    assert [m.reference for m in engine.list_models()] == [TINY]


def test_pull_without_stream_answers_once(base_url: str, engine: Engine, hub: FakeHub) -> None:
    assert ollama.Client(host=base_url).pull(TINY, stream=False).status == "success"
    assert engine.resolve(TINY).reference == TINY


def test_pull_of_an_unknown_repo_is_404_or_an_error_line_once_streaming(base_url: str, hub: FakeHub) -> None:
    body = {"model": "hf.co/acme/Nope-GGUF", "stream": False}
    response = httpx.post(f"{base_url}/api/pull", json=body)
    assert response.status_code == 404 and "Nope-GGUF" in response.json()["error"]
    with pytest.raises(ollama.ResponseError, match="Nope-GGUF"):  # as Ollama: the error arrives as a line
        list(ollama.Client(host=base_url).pull("hf.co/acme/Nope-GGUF", stream=True))


def test_pull_of_a_hostile_name_is_400(base_url: str, hub: FakeHub) -> None:
    response = httpx.post(f"{base_url}/api/pull", json={"model": "hf.co/../../etc"})
    assert response.status_code == 400 and response.json()["error"]


def test_pull_failing_mid_stream_ends_with_an_error_line(base_url: str, hub: FakeHub) -> None:
    hub.fault("Tiny-Q8_0.gguf", "corrupt")
    with httpx.stream("POST", f"{base_url}/api/pull", json={"model": TINY}, timeout=30) as response:
        assert response.status_code == 200
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert "error" in lines[-1] and lines[-1]["error"]
    assert all("traceback" not in json.dumps(line).lower() for line in lines)


def test_a_client_that_disconnects_cancels_the_pull_and_the_partial_stays(
    base_url: str, engine: Engine, hub: FakeHub
) -> None:
    hub.fault("Big-Q8_0.gguf", "slow", rate=4 * 1024 * 1024)
    with httpx.stream("POST", f"{base_url}/api/pull", json={"model": "hf.co/acme/Big-GGUF"}, timeout=30) as r:
        for line in r.iter_lines():
            if json.loads(line).get("completed", 0) > 1024 * 1024:
                break
    partial = engine.home / "partial"
    deadline = time.monotonic() + 300  # a hang guard: a loaded machine may be slow
    served = -1
    while time.monotonic() < deadline:  # the download stops: the hub serves no more bytes
        now = hub.bytes_served["Big-Q8_0.gguf"]
        if now == served:
            break
        served = now
        time.sleep(1.0)
    assert served < 40 * 1000 * 1000, "the pull went on after the client left"
    assert engine.list_models() == []
    assert any(p.stat().st_size > 0 for p in partial.rglob("*") if p.is_file()), "partial kept for resume"
    hub.clear_faults()
    hub.reset_counts()
    assert ollama.Client(host=base_url).pull("hf.co/acme/Big-GGUF").status == "success"
    size = engine.resolve("hf.co/acme/Big-GGUF").size
    assert hub.bytes_served["Big-Q8_0.gguf"] < size, "the second pull resumed"


def test_copy_then_delete(base_url: str, engine: Engine, pulled: str) -> None:
    client = ollama.Client(host=base_url)
    client.copy(pulled, "mine")
    assert {m.model for m in client.list().models} == {pulled, "mine:latest"}
    client.delete("mine")
    assert [m.model for m in client.list().models] == [pulled]
    with pytest.raises(ollama.ResponseError) as caught:
        client.delete("mine")
    assert caught.value.status_code == 404 and caught.value.error == "model 'mine' not found"


def test_copy_of_an_unknown_model_is_404(base_url: str) -> None:
    response = httpx.post(f"{base_url}/api/copy", json={"source": "ghost", "destination": "other"})
    assert response.status_code == 404
    assert response.json() == {"error": "model 'ghost' not found"}


def test_copy_to_a_hostile_name_is_400(base_url: str, pulled: str) -> None:
    response = httpx.post(f"{base_url}/api/copy", json={"source": pulled, "destination": "../../x"})
    assert response.status_code == 400 and response.json()["error"]


def test_ps_lists_loaded_models(base_url: str, engine: Engine, pulled: str) -> None:
    client = ollama.Client(host=base_url)
    assert client.ps().models == []
    for _ in engine.generate(pulled, "hi", max_tokens=2):
        pass
    (running,) = client.ps().models
    assert running.model == pulled and running.size and running.expires_at is not None
    assert running.details is not None and running.details.format == "gguf"
    raw = httpx.get(f"{base_url}/api/ps").json()["models"][0]
    assert raw["context_length"] > 0 and raw["size_vram"] == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/show", b"{not json"),
        ("POST", "/api/show", b"[1, 2]"),
        ("POST", "/api/show", b""),
        ("POST", "/api/show", b'{"model": 3}'),
        ("POST", "/api/pull", b'{"model": "x", "stream": "yes"}'),
        ("DELETE", "/api/delete", b"{}"),
        ("POST", "/api/copy", b'{"source": "a"}'),
        ("POST", "/api/show", b"[" * 100000),
    ],
)
def test_malformed_requests_are_400_with_an_error(base_url: str, method: str, path: str, body: bytes) -> None:
    response = httpx.request(method, f"{base_url}{path}", content=body)
    assert response.status_code == 400
    assert set(response.json()) == {"error"} and response.json()["error"]


def test_a_body_over_the_limit_is_413(base_url: str) -> None:
    big = b'{"model": "' + b"x" * (MAX_JSON_BYTES + 1) + b'"}'
    response = httpx.post(f"{base_url}/api/show", content=big, timeout=60)
    assert response.status_code == 413 and response.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it is read
        yield b'{"model": "'
        for _ in range((MAX_JSON_BYTES >> 20) + 1):
            yield b"x" * (1 << 20)
        yield b'"}'

    response = httpx.post(f"{base_url}/api/show", content=chunks(), timeout=60)
    assert response.status_code == 413 and response.json()["error"]


def test_unknown_routes_and_methods_answer_json_errors(base_url: str) -> None:
    assert httpx.get(f"{base_url}/api/nothing").json() == {"error": "Not Found"}
    response = httpx.get(f"{base_url}/api/show")
    assert response.status_code == 405 and response.json()["error"]
