"""End to end in a real terminal (tmux): a hostile bracketed paste lands in the box as text, and a
terminal's late answer to a query is not typed there.

``tmux paste-buffer -p`` pastes as a terminal does, with the bracketed-paste markers the app asked
for. The paste holds ANSI color codes with command letters after them (``q``, ``1``), Ctrl+Q,
an OSC 52 clipboard write and bytes that are not UTF-8. With Textual's own input driver the
letters after each ESC ran as key presses (the app left the box, switched tabs and quit) and the
bytes ended it with a traceback; through ``tui.input_guard`` the box holds the text, cleaned, and
the app keeps running (``LlamadeckApp`` passes it to Textual as its driver).
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.test_tui_tmux import needs_tmux, screen, start, tmux, wait_for

__all__ = ["needs_tmux"]  # the module's autouse fixture: tmux must be there

PASTED = (
    b"Pasted: \x1b[31mq1q1\x1b[0m middle \x1b[1m\x11\x1b[0m \x1b]52;c;aGk=\x07bytes \xff\xfe\xc3 "
    + b"\x1b[32m2 3 4 q\x1b[0m :done"
)


def tiny(tmp_path: Path) -> None:
    from engine import Engine
    from tests.support.tiny_gguf import write_tiny_gguf

    weights = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf", quant="Q8_0")[0]
    engine = Engine()
    engine.create("tiny", f"FROM {weights}\nPARAMETER num_predict 4\n")
    engine.close()


def test_a_paste_of_escapes_and_junk_stays_text_in_the_box(tmp_path: Path) -> None:
    tiny(tmp_path)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(PASTED)
    session, status = start(tmp_path, "run", "tiny")
    buffer = f"paste-{session}"
    try:
        wait_for(lambda: "Write a message" in screen(session), session=session)
        time.sleep(0.5)  # the input is ready once its placeholder shows
        tmux("load-buffer", "-b", buffer, str(junk))
        tmux("paste-buffer", "-p", "-d", "-b", buffer, "-t", session)
        wait_for(lambda: ":done" in screen(session), session=session)
        shown = screen(session)
        assert "Pasted: q1q1 middle  bytes \ufffd\ufffd\ufffd 2 3 4 q :done" in shown, shown
        assert "Message · typing" in shown  # still in the box: no Escape came out of the paste
        assert "Traceback" not in shown and not status.exists()
        tmux("send-keys", "-t", session, "C-q")
        wait_for(lambda: status.exists() and status.read_text().strip() != "", session=session)
        assert status.read_text().strip() == "0"
    finally:
        tmux("kill-session", "-t", session)


def test_a_late_answer_of_the_terminal_is_not_typed_into_the_box(tmp_path: Path) -> None:
    """As textual-image's question at start leaves it when a key is typed meanwhile: the device
    attributes answer (ESC[?1;2c) arrives once the app reads the keys. Sent here as input, after
    the app is ready, so nothing races; the box then gets what was typed around it, only."""
    tiny(tmp_path)
    session, status = start(tmp_path, "run", "tiny")
    try:
        wait_for(lambda: "Write a message" in screen(session), session=session)
        time.sleep(0.5)  # the input is ready once its placeholder shows
        tmux("send-keys", "-t", session, "-l", "before\x1b[?1;2c\x1b[>0;276;0c after")
        wait_for(lambda: "before after" in screen(session), session=session)
        assert "[?1;2c" not in screen(session) and "276" not in screen(session)
        tmux("send-keys", "-t", session, "C-q")
        wait_for(lambda: status.exists() and status.read_text().strip() != "", session=session)
        assert status.read_text().strip() == "0"
    finally:
        tmux("kill-session", "-t", session)
