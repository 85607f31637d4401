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

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
LLAMADECK = Path(sys.executable).with_name("llamadeck")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_llamadeck_opens_the_models_tab_and_quits_with_q(tmp_path: Path) -> None:
    assert LLAMADECK.exists(), f"{LLAMADECK} is not installed (pip install -e .)"
    session = f"llamadeck-{uuid.uuid4().hex[:8]}"
    status = tmp_path / "status"
    env = {
        "LLAMADECK_HOME": os.environ["LLAMADECK_HOME"],
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "TERM": "xterm-256color",
    }
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    command = f"env {exports} {LLAMADECK}; echo $? > {status}; sleep 30"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", command)
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
