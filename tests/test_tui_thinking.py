"""The Chat tab on a thinking model, under Pilot: the reasoning streams above the answer, then folds.

The model says ``<think>`` reasoning ``</think>`` then its answer by rote
(``tests/support/said_gguf.py``), through the real engine. The engine is held
at the answer's first token until the test has looked at the reasoning, so no
timing decides what is on screen.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Token
from tests.support.chat_app import RecordingEngine, make_app, pane, ready, stored, sync, until, views
from tests.support.said_gguf import ANSWER, THINK_TEMPLATE, THINKER, THINKING, write_said_gguf
from tui.widgets.chat_input import ChatInput
from tui.widgets.chat_thinking import THINKING as THINKING_TITLE
from tui.widgets.chat_thinking import ThinkingView

CPU = {"free_ram": 16 << 30, "gpu_free_vram": None}


class HeldEngine(RecordingEngine):
    """Holds a reply at its answer's first token until ``release`` is set."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release = threading.Event()

    def chat(self, reference, messages, **kwargs):  # type: ignore[no-untyped-def]
        return self._held(super().chat(reference, messages, **kwargs))

    def _held(self, events: Iterator[Any]) -> Iterator[Any]:
        for event in events:
            if isinstance(event, Token) and event.text:
                assert self.release.wait(60), "the test never let the answer through"
            yield event


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldEngine]:
    from engine import Machine

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    engine = HeldEngine(machine=lambda: Machine(**CPU))
    model = write_said_gguf(tmp_path / "thinker.gguf", THINKER, template=THINK_TEMPLATE)
    engine.create("thinker", f"FROM {model}\n")
    yield engine
    engine.release.set()
    engine.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "llamadeck" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[parameters]\nnum_predict = 32\ntemperature = 0\n", encoding="utf-8")
    return path


def thinking_of(app) -> ThinkingView | None:  # type: ignore[no-untyped-def]
    seen = views(app)
    return seen[-1].thinking if seen else None


@sync
async def test_the_reasoning_streams_then_folds_when_the_answer_starts(
    engine: HeldEngine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model="thinker")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        box = app.query_one(ChatInput)
        box.focus()
        box.load_text("What is the capital of France?")
        await pilot.press("enter")
        await until(pilot, lambda: (view := thinking_of(app)) is not None and view.text == THINKING)
        await pilot.pause(0.1)  # a frame: the text is drawn
        view = thinking_of(app)
        assert view is not None and not view.collapsed and view.title == THINKING_TITLE
        assert str(view._body.render()) == THINKING
        assert views(app)[-1].content == ""  # no answer yet
        app.save_screenshot(str(tmp_path / "thinking.svg"))

        engine.release.set()
        await until(pilot, lambda: pane(app).generation is None and views(app)[-1].status == "complete")
        await pilot.pause()
        assert view.collapsed and view.title.startswith("Thought for ")
        assert views(app)[-1].content == ANSWER
        assert [m.content for m in stored(app)][-1] == ANSWER  # the store keeps the answer alone
        app.save_screenshot(str(tmp_path / "folded.svg"))

        view.query_one("CollapsibleTitle").focus()
        await pilot.press("enter")  # the folded reasoning opens again
        await pilot.pause()
        assert not view.collapsed and str(view._body.render()) == THINKING
        assert engine.calls[0].get("think") is None  # the model's default: it thinks
