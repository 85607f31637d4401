"""End to end in a real terminal (tmux), the gauge's journeys of issue 21: the loading gauge appears for a
slow load, and a paste that does not fit is caught before it is sent.

The slow load is held, not timed: llama.cpp's log file (``$XDG_STATE_HOME/llamadeck/llama.log``) is made a
FIFO nobody reads, so the model's worker blocks at its first log line, mid-load, until the test reads the
FIFO. It needs no hook in the product: the same file every worker writes, only made a pipe by the test.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from tests.support.held_load import release
from tests.test_tui_tmux import needs_tmux, screen, start, tmux, wait_for

__all__ = ["needs_tmux"]  # the module's autouse fixture: tmux must be there

PASTE = "\n".join(f"line {i}: the quick brown fox jumps over the lazy dog" for i in range(12))


def make_tiny(tmp_path: Path, *parameters: str) -> None:
    """The tiny model as ``tiny`` in this test's store, with these Modelfile PARAMETER lines."""
    from engine import Engine
    from tests.support.tiny_gguf import write_tiny_gguf

    weights = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf", quant="Q8_0")[0]
    engine = Engine()
    engine.create("tiny", "\n".join([f"FROM {weights}", *(f"PARAMETER {p}" for p in parameters)]) + "\n")
    engine.close()


def hold_loads(tmp_path: Path) -> Path:
    """The app's llama.cpp log as a FIFO (``start`` sets XDG_STATE_HOME to tmp_path/state)."""
    fifo = tmp_path / "state" / "llamadeck" / "llama.log"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    return fifo


def keys(session: str, *names: str, literal: bool = False) -> None:
    tmux("send-keys", "-t", session, *(["-l"] if literal else []), *names)


def conversations(tmp_path: Path) -> list:
    from tui.chatstore import ChatStore

    with ChatStore.open(tmp_path / "data" / "llamadeck" / "chats.db") as store:
        return store.conversations()


def test_the_loading_gauge_appears_for_a_slow_load_then_the_reply_streams(tmp_path: Path) -> None:
    make_tiny(tmp_path, "num_predict 12")
    fifo = hold_loads(tmp_path)
    session, status = start(tmp_path, "run", "tiny")
    try:
        wait_for(lambda: "Write a message" in screen(session), session=session)
        time.sleep(0.5)  # the input is ready once its placeholder shows
        keys(session, "Why is the sky blue?", literal=True)
        wait_for(lambda: "Why is the sky blue?" in screen(session), session=session)
        keys(session, "Enter")
        progress = re.compile(r"loading tiny:latest (\d+)% · ([\d.]+) s")  # where the reply will come
        wait_for(lambda: progress.search(screen(session)) is not None, session=session)
        shown = screen(session)
        first = float(progress.findall(shown)[0][1])
        assert "streaming" not in shown and re.search(r"loading \d+% · [\d.]+ s", shown)  # the header too
        # live: the seconds go on while the load is held
        wait_for(lambda: float(progress.findall(screen(session))[0][1]) > first, session=session)
        release(fifo)
        wait_for(lambda: "tok/s" in screen(session), session=session)  # under the reply
        shown = screen(session)
        assert "loading" not in shown and re.search(r"ctx \d+ / 2\.0k", shown) and "Traceback" not in shown
        keys(session, "C-q")
        wait_for(lambda: status.exists() and status.read_text().strip() != "", session=session)
        assert status.read_text().strip() == "0"
    finally:
        tmux("kill-session", "-t", session)


def test_a_paste_that_does_not_fit_is_caught_before_sending(tmp_path: Path) -> None:
    make_tiny(tmp_path, "num_ctx 256", "num_predict 8")
    session, status = start(tmp_path, "run", "tiny")
    try:
        wait_for(lambda: "Write a message" in screen(session), session=session)
        time.sleep(0.5)
        tmux("set-buffer", "-b", "gauge", PASTE)
        tmux("paste-buffer", "-p", "-r", "-b", "gauge", "-t", session)  # bracketed, its newlines kept
        wait_for(lambda: "line 11: the quick" in screen(session), session=session)
        keys(session, "Enter")
        wait_for(lambda: "does not fit the context" in screen(session), session=session)
        assert "Raise the context to 1,024 tokens" in screen(session)
        assert conversations(tmp_path) == []  # nothing was kept
        keys(session, "Escape")  # cancel: the paste stays in the box
        wait_for(lambda: "does not fit" not in screen(session), session=session)
        assert "line 11: the quick" in screen(session) and conversations(tmp_path) == []
        keys(session, "Enter")
        wait_for(lambda: "does not fit the context" in screen(session), session=session)
        keys(session, "r")  # raise the chat's context: sent now
        wait_for(lambda: "tok/s" in screen(session), session=session)
        assert re.search(r"ctx \d+ / 1\.0k", screen(session)) and "Traceback" not in screen(session)
        [chat] = conversations(tmp_path)
        assert chat.parameters["num_ctx"] == 1024
        keys(session, "C-q")
        wait_for(lambda: status.exists() and status.read_text().strip() != "", session=session)
        assert status.read_text().strip() == "0"
    finally:
        tmux("kill-session", "-t", session)
