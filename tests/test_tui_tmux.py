"""End to end: the installed ``llamadeck`` opens the app in a real terminal (tmux) and quits cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

LLAMADECK = Path(sys.executable).with_name("llamadeck")


@pytest.fixture(autouse=True)
def needs_tmux() -> None:
    """Fails, never skips: CI installs tmux (.ci/run), and a skipped end-to-end test hides a gap."""
    assert shutil.which("tmux"), "tmux is not installed: apt-get install tmux"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout


def wait_for(condition, timeout: float = 300.0, session: str | None = None) -> None:
    """Wait for ``condition`` (the timeout only ends a broken run: a loaded machine may be slow)."""
    deadline = time.monotonic() + timeout
    while not condition():
        shown = f":\n{tmux('capture-pane', '-p', '-t', session)}" if session else ""
        assert time.monotonic() < deadline, f"timed out{shown}"
        time.sleep(0.2)


def start(tmp_path: Path, *args: str, extra: dict[str, str] | None = None) -> tuple[str, Path]:
    """``llamadeck ARGS`` in a fresh tmux session (the app sees 80x24: below); session, status file."""
    assert LLAMADECK.exists(), f"{LLAMADECK} is not installed (pip install -e .)"
    session = f"llamadeck-{uuid.uuid4().hex[:8]}"
    status = tmp_path / "status"
    env = {
        "LLAMADECK_HOME": os.environ["LLAMADECK_HOME"],
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "TERM": "xterm-256color",
        # a tmux server started without a terminal gives its panes COLUMNS=80 LINES=24, which Python
        # reads before the pane's size: the journeys here run at 80x24 (a test that needs the pane's
        # real size passes COLUMNS and LINES empty, as test_tui_tmux_images does)
        # the code under test, also from a worktree whose checkout is not the one installed
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
        **(extra or {}),
    }
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    command = f"env {exports} {LLAMADECK} {' '.join(args)}; echo $? > {status}; sleep 30"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", command)
    return session, status


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def test_llamadeck_opens_the_models_tab_and_quits_with_q(tmp_path: Path) -> None:
    session, status = start(tmp_path)
    try:
        wait_for(
            lambda: (
                "Models" in tmux("capture-pane", "-p", "-t", session)
                and "Pull" in tmux("capture-pane", "-p", "-t", session)
            )
        )
        screen = tmux("capture-pane", "-p", "-t", session)
        assert "Sessions" in screen and "Logs" in screen and "No models yet" in screen
        tmux("send-keys", "-t", session, "q")
        wait_for(lambda: status.exists() and status.read_text().strip() != "")
        assert status.read_text().strip() == "0"
        after = tmux("capture-pane", "-p", "-t", session)
        assert "Traceback" not in after
    finally:
        tmux("kill-session", "-t", session)


def test_run_model_opens_the_chat_asks_and_shows_the_streamed_reply(tmp_path: Path) -> None:
    """As a person would: llamadeck run MODEL, type a question, Enter, read the reply, quit."""
    from engine import Engine
    from tests.support.tiny_gguf import write_tiny_gguf

    weights = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf", quant="Q8_0")[0]
    engine = Engine()
    engine.create("tiny", f"FROM {weights}\nPARAMETER num_predict 12\n")
    engine.close()
    session, status = start(tmp_path, "run", "tiny")
    try:
        # the input is ready once its placeholder shows: keys sent before would go elsewhere
        wait_for(lambda: "Write a message" in screen(session), session=session)
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "-l", "Why is the sky blue?")
        wait_for(lambda: "Why is the sky blue?" in screen(session), session=session)
        tmux("send-keys", "-t", session, "Enter")
        # the stats line under the finished reply
        wait_for(lambda: "tok/s" in screen(session), session=session)
        shown = screen(session)
        assert "Why is the sky blue?" in shown
        assert "Traceback" not in shown
        tmux("send-keys", "-t", session, "C-q")
        wait_for(lambda: status.exists() and status.read_text().strip() != "")
        assert status.read_text().strip() == "0"
        history = list((tmp_path / "data" / "llamadeck").glob("chats.db*"))
        assert history, "the conversation was saved"
    finally:
        tmux("kill-session", "-t", session)


def test_serve_flag_shares_the_apps_engine_over_http(tmp_path: Path) -> None:
    """llamadeck --serve: the app runs and its engine answers the API; quitting stops both."""
    import json
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session, status = start(tmp_path, "--serve", extra={"LLAMADECK_HOST": f"127.0.0.1:{port}"})
    try:
        wait_for(lambda: "Models" in screen(session))
        wait_for(lambda: f"127.0.0.1:{port}" in screen(session))  # the app says where it serves
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=5) as answer:
            assert answer.headers["x-llamadeck-version"]
            assert "version" in json.loads(answer.read())
        tmux("send-keys", "-t", session, "q")
        wait_for(lambda: status.exists() and status.read_text().strip() != "")
        assert status.read_text().strip() == "0"
        with socket.socket() as after:  # nothing listens any more: the server stopped with the app
            after.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past connections may linger
            after.bind(("127.0.0.1", port))
    finally:
        tmux("kill-session", "-t", session)


def test_sigterm_leaves_the_terminal_as_it_found_it(tmp_path: Path) -> None:
    """A kill (or a closed SSH session) quits as q does: alternate screen and mouse modes off."""
    session, status = start(tmp_path)
    try:
        wait_for(lambda: "Models" in screen(session), session=session)
        assert tmux("display", "-p", "-t", session, "#{alternate_on}").strip() == "1"
        pid = tmux("display", "-p", "-t", session, "#{pane_pid}").strip()
        children = subprocess.run(["pgrep", "-P", pid], capture_output=True, text=True).stdout.split()
        app_pid = next(c for c in children if "llamadeck" in Path(f"/proc/{c}/cmdline").read_text())
        os.kill(int(app_pid), 15)
        wait_for(lambda: status.exists() and status.read_text().strip() != "", session=session)
        assert status.read_text().strip() == "143"  # 128 + SIGTERM, after a clean exit
        assert tmux("display", "-p", "-t", session, "#{alternate_on}").strip() == "0"
        assert "Traceback" not in screen(session)
    finally:
        tmux("kill-session", "-t", session)


def test_a_draft_survives_readline_keys_tab_esc_a_chat_switch_and_a_restart(tmp_path: Path) -> None:
    """The draft journey of issue 21: type, ctrl+a/ctrl+e, Tab, more text, Esc, another chat and back,
    q, start again: the draft is in the box. Each key waits for what it shows, so none races the next."""
    from tests.support.chat_app import seeded

    history = tmp_path / "data" / "llamadeck" / "chats.db"
    history.parent.mkdir(parents=True)
    seeded(
        history,
        ("Apples", [("user", "red fruit"), ("assistant", "An apple.")]),
        ("Pears", [("user", "green fruit"), ("assistant", "A pear.")]),
    )

    def keys(session: str, *names: str, literal: bool = False) -> None:
        tmux("send-keys", "-t", session, *(["-l"] if literal else []), *names)

    session, status = start(tmp_path)
    try:
        wait_for(lambda: "Pull" in screen(session), session=session)
        keys(session, "3")
        wait_for(lambda: "green fruit" in screen(session) and "typing" in screen(session), session=session)
        keys(session, "half a thought", literal=True)
        wait_for(lambda: "half a thought" in screen(session), session=session)
        keys(session, "C-a")
        keys(session, "C-e")  # end of line: never the previous message in the box
        keys(session, " more", literal=True)
        wait_for(lambda: "half a thought more" in screen(session), session=session)
        assert "Editing" not in screen(session)  # and the text went on at the end: ctrl+e moved there
        keys(session, "Tab")  # indents; the sentence after it stays text (its q and t are letters)
        keys(session, "q t", literal=True)
        wait_for(lambda: "more q t" in screen(session), session=session)
        assert not status.exists()
        keys(session, "Escape")
        wait_for(lambda: "commands: i or enter" in screen(session), session=session)
        # another chat: the search (hides the list), Esc (the list again), Down, Enter
        keys(session, "/")
        keys(session, "zz", literal=True)
        wait_for(lambda: "Apples" not in screen(session), session=session)
        keys(session, "Escape")
        wait_for(lambda: "Apples" in screen(session), session=session)
        keys(session, "Down")
        keys(session, "Enter")
        wait_for(
            lambda: "red fruit" in screen(session) and "half a thought" not in screen(session),
            session=session,
        )
        # and back
        keys(session, "Escape")
        wait_for(lambda: "commands: i or enter" in screen(session), session=session)
        keys(session, "/")
        keys(session, "zz", literal=True)
        wait_for(lambda: "Pears" not in screen(session), session=session)
        keys(session, "Escape")
        wait_for(lambda: "Pears" in screen(session), session=session)
        keys(session, "Up")
        keys(session, "Enter")
        wait_for(lambda: "green fruit" in screen(session) and "more q t" in screen(session), session=session)
        keys(session, "Escape")
        wait_for(lambda: "commands: i or enter" in screen(session), session=session)
        keys(session, "q")
        wait_for(lambda: status.exists() and status.read_text().strip() != "", session=session)
        assert status.read_text().strip() == "0"
    finally:
        tmux("kill-session", "-t", session)
    status.unlink()
    session, status = start(tmp_path)  # the same history and config: a restart
    try:
        wait_for(lambda: "Pull" in screen(session), session=session)
        keys(session, "3")
        wait_for(lambda: "green fruit" in screen(session), session=session)  # the chat left open
        wait_for(lambda: "more q t" in screen(session), session=session)  # with its draft
        assert "Traceback" not in screen(session)
    finally:
        tmux("kill-session", "-t", session)


def test_ctrl_z_suspends_the_app_to_the_shell_and_fg_brings_it_back(tmp_path: Path) -> None:
    """As in any full-screen program: ctrl+z gives the terminal back to the shell (the screen as it was
    before), ``fg`` redraws the app, and it still quits cleanly."""
    assert LLAMADECK.exists(), f"{LLAMADECK} is not installed (pip install -e .)"
    session = f"llamadeck-{uuid.uuid4().hex[:8]}"
    status = tmp_path / "status"
    env = {
        "LLAMADECK_HOME": os.environ["LLAMADECK_HOME"],
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
    }
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    # an interactive shell: job control, as where a user types llamadeck
    shell = "env TERM=xterm-256color bash --norc -i"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", shell)
    try:
        wait_for(lambda: "$" in screen(session) or "#" in screen(session), session=session)
        tmux("send-keys", "-t", session, "-l", f"env {exports} {LLAMADECK}")
        tmux("send-keys", "-t", session, "Enter")
        wait_for(lambda: "Models" in screen(session) and "Pull" in screen(session), session=session)
        tmux("send-keys", "-t", session, "C-z")
        wait_for(lambda: "Stopped" in screen(session), session=session)
        assert tmux("display", "-p", "-t", session, "#{alternate_on}").strip() == "0"
        tmux("send-keys", "-t", session, "-l", "fg")
        tmux("send-keys", "-t", session, "Enter")
        wait_for(lambda: "Pull" in screen(session) and "Stopped" not in screen(session), session=session)
        assert tmux("display", "-p", "-t", session, "#{alternate_on}").strip() == "1"
        tmux("send-keys", "-t", session, "q")
        wait_for(lambda: tmux("display", "-p", "-t", session, "#{alternate_on}").strip() == "0")
        tmux("send-keys", "-t", session, "-l", f"echo $? > {status}")  # fg's status: the app's
        tmux("send-keys", "-t", session, "Enter")
        wait_for(lambda: status.exists() and status.read_text().strip() != "", session=session)
        assert status.read_text().strip() == "0" and "Traceback" not in screen(session)
    finally:
        tmux("kill-session", "-t", session)
