"""The progress line and view: fits any width, keeps the percentage, escapes names, honours TERM=dumb."""

from __future__ import annotations

import io
import re

import pytest

from engine import Done, Progress, Status, Token
from tui.cli.progress import ProgressView, ReplyView, progress_line, shorten
from tui.terminal import cell_width

NAME = "Llama-3.2-1B-Instruct-Q4_K_M.gguf"
GB = 1000**3


def event(
    fraction: float = 0.45, *, file: str = NAME, total: int = 2_600_000_000, action: str = "downloading"
) -> Progress:
    return Progress(action, file, int(total * fraction), total, rate=85e6, eta=17.0)


class FakeTerminal(io.StringIO):
    """What the view writes, as a terminal would receive it."""

    encoding = "utf-8"

    def __init__(self, tty: bool = True) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class BrokenStream(FakeTerminal):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("width", range(10, 201))
def test_the_line_fits_every_width_and_keeps_the_percentage(width: int) -> None:
    for file in (NAME, "a.gguf", "模型-量化-Q4_K_M.gguf"):
        line = progress_line(event(file=file), width)
        assert cell_width(line) <= width - 1, (width, line)  # never the last column: terminals wrap there
        assert "45%" in line, (width, line)
        assert line.isprintable()


def test_the_bar_goes_first_then_the_name_is_cut_in_the_middle() -> None:
    wide = progress_line(event(), 120)
    assert NAME in wide and "▕" in wide and "85 MB/s" in wide
    no_bar = progress_line(event(), 85)
    assert NAME in no_bar and "▕" not in no_bar and "1.2 GB/2.6 GB" in no_bar
    cut = progress_line(event(), 50)
    assert NAME not in cut and "…" in cut and cut.startswith("downloading Llama") and ".gguf" in cut
    assert "45%" in progress_line(event(), 20)


def test_the_full_line_at_a_common_width() -> None:
    line = progress_line(event(), 100)
    assert line.startswith(f"downloading {NAME} ▕")
    assert line.endswith("▏  45%  1.2 GB/2.6 GB  85 MB/s  17s")
    assert cell_width(line) <= 99


def test_a_hostile_file_name_is_escaped_in_the_line() -> None:
    line = progress_line(event(file="\x1b]0;pwned\x07x.gguf"), 100)
    assert "\x1b" not in line and "\x07" not in line and "\\x1b]0;pwned\\x07x.gguf" in line


def test_ascii_terminals_get_an_ascii_bar() -> None:
    line = progress_line(event(), 100, ascii_only=True)
    assert line.isascii() and "[" in line and "#" in line


@pytest.mark.parametrize(
    ("text", "width"), [(NAME, 12), (NAME, 8), ("abcdefghij", 5), ("模型模型模型模型", 7)]
)
def test_shorten_keeps_both_ends(text: str, width: int) -> None:
    short = shorten(text, width)
    assert cell_width(short) <= width and "…" in short
    assert short[0] == text[0] and short[-1] == text[-1]


def test_a_terminal_gets_in_place_redraws_with_no_escape_but_the_line_erase(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tui.cli.progress.REDRAW_SECONDS", 0.0)
    screen = FakeTerminal()
    view = ProgressView(screen, environ={"TERM": "xterm-256color", "NO_COLOR": "1", "COLUMNS": "80"})
    view(Status("resolving acme/x"))
    for fraction in (0.1, 0.5, 1.0):
        view(event(fraction))
    view.close()
    written = screen.getvalue()
    assert written.startswith("resolving acme/x\n")
    assert written.count("\r") == 3 and "100%" in written
    assert set(re.findall(r"\x1b\[[0-9;]*[A-Za-z]", written)) == {"\x1b[K"}  # no colour, no cursor moves
    assert written.endswith("\n")


@pytest.mark.parametrize("environ", [{"TERM": "dumb"}, {"TERM": "dumb", "NO_COLOR": "1"}])
def test_a_dumb_terminal_gets_plain_lines(environ: dict[str, str]) -> None:
    screen = FakeTerminal()
    view = ProgressView(screen, environ=environ)
    view(Status("resolving \x1b[2Jacme/x"))
    for fraction in (0.1, 0.5, 1.0):
        view(event(fraction))
    view.close()
    written = screen.getvalue()
    assert "\r" not in written and "\x1b" not in written
    assert written == f"resolving \\x1b[2Jacme/x\ndownloading {NAME}: 2.6 GB done\n"


def test_a_pipe_gets_one_line_per_file_and_verify_gets_none() -> None:
    log = FakeTerminal(tty=False)
    view = ProgressView(log, environ={"TERM": "xterm"})
    for fraction in (0.5, 1.0):
        view(event(fraction))
    assert log.getvalue() == f"downloading {NAME}: 2.6 GB done\n"
    log = FakeTerminal(tty=False)
    transient = ProgressView(log, transient=True, environ={})
    transient(event(1.0, action="verifying"))
    assert log.getvalue() == ""


def test_redraws_are_throttled_but_the_end_is_always_drawn() -> None:
    screen = FakeTerminal()
    view = ProgressView(screen, environ={"TERM": "xterm", "COLUMNS": "80"})
    for i in range(1, 1001):
        view(event(i / 1000))
    assert screen.getvalue().count("\r") < 20 and "100%" in screen.getvalue()


def test_a_closed_or_broken_stderr_turns_progress_off_quietly() -> None:
    ProgressView(None)(event())
    view = ProgressView(BrokenStream(), environ={"TERM": "xterm"})
    view(Status("resolving"))
    view(event(1.0))
    view.close()
    assert view.stream is None


def test_the_width_comes_from_the_stream_when_columns_is_unset() -> None:
    screen = FakeTerminal()  # no fileno: the usual 80 columns
    view = ProgressView(screen, environ={"TERM": "xterm"})
    view(event(1.0))
    drawn = screen.getvalue().split("\r")[1].removesuffix("\x1b[K\n")
    assert cell_width(drawn) <= 79 and "100%" in drawn


def test_a_reply_streams_escaped_and_ends_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    reply = ReplyView(verbose=True)
    for text in ("Hello", " \x1b]0;pwned\x07world", "\r\n"):
        reply(Token(text))
    reply(Done("stop", 3, 3, 0.1, 0.2, 0.5))
    captured = capsys.readouterr()
    assert captured.out == "Hello \\x1b]0;pwned\\x07world\r\n\n"  # not a terminal: a file keeps its \r
    assert "eval count:           3 token(s)\n" in captured.err
    assert "eval rate:            6.00 tokens/s\n" in captured.err
    assert "total duration:       700ms\n" in captured.err  # Ollama's --verbose block


def test_a_reply_cut_short_is_ended_on_its_own_line(capsys: pytest.CaptureFixture[str]) -> None:
    reply = ReplyView()
    reply(Token("Once upon"))
    reply.close()
    assert capsys.readouterr().out == "Once upon\n"
