"""``llamadeck run`` as run: it pulls first, seeds, options, where the prompt is, Ctrl+C at any moment."""

from __future__ import annotations

import contextlib
import select
import signal
import subprocess
import sys
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
from tests.support.workers import workers_of_this_test


@pytest.fixture
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    with serve_repos(repo_files(tmp_path_factory)) as fake:
        yield fake


def test_run_pulls_a_missing_model_first_then_generates(hub: FakeHub) -> None:
    result = llamadeck("run", "acme/Tiny-GGUF:Q8_0", "hello", "-n", "8", "-v", hub=hub)
    assert result.returncode == 0, result.stderr
    assert "Tiny-Q8_0.gguf" in result.stderr  # the pull's progress, shown before generating
    assert "tokens/s" in result.stderr and result.stdout.endswith("\n")
    assert "hf.co/acme/Tiny-GGUF:Q8_0" in llamadeck("list").stdout


def test_run_with_a_seed_repeats_itself_and_without_one_does_not(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    args = ("run", "acme/Tiny-GGUF:Q8_0", "--raw", "hello", "-n", "24", "-t", "1.5")
    seeded = [llamadeck(*args, "--seed", "42").stdout for _ in range(2)]
    assert seeded[0] == seeded[1] and seeded[0].strip()
    unseeded = [llamadeck(*args).stdout for _ in range(2)]
    assert unseeded[0] != unseeded[1]


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (("-n", "0"), "--max-tokens/-n"),
        (("-n", "-1"), "--max-tokens/-n"),
        (("--max-tokens", "many"), "--max-tokens/-n"),
        (("-t", "nan"), "--temperature/-t"),
        (("-t", "inf"), "--temperature/-t"),
        (("-t", "-5"), "--temperature/-t"),
        (("--seed", "-1"), "--seed"),
        (("--seed", "1.5"), "--seed"),
    ],
)
def test_run_refuses_bad_options_in_one_line(option: tuple[str, ...], fragment: str) -> None:
    assert_one_line_error(llamadeck("run", "gemma3:270m", "hi", *option), fragment)


def test_a_prompt_longer_than_the_context_is_one_line(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    result = llamadeck("run", "acme/Tiny-GGUF:Q8_0", "--raw", input="hello world " * 5000)
    assert_one_line_error(result, "context")


def test_a_utf8_prompt_is_accepted_under_the_c_locale() -> None:
    """Under LANG=C Python sees UTF-8 arguments as undecodable bytes: they are still UTF-8 text."""
    env = env_for(None, LC_ALL="C", PYTHONCOERCECLOCALE="0", PYTHONUTF8="0")
    result = subprocess.run(
        [LLAMADECK, "run", "ghost", "h\u00e9llo"], env=env, capture_output=True, text=True, timeout=60
    )
    assert_one_line_error(result, "ghost:latest not found")  # past the prompt, to the model lookup


@pytest.mark.parametrize(
    "argv",
    [
        ("run", "ghost", "-n", "2", "--", "-a prompt with a dash"),
        ("run", "--", "ghost", "-a prompt with a dash"),
        ("run", "ghost", "--raw", "a prompt after an option"),
    ],
)
def test_run_takes_its_prompt_wherever_argparse_leaves_it(argv: tuple[str, ...]) -> None:
    assert_one_line_error(llamadeck(*argv), "ghost:latest not found")  # parsed; the model is what is missing


@pytest.fixture
def gemma() -> str:
    """The embedded default model in this test's store: big enough that a reply takes seconds."""
    pulled = llamadeck("pull", "gemma3:270m")
    assert pulled.returncode == 0, pulled.stderr
    return "gemma3:270m"


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


def _weights_mapped(proc: subprocess.Popen) -> bool:
    """llama.cpp has started loading: the model's blob is mapped into the process."""
    try:
        return "/blobs/sha256-" in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


def _first_output(proc: subprocess.Popen) -> bool:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 0)
    return bool(ready)


def _interrupt(proc: subprocess.Popen, times: int = 1) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    for _ in range(times - 1):  # an impatient user: a second Ctrl+C 30 ms later once crashed llama.cpp
        time.sleep(0.03)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return out, err


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="watches /proc/PID/maps")
@pytest.mark.parametrize(("moment", "times"), [("load", 1), ("generation", 1), ("generation", 2)])
def test_ctrl_c_stops_run_at_once_during_load_or_generation(gemma: str, moment: str, times: int) -> None:
    proc = subprocess.Popen(
        [LLAMADECK, "run", gemma, "Tell me a very long story about a lighthouse.", "-n", "3000"],
        env=env_for(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if moment == "load":
        _wait_for(lambda: _weights_mapped(proc), proc, "the weights being loaded")
    else:
        _wait_for(lambda: _first_output(proc), proc, "the first token")
    out, err = _interrupt(proc, times)
    assert proc.returncode == 130, err
    # 130, not 0: stopped before its 3,000 tokens (communicate's 60 s bound catches one that never stops)
    assert "interrupted" in err.splitlines()[-1] and "Traceback" not in err
    _wait_for_no_workers()  # the model's worker process went with it, whenever the Ctrl+C came


def _wait_for_no_workers() -> None:
    """No llama.cpp worker of this test's store is left (a worker looks at its parent twice a second)."""
    for _ in range(600):
        if not (left := workers_of_this_test()):
            return
        time.sleep(0.1)
    raise AssertionError(f"worker processes left behind: {left}")


def test_ctrl_c_leaves_at_once_even_when_the_engine_cannot_be_cancelled(tmp_path: Path) -> None:
    """A worker stuck in C code (a llama.cpp load) is not waited for past the grace period."""
    ready = tmp_path / "ready"
    stuck = (
        "import sys, time\n"
        "import engine\n"
        "def ensure(self, reference, **kw):\n"
        f"    open({str(ready)!r}, 'w').close()\n"
        "    while True: time.sleep(0.05)  # ignores its cancel token, as a C call would\n"
        "engine.Engine.ensure = ensure\n"
        "from tui.cli import main\n"
        "sys.exit(main(['run', 'any:model', 'hello']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", stuck],
        env=env_for(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(ready.exists, proc, "the engine call")
    _, err = _interrupt(proc)
    assert proc.returncode == 130 and err.splitlines()[-1] == "interrupted", err
    assert "Traceback" not in err  # left although the engine call never returns (communicate bounds the wait)


def test_the_runner_returns_raises_and_cancels_on_ctrl_c() -> None:
    from tui.cli.interrupt import Interrupted, run_cancellable, worker_running

    seen: list[object] = []
    assert run_cancellable(lambda cancel, emit: [emit(i) for i in range(3)] and "done", seen.append) == "done"
    assert seen == [0, 1, 2]

    def fails(cancel, emit) -> None:
        raise ValueError("from the worker")

    with pytest.raises(ValueError, match="from the worker"):
        run_cancellable(fails, seen.append)

    cancelled: list[bool] = []

    def waits(cancel, emit) -> None:
        emit("started")
        cancelled.append(cancel.wait(30))

    def ctrl_c(item: object) -> None:  # SIGINT lands on the main thread while it draws
        raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stop:
        run_cancellable(waits, ctrl_c, note=": a note")
    assert cancelled == [True] and stop.value.note == ": a note" and not worker_running()
