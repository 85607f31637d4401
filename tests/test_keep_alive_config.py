"""The app's keep-alive (``config.toml``) holds for every load, as the server settings say (issue 21).

``llamadeck serve`` is covered in ``test_serve_settings``; here the other two
ways a model is loaded outside the app's own chats: the API that
``llamadeck --serve`` runs beside the app (its engine, a real uvicorn, the
Settings screen's save applied to it), and ``llamadeck chat``, which passed
``config.toml``'s value with every load and so beat ``OLLAMA_KEEP_ALIVE``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from api.server import BackgroundServer, bind
from engine import Engine, Machine
from tests.support.said_gguf import ANSWER, Said, write_said_gguf
from tests.support.tiny_gguf import CHAT_TEMPLATE
from tui.cli import chatting
from tui.cli.common import open_engine
from tui.config import Config


def write_config(text: str) -> None:
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "llamadeck"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(text, encoding="utf-8")


@pytest.fixture
def said(tmp_path: Path) -> Iterator[None]:
    """One chat model, "said", in this test's store."""
    path = write_said_gguf(tmp_path / "said.gguf", Said((ANSWER,)), template=CHAT_TEMPLATE)
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    engine.create("said", f"FROM {path}\n")
    engine.close()
    yield


def seconds_left(entry: dict[str, object]) -> float:
    return (datetime.fromisoformat(str(entry["expires_at"])) - datetime.now(UTC)).total_seconds()


def test_the_api_beside_the_app_loads_with_the_apps_keep_alive(said: None) -> None:
    write_config('keep_alive = "10m"\n')
    engine = open_engine(serving=True)  # as ``llamadeck --serve`` opens it
    server = BackgroundServer(engine, bind("127.0.0.1", 0, api_key=None), api_key=None)
    try:
        loaded = httpx.post(f"{server.url}/api/generate", json={"model": "said", "prompt": ""}, timeout=120)
        assert loaded.status_code == 200, loaded.text
        (entry,) = httpx.get(f"{server.url}/api/ps").json()["models"]
        assert 300 < seconds_left(entry) <= 600  # config.toml's 10m, not the built-in 5m
        # the Settings screen saves 1h and hands it to the engine: the API's next load keeps it an hour
        config = Config.load()
        config.keep_alive = "1h"
        engine.configure(config.server_settings())
        loaded = httpx.post(f"{server.url}/api/chat", json={"model": "said", "messages": []}, timeout=120)
        assert loaded.status_code == 200, loaded.text
        (entry,) = httpx.get(f"{server.url}/api/ps").json()["models"]
        assert 600 < seconds_left(entry) <= 3600
    finally:
        server.stop()
        engine.close()


def test_llamadeck_chat_keeps_the_model_as_the_server_settings_say(
    said: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config('keep_alive = "10m"\n')
    monkeypatch.setenv("OLLAMA_KEEP_ALIVE", "2h")  # the variable wins over config.toml, as for serve
    opened: list[Engine] = []

    def keep(*, serving: bool = False) -> Engine:
        opened.append(open_engine(serving=serving))  # the real engine, kept so the test can ask it
        return opened[-1]

    monkeypatch.setattr(chatting, "open_engine", keep)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"what is the capital?\n")))
    args = argparse.Namespace(
        model="said",
        temperature=None,
        seed=None,
        max_tokens=None,
        think=None,
        verbose=False,
        hidethinking=False,
    )
    try:
        assert chatting.cmd_chat(args) == 0
        assert ANSWER in capsys.readouterr().out
        (model,) = opened[0].loaded()
        assert model.expires_in is not None and 600 < model.expires_in <= 7200
    finally:
        for engine in opened:
            engine.close()
