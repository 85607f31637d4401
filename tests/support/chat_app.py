"""The Chat tab under Pilot: the real engine on a tiny model from a fake Hub, an app recording the clipboard.

The tiny model's weights are random: replies are gibberish, so the tests built on
these helpers assert on structure (messages, statuses, stats, what reached the
engine), never on what the model said.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, Machine, Token
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf
from tui.chatstore import ChatStore

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
TINY = "hf.co/acme/Tiny-GGUF:Q8_0"


class RecordingEngine(Engine):
    """The real engine, remembering how chat was called and slowing each token by ``delay`` seconds."""

    delay = 0.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[dict[str, Any]] = []

    def chat(self, reference, messages, **kwargs):  # type: ignore[no-untyped-def, override]
        self.calls.append({"reference": reference, "messages": list(messages), **kwargs})
        events = super().chat(reference, messages, **kwargs)
        return self._paced(events) if self.delay else events

    def _paced(self, events: Iterator[Any]) -> Iterator[Any]:
        for event in events:
            if isinstance(event, Token):
                time.sleep(self.delay)
            yield event


def tiny_file(factory: pytest.TempPathFactory) -> Path:
    """The tiny model's GGUF, written once a session."""
    path = factory.getbasetemp() / "chat-repos" / "Tiny-Q8_0.gguf"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        write_tiny_gguf(path, quant="Q8_0")
    return path


@contextmanager
def recording_engine(
    factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RecordingEngine]:
    """The engine with the tiny model pulled from a fake Hub; no clipboard on this machine, as over SSH."""
    with FakeHub() as fake, fake.patch_endpoint():
        fake.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": tiny_file(factory)})
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
        import pyperclip

        def no_clipboard(text: str) -> None:  # as over SSH: pyperclip finds no clipboard
            raise pyperclip.PyperclipException("no clipboard")

        monkeypatch.setattr(pyperclip, "copy", no_clipboard)
        engine = RecordingEngine(machine=lambda: CPU_BOX)
        engine.pull(TINY)
        yield engine
        engine.close()


def short_replies(tmp_path: Path) -> Path:
    """The app's config.toml with short replies, so each test is quick."""
    path = tmp_path / "config" / "llamadeck" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[parameters]\nnum_predict = 6\nseed = 1\n", encoding="utf-8")
    return path


def sync(test):
    """Run an async Pilot test on its own event loop (the project has no pytest-asyncio)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 1800))  # a hang guard only

    run.__signature__ = inspect.signature(test)
    return run


def make_app(engine: Engine, tmp_path: Path, config: Path, **kwargs: Any):
    from tui.app import LlamadeckApp

    class App(LlamadeckApp):
        """Records what went to the clipboard (OSC 52) instead of writing it to a terminal."""

        CSS_PATH = str(Path(inspect.getfile(LlamadeckApp)).with_name("app.tcss"))
        copied: list[str] = []

        def copy_to_clipboard(self, text: str) -> None:
            self.copied.append(text)

    kwargs.setdefault("chat_db", tmp_path / "chats.db")
    app = App(engine, config_path=config, **kwargs)
    app.copied = []
    return app


async def until(pilot, condition, timeout: float = 600.0) -> None:
    """Wait for ``condition``; the timeout only keeps a broken app from hanging the suite (a loaded
    machine may take long: no test's outcome depends on how long)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


def pane(app):
    from tui.widgets.chat_pane import ChatPane

    return app.query_one(ChatPane)


async def ready(app, pilot) -> None:
    """The chat history is open (the app opens it in a thread)."""
    await until(pilot, lambda: pane(app).store is not None)
    await pilot.pause()


async def send(app, pilot, text: str) -> None:
    """Type ``text`` in the input, press Enter, wait for the reply to end and render."""
    from tui.widgets.chat_input import ChatInput

    box = app.query_one(ChatInput)
    box.focus()
    box.load_text(text)
    before = len(views(app))
    await pilot.press("enter")
    # Enter was handled: the message shows (while it is counted), or is on its way into the history
    chat = pane(app)
    await until(pilot, lambda: len(views(app)) != before or chat.generation or chat._saving is not None)
    await until(pilot, lambda: pane(app).generation is not None or last_status(app) != "streaming")
    # the message goes into the history on its thread first (``_saving``), then the reply streams
    await until(pilot, lambda: pane(app).generation is None and pane(app)._saving is None)
    await until(pilot, lambda: last_status(app) != "streaming")
    await pilot.pause()


def views(app):
    from tui.widgets.chat_log import ChatLog

    return app.query_one(ChatLog).message_views()


def last_status(app) -> str | None:
    seen = views(app)
    return seen[-1].status if seen else None


def stored(app) -> list:
    chat = pane(app).chat
    assert chat is not None
    return app.chat_store.messages(chat.id)


def seeded(path: Path, *chats: tuple[str, list[tuple[str, str]]]) -> list[int]:
    """Chats written to the history before the app starts: (title, [(role, content), ...])."""
    ids = []
    with ChatStore.open(path) as store:
        for title, messages in chats:
            chat = store.create(TINY, title=title, parameters={"num_predict": 4})
            for role, content in messages:
                store.add_message(chat.id, role, content)
            ids.append(chat.id)
    return ids
