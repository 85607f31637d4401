"""A started reply (``Engine.start_chat``, ``start_generate``): ``for`` and ``async for`` read the same.

The HTTP API starts a reply on a worker thread and reads it on its event
loop, the tokens coming from the scheduler's thread straight to the loop;
the CLI and the TUI read ``chat``/``generate`` with ``for``. Both must see
the same Done (load time, total time, dropped messages), free the slot when
the reader stops early, and let go of the model when the reply ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine import CancelToken, Done, Engine, Generation, Machine, PromptTooLong, Reply, Token
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
MODEL = "hf.co/acme/Tiny-GGUF:Q8_0"
GREEDY = {"temperature": 0, "num_predict": 8}
ENDLESS = {"num_predict": 5000, "temperature": 0}  # greedy, on this prompt: no end token
PARIS = [{"role": "user", "content": "hello world, tell me about Paris"}]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("session") / "Tiny-Q8_0.gguf")[0]


@pytest.fixture
def engine(model_file: Path) -> Iterator[Engine]:
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model_file})
        engine = Engine(machine=lambda: CPU_BOX)
        engine.pull("acme/Tiny-GGUF")
    yield engine
    engine.close()


async def read_async(reply: Reply) -> list[Generation]:
    return [event async for event in reply]


def until(condition: Callable[[], bool], seconds: float = 600.0) -> bool:
    """Wait for ``condition`` (the limit only ends a broken run: a loaded machine may be slow)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_started_reply_is_loaded_and_submitted_before_it_is_read(engine: Engine) -> None:
    reply = engine.start_generate(MODEL, "hello", options=GREEDY)
    try:
        [row] = engine.loaded()
        assert row.reference == MODEL and row.expires_in is None  # in use until the reply ends
    finally:
        reply.close()


def test_for_and_async_for_read_the_same_reply(engine: Engine) -> None:
    messages = [{"role": "user", "content": "hello world"}]
    synced = list(engine.start_chat(MODEL, messages, options=GREEDY))
    asynced = asyncio.run(read_async(engine.start_chat(MODEL, messages, options=GREEDY)))
    for events in (synced, asynced):
        assert all(isinstance(e, Token) for e in events[:-1]) and isinstance(events[-1], Done)
    assert [e.text for e in synced[:-1]] == [e.text for e in asynced[:-1]]  # type: ignore[union-attr]
    first, second = synced[-1], asynced[-1]
    assert isinstance(first, Done) and isinstance(second, Done)
    assert (first.reason, first.completion_tokens) == (second.reason, second.completion_tokens)
    assert first.load_seconds > 0 and second.load_seconds == 0.0  # loaded for the first only
    assert second.total_seconds >= second.prompt_seconds > 0


def test_an_async_reader_gets_dropped_messages_on_its_done(engine: Engine) -> None:
    history: list[dict[str, str]] = [{"role": "system", "content": "be brief"}]
    for i in range(60):
        history += [
            {"role": "user", "content": f"question {i} " * 10},
            {"role": "assistant", "content": "ok"},
        ]
    history.append({"role": "user", "content": "last question"})
    reply = engine.start_chat(MODEL, history, options={"num_ctx": 512, **GREEDY})
    done = asyncio.run(read_async(reply))[-1]
    assert isinstance(done, Done) and done.dropped_messages > 0


def test_the_model_is_let_go_when_the_async_reader_reaches_the_done(engine: Engine) -> None:
    async def first_done() -> Done:
        async for event in engine.start_generate(MODEL, "hello", options=GREEDY, keep_alive=60):
            if isinstance(event, Done):
                return event  # stops at the Done: nothing closes the reply by hand
        raise AssertionError("no Done")

    asyncio.run(first_done())
    assert until(lambda: engine.loaded()[0].expires_in is not None)


def test_an_async_reader_that_stops_early_frees_the_slot_and_the_model(engine: Engine) -> None:
    async def one_token() -> None:
        reply = engine.start_chat(MODEL, PARIS, options=ENDLESS, keep_alive=60)
        async for _event in reply:
            break  # as a client that goes away

    asyncio.run(one_token())
    assert until(lambda: engine.loaded()[0].status == "idle")
    assert until(lambda: engine.loaded()[0].expires_in is not None)


def test_a_reply_that_is_never_read_is_ended_by_close(engine: Engine) -> None:
    reply = engine.start_chat(MODEL, PARIS, options=ENDLESS, keep_alive=0)
    reply.close()
    reply.close()  # once is enough; twice is harmless
    assert until(lambda: engine.loaded() == [])  # keep_alive 0: unloaded when let go


def test_cancelling_a_started_reply_ends_it_with_a_cancelled_done(engine: Engine) -> None:
    token = CancelToken()

    async def read() -> list[Generation]:
        events = []
        async for event in engine.start_chat(MODEL, PARIS, options=ENDLESS, cancel=token):
            events.append(event)
            if len(events) == 2:
                token.cancel()
        return events

    events = asyncio.run(read())
    assert isinstance(events[-1], Done) and events[-1].reason == "cancelled"


def test_a_prompt_that_cannot_fit_raises_at_the_start_and_holds_nothing(engine: Engine) -> None:
    with pytest.raises(PromptTooLong):
        engine.start_generate(MODEL, "hello", options={"num_ctx": 1}, keep_alive=60)
    assert engine.loaded()[0].expires_in is not None  # let go of: the keep-alive clock runs


@pytest.mark.parametrize("reading", ["for", "async for"])
def test_a_request_cancelled_while_its_model_loads_ends_with_one_cancelled_done(reading: str) -> None:
    reply = Reply.cancelled_while_loading(time.perf_counter())
    events = list(reply) if reading == "for" else asyncio.run(read_async(reply))
    assert len(events) == 1 and isinstance(events[0], Done) and events[0].reason == "cancelled"
