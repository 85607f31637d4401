"""``/api/blobs`` and ``/api/create`` driven by the real ``ollama`` client against a real uvicorn."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.tiny_gguf import write_tiny_gguf

GIB = 1 << 30


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("api-create")
    return {
        "q8": write_tiny_gguf(d / "Tiny-Q8_0.gguf", quant="Q8_0")[0],
        "split": write_tiny_gguf(d / "split" / "Tiny-Q8_0.gguf", quant="Q8_0", split_tensors=4, seed=4)[0],
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


def test_upload_a_blob_then_create_from_it_with_ollamas_client(
    base_url: str, engine: Engine, weights: dict[str, Path]
) -> None:
    client = ollama.Client(host=base_url)
    digest = client.create_blob(weights["q8"])
    assert digest == digest_of(weights["q8"])
    assert httpx.head(f"{base_url}/api/blobs/{digest}").status_code == 200
    statuses = list(
        client.create(
            model="tiny-assistant",
            files={"Tiny-Q8_0.gguf": digest},
            system="You are terse.",
            parameters={"temperature": 0.3, "stop": ["<end>"]},
            messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
            license="MIT",
            stream=True,
        )
    )
    assert statuses[-1].status == "success"
    made = engine.resolve("tiny-assistant")
    assert made.config.system == "You are terse."
    assert made.config.parameters == {"temperature": 0.3, "stop": ["<end>"]}
    assert made.config.messages == (("user", "Hi"), ("assistant", "Hello"))
    shown = client.show("tiny-assistant")
    assert (
        shown.modelfile
        and "MESSAGE user Hi" in shown.modelfile
        and "SYSTEM You are terse." in shown.modelfile
    )
    assert (
        httpx.post(f"{base_url}/api/show", json={"model": "tiny-assistant"}).json()["system"]
        == "You are terse."
    )
    reply = client.chat(
        "tiny-assistant", messages=[{"role": "user", "content": "Hey"}], options={"num_predict": 3}
    )
    assert reply.done


def test_create_from_a_stored_model_without_stream(
    base_url: str, engine: Engine, weights: dict[str, Path]
) -> None:
    engine.create("base", f"FROM {weights['q8']}\n")
    answer = ollama.Client(host=base_url).create(model="kind", from_="base", system="Be kind.", stream=False)
    assert answer.status == "success"
    assert engine.resolve("kind").config.system == "Be kind."
    assert engine.resolve("kind").files == engine.resolve("base").files


def test_a_split_model_uploaded_part_by_part(base_url: str, engine: Engine, weights: dict[str, Path]) -> None:
    client = ollama.Client(host=base_url)
    parts = sorted(weights["split"].parent.glob("*.gguf"))
    assert len(parts) > 1
    files = {p.name: client.create_blob(p) for p in parts}
    assert client.create(model="parts", files=files).status == "success"
    assert len(engine.resolve("parts").files) == len(parts)


def test_a_blob_with_the_wrong_digest_is_refused_and_not_kept(base_url: str, engine: Engine) -> None:
    wrong = "sha256:" + "0" * 64
    answer = httpx.post(f"{base_url}/api/blobs/{wrong}", content=b"GGUF not really")
    assert answer.status_code == 400 and "digest mismatch" in answer.json()["error"]
    assert httpx.head(f"{base_url}/api/blobs/{wrong}").status_code == 404
    assert not list((engine.home / "partial").glob("upload-*"))


@pytest.mark.parametrize("digest", ["sha256:../../etc/passwd", "md5:abc", "sha256:" + "g" * 64, "../x"])
def test_a_digest_that_is_not_one_is_400(base_url: str, digest: str) -> None:
    answer = httpx.post(f"{base_url}/api/blobs/{digest}", content=b"x")
    assert answer.status_code in (400, 404)  # a slash in the digest never reaches the route at all
    assert answer.status_code != 500


def test_create_refuses_what_ollama_refuses(base_url: str, engine: Engine, weights: dict[str, Path]) -> None:
    def post(body: object) -> httpx.Response:
        return httpx.post(f"{base_url}/api/create", json=body)

    assert post({"model": "x"}).status_code == 400  # neither from nor files
    assert post({"model": "x", "files": {"../escape.gguf": digest_of(weights["q8"])}}).status_code == 400
    assert post({"model": "x", "files": {"a.gguf": ""}}).status_code == 400
    assert post({"model": "x", "from": "nothing-here"}).status_code == 404
    assert post({"model": "x", "files": {"a.gguf": "sha256:" + "1" * 64}}).status_code == 404
    assert post({"model": "x", "from": "y", "parameters": {"no_such_option": 1}}).status_code == 400
    assert (
        post({"model": "x", "from": "y", "messages": [{"role": "robot", "content": "hi"}]}).status_code == 400
    )
    assert post({"model": "hf.co/acme/Mine", "from": "y"}).status_code == 400
    assert engine.list_models() == []


def test_show_modelfile_from_the_api_makes_the_same_model(
    base_url: str, engine: Engine, weights: dict[str, Path]
) -> None:
    engine.create("orig", f"FROM {weights['q8']}\nSYSTEM s\nPARAMETER top_k 7\n")
    text = ollama.Client(host=base_url).show("orig").modelfile
    assert text is not None
    again = engine.create("again", text)
    assert [f.sha256 for f in again.files] == [f.sha256 for f in engine.resolve("orig").files]
    assert again.config.parameters == {"top_k": 7} and again.config.system == "s"
