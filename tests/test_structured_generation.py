"""Constrained decoding in the scheduler (real llama.cpp): replies validate, batches mix, ends are reported.

The random tiny model picks almost any token, so the grammar does all the
work (nearly every token goes through the full pass); the chain model says a
fixed reply, so a grammar that agrees with it shows the cheap path alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from engine.events import Done
from engine.options import SamplingOptions
from engine.runtime.llama.constrained import Constrained
from engine.runtime.llama.context import Batch, Context
from engine.runtime.llama.grammar import Candidates, Grammar
from engine.runtime.llama.model import Model
from engine.runtime.llama.sampler import Sampler
from engine.runtime.llama.utf8 import CLEAN, advance, table_for
from engine.runtime.request import GREEDY, Request
from engine.runtime.scheduler import Scheduler
from engine.structured import json_grammar, schema_grammar
from tests.support.chain_gguf import byte_token, token_id, write_chain_gguf
from tests.support.schemas import random_schemas

HELLO, WORLD, BANG, A = token_id("▁hello"), token_id("▁world"), token_id("!"), token_id("a")
EOS = 2


@pytest.fixture(scope="module")
def tiny(tiny_models: dict[str, Path]) -> Iterator[Model]:
    model = Model.load(tiny_models["Q8_0"], n_gpu_layers=0)
    yield model
    model.free()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    """a -> € -> ' hello' -> ' world' -> '!' -> end."""
    euro = [byte_token(0xE2), byte_token(0x82), byte_token(0xAC)]
    links = {
        A: euro[0],
        euro[0]: euro[1],
        euro[1]: euro[2],
        euro[2]: HELLO,
        HELLO: WORLD,
        WORLD: BANG,
        BANG: EOS,
    }
    model = Model.load(
        write_chain_gguf(tmp_path_factory.mktemp("chain") / "chain.gguf", links), n_gpu_layers=0
    )
    yield model
    model.free()


def sampled(seed: int) -> SamplingOptions:
    return SamplingOptions(temperature=1.0, seed=seed)


def test_every_reply_to_forty_random_schemas_parses_and_validates(tiny: Model) -> None:
    schemas = random_schemas(40, seed=1)
    prompt = tiny.tokenize("Answer in JSON:")
    with Scheduler(tiny, n_ctx_per_seq=2048, n_parallel=8) as scheduler:
        handles = scheduler.submit_many(
            [Request(prompt, sampled(i), 1500, grammar=schema_grammar(s)) for i, s in enumerate(schemas)]
        )
        for schema, handle in zip(schemas, handles, strict=True):
            text, done = handle.collect()
            assert done.reason == "stop", (schema, text)
            validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
            validator.validate(json.loads(text))


def test_a_constrained_and_a_free_request_decode_together_and_the_free_one_is_untouched(tiny: Model) -> None:
    prompt = tiny.tokenize("Once upon a time")
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9}},
        "required": ["n"],
    }
    with Scheduler(tiny, n_ctx_per_seq=512, n_parallel=4, flash_attn="off") as scheduler:
        alone, _ = scheduler.submit(Request(prompt, GREEDY, 24)).collect()
        free, constrained = scheduler.submit_many(
            [Request(prompt, GREEDY, 24), Request(prompt, sampled(3), 200, grammar=schema_grammar(schema))]
        )
        assert free.collect()[0] == alone
        text, done = constrained.collect()
        assert done.reason == "stop" and 1 <= json.loads(text)["n"] <= 9


def test_a_grammar_that_agrees_with_the_model_costs_no_full_pass(chain: Model) -> None:
    grammar = 'root ::= "€ hello world!"\n'
    with Scheduler(chain, n_ctx_per_seq=256, n_parallel=2) as scheduler:
        free = scheduler.submit(Request([A], GREEDY, 20)).collect()[0]
        handle = scheduler.submit(Request([A], GREEDY, 20, grammar=grammar))
        text, done = handle.collect()
    assert text == free == "€ hello world!" and done.reason == "stop"


def test_a_grammar_steers_a_model_away_from_what_it_would_say(chain: Model) -> None:
    with Scheduler(chain, n_ctx_per_seq=512, n_parallel=2) as scheduler:
        text, done = scheduler.submit(Request([A], GREEDY, 400, grammar=json_grammar())).collect()
    assert done.reason in ("stop", "length")
    if done.reason == "stop":
        assert isinstance(json.loads(text), dict)
    assert text.startswith("{")


def test_max_tokens_cutting_a_constrained_reply_short_is_reported_as_length(tiny: Model) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "minLength": 50}}, "required": ["s"]}
    with Scheduler(tiny, n_ctx_per_seq=512, n_parallel=2) as scheduler:
        text, done = scheduler.submit(
            Request(tiny.tokenize("hi"), sampled(1), 10, grammar=schema_grammar(schema))
        ).collect()
    assert done.reason == "length" and done.completion_tokens == 10 and text.startswith("{")


def test_a_grammar_that_never_ends_stops_when_the_context_is_full(tiny: Model) -> None:
    with Scheduler(tiny, n_ctx_per_seq=64, n_parallel=1) as scheduler:
        prompt = tiny.tokenize("hi")
        text, done = scheduler.submit(
            Request(prompt, sampled(2), None, grammar="root ::= [a-z] root\n")
        ).collect()
    assert done.reason == "length" and done.completion_tokens == 64 - len(prompt)
    assert text and set(text) <= set("abcdefghijklmnopqrstuvwxyz")


def test_a_grammar_with_no_way_on_fails_its_request_alone(tiny: Model) -> None:
    with Scheduler(tiny, n_ctx_per_seq=256, n_parallel=2) as scheduler:
        prompt = tiny.tokenize("hi")
        stuck, fine = scheduler.submit_many(
            [Request(prompt, GREEDY, 10, grammar='root ::= "\\x00"\n'), Request(prompt, GREEDY, 10)]
        )
        _, done = stuck.collect()
        assert done.reason == "error" and "allows no token" in (done.error or "")
        assert fine.collect()[1].reason == "length"


def test_a_grammar_llama_cpp_cannot_compile_is_refused_at_once(tiny: Model) -> None:
    with Scheduler(tiny, n_ctx_per_seq=256, n_parallel=1) as scheduler:
        handle = scheduler.submit(Request(tiny.tokenize("hi"), GREEDY, 10, grammar='root ::= ( "a"\n'))
        done = handle.done
        assert isinstance(done, Done) and done.reason == "error"
        assert "could not compile the grammar" in str(handle.error)


def test_a_request_with_a_grammar_pickles(tiny: Model) -> None:
    import pickle

    request = Request(tiny.tokenize("hi"), GREEDY, 10, grammar=json_grammar())
    assert pickle.loads(pickle.dumps(request)) == request


@pytest.mark.parametrize("sampling", [GREEDY, SamplingOptions(temperature=1.0, top_k=40, seed=11)])
def test_checking_only_the_best_scored_tokens_samples_what_checking_them_all_would(
    tiny: Model, sampling: SamplingOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = {"type": "array", "items": {"type": "string", "maxLength": 6}, "minItems": 3, "maxItems": 3}
    request = Request(tiny.tokenize("Three words:"), sampling, 300, grammar=schema_grammar(schema))

    def reply() -> str:
        with Scheduler(tiny, n_ctx_per_seq=512, n_parallel=1) as scheduler:
            text, done = scheduler.submit(request).collect()
        assert done.reason == "stop"
        return text

    quick = reply()
    monkeypatch.setattr(Constrained, "first_try", 0)  # every refusal checks the whole vocabulary
    assert reply() == quick
    assert len(json.loads(quick)) == 3


@pytest.mark.parametrize("first_try", [64, 0])
def test_greedy_under_a_grammar_picks_the_best_scored_token_the_grammar_allows(
    tiny: Model, first_try: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against llama.cpp's grammar applied to the whole vocabulary, step by step (0: every refusal takes
    the full pass, which skips the tokens whose first byte the grammar refuses)."""
    monkeypatch.setattr(Constrained, "first_try", first_try)
    grammar = schema_grammar(
        {"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string", "maxLength": 5}}}
    )
    sampler = Sampler.from_options(tiny, GREEDY, grammar=grammar)
    oracle, candidates, table = Grammar(tiny, grammar), Candidates(tiny.n_vocab), table_for(tiny)
    ctx, batch = Context(tiny, n_ctx=512, n_seq_max=1, n_threads=1), Batch(512)
    try:
        prompt = tiny.tokenize("Here:")
        batch.add_run(prompt, 0, 0, logits_last=True)
        ctx.decode(batch)
        state, position, index = CLEAN, len(prompt), batch.n - 1
        for _ in range(60):
            candidates.fill(ctx.ptr, index)
            oracle.apply(candidates.ref)
            logits = candidates.data["logit"].copy()
            logits[~table.mask(state)] = -np.inf
            token = sampler.sample(ctx, index)
            assert token == int(np.argmax(logits))
            if tiny.is_eog(token):
                break
            oracle.accept(token)
            state = advance(state, tiny.piece(token)) or CLEAN
            batch.clear()
            batch.add(token, position, 0, True)
            position, index = position + 1, 0
            ctx.decode(batch)
        assert sampler.rejections > 0
    finally:
        sampler.free()
        oracle.free()
        batch.free()
        ctx.free()
