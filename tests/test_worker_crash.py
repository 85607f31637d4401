"""A model's worker that dies, seen through the engine and the API (issue 18: aborts survived by design).

The workers die for real: SIGABRT or SIGKILL from the test (what llama.cpp's
abort and the OOM killer send), at a moment the test holds still — a stream
that is running, a load blocked reading its adapter from a FIFO.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine import Done, Engine, InvalidInput, LoadError, Machine, ModelCrashed, Token
from engine.runtime.worker.crashes import BREAK_AFTER
from engine.store.model_store import Store
from engine.store.refs import parse_ref
from tests.support.api_server import running_api
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.held_load import held_log, let_go, wait_for_worker
from tests.support.stored_models import add_blob, save

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
FOREVER = {"num_predict": 100_000, "temperature": 0}


# A stream of the endless models runs for a minute or more, however fast the machine: the test acts
# long before it could end by itself (a 2,048-token context filled in 1 s on a quiet box).
LONG = 1 << 20
LONG_CONTEXT = {"num_ctx": 1 << 17, "num_parallel": 2}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """Two models that say "▁hello" for ever (greedy): streams that run while the test acts."""
    hello = token_id("▁hello")
    path = write_chain_gguf(tmp_path / "endless.gguf", {hello: hello}, default=hello, context_length=LONG)
    other = write_chain_gguf(
        tmp_path / "other.gguf", {hello: hello, 2: hello}, default=hello, context_length=LONG
    )
    store = Store()
    store.ensure()
    for name, file in (("endless", path), ("other", other)):
        save(store, name, add_blob(store, file), parameters=LONG_CONTEXT, context_length=LONG)
    engine = Engine(machine=lambda: CPU_BOX)
    yield engine
    engine.close()


def pid_of(engine: Engine, name: str) -> int:
    (pid,) = [m.pid for m in engine.loaded() if m.reference.startswith(name) and m.pid]
    return pid


def running(engine: Engine, name: str, prompt: str = "hello") -> Iterator[object]:
    """A generation with its first token read: the model is loaded and streaming."""
    events = iter(engine.start_generate(name, prompt, raw=True, options=FOREVER))
    assert isinstance(next(events), Token)
    return events


def test_a_crash_ends_that_models_streams_with_one_line_and_no_other(engine: Engine) -> None:
    doomed = running(engine, "endless")
    beside = running(engine, "other")
    pid = pid_of(engine, "endless")
    os.kill(pid, signal.SIGABRT)
    with pytest.raises(ModelCrashed) as crash:
        for _ in doomed:
            pass
    message = str(crash.value)
    assert "endless" in message and "SIGABRT" in message and "\n" not in message
    # the other model never noticed: it still streams
    for _, event in zip(range(20), beside, strict=False):
        assert isinstance(event, Token)
    # the crashed model was dropped; the next request (another prompt) loads it afresh
    assert all(m.pid != pid for m in engine.loaded())
    events = list(engine.generate("endless", "hello hello", raw=True, options={"num_predict": 4}))
    assert isinstance(events[-1], Done) and events[-1].reason == "length"
    assert pid_of(engine, "endless") != pid


def test_the_request_that_crashed_a_model_is_refused_next_time(engine: Engine) -> None:
    doomed = running(engine, "endless", "hello")
    os.kill(pid_of(engine, "endless"), signal.SIGABRT)
    with pytest.raises(ModelCrashed):
        list(doomed)
    with pytest.raises(InvalidInput, match="crashed endless:latest before"):
        list(engine.generate("endless", "hello", raw=True, options=FOREVER))
    # the same prompt asking for something else is another request
    events = list(engine.generate("endless", "hello", raw=True, options={"num_predict": 3}))
    assert events[-1].reason == "length"


def test_a_model_that_keeps_crashing_is_marked_broken_until_it_is_made_again(engine: Engine) -> None:
    for n in range(BREAK_AFTER):
        doomed = running(engine, "endless", "hello " * (n + 1))
        os.kill(pid_of(engine, "endless"), signal.SIGKILL)
        with pytest.raises(ModelCrashed, match="SIGKILL"):
            list(doomed)
    with pytest.raises(LoadError, match="endless:latest is marked broken"):
        list(engine.generate("endless", "something new", raw=True, options={"num_predict": 2}))
    assert (
        list(engine.generate("other", "hello", raw=True, options={"num_predict": 2}))[-1].reason == "length"
    )
    engine.copy("endless", "again")  # the same weights under another name are still these weights
    with pytest.raises(LoadError, match="marked broken"):
        engine.load("again")


def test_a_worker_killed_while_loading_marks_the_model_broken_until_it_is_made_again(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker is held mid-load for certain: its first llama.cpp log line blocks opening the log
    file, a FIFO nobody reads (see ``held_log``); it is killed there."""
    fifo = held_log(tmp_path, monkeypatch)
    errors: list[BaseException] = []

    def load() -> None:
        try:
            engine.load("endless")
        except BaseException as error:  # noqa: BLE001 (the test reads it)
            errors.append(error)

    loading = threading.Thread(target=load)
    loading.start()
    try:
        os.kill(wait_for_worker(), signal.SIGKILL)
    finally:
        let_go(loading, fifo)
    assert len(errors) == 1 and isinstance(errors[0], ModelCrashed), errors
    assert "endless" in str(errors[0]) and "SIGKILL" in str(errors[0])
    broken = "endless:latest is marked broken: its llama.cpp worker crashed while loading"
    with pytest.raises(LoadError, match=broken):
        engine.load("endless")
    assert engine.loaded() == []
    # made again (pull and create forget the crash), it is tried again
    fifo.unlink()
    engine._crashes.forget(Store().load(parse_ref("endless")).load_id)  # noqa: SLF001 - what create and pull call
    assert engine.load("endless") >= 0.0


def test_the_api_ends_a_crashed_stream_with_an_error_line_and_keeps_serving(engine: Engine) -> None:
    with running_api(engine) as url, httpx.Client(base_url=url, timeout=120) as client:
        body = {"model": "endless", "prompt": "hello", "raw": True, "options": FOREVER}
        with client.stream("POST", "/api/generate", json=body) as response:
            lines = response.iter_lines()
            first = next(lines)
            assert '"response"' in first
            os.kill(pid_of(engine, "endless"), signal.SIGABRT)
            rest = list(lines)
        assert "error" in rest[-1] and "endless" in rest[-1] and "crashed" in rest[-1]
        assert client.get("/api/ps").status_code == 200
        again = client.post(
            "/api/generate",
            json={**body, "prompt": "hello you", "stream": False, "options": {"num_predict": 2}},
        )
        assert again.status_code == 200 and again.json()["done_reason"] == "length"
