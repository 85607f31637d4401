"""``llamadeck pull`` as run: two at once, Ctrl+C and resume, a full disk, no network, prune, progress."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import resource
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import (
    LLAMADECK,
    assert_one_line_error,
    env_for,
    llamadeck,
    repo_files,
    serve_repos,
)
from tests.support.fake_hub import FakeHub


@pytest.fixture
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return repo_files(tmp_path_factory)


@pytest.fixture
def hub(files: dict[str, Path]) -> Iterator[FakeHub]:
    with serve_repos(files) as fake:
        yield fake


def test_unreachable_hub_says_nothing_changed() -> None:
    result = subprocess.run(
        [LLAMADECK, "pull", "acme/Tiny-GGUF"],
        env=env_for(None, HF_ENDPOINT="http://127.0.0.1:9"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(result, "cannot reach Hugging Face", "nothing changed")


def test_two_processes_pulling_one_model_download_it_once(hub: FakeHub, files: dict[str, Path]) -> None:
    size = files["mid"].stat().st_size
    hub.fault("Mid-Q8_0.gguf", "slow", rate=4_000_000)
    procs = [
        subprocess.Popen(
            [LLAMADECK, "pull", "acme/Mid-GGUF"],
            env=env_for(hub),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outcomes
    assert any("another llamadeck process" in err for _, err in outcomes)
    home = Path(os.environ["LLAMADECK_HOME"])
    assert len(list((home / "blobs").iterdir())) == 1
    # one download plus two small header reads, not two downloads
    assert hub.bytes_served["Mid-Q8_0.gguf"] < 1.5 * size
    assert llamadeck("verify").returncode == 0


def _wait_for_partial(home: Path, at_least: int, proc: subprocess.Popen, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sizes = [p.stat().st_size for p in (home / "partial").glob("*.partial")]
        if sizes and max(sizes) >= at_least:
            return max(sizes)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the download never got going")


def test_interrupted_pull_resumes_in_the_next_run(hub: FakeHub, files: dict[str, Path]) -> None:
    size = files["big"].stat().st_size
    home = Path(os.environ["LLAMADECK_HOME"])
    hub.fault("Big-Q8_0.gguf", "slow", rate=2_000_000)  # the rest takes 76 s: past communicate's bound
    proc = subprocess.Popen(
        [LLAMADECK, "pull", "acme/Big-GGUF:Q8_0"],
        env=env_for(hub),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_partial(home, size // 20, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)  # a pull that finished before it stopped never gets here
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.splitlines()[-1] == "interrupted: the partial download is kept; run the same pull to resume"
    assert llamadeck("list").stdout.count("\n") == 1  # nothing registered
    hub.clear_faults()
    assert llamadeck("pull", "acme/Big-GGUF:Q8_0", hub=hub).returncode == 0
    redownloaded = hub.bytes_served["Big-Q8_0.gguf"] - size
    assert redownloaded < 0.10 * size, f"re-downloaded {redownloaded} of {size} bytes"
    assert list((home / "partial").iterdir()) == []
    assert llamadeck("verify").returncode == 0


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_keeps_the_partial_for_resume(hub: FakeHub, files: dict[str, Path]) -> None:
    size = files["big"].stat().st_size
    home = Path(os.environ["LLAMADECK_HOME"])
    full = llamadeck("pull", "acme/Big-GGUF:Q8_0", hub=hub, preexec_fn=_file_size_limit(50_000_000))
    assert_one_line_error(full, "disk full while downloading Big-Q8_0.gguf", "run pull again to resume")
    kept = sum(p.stat().st_size for p in (home / "partial").glob("*.partial"))
    assert kept >= 40_000_000
    assert llamadeck("list").stdout.count("\n") == 1
    hub.reset_counts()
    assert llamadeck("pull", "acme/Big-GGUF:Q8_0", hub=hub).returncode == 0
    assert hub.bytes_served["Big-Q8_0.gguf"] <= size - kept + 2 * 1024 * 1024


def test_prune_removes_an_abandoned_partial_download(hub: FakeHub, files: dict[str, Path]) -> None:
    home = Path(os.environ["LLAMADECK_HOME"])
    hub.fault("Big-Q8_0.gguf", "slow", rate=2_000_000)  # the rest takes 76 s: past communicate's bound
    proc = subprocess.Popen(
        [LLAMADECK, "pull", "acme/Big-GGUF:Q8_0"],
        env=env_for(hub),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for_partial(home, 10_000_000, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    pruned = llamadeck("prune")
    assert pruned.returncode == 0 and "1 abandoned partial download" in pruned.stdout
    assert list((home / "partial").glob("*.partial")) == []
    assert llamadeck("prune").stdout.strip() == "nothing to prune"


def _pull_on_a_terminal(hub: FakeHub, columns: int, **env: str) -> str:
    """``llamadeck pull`` with stderr on a pseudo-terminal ``columns`` wide; what the terminal received."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    hub.fault("Mid-Q8_0.gguf", "slow", rate=4_000_000)
    proc = subprocess.Popen(
        [LLAMADECK, "pull", "acme/Mid-GGUF"],
        env=env_for(hub, **env),
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    received = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the process has gone and the terminal is closed
            break
        if not chunk:
            break
        received += chunk
    os.close(primary)
    proc.wait(timeout=60)
    assert proc.returncode == 0, received
    return received.decode()


def test_progress_on_a_dumb_terminal_is_plain_lines(hub: FakeHub) -> None:
    shown = _pull_on_a_terminal(hub, 80, TERM="dumb")
    assert "\r" not in shown.replace("\r\n", "\n") and "\x1b" not in shown
    assert "downloading Mid-Q8_0.gguf: 8.5 MB done" in shown


def test_progress_on_a_narrow_terminal_keeps_the_percentage(hub: FakeHub) -> None:
    shown = _pull_on_a_terminal(hub, 20, TERM="xterm-256color", NO_COLOR="1")
    drawn = [d.split("\n")[0].removesuffix("\x1b[K") for d in shown.replace("\r\n", "\n").split("\r")[1:]]
    frames = [d for d in drawn if "%" in d]
    assert frames and all(len(frame) <= 19 for frame in frames), frames
    assert "100%" in frames[-1]
    assert not [seq for seq in re.findall(r"\x1b\[[0-9;]*[A-Za-z]", shown) if seq != "\x1b[K"]
