"""Embeddings as today's clients ask for them, on a real uvicorn: options, keep_alive, dimensions, usage.

Driven by the real ``ollama`` and ``openai`` clients and LangChain's
``OllamaEmbeddings`` (which sends a dozen options, most of them null, on
every call); LiteLLM's ``ollama/`` embeddings are replayed as its code sends
and reads them (``prompt_eval_count`` is its usage).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from langchain_ollama import OllamaEmbeddings

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.fake_hub import FakeHub, isolated_hf_env
from tests.support.tiny_gguf import N_EMBD, write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
EMBEDDER = "hf.co/acme/Embed-GGUF:F32"
MODEL = "hf.co/acme/Tiny-GGUF:Q8_0"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    root = tmp_path_factory.mktemp("embed")
    chain = {token_id("h"): 2, token_id("w"): 2}  # "hello" and "world" pool to different vectors
    embedder: Path = write_chain_gguf(root / "Embed-F32.gguf", chain, pooling=1)
    model = write_tiny_gguf(root / "Tiny-Q8_0.gguf")[0]
    # module-scoped: its own store and Hugging Face home (the per-test isolation comes later)
    with isolated_hf_env(root / "hf-home"), FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Embed-GGUF", {"Embed-F32.gguf": embedder})
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model})
        engine = Engine(root / "store", machine=lambda: CPU_BOX)
        engine.pull(EMBEDDER)
        engine.pull(MODEL)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def server(engine: Engine) -> Iterator[str]:
    with running_api(engine) as base_url:
        yield base_url


@pytest.fixture
def unloaded(engine: Engine) -> None:
    engine.unload()


def tokens(server: str, text: str) -> int:
    """What /api/embed counts for one text: BOS and its pieces."""
    count = httpx.post(f"{server}/api/embed", json={"model": EMBEDDER, "input": text}).json()[
        "prompt_eval_count"
    ]
    assert isinstance(count, int) and count > 1
    return int(count)


def unit(vector: list[float]) -> bool:
    return sum(x * x for x in vector) == pytest.approx(1.0, abs=1e-5)


def test_langchains_ollama_embeddings_work_with_their_null_options(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    embeddings = OllamaEmbeddings(model=EMBEDDER, base_url=server)
    with caplog.at_level(logging.WARNING, logger="llamadeck.engine.options"):
        documents = embeddings.embed_documents(["hello", "world", "hello"])
        query = embeddings.embed_query("hello")
    assert len(documents) == 3 and all(len(v) == N_EMBD and unit(v) for v in documents)
    assert documents[0] == pytest.approx(documents[2]) and documents[0] != pytest.approx(documents[1])
    assert query == pytest.approx(documents[0])
    ignored = [r.getMessage() for r in caplog.records if r.name == "llamadeck.engine.options"]
    assert ignored and all("'tfs_z'" in line for line in ignored)  # once per request, in the log only


def test_langchain_options_and_dimensions_reach_the_model(server: str) -> None:
    embeddings = OllamaEmbeddings(model=EMBEDDER, base_url=server, num_ctx=512, temperature=0.1, dimensions=8)
    (vector,) = embeddings.embed_documents(["hello world"])
    assert len(vector) == 8 and unit(vector)


def test_embed_reports_tokens_and_load_time_as_ollama_does(server: str, unloaded: None) -> None:
    client = ollama.Client(host=server)
    first = client.embed(EMBEDDER, ["hello", "hello world"])
    assert first.prompt_eval_count == tokens(server, "hello") + tokens(server, "hello world")
    assert first.load_duration and first.load_duration > 0  # this request loaded the model
    assert first.total_duration and first.total_duration >= first.load_duration
    again = client.embed(EMBEDDER, "world")
    assert again.prompt_eval_count == tokens(server, "world")
    assert again.load_duration == 0 and again.total_duration and again.total_duration > 0
    raw = httpx.post(f"{server}/api/embed", json={"model": EMBEDDER, "input": "hello"}).json()
    assert set(raw) == {"model", "embeddings", "total_duration", "load_duration", "prompt_eval_count"}


def test_a_text_cut_to_the_context_counts_the_tokens_embedded(server: str) -> None:
    long = "hello " * 5000
    reply = ollama.Client(host=server).embed(EMBEDDER, long)
    assert 0 < reply.prompt_eval_count < 5000  # what was embedded, not what was sent
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=server).embed(EMBEDDER, long, truncate=False)
    assert caught.value.status_code == 400


def test_litellm_style_embeddings_read_prompt_eval_count(server: str) -> None:
    # litellm's _prepare_ollama_embedding_payload: unknown params go into options, these pass as they are
    body = {"model": EMBEDDER, "input": ["hello", "world"], "options": {"user": "me", "temperature": 0}}
    body |= {"keep_alive": "5m", "truncate": True, "dimensions": 16}
    reply = httpx.post(f"{server}/api/embed", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data.get("prompt_eval_count") == tokens(server, "hello") + tokens(
        server, "world"
    )  # its input_tokens
    assert [len(v) for v in data["embeddings"]] == [16, 16]


def test_openai_clients_embeddings_carry_usage(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused")
    reply = client.embeddings.create(model=EMBEDDER, input=["hello", "hello world"])
    assert reply.usage.prompt_tokens == tokens(server, "hello") + tokens(server, "hello world")
    assert reply.usage.total_tokens == reply.usage.prompt_tokens
    assert [len(d.embedding) for d in reply.data] == [N_EMBD, N_EMBD]
    floats = client.embeddings.create(model=EMBEDDER, input="world", encoding_format="float")
    assert floats.usage.prompt_tokens == tokens(server, "world")


def test_keep_alive_on_embed_is_honoured(server: str, engine: Engine) -> None:
    client = ollama.Client(host=server)
    client.embed(EMBEDDER, "hello", keep_alive="10m")
    (loaded,) = [m for m in engine.loaded() if m.reference == EMBEDDER]
    assert loaded.expires_in is not None and 500 < loaded.expires_in <= 600
    client.embed(EMBEDDER, "hello", keep_alive=-1)
    (loaded,) = [m for m in engine.loaded() if m.reference == EMBEDDER]
    assert loaded.expires_in is None  # kept for ever
    client.embed(EMBEDDER, "hello", keep_alive=0)
    assert EMBEDDER not in [m.reference for m in engine.loaded()]


def test_an_empty_input_loads_the_model_and_answers_no_vectors(
    server: str, engine: Engine, unloaded: None
) -> None:
    reply = httpx.post(f"{server}/api/embed", json={"model": EMBEDDER, "input": []}).json()
    assert reply["embeddings"] == [] and reply["prompt_eval_count"] == 0
    assert EMBEDDER in [m.reference for m in engine.loaded()]
    legacy = httpx.post(f"{server}/api/embeddings", json={"model": EMBEDDER, "prompt": ""})
    assert legacy.json() == {"embedding": []}


def test_the_legacy_route_takes_options_and_answers_only_the_vector(server: str) -> None:
    body = {
        "model": EMBEDDER,
        "prompt": "hello",
        "options": {"num_thread": None, "tfs_z": 1},
        "keep_alive": "1m",
    }
    reply = httpx.post(f"{server}/api/embeddings", json=body)
    assert reply.status_code == 200 and list(reply.json()) == ["embedding"]
    assert ollama.Client(host=server).embeddings(EMBEDDER, "hello", options={"top_k": None}).embedding


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"options": {"num_ctx": "big"}}, "num_ctx must be a number"),
        ({"options": {"num_thread": -3}}, "num_thread must be"),
        ({"options": ["num_ctx", 5]}, "options must be an object"),
        ({"dimensions": -1}, "dimensions"),
        ({"dimensions": 2.5}, "dimensions"),
        ({"keep_alive": "soon"}, "keep_alive"),
        ({"truncate": "yes"}, "truncate"),
    ],
)
def test_bad_embed_fields_are_400_with_the_reason(server: str, body: dict[str, object], word: str) -> None:
    reply = httpx.post(f"{server}/api/embed", json={"model": EMBEDDER, "input": "hello"} | body)
    assert reply.status_code == 400 and word in reply.json()["error"]


def test_dimensions_zero_or_past_the_width_keep_the_whole_vector(server: str) -> None:
    for dimensions in (0, None, N_EMBD + 10):
        body = {"model": EMBEDDER, "input": "hello", "dimensions": dimensions}
        (vector,) = httpx.post(f"{server}/api/embed", json=body).json()["embeddings"]
        assert len(vector) == N_EMBD


def test_a_model_that_cannot_embed_still_says_so_with_options(server: str) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=server).embed(MODEL, "hello", options={"tfs_z": None})
    assert caught.value.status_code == 400 and "cannot make embeddings" in caught.value.error
