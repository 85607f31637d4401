"""``llamadeck run`` on a thinking model, as ``ollama run`` shows one: ``--think``, ``--hidethinking``.

The model says ``<think>`` reasoning ``</think>`` then its answer by rote
(``tests/support/said_gguf.py``); the command runs as a real subprocess.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Done, Engine, Machine, Token
from tests.support.api_server import running_api
from tests.support.cli import LLAMADECK, assert_one_line_error, llamadeck
from tests.support.said_gguf import ANSWER, MIDDLE, THINK_TEMPLATE, THINKER, THINKING, write_said_gguf
from tui.cli.progress import FAINT, PLAIN, ReplyView

SHOWN = f"Thinking...\n{THINKING}\n...done thinking.\n\n{ANSWER}\n"  # ollama run's words in a pipe


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    engine.create(
        "thinker", f"FROM {write_said_gguf(tmp_path / 't.gguf', THINKER, template=THINK_TEMPLATE)}\n"
    )
    engine.create("plain", f"FROM {write_said_gguf(tmp_path / 'p.gguf', MIDDLE, template=None)}\n")
    yield engine
    engine.close()


@pytest.mark.usefixtures("store")
@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        ((), SHOWN),  # a thinking model thinks unless told not to, and shows it
        (("--think",), SHOWN),  # before the prompt: the prompt is not taken for its value
        (("--think=high",), SHOWN),
        (("--hidethinking",), ANSWER + "\n"),
        (("--think=false",), ANSWER + "\n"),  # this model then answers at once
    ],
)
def test_run_shows_the_reasoning_then_the_answer(flags: tuple[str, ...], shown: str) -> None:
    result = llamadeck("run", "thinker", *flags, "Capital of France?", "-t", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown


@pytest.mark.usefixtures("store")
def test_think_refusals_are_one_line() -> None:
    result = llamadeck("run", "thinker", "--think=huge", "hi")
    assert_one_line_error(result, "invalid value for --think: 'huge'")
    assert_one_line_error(llamadeck("run", "plain", "--think", "hi"), '"plain" does not support thinking')


def test_run_through_a_server_shows_the_reasoning_too(store: Engine) -> None:
    with running_api(store) as base_url:
        env = os.environ | {"LLAMADECK_HOST": base_url.removeprefix("http://")}
        for flags, shown in (((), SHOWN), (("--hidethinking",), ANSWER + "\n")):
            command = [LLAMADECK, "run", "thinker", *flags, "Capital of France?", "-t", "0"]
            ran = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            assert ran.returncode == 0 and ran.stdout == shown, ran.stderr
        assert [m.reference for m in store.loaded()] == ["thinker:latest"]  # the server answered


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_reasoning_is_faint_on_a_terminal_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    for environ, faint in (({"TERM": "xterm"}, True), ({"TERM": "xterm", "NO_COLOR": "1"}, False)):
        screen = Terminal()
        monkeypatch.setattr(sys, "stdout", screen)
        view = ReplyView(environ=environ)
        for event in (Token("", "Hmm"), Token("", ".\x1b[31m"), Token("Paris.")):
            view(event)
        view(Done("stop", 1, 3, 0.0, 0.1, 0.1))
        thought = "Thinking...\nHmm.\\x1b[31m\n...done thinking.\n\n"  # escaped like any model text
        expected = f"{FAINT}{thought}{PLAIN}Paris.\n" if faint else f"{thought}Paris.\n"
        assert screen.getvalue() == expected


def test_a_reply_cut_off_while_thinking_ends_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    view = ReplyView(environ={"TERM": "xterm"})
    view(Token("", "Still thinking"))
    view.close()
    assert screen.getvalue() == f"{FAINT}Thinking...\nStill thinking{PLAIN}\n"
