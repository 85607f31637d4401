"""The app against another machine's server, under Pilot: pull, chat, sessions, stop, and the server failing.

The app is given ``engine.connect(url)`` as ``llamadeck --host`` gives it;
the server is a second llamadeck (real uvicorn, its own store, the fake Hub),
a server of OpenAI's routes only, or raw sockets that die or stall mid-reply.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine, connect
from tests.support.api_server import running_api, running_asgi
from tests.support.chat_app import (
    last_status,
    make_app,
    pane,
    ready,
    send,
    short_replies,
    stored,
    sync,
    until,
)
from tests.support.partial_servers import DYING_MODEL, TINY, dying_server, openai_only, second_machine
from tests.support.pilot import settle


@pytest.fixture
def gpu_box(tmp_path: Path) -> Iterator[Engine]:
    """The other machine's engine, with the fake Hub it pulls from."""
    with second_machine(tmp_path) as engine:
        yield engine


@sync
async def test_the_app_pulls_chats_and_stops_a_model_on_a_second_serve(
    gpu_box: Engine, tmp_path: Path, isolated_env: Path
) -> None:
    from tui.screens.pull import PullScreen
    from tui.widgets.models_pane import ModelsPane
    from tui.widgets.sessions_pane import SessionsPane

    with running_api(gpu_box) as url:
        app = make_app(connect(url, name="gpu-box"), tmp_path, short_replies(tmp_path))
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(app, pilot)
            assert app.sub_title == "on gpu-box"
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, PullScreen))
            await pilot.press(*"acme/Tiny-GGUF", "enter")
            # the server's quantizations (/api/llamadeck/variants), with the fits of its machine
            await until(pilot, lambda: app.screen.stage == "variants", 60)  # type: ignore[attr-defined]
            assert app.screen.query_one("#variants").row_count == 1
            await pilot.press("enter")
            await until(pilot, lambda: [m.reference for m in gpu_box.list_models()] == [TINY])
            await until(pilot, lambda: not isinstance(app.screen, PullScreen))
            models = app.query_one(ModelsPane)
            await until(pilot, lambda: [r.key for r in models.rows] == [TINY])
            assert models.rows[0].cells[-1] == "gpu-box"  # the row says where the model is

            app.open_chat(TINY)
            await pilot.pause()
            await send(app, pilot, "Hello over there")
            user, reply = stored(app)
            assert reply.status == "complete" and reply.stats and reply.stats["completion_tokens"] > 0
            assert [m.reference for m in gpu_box.loaded()] == [TINY]

            await pilot.press("2")
            sessions = app.query_one(SessionsPane)
            await until(pilot, lambda: [r.reference for r in sessions.rows] == [TINY])
            sessions.query_one("#sessions").focus()
            await pilot.press("u")
            await until(pilot, lambda: gpu_box.loaded() == [])
            await settle(app, pilot)
    assert not isolated_env.exists()  # this machine's store was never opened


@sync
async def test_a_server_dying_mid_reply_keeps_the_partial_reply_and_says_why_in_one_line(
    tmp_path: Path,
) -> None:
    with dying_server(tokens=3) as url:
        app = make_app(
            connect(url, name="dying-box"), tmp_path, short_replies(tmp_path), chat_model=DYING_MODEL
        )
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(app, pilot)
            await send(app, pilot, "Still there?")
            user, reply = stored(app)
            assert reply.status == "error" and reply.content == "word0 word1 word2 "
            errors = [n for n in app._notifications if n.severity == "error"]
            assert errors and "dying-box" in errors[0].message and "\n" not in errors[0].message
            assert app.is_running


@sync
async def test_ctrl_c_closes_the_stream_to_the_server(tmp_path: Path) -> None:
    left = threading.Event()
    with dying_server(1, client_left=left) as url:
        app = make_app(connect(url), tmp_path, short_replies(tmp_path), chat_model=DYING_MODEL)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(app, pilot)
            from tui.widgets.chat_input import ChatInput

            app.query_one(ChatInput).load_text("Say something")
            await pilot.press("enter")
            await until(pilot, lambda: pane(app).generation is not None and pane(app).generation.text)
            await pilot.press("ctrl+c")
            await until(pilot, lambda: last_status(app) == "stopped")
            assert stored(app)[-1].content == "word0 "
            await until(pilot, left.is_set)  # the server saw its client go


@sync
async def test_an_openai_only_server_chats_and_its_sessions_tab_says_what_it_cannot_show(
    gpu_box: Engine, tmp_path: Path
) -> None:
    from textual.widgets import Static

    from tui.widgets.sessions_pane import SessionsPane

    gpu_box.pull("acme/Tiny-GGUF")
    with running_asgi(openai_only(gpu_box)) as url:
        app = make_app(connect(url, name="vllm-box"), tmp_path, short_replies(tmp_path), chat_model=TINY)
        async with app.run_test(size=(120, 40)) as pilot:
            await ready(app, pilot)
            await send(app, pilot, "Hello")
            assert stored(app)[-1].status == "complete"
            empty = app.query_one(SessionsPane).query_one("#empty", Static)
            assert "vllm-box offers only the OpenAI API (/v1)" in str(empty.render())
            assert not [n for n in app._notifications if n.severity == "error"]
