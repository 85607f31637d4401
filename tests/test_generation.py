"""Chat and generation through the facade: conversations resident, histories fitted, models kept alive."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from engine import (
    CancelToken,
    Done,
    Engine,
    InvalidInput,
    Machine,
    Message,
    Token,
)
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
GREEDY = {"temperature": 0, "num_predict": 8}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gen") / "Tiny-Q8_0.gguf")[0]


@pytest.fixture
def engine(model_file: Path):
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model_file})
        engine = Engine(machine=lambda: CPU_BOX)
        engine.pull("acme/Tiny-GGUF")
    yield engine
    engine.close()


MODEL = "hf.co/acme/Tiny-GGUF:Q8_0"


def reply(events: list) -> tuple[str, Done]:
    done = events[-1]
    assert isinstance(done, Done) and all(isinstance(e, Token) for e in events[:-1])
    return "".join(e.text for e in events[:-1]), done


def test_a_follow_up_in_a_conversation_evaluates_only_the_new_tokens(engine: Engine) -> None:
    history = [{"role": "user", "content": "hello world, tell me about Paris"}]
    text, first = reply(list(engine.chat(MODEL, history, options=GREEDY, conversation="c1")))
    assert first.cached_tokens == 0 and first.prompt_tokens > 10
    history += [{"role": "assistant", "content": text}, {"role": "user", "content": "and France?"}]
    _, second = reply(list(engine.chat(MODEL, history, options=GREEDY, conversation="c1")))
    assert second.cached_tokens >= first.prompt_tokens - 1  # the whole first prompt was kept
    assert second.prompt_tokens - second.cached_tokens <= second.prompt_tokens - first.prompt_tokens + 1


def test_a_stateless_follow_up_also_reuses_the_prefix(engine: Engine) -> None:
    history = [{"role": "user", "content": "hello world, tell me about Paris"}]
    text, first = reply(list(engine.chat(MODEL, history, options=GREEDY)))
    history += [{"role": "assistant", "content": text}, {"role": "user", "content": "and France?"}]
    _, second = reply(list(engine.chat(MODEL, history, options=GREEDY)))
    assert second.cached_tokens > first.prompt_tokens // 2


def test_a_long_history_drops_its_oldest_turns_and_keeps_the_system_prompt(engine: Engine) -> None:
    history: list[dict[str, str]] = [{"role": "system", "content": "be brief"}]
    for i in range(60):
        history += [
            {"role": "user", "content": f"question {i} " * 10},
            {"role": "assistant", "content": "ok " * 10},
        ]
    history.append({"role": "user", "content": "last question"})
    _, done = reply(list(engine.chat(MODEL, history, options={"num_ctx": 512, **GREEDY})))
    assert done.dropped_messages > 0 and done.prompt_tokens <= 512


def test_chat_validates_at_the_call(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="role"):
        engine.chat(MODEL, [{"content": "no role"}])
    with pytest.raises(InvalidInput):
        engine.chat(MODEL, [])
    assert engine.loaded() == []


def test_loaded_models_show_their_settings_and_unload(engine: Engine) -> None:
    reply(list(engine.generate(MODEL, "hello", options=GREEDY, keep_alive=60)))
    [row] = engine.loaded()
    assert row.reference == MODEL and row.context == 2048 and row.status == "idle"
    assert row.slots >= 1 and row.gpu_layers == 0 and 0 < (row.expires_in or 0) <= 60
    assert engine.unload(MODEL) == [MODEL] and engine.loaded() == []


def test_keep_alive_takes_ollamas_durations_too(engine: Engine) -> None:
    reply(list(engine.generate(MODEL, "hello", options=GREEDY, keep_alive="1h30m")))
    assert 5300 < (engine.loaded()[0].expires_in or 0) <= 5400
    assert engine.load(MODEL, options=GREEDY, keep_alive="-5m") == 0.0  # loaded already; now for ever
    assert engine.loaded()[0].expires_in is None


def test_keep_alive_zero_unloads_after_the_reply(engine: Engine) -> None:
    reply(list(engine.generate(MODEL, "hello", options=GREEDY, keep_alive=0)))
    assert engine.loaded() == []


def test_changing_a_load_option_reloads_the_model(engine: Engine) -> None:
    reply(list(engine.generate(MODEL, "hello", options=GREEDY)))
    reply(list(engine.generate(MODEL, "hello", options={"num_ctx": 1024, **GREEDY})))
    [row] = engine.loaded()
    assert row.context == 1024


def test_four_chats_at_once_each_complete(engine: Engine) -> None:
    results: dict[int, tuple[str, Done]] = {}

    def run(i: int) -> None:
        events = list(engine.chat(MODEL, [{"role": "user", "content": f"hello {i}"}], options=GREEDY))
        results[i] = reply(events)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [0, 1, 2, 3]
    assert all(done.reason in ("stop", "length") for _, done in results.values())
    assert len(engine.loaded()) == 1  # one model, one context, several sequences


def test_cancel_from_another_thread_ends_with_done(engine: Engine) -> None:
    long_seed = next(  # random weights stop at an end token now and then: find a seed that runs long
        seed
        for seed in range(50)
        if reply(list(engine.generate(MODEL, "hello", options={"num_predict": 200, "seed": seed})))[1].reason
        == "length"
    )
    token = CancelToken()
    events = []
    options = {"num_predict": 200, "seed": long_seed}
    for event in engine.generate(MODEL, "hello", options=options, cancel=token):
        events.append(event)
        if len(events) == 2:
            canceller = threading.Thread(target=token.cancel)
            canceller.start()
            canceller.join()
    _, done = reply(events)
    assert done.reason == "cancelled" and done.completion_tokens < 200


def test_a_consumer_that_stops_early_frees_the_slot(engine: Engine) -> None:
    stream = engine.generate(MODEL, "hello", options={"num_predict": 5000, "temperature": 1})
    next(stream)
    stream.close()  # as an HTTP handler does when its client goes away
    deadline = time.monotonic() + 300  # a hang guard: a loaded machine may be slow
    while time.monotonic() < deadline and engine.loaded()[0].status != "idle":
        time.sleep(0.05)
    assert engine.loaded()[0].status == "idle"


def test_the_model_system_prompt_and_message_objects(engine: Engine) -> None:
    events = list(engine.chat(MODEL, [Message("user", "hi")], options=GREEDY))
    assert isinstance(events[-1], Done)


def test_a_model_that_cannot_embed_says_so(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="cannot"):
        engine.embed(MODEL, ["hello"])


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda e: e.chat(MODEL, [{"role": "user", "content": "a\ud800"}]), "lone surrogate"),
        (lambda e: e.generate(MODEL, "hi \udcff"), "lone surrogate"),
        (lambda e: e.generate(MODEL, None), "must be text"),  # type: ignore[arg-type]
        (lambda e: e.chat(MODEL, [{"role": "user", "content": "hi"}], conversation=["a"]), "conversation"),
        (lambda e: e.chat(MODEL, [{"role": "user", "content": "hi"}], tools=["bad"]), "tools"),
        (lambda e: e.chat(MODEL, [{"role": "user", "content": "hi"}], tools="str"), "tools"),
        (lambda e: e.generate(MODEL, "hi", keep_alive="x"), "keep_alive"),
        (lambda e: e.generate(MODEL, "hi", keep_alive=float("nan")), "keep_alive"),
        (lambda e: e.generate(MODEL, "hi", keep_alive=True), "keep_alive"),
        (lambda e: e.generate(MODEL, "hi", keep_alive=1e300), "keep_alive"),
        (
            lambda e: e.chat(MODEL, [{"role": "user", "content": "hi"}], keep_alive="9999999999999h"),
            "keep_alive",
        ),
        (lambda e: e.generate(MODEL, "hi", options={"num_thread": 65536}), "num_thread"),
    ],
)
def test_bad_input_is_refused_at_the_call(engine: Engine, call, fragment: str) -> None:
    """From a hostile run: each of these hung the model, crashed llama.cpp or raised a raw TypeError."""
    with pytest.raises(InvalidInput, match=fragment):
        call(engine)
    assert engine.loaded() == []


def test_a_tiny_context_is_a_clear_error_not_an_internal_one(engine: Engine) -> None:
    from engine import PromptTooLong

    with pytest.raises(PromptTooLong):
        list(engine.generate(MODEL, "hello", options={"num_ctx": 1}))


def test_cancel_while_the_model_loads_ends_with_done(engine: Engine) -> None:
    token = CancelToken()
    token.cancel()
    events = list(engine.generate(MODEL, "hello", options=GREEDY, cancel=token))
    assert len(events) == 1 and isinstance(events[0], Done) and events[0].reason == "cancelled"


def test_a_closed_engine_refuses_instead_of_loading_for_ever(engine: Engine) -> None:
    from engine import ShutDown

    engine.close()
    with pytest.raises(ShutDown):
        list(engine.generate(MODEL, "hello", options=GREEDY))
    assert engine.loaded() == []


def test_a_loaded_model_is_reused_when_free_memory_changes(model_file: Path) -> None:
    """The model itself takes memory, so the next request sees less free: that must not reload it.

    Automatic settings (context, slots, GPU layers) are decided once, when the model loads; a
    request is matched to a loaded model by the options it asked for.
    """
    free = [16 << 30]
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model_file})
        engine = Engine(machine=lambda: Machine(free_ram=free[0], gpu_free_vram=None))
        engine.pull("acme/Tiny-GGUF")
    try:
        first = reply(list(engine.generate(MODEL, "hello", options=GREEDY)))[1]
        slots = engine.loaded()[0].slots
        free[0] = 100 << 20  # less room now: an automatic choice made again would differ
        second = reply(list(engine.generate(MODEL, "hello", options=GREEDY)))[1]
        assert first.load_seconds > 0 and second.load_seconds == 0.0
        assert engine.loaded()[0].slots == slots
    finally:
        engine.close()
