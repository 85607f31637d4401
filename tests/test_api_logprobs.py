"""Log probabilities through a real uvicorn, read by the real ``openai`` and ``ollama`` clients.

The model is the chain GGUF (greedy after token t picks a fixed next token):
its last hidden state is a one-hot vector, normalised (RMS, eps 1e-5) to a
logit of about 11.3 for the chosen token and 0 for the 511 others, so each
reported log probability is known: ln(e^L / (e^L + 511)).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from engine import Engine, Machine
from engine.runtime.request import GREEDY, Request
from tests.support.api_server import running_api
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import N_EMBD, N_VOCAB

MODEL = "hf.co/acme/Chain-GGUF:F32"
SAID = ["▁hello", "▁world", "!"]
LOGIT = 1 / math.sqrt(1 / N_EMBD + 1e-5)  # the chosen token's; every other token's is 0
CHOSEN = LOGIT - math.log(math.exp(LOGIT) + N_VOCAB - 1)
OTHER = -math.log(math.exp(LOGIT) + N_VOCAB - 1)
ASK: Any = [{"role": "user", "content": "a"}]
PLAIN: dict[str, Any] = {"temperature": 0, "repeat_penalty": 1.0}


@pytest.fixture(scope="module")
def chain_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Whatever the prompt ends with, the reply is " hello world!" and then the end."""
    ids = [token_id(t) for t in SAID]
    chain = dict(zip(ids, ids[1:], strict=False)) | {ids[-1]: 2}
    return write_chain_gguf(tmp_path_factory.mktemp("lp") / "Chain-F32.gguf", chain, default=ids[0])


@pytest.fixture(scope="module")
def server(chain_file: Path) -> Iterator[str]:
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Chain-GGUF", {"Chain-F32.gguf": chain_file})
        engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
        engine.pull("acme/Chain-GGUF")
    try:
        with running_api(engine) as base_url:
            yield base_url
    finally:
        engine.close()


@pytest.fixture
def oai(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def test_chat_completions_report_each_tokens_logprob_and_its_alternatives(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model=MODEL,
        messages=ASK,
        logprobs=True,
        top_logprobs=3,
        temperature=0,
        extra_body={"repeat_penalty": 1.0},
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert "".join(e.token for e in logprobs.content) == reply.choices[0].message.content == " hello world!"
    for entry in logprobs.content:
        assert entry.logprob == pytest.approx(CHOSEN, abs=1e-5)
        assert entry.bytes == list(entry.token.encode())
        assert [t.token for t in entry.top_logprobs][0] == entry.token and len(entry.top_logprobs) == 3
        assert [t.logprob for t in entry.top_logprobs[1:]] == pytest.approx([OTHER, OTHER], abs=1e-5)


def test_streamed_chunks_carry_the_logprobs_of_their_text(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(model=MODEL, messages=ASK, logprobs=True, temperature=0, stream=True)
    )
    entries = [
        e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content or []
    ]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "".join(e.token for e in entries) == text == " hello world!"
    assert all(e.top_logprobs == [] for e in entries)


def test_without_logprobs_there_are_none(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=MODEL, messages=ASK, temperature=0)
    assert reply.choices[0].logprobs is None


def test_completions_answer_in_the_legacy_shape(server: str) -> None:
    body = {"model": MODEL, "prompt": "a", "logprobs": 2, "temperature": 0}
    choice = httpx.post(f"{server}/v1/completions", json=body, timeout=30).json()["choices"][0]
    shape = choice["logprobs"]
    assert "".join(shape["tokens"]) == choice["text"] == " hello world!"
    assert shape["token_logprobs"] == pytest.approx([CHOSEN] * 3, abs=1e-5)
    assert shape["text_offset"] == [0, len(" hello"), len(" hello world")]
    assert [list(top)[0] for top in shape["top_logprobs"]] == shape["tokens"]
    lines = httpx.post(f"{server}/v1/completions", json=body | {"stream": True}, timeout=30).text.splitlines()
    streamed = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    offsets = [
        o
        for c in streamed
        if c["choices"] and c["choices"][0]["logprobs"]
        for o in c["choices"][0]["logprobs"]["text_offset"]
    ]
    assert offsets == shape["text_offset"]


def test_ollama_generate_and_chat_return_logprobs(server: str) -> None:
    client = ollama.Client(host=server)
    reply = client.generate(MODEL, "a", logprobs=True, top_logprobs=1, options=PLAIN)
    assert reply.logprobs and [e.token for e in reply.logprobs] == [" hello", " world", "!"]
    assert reply.logprobs[0].logprob == pytest.approx(CHOSEN, abs=1e-5)
    chunks = list(client.chat(MODEL, messages=ASK, logprobs=True, options=PLAIN, stream=True))
    assert "".join(e.token for c in chunks for e in c.logprobs or []) == " hello world!"


@pytest.mark.parametrize(
    ("route", "body", "words"),
    [
        ("/v1/chat/completions", {"messages": ASK, "logprobs": True, "top_logprobs": 21}, "from 0 to 20"),
        ("/v1/chat/completions", {"messages": ASK, "top_logprobs": 2}, "needs logprobs"),
        ("/v1/completions", {"prompt": "a", "logprobs": -1}, "from 0 to 20"),
        ("/api/generate", {"prompt": "a", "logprobs": "yes"}, "true or false"),
    ],
)
def test_bad_logprobs_fields_are_400s(server: str, route: str, body: dict[str, Any], words: str) -> None:
    response = httpx.post(f"{server}{route}", json={"model": MODEL, "stream": False, **body}, timeout=30)
    assert response.status_code == 400 and words in response.text


def test_a_request_with_logprobs_pickles() -> None:
    import pickle

    request = Request([1, 2, 3], GREEDY, 4, logprobs=5)
    assert pickle.loads(pickle.dumps(request)) == request
