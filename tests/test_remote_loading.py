"""A load in flight on another machine's server, as the app's gauge reads it (``RemoteEngine.loading``).

The server's model worker is held mid-load (llama.cpp's log file is a FIFO
nobody reads, ``tests.test_worker_crash.held_log``) while a load sent through
the API waits, so the test looks at leisure: a llamadeck server says how far
the load has got (``/api/llamadeck/loading``, a route of ours), an Ollama-shaped
one only lets the client count the seconds its request has waited. Then the
load is let go, and nothing is listed any more; ``/api/ps`` kept Ollama's shape.
The app's pending reply says the same while it waits on either server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine import Engine, LoadingModel, connect
from engine.remote.waits import Waits
from tests.support.api_server import running_api, running_asgi
from tests.support.chat_app import make_app, pane, ready, short_replies, stored, sync, until, views
from tests.support.held_load import release
from tests.support.partial_servers import TINY, ollama_only, openai_only, second_machine
from tests.test_worker_crash import held_log, let_go, wait_for_worker
from tui.widgets.chat_gauge import loading_text


@pytest.fixture
def gpu_box(tmp_path: Path) -> Iterator[Engine]:
    with second_machine(tmp_path) as engine:
        engine.pull("acme/Tiny-GGUF")
        yield engine


def _held_load(url: str, fifo: Path) -> tuple[list[LoadingModel], list[LoadingModel], list[object]]:
    """What ``loading`` says while a load through ``url`` is held, and after it is let go."""
    remote = connect(url)
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(remote.load(TINY)))
    thread.start()
    try:
        wait_for_worker()
        during = remote.loading()
    finally:
        release(fifo)
        let_go(thread, fifo)
    return during, remote.loading(), outcome


def test_a_llamadeck_server_says_how_far_its_load_has_got(
    gpu_box: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = held_log(tmp_path, monkeypatch)
    with running_api(gpu_box) as url:
        during, after, outcome = _held_load(url, fifo)
        ps = httpx.get(f"{url}/api/ps").json()["models"]
    (loading,) = during
    assert loading.reference == TINY and loading.fraction is not None and 0.0 <= loading.fraction < 1.0
    assert loading.seconds >= 0.0 and loading_text(loading).startswith("loading Tiny-GGUF:Q8_0 ")
    assert after == [] and len(outcome) == 1 and isinstance(outcome[0], float)
    assert [m["name"] for m in ps] == [TINY] and "progress" not in ps[0]  # Ollama's shape, as it was


def test_an_ollama_shaped_server_gives_seconds_only(
    gpu_box: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = held_log(tmp_path, monkeypatch)
    with running_asgi(ollama_only(gpu_box)) as url:
        during, after, _ = _held_load(url, fifo)
    (waiting,) = during
    assert waiting.reference == TINY and waiting.fraction is None and waiting.seconds >= 0.0
    assert loading_text(waiting).startswith("waiting for Tiny-GGUF:Q8_0 · ")
    assert loading_text(waiting, name=False).startswith("waiting · ")
    assert after == []


def test_a_v1_server_loads_nothing_and_waits_are_per_model(gpu_box: Engine) -> None:
    with running_asgi(openai_only(gpu_box)) as url:
        assert connect(url).loading() == []
    waits = Waits()
    first = waits.begin("a")
    with waits.waiting("a"), waits.waiting("b"):
        assert sorted(m.reference for m in waits.snapshot()) == ["a", "b"]  # one entry per model
    waits.end(first)
    assert waits.snapshot() == []


@pytest.mark.parametrize(
    ("kind", "said"), [("llamadeck", "loading Tiny-GGUF:Q8_0 "), ("ollama", "waiting for Tiny-GGUF:Q8_0 · ")]
)
@sync
async def test_the_apps_reply_waits_with_the_servers_figures(
    gpu_box: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, said: str
) -> None:
    """The app while the model loads on the server: percent and seconds from a llamadeck, seconds only
    from an Ollama, where the reply waits; then the reply streams."""
    from textual.widgets import Static

    from tui.widgets.chat_input import ChatInput

    def note() -> str:
        return str(views(app)[-1].query_one(".header", Static).render())

    fifo = held_log(tmp_path, monkeypatch)
    server = running_api(gpu_box) if kind == "llamadeck" else running_asgi(ollama_only(gpu_box))
    with server as url:
        app = make_app(connect(url), tmp_path, short_replies(tmp_path), chat_model=TINY)
        async with app.run_test(size=(160, 30)) as pilot:
            await ready(app, pilot)
            app.query_one(ChatInput).load_text("Hello there")
            app.query_one(ChatInput).focus()
            await pilot.press("enter")
            await until(pilot, lambda: said in note())
            release(fifo)
            await until(pilot, lambda: pane(app).generation is None)
            assert stored(app)[-1].status == "complete"
