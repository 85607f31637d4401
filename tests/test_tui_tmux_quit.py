"""End to end in a real terminal (tmux), a journey of issue 21: ``q`` with a reply streaming asks first.

The reply comes from a rote model that says "▁the" for ever (``tests/support/chain_gguf.py``, greedy,
a 128k-token context). Once its first words show, the model's worker is stopped with SIGSTOP: the reply
is then streaming, and stays so, for as long as the test needs, whatever the machine's load; SIGCONT lets
it go on. Nothing in the product is hooked or timed.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.tiny_gguf import CHAT_TEMPLATE
from tests.support.workers import workers_of_this_test
from tests.test_tui_tmux import needs_tmux, screen, start, tmux, wait_for

__all__ = ["needs_tmux"]  # the module's autouse fixture: tmux must be there

QUESTION = "A reply is streaming. Quit anyway?"
STREAMING = "^c Stop reply"  # in the footer while a reply streams (the reply's own mark may scroll away)


def endless(tmp_path: Path) -> None:
    """``endless`` in this test's store: a model whose reply does not end before 100,000 tokens."""
    from engine import Engine

    the = token_id("▁the")
    weights = write_chain_gguf(
        tmp_path / "Endless-F32.gguf",
        {the: the},
        default=the,
        chat_template=CHAT_TEMPLATE,
        context_length=1 << 20,
    )
    engine = Engine()
    parameters = ("num_ctx 131072", "num_predict 100000", "temperature 0")
    engine.create("endless", "\n".join([f"FROM {weights}", *(f"PARAMETER {p}" for p in parameters)]) + "\n")
    engine.close()


def last_reply(tmp_path: Path):  # type: ignore[no-untyped-def]
    from tui.chatstore import ChatStore

    with ChatStore.open(tmp_path / "data" / "llamadeck" / "chats.db") as store:
        [chat] = store.conversations()
        return store.messages(chat.id)[-1]


def keys(session: str, *names: str, literal: bool = False) -> None:
    tmux("send-keys", "-t", session, *(["-l"] if literal else []), *names)


def test_q_with_a_reply_streaming_asks_and_no_keeps_it_streaming(tmp_path: Path) -> None:
    endless(tmp_path)
    session, status = start(tmp_path, "run", "endless")
    held: list[int] = []
    try:
        wait_for(lambda: "Write a message" in screen(session), session=session)
        time.sleep(0.5)  # the input is ready once its placeholder shows
        keys(session, "Tell me everything", literal=True)
        wait_for(lambda: "Tell me everything" in screen(session), session=session)
        keys(session, "Enter")
        wait_for(lambda: "the the the" in screen(session), timeout=90, session=session)
        held = workers_of_this_test()
        assert len(held) == 1
        os.kill(held[0], signal.SIGSTOP)  # the reply streams on, and cannot end now
        wait_for(lambda: STREAMING in screen(session), session=session)
        keys(session, "Escape")  # out of the box: q is a command there
        wait_for(lambda: "commands: i or enter" in screen(session), session=session)
        keys(session, "q")
        wait_for(lambda: QUESTION in screen(session), session=session)
        keys(session, "q")  # asked once: another q is no answer
        keys(session, "n")
        wait_for(lambda: QUESTION not in screen(session), session=session)
        wait_for(lambda: STREAMING in screen(session), session=session)  # no: nothing stopped
        assert not status.exists()
        keys(session, "C-q")  # ctrl+q asks the same
        wait_for(lambda: QUESTION in screen(session), session=session)
        keys(session, "n")
        wait_for(lambda: QUESTION not in screen(session), session=session)
        os.kill(held.pop(), signal.SIGCONT)
        keys(session, "s")  # stop the reply (a command outside the box)
        wait_for(lambda: STREAMING not in screen(session), timeout=60, session=session)
        assert "Traceback" not in screen(session)
        keys(session, "q")  # nothing streams now: q quits at once
        wait_for(lambda: status.exists() and status.read_text().strip() != "", session=session)
        assert status.read_text().strip() == "0"
        assert last_reply(tmp_path).status == "stopped"  # stopped by s, not by the quit
    finally:
        for pid in held:
            os.kill(pid, signal.SIGCONT)
        tmux("kill-session", "-t", session)
