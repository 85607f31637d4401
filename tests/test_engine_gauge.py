"""What an app's gauge reads from the engine: loads in flight with llama.cpp's progress, and a chat's
share of the context counted before it is sent (issue 21's loading state and context gauge)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from engine import Cancelled, CancelToken, ContextUse, Engine, Machine, PromptTooLong
from engine.store.manifest import ModelConfig
from engine.store.model_store import Store
from tests.support.held_load import held_log, let_go, wait_for_worker
from tests.support.stored_models import add_blob, save
from tests.support.tiny_gguf import CHAT_TEMPLATE, write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = Store()
    store.ensure()
    made = save(store, "tiny", add_blob(store, write_tiny_gguf(tmp_path / "tiny.gguf")[0]))
    store.save(replace(made, config=ModelConfig(template=CHAT_TEMPLATE, template_source="gguf")))
    engine = Engine(machine=lambda: CPU_BOX)
    yield engine
    engine.close()


def test_a_load_in_flight_is_listed_until_it_ends(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker is held mid-load (its log file is a FIFO nobody reads), so the test looks at leisure."""
    fifo = held_log(tmp_path, monkeypatch)
    assert engine.loading() == []
    stop = CancelToken()
    outcome: list[object] = []
    thread = threading.Thread(target=_load, args=(engine, "tiny", stop, outcome))
    thread.start()
    try:
        wait_for_worker()
        (loading,) = engine.loading()
        assert loading.reference == "tiny:latest" and 0.0 <= loading.fraction < 1.0
        assert loading.seconds >= 0.0
    finally:
        stop.cancel()  # kills the held worker
        let_go(thread, fifo)
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)
    assert engine.loading() == [] and engine.loaded() == []


def _load(engine: Engine, name: str, cancel: CancelToken, outcome: list[object]) -> None:
    try:
        outcome.append(engine.load(name, cancel=cancel))
    except BaseException as error:  # noqa: BLE001 (the test reads it)
        outcome.append(error)


def test_a_chat_is_counted_before_it_is_sent(engine: Engine) -> None:
    short = engine.measure_chat("tiny", [{"role": "user", "content": "hello"}])
    assert isinstance(short, ContextUse) and short.dropped_messages == 0
    assert 0 < short.prompt_tokens < short.context and 0 < short.fraction < 1
    assert short.needed == short.prompt_tokens  # nothing dropped: the whole chat is what is sent
    sent = list(engine.chat("tiny", [{"role": "user", "content": "hello"}], options={"num_predict": 1}))
    assert sent[-1].prompt_tokens == short.prompt_tokens  # the count is what sending submits
    turns = [{"role": r, "content": "hello world " * 120} for r in ("user", "assistant") * 6]
    long = engine.measure_chat("tiny", [*turns, {"role": "user", "content": "and now?"}])
    assert long.dropped_messages > 0 and long.prompt_tokens <= long.context
    assert long.needed is not None and long.needed > long.context  # what a context must hold to keep it all
    with pytest.raises(
        PromptTooLong, match=r"needs \d+ tokens, more than the \d+-token context holds"
    ) as caught:
        engine.measure_chat("tiny", [{"role": "user", "content": "hello world " * 3000}])
    assert caught.value.needed is not None and caught.value.needed > long.context
