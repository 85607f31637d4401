"""End to end, as a person with a laptop and a GPU box: ``llamadeck --host BOX`` in a real terminal (tmux).

The box is a second llamadeck on another port (its own store, a real uvicorn,
pulling from the fake Hub). Through the app alone the person pulls a model
there, chats with it, unloads it from the Sessions tab and quits; every step
is checked on the box's own engine, and this machine's store stays untouched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine
from tests.support.api_server import running_api
from tests.support.partial_servers import TINY, second_machine
from tests.test_tui_tmux import screen, start, tmux, wait_for


@pytest.fixture
def gpu_box(tmp_path: Path) -> Iterator[Engine]:
    """The other machine's engine, with the fake Hub it pulls from."""
    with second_machine(tmp_path) as engine:
        yield engine


def test_the_app_on_a_second_serve_pulls_chats_and_stops_a_model(
    gpu_box: Engine, tmp_path: Path, isolated_env: Path
) -> None:
    config = tmp_path / "config" / "llamadeck" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[parameters]\nnum_predict = 8\n", encoding="utf-8")
    with running_api(gpu_box) as url:
        host = url.removeprefix("http://")
        session, status = start(tmp_path, "--host", host)
        try:
            wait_for(lambda: "No models yet" in screen(session), session=session)
            tmux("send-keys", "-t", session, "p")
            wait_for(lambda: "search the Hub" in screen(session), session=session)
            tmux("send-keys", "-t", session, "-l", "acme/Tiny-GGUF:Q8_0")
            tmux("send-keys", "-t", session, "Enter")
            wait_for(lambda: "recommended" in screen(session), 60, session)  # the server's quantizations
            tmux("send-keys", "-t", session, "Enter")
            wait_for(lambda: [m.reference for m in gpu_box.list_models()] == [TINY], 90, session)
            # the row names the server it is on (a toast said so at start too, for a few seconds only)
            wait_for(lambda: TINY in screen(session) and host in screen(session), session=session)

            tmux("send-keys", "-t", session, "n")  # chat with the selected model
            wait_for(lambda: "Write a message" in screen(session), session=session)
            time.sleep(0.5)  # the box takes keys once its placeholder shows
            tmux("send-keys", "-t", session, "-l", "Hello from the laptop")
            tmux("send-keys", "-t", session, "Enter")
            wait_for(lambda: "tok/s" in screen(session), 90, session)
            assert [m.reference for m in gpu_box.loaded()] == [TINY]

            tmux("send-keys", "-t", session, "Escape")  # leave the box (alone: Escape then 2 reads as Alt+2)
            wait_for(lambda: "typing" not in screen(session), session=session)
            tmux("send-keys", "-t", session, "2")
            wait_for(
                lambda: "generating" not in screen(session) and "idle" in screen(session), session=session
            )
            tmux("send-keys", "-t", session, "u")
            wait_for(lambda: gpu_box.loaded() == [], 30, session)
            wait_for(lambda: "No model is loaded" in screen(session), session=session)
            assert "Traceback" not in screen(session)

            tmux("send-keys", "-t", session, "q")
            wait_for(lambda: status.exists() and status.read_text().strip() != "", session=session)
            assert status.read_text().strip() == "0"
        finally:
            tmux("kill-session", "-t", session)
    assert not isolated_env.exists()  # this machine's store was never opened
