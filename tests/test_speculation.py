"""Speculative decoding in the scheduler, on the real llama.cpp: prompt lookup, a draft model, verification.

The chain model (``tests/support/chain_gguf.py``) says a known text, so a
test knows which drafts are right; the random tiny model's text depends on
its whole history (and it falls into loops, which prompt lookup drafts), so
equal outputs with and without drafts mean the verification kept the KV
cache exact. Flash attention is off where outputs are compared (issue 10).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import InvalidOption, LoadError
from engine.events import Done, Token
from engine.option_parsing import merge, parse_options
from engine.options import MAX_DRAFT, SamplingOptions
from engine.runtime.llama.model import Model
from engine.runtime.request import GREEDY, Request
from engine.runtime.scheduler import Scheduler
from engine.runtime.speculation import FIRST_PAUSE, OFF_BELOW, Speculation
from engine.runtime.worker.loaded import LoadedModel
from engine.runtime.worker.spec import LoadSettings, LoadSpec
from tests.support.chain_gguf import VOCAB, byte_token, token_id, write_chain_gguf
from tests.support.tiny_gguf import tiny_vocab

HELLO, WORLD, BANG = token_id("▁hello"), token_id("▁world"), token_id("!")
A, B, X, Y = (token_id(c) for c in "abxy")
BOS, EOS = 1, 2
EURO = [byte_token(0xE2), byte_token(0x82), byte_token(0xAC)]
REPLY_TO_A = [*EURO, HELLO, WORLD, BANG]  # then the end of text
# a path the chain model follows once (no n-gram of its reply repeats), of tokens the other links leave alone
WALK = [t for t in range(260, 400) if t not in {A, B, X, Y, *REPLY_TO_A}][:100]


def greedy(k: int, **changes: object) -> SamplingOptions:
    return dataclasses.replace(GREEDY, draft_num_predict=k, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def chain_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a -> € hello world! -> end;  x <-> y forever;  300 -> 301 -> ... -> 399 -> end."""
    links = dict(zip([A, *REPLY_TO_A], [*REPLY_TO_A, EOS], strict=True)) | {X: Y, Y: X}
    links |= dict(zip(WALK, [*WALK[1:], EOS], strict=True))
    return write_chain_gguf(tmp_path_factory.mktemp("chain") / "chain.gguf", links)


@pytest.fixture(scope="module")
def chain(chain_path: Path) -> Iterator[Model]:
    model = Model.load(chain_path, n_gpu_layers=0)
    yield model
    model.free()


@pytest.fixture(scope="module")
def tiny(tiny_models: dict[str, Path]) -> Iterator[Model]:
    model = Model.load(tiny_models["Q8_0"], n_gpu_layers=0)
    yield model
    model.free()


def make(model: Model, **options: object) -> Scheduler:
    settings: dict[str, object] = {"n_ctx_per_seq": 512, "n_parallel": 2, "n_threads": 1, "flash_attn": "off"}
    settings.update(options)
    return Scheduler(model, **settings)  # type: ignore[arg-type]


def events(scheduler: Scheduler, request: Request) -> tuple[list[Token], Done]:
    *tokens, done = list(scheduler.submit(request))
    assert isinstance(done, Done) and all(isinstance(t, Token) for t in tokens)
    return tokens, done  # type: ignore[return-value]


def both(
    model: Model, request: Request, **options: object
) -> tuple[tuple[str, Done], tuple[str, Done], int, int]:
    """The request without drafts and with them (each on a fresh scheduler); drafted, accepted."""
    with make(model, **options) as plain:
        sampling = dataclasses.replace(request.sampling, draft_num_predict=0)
        without = plain.submit(dataclasses.replace(request, sampling=sampling)).collect()
        assert plain.stats().drafted == 0
    with make(model, **options) as speculating:
        with_drafts = speculating.submit(request).collect()
        stats = speculating.stats()
    return without, with_drafts, stats.drafted, stats.accepted


def same(a: Done, b: Done) -> bool:
    return (a.reason, a.completion_tokens, a.stop_sequence, a.error) == (
        b.reason,
        b.completion_tokens,
        b.stop_sequence,
        b.error,
    )


# -- prompt lookup -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["hello world", "the capital of France is the capital of France is the"])
def test_greedy_output_is_the_same_with_and_without_prompt_lookup(tiny: Model, text: str) -> None:
    request = Request(tiny.tokenize(text), greedy(8), 160)
    (text0, done0), (text1, done1), drafted, accepted = both(tiny, request)
    assert text1 == text0 and same(done1, done0) and done1.completion_tokens == 160
    assert accepted > 0 and drafted >= accepted  # the random model loops, and lookup drafts its loops


def test_a_copying_reply_takes_several_tokens_per_step(chain: Model) -> None:
    request = Request([BOS, X, Y, X, Y, X], greedy(8), 120)
    (text0, done0), (text1, done1), drafted, accepted = both(chain, request)
    assert text1 == text0 == "yx" * 60 and same(done1, done0)
    assert accepted >= 100 and accepted >= 0.9 * drafted  # ~9 tokens per step instead of 1


def test_drafts_that_keep_failing_turn_lookup_off(chain: Model) -> None:
    # every pair of the walk is in the prompt, followed by another token: the bigram lookups always miss
    prompt = [BOS] + [t for a, b in zip(WALK, WALK[1:], strict=False) for t in (a, b, B)] + [WALK[0]]
    request = Request(prompt, greedy(8), 90)
    (text0, done0), (text1, done1), drafted, accepted = both(chain, request, n_ctx_per_seq=1024)
    assert text1 == text0 and same(done1, done0) and done1.completion_tokens == 90
    assert accepted == 0
    assert 0 < drafted <= 12  # a few probes, paused 8, 16, 32 steps between them: not one per step


def test_the_pause_doubles_with_each_failed_probe_and_success_resets_it() -> None:
    spec = Speculation(8)
    spec.settle(4, 0)
    spec.settle(1, 0)
    assert spec.average == OFF_BELOW and spec.pause == FIRST_PAUSE and spec.want() == 0
    for _ in range(FIRST_PAUSE - 1):
        assert spec.want() == 0
    assert spec.want() == 1  # the probe
    spec.settle(1, 0)
    assert spec.pause == 2 * FIRST_PAUSE
    spec.pause = 0
    for _ in range(4):
        spec.settle(spec.want(), spec.length)  # taken whole: the drafts grow back, the pause resets
    assert spec.length == 8 and spec.backoff == FIRST_PAUSE


def test_lookup_proposes_what_followed_the_longest_match() -> None:
    spec = Speculation(8)
    spec.sync([5, 1, 2, 3, 9, 9, 7, 2, 3, 4, 6, 8, 1, 2])
    assert spec.lookup(3, 4) == [9, 9, 7, 2]  # "1 2 3" (with the next token) beats the later "2 3"
    assert spec.lookup(5, 4) == []
    loop = Speculation(8)
    loop.sync([7, 1, 2, 1, 2])
    assert loop.lookup(1, 5) == [2, 1, 2, 1, 2]  # a short loop is read on through the draft itself
    assert spec.lookup(42, 4) == []
    spec.sync([0, 1])  # not a continuation (another request's cells): start over
    assert spec.tokens == [0, 1] and spec.lookup(1, 4) == []


# -- each token as without drafts ------------------------------------------------------------------


def test_max_tokens_is_never_exceeded_inside_an_accepted_run(chain: Model) -> None:
    for n in (1, 2, 5, 9, 10, 11):
        (text0, done0), (text1, done1), _, _ = both(chain, Request([BOS, X, Y, X, Y, X], greedy(8), n))
        assert text1 == text0 and same(done1, done0) and done1.completion_tokens == n


def test_a_stop_string_inside_an_accepted_run_ends_the_reply_there(chain: Model) -> None:
    request = Request([BOS, X, Y, X, Y, X, Y, X, Y, X], greedy(8), 100, stop=("xyxyx",))
    (text0, done0), (text1, done1), drafted, _ = both(chain, request)
    assert done1.reason == "stop" and done1.stop_sequence == "xyxyx" and same(done1, done0)
    assert text1 == text0 == "y" and drafted > 0


def test_the_end_of_text_inside_an_accepted_run_ends_the_reply(chain: Model) -> None:
    request = Request([BOS, A, *REPLY_TO_A, B, A], greedy(8), 50)
    (text0, done0), (text1, done1), drafted, accepted = both(chain, request)
    assert text1 == text0 == "€ hello world!" and done1.reason == "stop" and same(done1, done0)
    assert accepted >= 4 and drafted > accepted  # the reply drafted from the prompt, then "b" refused


def test_logprobs_are_those_of_plain_decoding(chain: Model) -> None:
    request = Request([BOS, X, Y, X, Y, X], greedy(8), 20, logprobs=2)
    with make(chain) as plain:
        tokens0, _ = events(plain, dataclasses.replace(request, sampling=greedy(0)))
    with make(chain) as speculating:
        tokens1, _ = events(speculating, request)
        assert speculating.stats().accepted > 10
    assert [t.logprobs for t in tokens1] == [t.logprobs for t in tokens0]
    assert sum(len(t.logprobs or ()) for t in tokens1) == 20


def test_a_grammar_request_speculates_and_stays_valid(tiny: Model) -> None:
    grammar = 'root ::= ("ab" | "ba" | "a" | "b"){40}\n'  # no end before 40: the random model likes ending
    request = Request(tiny.tokenize("hello"), greedy(8), 60, grammar=grammar)
    (text0, done0), (text1, done1), drafted, accepted = both(tiny, request)
    assert text1 == text0 and same(done1, done0)
    assert 40 <= len(text1) <= 80 and set(text1) <= {"a", "b"} and accepted > 0


def test_sampled_output_with_a_seed_is_the_same_with_and_without_drafts(tiny: Model) -> None:
    sampling = greedy(8, temperature=0.9, top_k=0, top_p=1.0, seed=7)
    request = Request(tiny.tokenize("the capital of France is the capital of"), sampling, 120)
    (text0, done0), (text1, done1), _, _ = both(tiny, request)
    assert text1 == text0 and same(done1, done0)  # one random draw per emitted token either way


def test_cancel_mid_stream_leaves_the_cache_exact(chain: Model) -> None:
    with make(chain, n_ctx_per_seq=2048) as scheduler:
        handle = scheduler.submit(Request([BOS, X], greedy(8), None, conversation="c"))
        deadline = time.monotonic() + 300  # a hang guard: a loaded machine may be slow
        while not handle._events and time.monotonic() < deadline:  # tokens flow
            time.sleep(0.0005)
        handle.cancel()
        all_events = list(handle)
        dones = [e for e in all_events if isinstance(e, Done)]
        assert len(dones) == 1 and all_events[-1] is dones[0] and dones[0].reason == "cancelled"
        n = dones[0].completion_tokens
        follow_up = [BOS, X] + ([Y, X] * n)[:n] + [B, A]
        text, again = scheduler.submit(Request(follow_up, greedy(8), 10, conversation="c")).collect()
        assert again.cached_tokens == 2 + n - 1  # every kept cell is a token of the reply: none of a draft
        assert text == "€ hello world!"


def test_draft_num_predict_zero_turns_speculation_off(chain: Model) -> None:
    with make(chain) as scheduler:
        scheduler.submit(Request([BOS, X, Y, X, Y, X], greedy(0), 50)).collect()
        assert scheduler.stats().drafted == 0


def test_draft_num_predict_is_an_option_from_0_to_32() -> None:
    assert SamplingOptions().draft_num_predict > 0  # on by default
    assert merge(parse_options({"draft_num_predict": "0"}, source="request"))[1].draft_num_predict == 0
    assert merge({"draft_num_predict": MAX_DRAFT})[1].draft_num_predict == MAX_DRAFT
    for bad in (-1, MAX_DRAFT + 1, 2.5, "many"):
        with pytest.raises(InvalidOption, match="draft_num_predict must be a whole number from 0 to 32"):
            parse_options({"draft_num_predict": bad}, source="request")


# -- a draft model -----------------------------------------------------------------------------------


def test_a_draft_model_equal_to_the_target_has_every_draft_accepted(chain: Model, chain_path: Path) -> None:
    draft = Model.load(chain_path, n_gpu_layers=0, label="draft")
    try:
        request = Request([BOS, X, Y, A], greedy(4), 40)
        with make(chain) as plain:
            text0, done0 = plain.submit(dataclasses.replace(request, sampling=greedy(0))).collect()
        with make(chain, draft=draft) as speculating:
            text1, done1 = speculating.submit(request).collect()  # one at a time: several streams draft
            text2, done2 = speculating.submit(Request([BOS, Y], greedy(4), 30)).collect()  # where it pays
            stats = speculating.stats()
        assert text1 == text0 == "€ hello world!" and same(done1, done0)
        assert text2 == "x" + "yx" * 14 + "y" and done2.completion_tokens == 30
        assert stats.drafted > 0 and stats.accepted == stats.drafted and stats.acceptance == 1.0
    finally:
        draft.free()


def test_a_draft_model_catches_up_on_a_long_prompt_over_several_steps(chain: Model, chain_path: Path) -> None:
    draft = Model.load(chain_path, n_gpu_layers=0, label="draft")
    try:
        prompt = [BOS] + [X, Y] * 40 + [X]  # 82 tokens, the batch holds 16: the draft catches up in 6 steps
        with make(chain, draft=draft, n_batch=16) as speculating:
            text, done = speculating.submit(Request(prompt, greedy(4), 60)).collect()
            stats = speculating.stats()
        assert text == "yx" * 30 and done.completion_tokens == 60
        assert stats.accepted == stats.drafted and 40 <= stats.drafted <= 60 - 6
    finally:
        draft.free()


def test_a_random_draft_model_leaves_the_output_unchanged(tiny: Model, tmp_path: Path) -> None:
    from tests.support.tiny_gguf import write_tiny_gguf

    other = write_tiny_gguf(tmp_path / "other.gguf", seed=5)[0]
    draft = Model.load(other, n_gpu_layers=0, label="draft")
    try:
        request = Request(tiny.tokenize("hello world"), greedy(4), 80)
        (text0, done0), (text1, done1), drafted, accepted = both(tiny, request, draft=draft)
        assert text1 == text0 and same(done1, done0) and drafted > 0 and accepted < drafted
    finally:
        draft.free()


def test_a_draft_model_of_another_vocabulary_is_refused(chain: Model, tmp_path: Path) -> None:
    tokens, scores, types = tiny_vocab()
    tokens = list(tokens)
    tokens[VOCAB.index("▁hello")] = "▁goodbye"
    path = write_chain_gguf(tmp_path / "other.gguf", {}, vocab=(tokens, scores, types))
    draft = Model.load(path, n_gpu_layers=0, label="other.gguf")
    try:
        with pytest.raises(LoadError) as refused:
            make(chain, draft=draft)
        message = str(refused.value)
        assert "\n" not in message and message.startswith("other.gguf cannot draft for")
        assert "'▁goodbye'" in message
    finally:
        draft.free()


def test_a_loaded_model_drafts_with_the_draft_of_its_load_spec(chain_path: Path, tmp_path: Path) -> None:
    settings = LoadSettings(
        n_ctx=256, num_parallel=2, n_gpu_layers=0, n_threads=1, n_batch=64, kv_type="f16", flash_attn="off"
    )
    loaded = LoadedModel.load(LoadSpec(chain_path, "chain", settings, draft=chain_path))
    try:
        assert loaded.draft is not None
        text, done = loaded.scheduler.submit(Request([BOS, A], greedy(4), 20)).collect()
        assert text == "€ hello world!" and loaded.scheduler.stats().accepted > 0
    finally:
        loaded.close()
    mismatched = write_chain_gguf(tmp_path / "m.gguf", {}, vocab=(["<x>", *VOCAB[1:]], *tiny_vocab()[1:]))
    with pytest.raises(LoadError, match="cannot draft for chain: token 0"):
        LoadedModel.load(LoadSpec(chain_path, "chain", settings, draft=mismatched))


def test_several_streams_draft_only_where_the_acceptance_pays_for_the_step(chain: Model) -> None:
    @dataclasses.dataclass
    class Slot:
        seq: int
        tokens: list[int]

    @dataclasses.dataclass
    class Job:
        slot: Slot
        spec: Speculation
        next_token: int = X
        limit: int = 100
        generated: int = 1

    with make(chain) as scheduler:
        speculator = scheduler._spec
        doubtful, sure = Speculation(8), Speculation(8)
        sure.average = 0.95
        jobs = [Job(Slot(0, [BOS, X, Y, X, Y]), doubtful), Job(Slot(1, [BOS, X, Y, X, Y]), sure)]
        speculator.propose(jobs, 64, t_step=1.0, t_token=0.4)  # 2 streams: pays above 0.8 accepted
        assert doubtful.draft == [] and sure.draft == [Y, X, Y, X]
        speculator.propose(jobs[:1], 64, t_step=1.0, t_token=0.4)  # one stream drafts regardless
        assert doubtful.draft == [Y, X, Y, X]
        speculator.propose(jobs, 3, t_step=1.0, t_token=0.01)  # the batch's room bounds all drafts
        assert len(doubtful.draft) + len(sure.draft) == 3
