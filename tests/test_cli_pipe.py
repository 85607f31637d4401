"""``llamadeck run`` with text piped in, as ``ollama run`` reads it: the piped text, a space, the prompt.

``git diff | llamadeck run MODEL "review this"``. Each command runs as a real
subprocess on a tiny GGUF. What the model was asked is seen in what it says:
with a seed, the same prompt gives the same text, and ``-v`` counts the
prompt's tokens, so a piped text and its prompt give exactly what the two
joined by a space give as one argument.
"""

from __future__ import annotations

import fcntl
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine, Machine
from tests.support.api_server import running_api
from tests.support.cli import (
    LLAMADECK,
    assert_one_line_error,
    env_for,
    llamadeck,
    run_into_a_closed_pipe,
)
from tests.support.tiny_gguf import write_tiny_gguf

SEEDED = ("--raw", "--seed", "7", "-t", "1.5", "-n", "12", "-v")
DIFF = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-print('hi')\n+print('hello')\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    [gguf] = write_tiny_gguf(tmp_path / "tiny.gguf", quant="Q8_0")
    engine.create("tiny", f"FROM {gguf}\n")
    yield engine
    engine.close()


def asked(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """What a seeded run said and how many prompt tokens it evaluated: what it was asked, from outside."""
    assert result.returncode == 0, result.stderr
    counts = [line for line in result.stderr.splitlines() if line.startswith("prompt eval count:")]
    assert len(counts) == 1, result.stderr
    return result.stdout, counts[0]


def piped(data: str | bytes, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    text = isinstance(data, str)
    result = subprocess.run(
        [LLAMADECK, *args],
        env=env_for(None, **kw),
        input=data,
        capture_output=True,
        text=text,
        timeout=120,
    )
    if not text:  # errors are compared as text; the bytes were what was sent
        return subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
        )
    return result


@pytest.mark.usefixtures("store")
def test_piped_text_comes_first_then_the_prompt_joined_by_a_space() -> None:
    with_pipe = asked(piped(DIFF, "run", "tiny", "review this", *SEEDED))
    as_one_argument = asked(llamadeck("run", "tiny", DIFF + " review this", *SEEDED))
    assert with_pipe == as_one_argument
    assert with_pipe[1] != asked(llamadeck("run", "tiny", "review this", *SEEDED))[1]  # the diff was in it
    assert with_pipe[0] != asked(llamadeck("run", "tiny", "review this " + DIFF, *SEEDED))[0]  # and first


@pytest.mark.usefixtures("store")
def test_piped_text_alone_is_the_prompt() -> None:
    assert asked(piped(DIFF, "run", "tiny", *SEEDED)) == asked(llamadeck("run", "tiny", DIFF, *SEEDED))


@pytest.mark.usefixtures("store")
def test_an_empty_pipe_adds_nothing_to_a_prompt() -> None:
    """``</dev/null``, a script's stdin: the prompt alone, as Ollama prepends only what is not empty."""
    assert asked(piped("", "run", "tiny", "hello", *SEEDED)) == asked(
        llamadeck("run", "tiny", "hello", *SEEDED)
    )


@pytest.mark.usefixtures("store")
def test_a_byte_order_mark_is_not_part_of_the_prompt() -> None:
    marked = piped("\ufeff" + DIFF, "run", "tiny", "review this", *SEEDED)
    assert asked(marked) == asked(piped(DIFF, "run", "tiny", "review this", *SEEDED))


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ("", ("give a prompt", "the piped stdin was empty")),
        (" \n\t\n", ("give a prompt", "only white space")),
        (b"caf\xe9 au lait\n", ("stdin is not valid UTF-8 text", "offset 3")),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\xff\xfe", ("stdin is not valid UTF-8",)),
        ("hello".encode("utf-16-le"), ("stdin is not text", "NUL byte at offset 1")),
        ("ok\0then binary", ("stdin is not text", "NUL byte at offset 2")),
    ],
)
def test_a_pipe_that_is_not_a_prompt_is_one_line(data: str | bytes, fragments: tuple[str, ...]) -> None:
    """Refused before the model is looked up (``ghost`` does not exist): the pipe is what is wrong."""
    assert_one_line_error(piped(data, "run", "ghost"), *fragments)
    if fragments[0] != "give a prompt":  # with a prompt as well, bad piped text is still refused
        assert_one_line_error(piped(data, "run", "ghost", "review this"), *fragments)


def test_more_than_16_mib_on_stdin_is_refused_without_reading_it_all() -> None:
    result = piped(b"x" * ((16 << 20) + 1), "run", "ghost", "summarize")
    assert_one_line_error(result, "stdin holds more than 16 MiB")


@pytest.mark.usefixtures("store")
def test_a_big_pipe_that_cannot_fit_the_context_says_so_in_one_line() -> None:
    result = piped("line of a long log file\n" * 40_000, "run", "tiny", "summarize", "--raw")
    assert_one_line_error(result, "context")


def test_piped_text_goes_to_a_running_server_too(store: Engine) -> None:
    here = asked(piped(DIFF, "run", "tiny", "review this", *SEEDED))
    with running_api(store) as base_url:
        there = asked(
            piped(
                DIFF, "run", "tiny", "review this", *SEEDED, LLAMADECK_HOST=base_url.removeprefix("http://")
            )
        )
        assert [m.reference for m in store.loaded()] == ["tiny:latest"]  # the server answered
    assert there[0] == here[0]  # the same words from the same prompt and seed


@pytest.mark.usefixtures("store")
def test_a_reader_that_goes_away_ends_a_piped_run_quietly() -> None:
    """``git diff | llamadeck run MODEL "review" | head -c0``: stdout breaks, nothing but an exit status."""
    result = run_into_a_closed_pipe("run", "tiny", "review this", "--raw", "-n", "200", input=DIFF)
    assert result.returncode == 1 and result.stderr == "", result.stderr


def _unread(fd: int) -> int:
    """Bytes written into a pipe that its reader has not taken yet (FIONREAD works on the write end too)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def test_ctrl_c_while_waiting_for_the_pipe_stops_at_once() -> None:
    """A writer that never finishes (``tail -f log | llamadeck run ...``): Ctrl+C ends the wait cleanly."""
    proc = subprocess.Popen(
        [LLAMADECK, "run", "ghost", "summarize"],
        env=env_for(None),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(b"first lines of a log\n" * 100)
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while _unread(proc.stdin.fileno()):  # taken: Python runs, its Ctrl+C handler is in place, it reads on
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    status = proc.wait(timeout=60)  # stdin stays open: only Ctrl+C can end the wait
    proc.stdin.close()
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert status == 130, err
    assert err.splitlines()[-1] == "interrupted" and "Traceback" not in err
