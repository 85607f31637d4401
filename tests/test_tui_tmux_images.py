"""End to end in a real terminal (tmux): attach an image by its path with ctrl+g, send, read the reply;
the image shows in the message (half blocks or a terminal's image protocol) and is kept in the history."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.support.images import image_bytes
from tests.support.tiny_gguf import write_tiny_gguf
from tests.support.tiny_mmproj import write_tiny_mmproj
from tests.test_tui_tmux import needs_tmux, screen, start, tmux, wait_for

__all__ = ["needs_tmux"]  # the fixture that fails (never skips) without tmux


def test_attach_an_image_by_path_and_get_a_reply(tmp_path: Path) -> None:
    from engine import Engine

    weights = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf", quant="Q8_0")[0]
    projector = write_tiny_mmproj(tmp_path / "mmproj-Tiny-F16.gguf")
    engine = Engine()
    engine.create("eyes", f"FROM {weights}\nFROM {projector}\nPARAMETER num_predict 12\n")
    engine.close()
    (tmp_path / "photo.png").write_bytes(image_bytes("PNG", (28, 28), (250, 10, 10)))
    session, status = start(tmp_path, "run", "eyes")
    try:
        wait_for(lambda: "Write a message" in screen(session), session=session)
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "C-g")
        wait_for(lambda: "Attach an image" in screen(session), session=session)
        tmux("send-keys", "-t", session, "-l", str(tmp_path / "photo.png"))
        tmux("send-keys", "-t", session, "Enter")
        wait_for(lambda: "photo.png ·" in screen(session), session=session)
        tmux("send-keys", "-t", session, "-l", "What is in it?")
        wait_for(lambda: "What is in it?" in screen(session), session=session)
        tmux("send-keys", "-t", session, "Enter")
        wait_for(lambda: "tok/s" in screen(session), session=session)
        shown = screen(session)
        assert "photo.png ·" in shown and "Traceback" not in shown  # the thumbnail's caption
        tmux("send-keys", "-t", session, "C-q")
        wait_for(lambda: status.exists() and status.read_text().strip() != "")
        assert status.read_text().strip() == "0"
        with sqlite3.connect(tmp_path / "data" / "llamadeck" / "chats.db") as db:
            assert db.execute("SELECT name FROM message_images").fetchall() == [("photo.png",)]
    finally:
        tmux("kill-session", "-t", session)
