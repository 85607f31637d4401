"""Loads, embeddings and keep-alive under hostile use (issue 18, findings 7, 8 and 10), with real tiny GGUFs.

Finding 7: eight requests at once for one model with different ``num_ctx``
loaded eight copies, because a load's memory was counted only once it had
loaded. Finding 8: an ``/api/embed`` of 200,000 inputs ran on for minutes after
its client left, and every other embed of that model waited behind it.
Finding 10: a huge ``keep_alive`` made every ``/api/ps`` a 500 without the
version header, so ``llamadeck ps`` called the server a stranger.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from engine import Cancelled, CancelToken, Engine, Machine
from engine.runtime.worker.client import Worker
from tests.support import api_server
from tests.support.api_server import running_api
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.fake_hub import FakeHub, isolated_hf_env
from tests.support.tiny_gguf import write_tiny_gguf

MODEL = "hf.co/acme/Tiny-GGUF:Q8_0"
EMBEDDER = "hf.co/acme/Embed-GGUF:F32"
HUGE = ["h"] * 80_000  # 10,000 batches: far more than a test waits for
CONTEXTS = (256, 384, 512, 640, 768, 896, 1024, 1152)


class Budget:
    """A machine whose free memory the test sets; records what is loaded and reserved when it is asked."""

    def __init__(self) -> None:
        self.free = 16 << 30
        self.engine: Engine | None = None
        self.seen: list[int] = []  # bytes loaded + reserved at each look at the machine

    def __call__(self) -> Machine:
        if self.engine is not None:
            registry = self.engine._registry  # noqa: SLF001 - the reservations are the registry's
            spent = sum(r.memory for r in registry.residents()) + sum(registry.reservations().values())
            self.seen.append(spent)
        return Machine(free_ram=self.free, gpu_free_vram=None)


@pytest.fixture
def budgeted(tmp_path: Path) -> Iterator[tuple[Engine, Budget]]:
    model = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    embedder = write_chain_gguf(tmp_path / "Embed-F32.gguf", {token_id("h"): 2, token_id("w"): 2}, pooling=1)
    budget = Budget()
    with isolated_hf_env(tmp_path / "hf-home"), FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": model})
        hub.add_repo("acme/Embed-GGUF", {"Embed-F32.gguf": embedder})
        engine = Engine(tmp_path / "store", machine=budget)
        try:
            engine.pull("acme/Tiny-GGUF")
            engine.pull("acme/Embed-GGUF")
            yield engine, budget
        finally:
            engine.close()


def test_concurrent_loads_of_one_model_never_exceed_the_budget(budgeted: tuple[Engine, Budget]) -> None:
    """Finding 7: in-flight loads count against the budget; one model's copies replace each other."""
    engine, budget = budgeted
    engine.load(MODEL, options={"num_ctx": max(CONTEXTS)}, keep_alive=-1)
    (largest,) = engine.loaded()
    engine.unload(MODEL)
    assert engine.loaded() == []
    budget.free = largest.memory * 3 // 2  # one copy fits, two do not
    budget.engine = engine
    barrier = threading.Barrier(len(CONTEXTS))
    errors: list[BaseException] = []

    def load(num_ctx: int) -> None:
        barrier.wait()
        try:
            engine.load(MODEL, options={"num_ctx": num_ctx}, keep_alive=-1)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=load, args=(n,)) for n in CONTEXTS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert budget.seen and max(budget.seen) <= budget.free
    assert len(engine.loaded()) == 1 and engine._registry.reservations() == {}  # noqa: SLF001


def worker_of(engine: Engine) -> Worker:
    """The worker of the loaded embedding model, its embedder made by a first embed."""
    engine.embed(EMBEDDER, ["w"])
    (resident,) = [r for r in engine._registry.residents() if r.name == EMBEDDER]  # noqa: SLF001
    return resident.payload.worker


def running_embed(engine: Engine, texts: list[str], cancel: CancelToken) -> tuple[threading.Thread, list]:
    """An embed on a thread of its own; its outcome (vectors or the error) lands in the list."""
    outcome: list = []

    def embed() -> None:
        try:
            outcome.append(engine.embed(EMBEDDER, texts, cancel=cancel))
        except Exception as error:  # noqa: BLE001 (the test reads it)
            outcome.append(error)

    thread = threading.Thread(target=embed)
    thread.start()
    return thread, outcome


def wait_for_batches(worker: Worker, at_least: int) -> None:
    while worker.embed_batches() < at_least:
        threading.Event().wait(0.01)


def test_a_cancelled_embed_stops_between_batches(budgeted: tuple[Engine, Budget]) -> None:
    """Finding 8: the cancel reaches the embed in its worker and lands at the next batch, not after all."""
    engine, _ = budgeted
    worker = worker_of(engine)
    start = worker.embed_batches()
    token = CancelToken()
    thread, outcome = running_embed(engine, HUGE, token)
    wait_for_batches(worker, start + 2)
    token.cancel("the client disconnected")
    thread.join()
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled), outcome
    assert worker.embed_batches() - start < len(HUGE) // 8  # it stopped long before its last batch


def test_a_second_embed_is_served_while_a_long_one_runs(budgeted: tuple[Engine, Budget]) -> None:
    """Finding 8: embeds of one model take turns per batch; a long request holds no lock over the others."""
    engine, _ = budgeted
    worker = worker_of(engine)
    token = CancelToken()
    thread, outcome = running_embed(engine, HUGE, token)
    wait_for_batches(worker, worker.embed_batches() + 1)  # the long one runs
    served = engine.embed(EMBEDDER, ["w"])
    still_running = not outcome  # with one lock over the embedder it would have ended first
    token.cancel()
    thread.join()
    assert len(served) == 1 and still_running


def test_a_huge_keep_alive_is_refused_and_ps_survives_any_stored_one(
    budgeted: tuple[Engine, Budget], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 10: durations past Go's are 400s; /api/ps answers whatever keep-alive a model holds."""
    engine, _ = budgeted
    with running_api(engine) as base_url:
        for keep_alive in ("9999999999999h", 1e300):
            body = {"model": MODEL, "prompt": "", "keep_alive": keep_alive}
            refused = httpx.post(f"{base_url}/api/generate", json=body, timeout=60)
            assert refused.status_code == 400 and "x-llamadeck-version" in refused.headers
        longest = httpx.post(
            f"{base_url}/api/generate",
            json={"model": MODEL, "prompt": "", "keep_alive": "2562047h"},
            timeout=60,
        )
        assert longest.status_code == 200
        assert httpx.get(f"{base_url}/api/ps").json()["models"][0]["expires_at"].startswith("2318")
        # a keep-alive no parser lets through, stored anyway (the engine's default is a plain attribute)
        monkeypatch.setattr(engine._registry, "default_keep_alive", 1e300)  # noqa: SLF001
        engine.embed(EMBEDDER, ["w"])
        listed = httpx.get(f"{base_url}/api/ps")
        assert listed.status_code == 200
        assert [m["expires_at"][:4] for m in listed.json()["models"]] == ["2318", "2318"]


def test_a_500_still_says_it_comes_from_llamadeck(
    budgeted: tuple[Engine, Budget], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 10: ``llamadeck ps`` called a failing server a stranger: its 500 had no version header."""
    engine, _ = budgeted

    def failing_app(*args: object, **kwargs: object) -> FastAPI:
        app = create_app(*args, **kwargs)  # type: ignore[arg-type]

        @app.get("/api/fails")
        def fails() -> None:
            raise RuntimeError("a bug the server did not foresee")

        return app

    monkeypatch.setattr(api_server, "create_app", failing_app)
    with running_api(engine) as base_url:
        failed = httpx.get(f"{base_url}/api/fails")
    assert failed.status_code == 500 and failed.headers["x-llamadeck-version"]
