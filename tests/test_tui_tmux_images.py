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


def picture_widths(shown: str) -> list[int]:
    """The widths of the half-block rows on screen (a thumbnail's rows, one run of ▀ each)."""
    return [len(run) for line in shown.splitlines() for run in line.split() if set(run) == {"▀"}]


def whole(widths: list[int], most: int) -> bool:
    """A 4:1 picture in half blocks, fitted: rows of one width, 8 columns a row, at most ``most`` rows."""
    return len(set(widths)) == 1 and len(widths) == min(most, round(widths[0] / 8))


def test_thumbnails_fit_the_terminal_again_after_a_resize_and_alt_shift_g_takes_every_image_off(
    tmp_path: Path,
) -> None:
    """Keys as a terminal sends them (alt+shift+g is ESC G) and a real resize (SIGWINCH)."""
    from engine import Engine
    from tui.chatstore import ChatStore, image

    weights = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf", quant="Q8_0")[0]
    projector = write_tiny_mmproj(tmp_path / "mmproj-Tiny-F16.gguf")
    engine = Engine()
    engine.create("eyes", f"FROM {weights}\nFROM {projector}\n")
    engine.close()
    wide = image_bytes("PNG", (400, 100), (230, 120, 30))  # 4:1: 80 x 10 cells at most, as wide as fits
    (tmp_path / "data" / "llamadeck").mkdir(parents=True)
    with ChatStore.open(tmp_path / "data" / "llamadeck" / "chats.db") as store:
        chat = store.create("eyes", title="Wide")
        store.add_message(chat.id, "user", "What is it?", images=[image("wide.png", wide)])
    for name in ("one.png", "two.png"):
        (tmp_path / name).write_bytes(image_bytes("PNG", (28, 28), (250, 10, 10)))
    # a tmux server started without a terminal puts COLUMNS=80 LINES=24 in its panes' environment, which
    # pins a program's size (Python's shutil reads them first) through every resize: empty, they are not read
    session, status = start(tmp_path, extra={"COLUMNS": "", "LINES": ""})  # 100 x 30: 10 rows at most
    try:
        wait_for(lambda: "Models" in screen(session), session=session)
        tmux("send-keys", "-t", session, "3")  # the Chat tab opens the last chat
        wait_for(lambda: "wide.png ·" in screen(session), session=session)
        wait_for(lambda: whole(picture_widths(screen(session)), 10), session=session)  # fitted to its width
        tmux("resize-window", "-t", session, "-x", "160", "-y", "40")  # room for 80 x 10, the most
        wait_for(lambda: picture_widths(screen(session)) == [80] * 10, session=session)
        tmux("resize-window", "-t", session, "-x", "50", "-y", "16")  # 5 rows at most: 40 x 5
        wait_for(lambda: picture_widths(screen(session)) == [40] * 5, session=session)
        for name in ("one.png", "two.png"):
            tmux("send-keys", "-t", session, "C-g")
            wait_for(lambda: "Attach an image" in screen(session), session=session)
            tmux("send-keys", "-t", session, "-l", str(tmp_path / name))
            tmux("send-keys", "-t", session, "Enter")
            wait_for(lambda n=name: f"{n} ·" in screen(session), session=session)
        assert "alt+shift+g all" in screen(session)
        tmux("send-keys", "-t", session, "M-G")  # as a terminal sends alt+shift+g: ESC G
        wait_for(lambda: "two.png ·" not in screen(session), session=session)
        shown = screen(session)
        assert "one.png ·" not in shown and "│Write a message" in shown  # both gone, no "G" typed
        tmux("send-keys", "-t", session, "C-q")
        wait_for(lambda: status.exists() and status.read_text().strip() != "")
        assert status.read_text().strip() == "0"
    finally:
        tmux("kill-session", "-t", session)
