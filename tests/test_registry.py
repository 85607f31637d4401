"""Loaded models kept alive, shared, expired and evicted (the registry, with stand-in payloads)."""

from __future__ import annotations

import threading
import time

import pytest

from engine.cancel import CancelToken
from engine.errors import Busy, Cancelled
from engine.runtime.registry import Registry


class Payload:
    """What a loader returns; records when it is closed."""

    def __init__(self, name: str, closed: list[str]) -> None:
        self.name, self._closed = name, closed

    def close(self) -> None:
        self._closed.append(self.name)


def loader(name: str, closed: list[str], memory: int = 10, delay: float = 0.0):
    def load(cancel: CancelToken):
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            cancel.check()
            time.sleep(0.01)
        return Payload(name, closed), memory

    return load


def test_a_loaded_model_is_reused_and_expires_after_keep_alive() -> None:
    closed: list[str] = []
    registry = Registry(budget=lambda: 100)
    with registry.use(("a", 1), "a", loader("a", closed), need=10, keep_alive=60) as (resident, fresh):
        assert fresh and resident.status == "in use"
    with registry.use(("a", 1), "a", loader("a", closed), need=10, keep_alive=60) as (again, fresh):
        assert not fresh and again is resident
    assert registry.reap() == [] and closed == []
    assert registry.reap(now=time.monotonic() + 61) == ["a"] and closed == ["a"]
    assert registry.residents() == []


def test_keep_alive_zero_unloads_after_the_reply_and_negative_keeps_forever() -> None:
    closed: list[str] = []
    registry = Registry(budget=lambda: 100)
    with registry.use(("a", 1), "a", loader("a", closed), need=10, keep_alive=0):
        assert closed == []
    assert closed == ["a"]
    with registry.use(("b", 1), "b", loader("b", closed), need=10, keep_alive=-1):
        pass
    assert registry.reap(now=time.monotonic() + 10**9) == []


def test_the_reaper_thread_unloads_expired_models() -> None:
    closed: list[str] = []
    registry = Registry(budget=lambda: 100)
    with registry.use(("a", 1), "a", loader("a", closed), need=10, keep_alive=0.2):
        pass
    deadline = time.monotonic() + 300  # a hang guard: a loaded machine may be slow
    while not closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert closed == ["a"]


def test_least_recently_used_idle_models_make_room() -> None:
    closed: list[str] = []
    registry = Registry(budget=lambda: 25 - sum(r.memory for r in registry.residents()))
    for name in ("a", "b"):
        with registry.use((name, 1), name, loader(name, closed), need=10, keep_alive=-1):
            pass
    with registry.use(("a", 1), "a", loader("a", closed), need=10, keep_alive=-1):
        pass  # a is now the most recently used
    with registry.use(("c", 1), "c", loader("c", closed), need=10, keep_alive=-1):
        pass
    assert closed == ["b"] and [r.name for r in registry.residents()] == ["a", "c"]


def test_a_model_in_use_is_never_unloaded_under_its_request() -> None:
    closed: list[str] = []
    registry = Registry(budget=lambda: 15 - sum(r.memory for r in registry.residents()))
    with registry.use(("a", 1), "a", loader("a", closed), need=10):
        with pytest.raises(Busy, match="a is generating"):
            registry.unload(lambda r: True)
        with (
            pytest.raises(Busy, match="while a is generating"),
            registry.use(("b", 1), "b", loader("b", closed), need=10),
        ):
            pass
    assert closed == []
    assert registry.unload(lambda r: r.name == "a") == ["a"] and closed == ["a"]


def test_two_threads_asking_for_one_model_load_it_once() -> None:
    closed: list[str] = []
    loads = []
    registry = Registry(budget=lambda: 100)
    slow = loader("a", closed, delay=0.3)

    def counted(cancel: CancelToken):
        loads.append(1)
        return slow(cancel)

    def use() -> None:
        with registry.use(("a", 1), "a", counted, need=10):
            time.sleep(0.05)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1


def test_a_cancelled_load_leaves_nothing_loaded() -> None:
    closed: list[str] = []
    registry = Registry(budget=lambda: 100)
    token = CancelToken()
    threading.Timer(0.1, token.cancel).start()
    with (
        pytest.raises(Cancelled),
        registry.use(("a", 1), "a", loader("a", closed, delay=5), need=10, cancel=token),
    ):
        pass
    assert registry.residents() == []
    with registry.use(("a", 1), "a", loader("a", closed), need=10) as (_, fresh):
        assert fresh


def test_cancel_callbacks_run_once_and_can_be_removed() -> None:
    token = CancelToken()
    calls: list[str] = []
    token.on_cancel(lambda: calls.append("a"))
    remove = token.on_cancel(lambda: calls.append("b"))
    remove()
    token.cancel()
    token.cancel()
    token.on_cancel(lambda: calls.append("late"))  # already cancelled: called at once
    assert calls == ["a", "late"]


class Watched(CancelToken):
    """A token that tells when it was checked twice: its holder waited (the registry checks once per wake)."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0
        self.waiting = threading.Event()

    def check(self) -> None:
        self.checks += 1
        if self.checks >= 2:
            self.waiting.set()
        super().check()


def gated(name: str, closed: list[str], gate: threading.Event, started: threading.Event, fail: bool = False):
    """A load that says it started, then waits for ``gate`` (and fails when asked)."""

    def load(cancel: CancelToken):
        started.set()
        assert gate.wait(30)
        if fail:
            raise RuntimeError(f"{name} did not load")
        return Payload(name, closed), 10

    return load


@pytest.mark.parametrize("first_fails", [False, True])
def test_a_load_in_flight_holds_its_memory_until_it_ends(first_fails: bool) -> None:
    """Issue 18, finding 7: two loads that fit only alone never start together.

    A failed load gives its memory back and the waiting one loads; a load that
    succeeds is then in use, and the waiting one is told Busy (as a model that
    is generating makes it) — never loaded beside it. The first model stays in
    use until the second has its answer, so no ordering is left to chance.
    """
    closed: list[str] = []
    registry = Registry(
        budget=lambda: 15 - sum(r.memory for r in registry.residents())
    )  # one of 10 fits, not two
    gate, a_started, b_started = threading.Event(), threading.Event(), threading.Event()
    b_answered = threading.Event()
    errors: list[BaseException] = []

    def use_a() -> None:
        try:
            with registry.use(
                ("a", 1), "a", gated("a", closed, gate, a_started, first_fails), need=10, keep_alive=-1
            ):
                assert b_answered.wait(30)  # in use until b knows where it stands
        except RuntimeError as error:
            errors.append(error)

    def use_b() -> None:
        try:
            _use_once(registry, ("b", 1), "b", closed, b_started, token)
        except Busy as error:
            errors.append(error)
        finally:
            b_answered.set()

    first = threading.Thread(target=use_a)
    first.start()
    assert a_started.wait(30)
    assert registry.reservations() == {("a", 1): 10}
    token = Watched()
    second = threading.Thread(target=use_b)
    second.start()
    assert token.waiting.wait(30)  # b is waiting for a's load, not loading beside it
    assert not b_started.is_set() and registry.reservations() == {("a", 1): 10}
    gate.set()
    second.join()
    first.join()
    assert registry.reservations() == {}
    if first_fails:  # a gave its memory back: b loaded
        assert b_started.is_set() and [type(e) for e in errors] == [RuntimeError]
        assert [r.name for r in registry.residents()] == ["b"]
    else:  # a loaded and is in use: b was refused, not loaded beside it
        assert not b_started.is_set() and [type(e) for e in errors] == [Busy]
        assert [r.name for r in registry.residents()] == ["a"]


def _use_once(
    registry: Registry, key, name: str, closed: list[str], started: threading.Event, token: CancelToken
) -> None:
    gate = threading.Event()
    gate.set()
    with registry.use(key, name, gated(name, closed, gate, started), need=10, keep_alive=-1, cancel=token):
        pass
