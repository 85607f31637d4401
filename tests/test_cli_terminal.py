"""The command line and its terminal: help without one, one line per error, closed and broken streams."""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.cli import (
    LLAMADECK,
    assert_one_line_error,
    env_for,
    llamadeck,
    repo_files,
    run_into_a_closed_pipe,
    serve_repos,
)
from tests.support.fake_hub import FakeHub


@pytest.fixture
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    with serve_repos(repo_files(tmp_path_factory)) as fake:
        yield fake


def test_no_arguments_prints_help() -> None:
    result = llamadeck()
    assert result.returncode == 0 and result.stdout.startswith("usage: llamadeck")


def test_a_dumb_terminal_gets_the_help_not_the_app() -> None:
    """TERM=dumb cannot draw the full-screen app: llamadeck answers as when piped, never hangs drawing."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [LLAMADECK], env=env_for(None, TERM="dumb"), stdin=secondary, stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    received = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        received += chunk
    os.close(primary)
    proc.wait(timeout=60)
    assert proc.returncode == 0, received
    assert b"usage: llamadeck" in received and b"\x1b[?1049h" not in received  # no alternate screen


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_works_before_or_after_the_command(where: str) -> None:
    args = ("--debug", "show", "ghost") if where == "before" else ("show", "ghost", "--debug")
    result = llamadeck(*args)
    assert result.returncode == 1 and "Traceback" in result.stderr and "ModelNotFound" in result.stderr
    assert llamadeck("show", "ghost").stderr.count("\n") == 1


def test_stdin_that_is_not_utf8_is_refused_clearly() -> None:
    result = subprocess.run(
        [LLAMADECK, "run", "gemma3:270m"],
        env=env_for(None),
        input=b"caf\xe9\n",
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert result.stderr.decode().startswith("Error: stdin is not valid UTF-8 text")


def _shell(command: str) -> subprocess.CompletedProcess[str]:
    """``command`` through bash, so redirections such as ``<&-`` close the streams for real."""
    return subprocess.run(
        ["bash", "-c", command.replace("llamadeck", LLAMADECK)],
        env=env_for(None),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_closed_stdin_asks_for_a_prompt() -> None:
    assert_one_line_error(_shell("llamadeck run gemma3:270m <&-"), "give a prompt", "stdin is closed")


def test_closed_stdout_is_an_error_on_stderr() -> None:
    assert_one_line_error(_shell("llamadeck ls >&-"), "standard output is closed")


def test_closed_stderr_keeps_errors_off_stdout(hub: FakeHub) -> None:
    for command in ("llamadeck show ghost 2>&-", "llamadeck run ghost hi -n 0 2>&-", "llamadeck ls 2>&-"):
        result = _shell(command)
        assert "Error" not in result.stdout and "Traceback" not in result.stdout, command
    assert _shell("llamadeck show ghost 2>&-").returncode == 1


def test_a_reader_that_goes_away_ends_quietly(hub: FakeHub) -> None:
    assert llamadeck("pull", "acme/Tiny-GGUF:Q8_0", hub=hub).returncode == 0
    for args in (("ls",), ("show", "acme/Tiny-GGUF"), ("run", "acme/Tiny-GGUF:Q8_0", "hi", "-n", "500")):
        result = run_into_a_closed_pipe(*args)
        assert result.returncode == 1 and result.stderr == "", (args, result.stderr)


def test_escape_shows_controls_and_keeps_text() -> None:
    from engine import visible

    assert visible("a\x1b[2Jb\x07\x9b1m\u202eevil\ud800") == "a\\x1b[2Jb\\x07\\x9b1m\\u202eevil\\ud800"
    kept = "naïve 模型 👩‍💻 tab\there"
    assert visible(kept, keep="\t") == kept
    assert visible("two\nlines") == "two\\nlines" and visible("two\nlines", keep="\n") == "two\nlines"
