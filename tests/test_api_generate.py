"""Ollama's generation routes on a real uvicorn, driven by the real ``ollama`` client and httpx."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import N_EMBD, write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
MODEL = "hf.co/acme/Tiny-GGUF:Q8_0"
EMBEDDER = "hf.co/acme/Embed-GGUF:F32"
GREEDY = {"temperature": 0, "num_predict": 8}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("api") / "Tiny-Q8_0.gguf")[0]


@pytest.fixture(scope="module")
def embedding_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chain = {token_id("h"): 2, token_id("w"): 2}
    return write_chain_gguf(tmp_path_factory.mktemp("api") / "Embed-F32.gguf", chain, pooling=1)


@pytest.fixture
def engine(model_file: Path, embedding_file: Path) -> Iterator[Engine]:
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model_file})
        hub.add_repo("acme/Embed-GGUF", {"Embed-F32.gguf": embedding_file})
        engine = Engine(machine=lambda: CPU_BOX)
        engine.pull("acme/Tiny-GGUF")
        engine.pull("acme/Embed-GGUF")
    yield engine
    engine.close()


@pytest.fixture
def server(engine: Engine) -> Iterator[str]:
    with running_api(engine) as base_url:
        yield base_url


@pytest.fixture
def client(server: str) -> ollama.Client:
    return ollama.Client(host=server)


def test_generate_streams_tokens_then_the_figures_in_nanoseconds(client: ollama.Client) -> None:
    started = time.perf_counter()
    parts = list(client.generate(MODEL, "hello world", options=GREEDY, stream=True))
    wall_ns = (time.perf_counter() - started) * 1e9
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    final = parts[-1]
    assert final.done_reason == "length" and final.response == ""
    assert final.eval_count == 8 >= len(parts) - 1 >= 1  # tokens; a character split over two is one chunk
    assert final.prompt_eval_count and final.prompt_eval_count > 1
    assert final.eval_duration and final.prompt_eval_duration and final.total_duration
    assert wall_ns >= final.total_duration >= final.eval_duration + final.prompt_eval_duration
    assert final.total_duration > 100_000  # nanoseconds: in microseconds it would be a few hundred
    assert final.load_duration is not None
    assert final.context and len(final.context) >= final.prompt_eval_count  # Ollama's deprecated context


def test_generate_without_streaming_answers_one_object(client: ollama.Client) -> None:
    streamed = "".join(p.response for p in client.generate(MODEL, "hello world", options=GREEDY, stream=True))
    whole = client.generate(MODEL, "hello world", options=GREEDY, stream=False)
    assert whole.done and whole.eval_count == 8 and whole.response == streamed != ""


def test_chat_streams_and_answers_whole(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "tell me about Paris"}]
    parts = list(client.chat(MODEL, messages, options=GREEDY, stream=True))
    assert all(p.message.role == "assistant" for p in parts)
    final = parts[-1]
    assert final.done and final.eval_count == 8 and final.done_reason == "length"
    whole = client.chat(MODEL, messages, options=GREEDY, stream=False)
    assert whole.message.content == "".join(p.message.content for p in parts)
    assert whole.prompt_eval_duration and whole.prompt_eval_duration > 0


def test_a_system_prompt_on_generate_goes_through_the_template(client: ollama.Client) -> None:
    plain = client.generate(MODEL, "hello", options=GREEDY, stream=False)
    with_system = client.generate(
        MODEL, "hello", system="You answer in French.", options=GREEDY, stream=False
    )
    assert with_system.prompt_eval_count > plain.prompt_eval_count


def test_a_bad_option_is_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(MODEL, "hi", options={"temperature": "hot"}, stream=True).__next__()
    assert caught.value.status_code == 400 and "temperature" in caught.value.error
    with pytest.raises(ollama.ResponseError) as caught:  # as Ollama: a string where a number goes
        client.chat(MODEL, [{"role": "user", "content": "hi"}], options={"top_k": "40"}, stream=False)
    assert caught.value.status_code == 400 and caught.value.error == (
        "top_k must be a number, not the string '40' (from request)"
    )


def test_unknown_retired_and_null_options_are_ignored_with_one_warning(
    client: ollama.Client, caplog: pytest.LogCaptureFixture
) -> None:
    options = {
        "num_predict": 4,
        "temperature": 0,
        "top_p": None,
        "tfs_z": 1.0,
        "penalize_newline": True,
        "numa": False,
    }
    with caplog.at_level("WARNING", logger="llamadeck.engine.options"):
        reply = client.chat(MODEL, [{"role": "user", "content": "hi"}], options=options, stream=False)
        assert reply.done and reply.eval_count == 4  # num_predict was honoured, the rest ignored
        client.generate(MODEL, "hi", options={"no_such": 1, "num_predict": 1}, stream=False)
    warnings = [r.getMessage() for r in caplog.records if r.name == "llamadeck.engine.options"]
    assert warnings == [
        "ignoring options llamadeck does not use (from request): 'tfs_z' (was removed from Ollama and "
        "llama.cpp), 'penalize_newline' (was removed from Ollama), 'numa' (was removed from Ollama)",
        "ignoring options llamadeck does not use (from request): 'no_such'",
    ]


def test_an_unknown_model_is_404_before_any_stream(client: ollama.Client, server: str) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        next(iter(client.chat("nope:latest", [{"role": "user", "content": "hi"}], stream=True)))
    assert caught.value.status_code == 404 and "not found" in caught.value.error
    with httpx.stream("POST", f"{server}/api/generate", json={"model": "nope", "prompt": "hi"}) as response:
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/json")
        assert json.loads(response.read()) == {"error": "model 'nope' not found"}


def test_embed_on_a_text_generation_model_is_400_with_the_reason(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.embed(MODEL, ["hello"])
    assert caught.value.status_code == 400 and "cannot make embeddings" in caught.value.error
    with pytest.raises(ollama.ResponseError) as caught:
        client.embed("nope", "hello")
    assert caught.value.status_code == 404


def test_embed_answers_unit_vectors_one_per_input(client: ollama.Client, server: str) -> None:
    reply = client.embed(EMBEDDER, ["hello", "world", "hello"])
    vectors = reply.embeddings
    assert len(vectors) == 3 and all(len(v) == N_EMBD for v in vectors)
    assert vectors[0] == pytest.approx(vectors[2]) and vectors[0] != pytest.approx(vectors[1])
    assert all(sum(x * x for x in v) == pytest.approx(1.0, abs=1e-5) for v in vectors)
    assert reply.total_duration and reply.total_duration > 0
    assert client.embed(EMBEDDER, "hello").embeddings == [pytest.approx(vectors[0])]
    short = httpx.post(f"{server}/api/embed", json={"model": EMBEDDER, "input": "hello", "dimensions": 4})
    (vector,) = short.json()["embeddings"]
    assert len(vector) == 4 and sum(x * x for x in vector) == pytest.approx(1.0, abs=1e-5)
    legacy = client.embeddings(EMBEDDER, "hello").embedding
    assert legacy == pytest.approx(vectors[0])


@pytest.mark.parametrize(
    ("route", "body", "word"),
    [
        ("/api/generate", {"prompt": "hi", "format": "yaml"}, "format"),
        ("/api/generate", {"prompt": "hi", "template": "{{ .Prompt }}"}, "template"),
        ("/api/generate", {"prompt": "hi", "images": ["aGk="]}, "does not support vision"),  # a blind model
        ("/api/chat", {"messages": [{"role": "user", "content": "hi", "images": ["aGk="]}]}, "vision"),
        (
            "/api/chat",
            {"messages": [{"role": "user", "content": "hi"}], "format": {"type": "string", "pattern": "^a"}},
            "pattern",
        ),
        ("/api/generate", {"prompt": "hi", "keep_alive": "soon"}, "keep_alive"),
        ("/api/generate", {"prompt": "hi"}, None),  # the control: the same request without the field works
    ],
)
def test_what_llamadeck_cannot_do_yet_is_refused_not_ignored(
    server: str, route: str, body: dict, word: str | None
) -> None:
    response = httpx.post(f"{server}{route}", json={"model": MODEL, "stream": False, **body}, timeout=30)
    if word is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400 and word in response.json()["error"]


def test_an_empty_prompt_with_keep_alive_zero_unloads(client: ollama.Client, engine: Engine) -> None:
    client.generate(MODEL, "hello", options=GREEDY)
    assert [m.reference for m in engine.loaded()] == [MODEL]
    reply = client.generate(MODEL, "", keep_alive=0)
    assert reply.done and reply.done_reason == "unload"
    assert engine.loaded() == []


def test_an_empty_prompt_loads_the_model_as_ollama_does(client: ollama.Client, engine: Engine) -> None:
    """Open WebUI and ollama run send an empty request to load a model before the first message."""
    reply = client.generate(MODEL, "")
    assert reply.done and reply.done_reason == "load" and (reply.load_duration or 0) > 0
    assert [m.reference for m in engine.loaded()] == [MODEL]
    again = client.chat(MODEL, messages=[])
    assert again.done and again.done_reason == "load" and not again.load_duration  # loaded already


def test_keep_alive_from_a_request_reaches_the_engine(client: ollama.Client, engine: Engine) -> None:
    client.generate(MODEL, "hello", options=GREEDY, keep_alive="1h")
    expires = released(engine)
    assert expires is not None and 3500 < expires <= 3600
    client.generate(MODEL, "hello", options=GREEDY, keep_alive=-1)
    time.sleep(0.3)  # the reply is sent at Done; the engine lets go of the model just after
    assert engine.loaded()[0].expires_in is None


def released(engine: Engine) -> float | None:
    """The loaded model's keep-alive once the request's thread has let go of it (just after the reply)."""
    deadline = time.monotonic() + 300  # a hang guard: a loaded machine may be slow
    while (expires := engine.loaded()[0].expires_in) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return expires


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("2μs", 200),
        ("300", 200),
        ("-5m", 200),
        ("", 400),
        ("1e3", 400),
        ("9999999999999h", 400),
        (1e18, 400),  # past any duration (1e300 is refused earlier, as any number out of range)
    ],
)
def test_keep_alive_in_a_request_follows_the_engines_rule(server: str, value: object, status: int) -> None:
    """The API reads keep_alive as the TUI and the engine do (the rule is pinned in test_durations)."""
    body = {"model": MODEL, "prompt": "hi", "stream": False, "options": GREEDY, "keep_alive": value}
    response = httpx.post(f"{server}/api/generate", json=body, timeout=30)
    assert response.status_code == status
    if status == 400:
        assert "keep_alive" in response.json()["error"]


def test_eight_concurrent_streaming_chats_all_finish_with_intact_text(server: str, engine: Engine) -> None:
    prompts = [f"question number {i}: tell me about city {i}" for i in range(8)]
    # exactly each alone's text: where batched kernels round alike (the tiny model without flash attention
    # and without drafts, whose verification rows make bigger batches; tests/test_speculation.py)
    options = {"temperature": 0, "num_predict": 24, "flash_attn": False, "draft_num_predict": 0}
    solo = ollama.Client(host=server)
    alone = {}
    for p in prompts:
        reply = solo.chat(MODEL, [{"role": "user", "content": p}], options=options)
        alone[p] = (reply.message.content, reply.eval_count)
    results: dict[str, tuple[str, int]] = {}
    failures: list[BaseException] = []

    def one(prompt: str) -> None:
        try:
            parts = list(
                ollama.Client(host=server).chat(
                    MODEL, [{"role": "user", "content": prompt}], options=options, stream=True
                )
            )
            results[prompt] = ("".join(p.message.content for p in parts), parts[-1].eval_count or 0)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=one, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == [] and len(results) == 8
    assert results == alone  # the same greedy replies as each alone: no token lost or interleaved


def test_a_client_that_disconnects_mid_stream_cancels_its_generation(server: str, engine: Engine) -> None:
    body = {
        "model": MODEL,
        "prompt": "hello world, tell me about Paris",
        "options": {"num_predict": -1, "temperature": 0},
    }
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{server}/api/generate", json=body) as response,
    ):
        lines = response.iter_lines()
        for _ in range(3):
            assert json.loads(next(lines))["done"] is False
        assert engine.loaded()[0].status == "generating"
    deadline = time.monotonic() + 300  # a hang guard: a loaded machine may be slow
    while engine.loaded()[0].status != "idle" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.loaded()[0].status == "idle"


def test_a_request_answered_whole_is_cancelled_when_its_client_leaves(server: str, engine: Engine) -> None:
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hello world, tell me about Paris"}],  # greedy: no end
            "options": {"num_predict": -1, "num_ctx": 32768, "temperature": 0},
            "stream": False,
        }
    ).encode()
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        head = f"POST /api/chat HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        raw.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert wait_for(lambda: bool(engine.loaded()) and engine.loaded()[0].status == "generating", 300)
    assert wait_for(lambda: engine.loaded()[0].status == "idle", 300)


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
