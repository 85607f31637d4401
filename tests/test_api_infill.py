"""Fill in the middle (``suffix``) and the deprecated ``context`` of ``/api/generate``, end to end.

The fill-in-the-middle model is a chain GGUF with ``<|fim_prefix|>``,
``<|fim_suffix|>`` and ``<|fim_middle|>`` tokens named by the GGUF's
``tokenizer.ggml.fim_*_token_id`` keys; it says ``    return a + b`` after any
prompt. What the model was given is read back from the prompt's token count
and from ``context`` (prompt and reply as tokens), checked against llama.cpp's
own tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from engine import Engine, Machine, has_fim_tokens, inserts
from engine.runtime.llama.model import Model
from tests.support.api_server import running_api
from tests.support.said_gguf import (
    FIM,
    GO_SUFFIX_TEMPLATE,
    MIDDLE,
    THINK_TEMPLATE,
    THINKER,
    write_said_gguf,
)

PREFIX = "def add(a, b):\n"
SUFFIX = "\n\nprint(add(1, 2))\n"
GREEDY: Any = {"temperature": 0}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("infill")
    return {
        "coder": write_said_gguf(folder / "coder.gguf", MIDDLE, template=None, fim=True),
        "thinker": write_said_gguf(folder / "thinker.gguf", THINKER, template=THINK_TEMPLATE),
    }


@pytest.fixture(scope="module")
def vocab(files: dict[str, Path]) -> Iterator[Model]:
    model = Model.load(files["coder"])
    yield model
    model.free()


@pytest.fixture
def engine(files: dict[str, Path]) -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    engine.create("coder", f"FROM {files['coder']}\n")
    engine.create("templated", f'FROM {files["coder"]}\nTEMPLATE """{GO_SUFFIX_TEMPLATE}"""\n')
    engine.create("thinker", f"FROM {files['thinker']}\n")
    yield engine
    engine.close()


@pytest.fixture
def server(engine: Engine) -> Iterator[str]:
    with running_api(engine) as base_url:
        yield base_url


def fim_prompt(vocab: Model) -> list[int]:
    pre, suf, mid = (vocab.tokenize(t, add_special=False) for t in FIM)
    text = vocab.tokenize(PREFIX, add_special=False, parse_special=False)
    after = vocab.tokenize(SUFFIX, add_special=False, parse_special=False)
    return [vocab.bos, *pre, *text, *suf, *after, *mid]


def test_the_fim_tokens_frame_prompt_and_suffix(server: str, vocab: Model) -> None:
    reply = ollama.Client(host=server).generate("coder", PREFIX, suffix=SUFFIX, options=GREEDY)
    assert reply.response == MIDDLE.text and reply.done_reason == "stop"
    expected = fim_prompt(vocab)
    assert reply.prompt_eval_count == len(expected)
    assert list(reply.context or [])[: len(expected)] == expected


def test_openai_completions_take_a_suffix(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    completion = client.completions.create(model="coder", prompt=PREFIX, suffix=SUFFIX, temperature=0)
    assert completion.choices[0].text == MIDDLE.text
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model="thinker", prompt=PREFIX, suffix=SUFFIX)
    assert "thinker:latest does not support insert" in str(refused.value)


def test_a_template_that_reads_suffix_is_run_on_prompt_and_suffix(server: str, vocab: Model) -> None:
    reply = ollama.Client(host=server).generate("templated", PREFIX, suffix=SUFFIX, options=GREEDY)
    assert reply.response == MIDDLE.text
    rendered = f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>"
    assert list(reply.context or [])[: reply.prompt_eval_count or 0] == vocab.tokenize(rendered)


def test_a_model_that_cannot_fill_in_the_middle_refuses_a_suffix(server: str) -> None:
    body = {"model": "thinker", "prompt": PREFIX, "suffix": SUFFIX, "stream": False}
    answer = httpx.post(f"{server}/api/generate", json=body, timeout=30)
    assert answer.status_code == 400
    assert answer.json() == {"error": "thinker:latest does not support insert"}
    answer = httpx.post(f"{server}/api/generate", json=body | {"suffix": ""}, timeout=30)
    assert answer.status_code == 200  # an empty suffix is no suffix, as in Ollama


def test_insert_capability_from_template_or_header(engine: Engine) -> None:
    keys = {f"tokenizer.ggml.{n}_token_id": 5 for n in ("fim_pre", "fim_suf", "fim_mid")}
    assert has_fim_tokens(keys) and not has_fim_tokens(keys | {"tokenizer.ggml.fim_mid_token_id": -1})
    assert has_fim_tokens({"tokenizer.ggml.prefix_token_id": 1, **dict(list(keys.items())[1:])})
    assert inserts(engine.resolve("templated"))
    assert inserts(engine.resolve("coder"), keys) and not inserts(engine.resolve("coder"))
    assert not inserts(engine.resolve("thinker"), {})


# the deprecated context ----------------------------------------------------------------------


def test_context_is_returned_and_continues_the_conversation(server: str, vocab: Model) -> None:
    client = ollama.Client(host=server)
    first = client.generate("coder", "Hello", options=GREEDY)
    context = list(first.context or [])
    reply = vocab.tokenize(MIDDLE.text, add_special=False)
    assert context == [*vocab.tokenize("Hello"), *reply]  # plain completion: the prompt as it is
    second = client.generate("coder", " again", context=context, options=GREEDY)
    assert second.prompt_eval_count == len(context) + len(vocab.tokenize(" again", add_special=False))
    assert list(second.context or [])[: len(context)] == context
    streamed = list(client.generate("coder", " again", context=context, stream=True, options=GREEDY))
    assert streamed[-1].context == second.context and not any(c.context for c in streamed[:-1])


def test_raw_replies_carry_no_context_and_raw_refuses_one(server: str) -> None:
    raw = ollama.Client(host=server).generate("coder", "Hello", raw=True, options=GREEDY)
    assert raw.context is None
    body = {"model": "coder", "prompt": "Hi", "raw": True, "context": [1, 2], "stream": False}
    answer = httpx.post(f"{server}/api/generate", json=body, timeout=30)
    assert answer.status_code == 400
    assert answer.json() == {"error": "raw mode does not support template, system, or context"}


@pytest.mark.parametrize("context", [["a"], [-1], [True], {"a": 1}, [10**6]])
def test_a_bad_context_is_a_400(server: str, context: object) -> None:
    body = {"model": "coder", "prompt": "Hi", "context": context, "stream": False}
    answer = httpx.post(f"{server}/api/generate", json=body, timeout=30)
    assert answer.status_code == 400 and "context" in answer.json()["error"]


def test_context_from_a_chat_template_turn(server: str) -> None:
    client = ollama.Client(host=server)
    first = client.generate("thinker", "What is the capital of France?", options=GREEDY)
    assert (first.thinking, first.response) == (THINKER.pieces[1] + THINKER.pieces[2], THINKER.pieces[-1])
    second = client.generate("thinker", "And of Italy?", context=first.context, options=GREEDY)
    assert second.response == THINKER.pieces[-1] and (second.prompt_eval_count or 0) > len(
        first.context or []
    )
