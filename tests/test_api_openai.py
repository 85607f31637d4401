"""OpenAI's routes on a real uvicorn, driven by the real ``openai`` client (and httpx for the raw shapes)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import N_EMBD, write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
MODEL = "hf.co/acme/Tiny-GGUF:Q8_0"
HELLO = [{"role": "user", "content": "tell me about Paris"}]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("api") / "Tiny-Q8_0.gguf")[0]


@pytest.fixture(scope="module")
def embedding_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chain = {token_id("h"): 2, token_id("w"): 2}
    return write_chain_gguf(tmp_path_factory.mktemp("api") / "Embed-F32.gguf", chain, pooling=1)


@pytest.fixture
def engine(model_file: Path) -> Iterator[Engine]:
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model_file})
        engine = Engine(machine=lambda: CPU_BOX)
        engine.pull("acme/Tiny-GGUF")
    yield engine
    engine.close()


@pytest.fixture
def server(engine: Engine) -> Iterator[str]:
    with running_api(engine) as base_url:
        yield base_url


@pytest.fixture
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def test_models_lists_what_is_pulled(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert [(m.id, m.object, m.owned_by) for m in models] == [(MODEL, "model", "acme")]
    assert models[0].created > 1_700_000_000
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope:latest")


def test_chat_completion_answers_with_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=HELLO, temperature=0, max_tokens=8)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 8


def test_chat_completion_streams_deltas_then_finish_reason_and_usage(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model=MODEL, messages=HELLO, temperature=0, max_completion_tokens=8
    )
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            temperature=0,
            max_completion_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text_chunks = [c for c in chunks if c.choices and c.choices[0].finish_reason is None]
    assert 1 <= len(text_chunks) <= 8 and all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in text_chunks) == whole.choices[0].message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["length"]
    assert (
        chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    )
    assert len({c.id for c in chunks}) == 1


def test_a_stream_ends_with_done_and_no_usage_unless_asked(server: str) -> None:
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 4, "stream": True}
    response = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=30)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert all("usage" not in json.loads(e[6:]) for e in events[:-1])


def test_completions_stream_and_not(client: openai.OpenAI) -> None:
    whole = client.completions.create(model=MODEL, prompt="Once upon a time", temperature=0, max_tokens=8)
    assert whole.object == "text_completion" and whole.choices[0].text
    assert whole.usage is not None and whole.usage.completion_tokens == 8
    parts = list(
        client.completions.create(
            model=MODEL, prompt="Once upon a time", temperature=0, max_tokens=8, stream=True
        )
    )
    assert "".join(p.choices[0].text for p in parts) == whole.choices[0].text
    assert parts[-1].choices[0].finish_reason == "length"


def test_an_unknown_model_is_404_in_openais_shape(client: openai.OpenAI, server: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope:latest", messages=HELLO, stream=True)
    assert caught.value.status_code == 404
    response = httpx.post(f"{server}/v1/completions", json={"model": "nope", "prompt": "hi"})
    error = response.json()["error"]
    assert response.status_code == 404 and error["type"] == "not_found_error"
    assert set(error) == {"message", "type", "param", "code"} and "not found" in error["message"]


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 0}, "num_predict"),
        ({"n": 2}, "n other than 1"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"not": {}}}}}, "not"),
        ({"tool_choice": "required"}, "needs tools"),
        ({"messages": []}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "image",
        ),
    ],
)
def test_invalid_requests_are_400_in_openais_shape(server: str, body: dict, word: str) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", json={"model": MODEL, "messages": HELLO, **body})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and word in error["message"]


def test_the_openai_client_raises_bad_request_for_a_bad_option(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO, top_p=7)
    assert "top_p" in caught.value.message


def test_malformed_json_is_400_in_openais_shape(server: str) -> None:
    response = httpx.post(
        f"{server}/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_embeddings_in_floats_and_in_base64(
    client: openai.OpenAI, engine: Engine, embedding_file: Path
) -> None:
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Embed-GGUF", {"Embed-F32.gguf": embedding_file})
        engine.pull("acme/Embed-GGUF")
    model = "hf.co/acme/Embed-GGUF:F32"
    as_base64 = client.embeddings.create(model=model, input=["hello", "world"])  # the client asks for base64
    as_floats = client.embeddings.create(model=model, input="hello", encoding_format="float")
    assert [d.index for d in as_base64.data] == [0, 1] and as_base64.data[0].object == "embedding"
    assert as_base64.data[0].embedding == pytest.approx(as_floats.data[0].embedding, abs=1e-6)
    assert len(as_floats.data[0].embedding) == N_EMBD
    short = client.embeddings.create(model=model, input="hello", dimensions=4, encoding_format="float")
    assert len(short.data[0].embedding) == 4


def test_embeddings_on_a_text_generation_model_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=MODEL, input=["hello"])
    assert "cannot make embeddings" in caught.value.message


def test_eight_concurrent_streaming_chats_all_finish_with_intact_text(
    engine: Engine, client: openai.OpenAI
) -> None:
    # Exactly the text of each alone: only where batched kernels round alike, i.e. on the tiny model
    # without flash attention and without drafts (whose verification rows make bigger batches); with
    # them, greedy text may part where two tokens are nearly tied (tests/test_speculation.py says so)
    engine.create("exact", "FROM " + MODEL + "\nPARAMETER flash_attn off\nPARAMETER draft_num_predict 0\n")
    prompts = [f"question {i}: what is the capital of country {i}?" for i in range(8)]

    def ask(prompt: str, stream: bool) -> str:
        messages = [{"role": "user", "content": prompt}]
        if not stream:
            return (
                client.chat.completions.create(model="exact", messages=messages, temperature=0, max_tokens=20)
                .choices[0]
                .message.content
                or ""
            )
        chunks = client.chat.completions.create(
            model="exact", messages=messages, temperature=0, max_tokens=20, stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    alone = {p: ask(p, False) for p in prompts}
    together: dict[str, str] = {}
    failures: list[BaseException] = []

    def one(prompt: str) -> None:
        try:
            together[prompt] = ask(prompt, True)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=one, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == [] and together == alone


def test_a_client_that_leaves_mid_stream_cancels_its_generation(server: str, engine: Engine) -> None:
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 100000, "temperature": 0, "stream": True}
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{server}/v1/chat/completions", json=body) as response,
    ):
        lines = (line for line in response.iter_lines() if line)
        for _ in range(3):
            assert json.loads(next(lines)[6:])["choices"][0]["finish_reason"] is None
        assert engine.loaded()[0].status == "generating"
    deadline = time.monotonic() + 300  # a hang guard: a loaded machine may be slow
    while engine.loaded()[0].status != "idle" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.loaded()[0].status == "idle"
