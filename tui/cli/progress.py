"""Engine events drawn on a terminal: one live progress line, status lines above it; replies as they stream.

On a terminal the line redraws in place. Piped into a file or CI log, or on a
terminal that cannot move the cursor (``TERM=dumb``), it writes plain lines
instead: one per file when its transfer ends. No colour is used but the faint
text of a model's reasoning (``ReplyView``), and that only on a terminal, not
with ``NO_COLOR`` or ``TERM=dumb``; the only other escape sequence written is
the erase-line after a carriage return, and none at all on a dumb terminal.

Everything shown comes from outside (file names from the Hub, messages that
quote them) and goes through ``escape``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import TextIO

from engine import Done, Progress, Status, Token, Waiting, format_size, visible
from tui.terminal import cell_width, out, warn

MIN_BAR = 10  # narrower than this, the bar says nothing the percentage does not
MAX_BAR = 60
MIN_NAME = 8  # "Tin…gguf": the shortest name worth keeping beside the numbers
REDRAW_SECONDS = 0.1  # at most ten redraws a second; a finished file is drawn at once


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns in the middle: ``Llama-3.2…Q4_K_M.gguf``."""
    if cell_width(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head_room = (width - 1) // 2
    tail_room = width - 1 - head_room  # the end holds the quant and the extension: it gets the extra column
    head, tail = "", ""
    for c in text:
        if cell_width(head + c) > head_room:
            break
        head += c
    for c in reversed(text):
        if cell_width(c + tail) > tail_room:
            break
        tail = c + tail
    return f"{head}…{tail}"


def _bar(fraction: float, width: int, ascii_only: bool) -> str:
    inner = width - 2
    filled = int(inner * min(max(fraction, 0.0), 1.0))
    if ascii_only:
        return "[" + "#" * filled + " " * (inner - filled) + "]"
    return "▕" + "█" * filled + " " * (inner - filled) + "▏"


def progress_line(event: Progress, width: int, *, ascii_only: bool = False) -> str:
    """One line that fits in ``width`` columns, never touching the last one (some terminals wrap there).

    ``downloading Model-Q4_K_M.gguf ▕█████     ▏  45%  1.2 GB/2.6 GB  85 MB/s  17s``

    As the terminal narrows, the bar goes first, then the file name is cut
    in the middle, then the speed and sizes; the percentage always stays.
    """
    room = max(width - 1, 1)
    action, name = visible(event.action), visible(event.file)
    percent = f"{min(event.fraction, 1.0):4.0%}"
    if event.unit == "bytes":
        sizes = f"{format_size(event.completed)}/{format_size(event.total)}"
        full = f"{percent}  {sizes}  {format_size(int(event.rate))}/s  {_duration(event.eta)}"
    else:  # counted things (tensors): no rate in bytes
        sizes = f"{event.completed}/{event.total} {visible(event.unit)}"
        full = f"{percent}  {sizes}  {_duration(event.eta)}"
    head = f"{action} {name}"
    bar_room = min(room - cell_width(head) - cell_width(full) - 2, MAX_BAR)
    if bar_room >= MIN_BAR:
        return f"{head} {_bar(event.fraction, bar_room, ascii_only)} {full}"
    for lead, tail, shortest in (
        (f"{action} ", full, MIN_NAME),
        (f"{action} ", f"{percent}  {sizes}", MIN_NAME),
        ("", f"{percent}  {sizes}", MIN_NAME),
        ("", percent, MIN_NAME),
        ("", percent, 3),
    ):
        name_room = room - cell_width(lead) - cell_width(tail) - 1
        if name_room >= min(shortest, cell_width(name)):
            return f"{lead}{shorten(name, name_room)} {tail}"
    return percent.strip()[:room]


def _columns(stream: TextIO, environ: Mapping[str, str]) -> int:
    """The width of the terminal ``stream`` draws on (COLUMNS wins, as for every CLI)."""
    columns = environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


class ProgressView:
    """An event sink for the CLI; called on the main thread only (see ``tui.cli.interrupt``).

    Never raises for its own output: progress is a courtesy, so a closed or
    broken stderr just turns it off.
    """

    def __init__(
        self,
        stream: TextIO | None,
        *,
        transient: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.stream = stream
        # in place only on a terminal that can do it; TERM=dumb gets the plain lines a pipe gets
        self.live = stream is not None and _is_terminal(stream) and self.environ.get("TERM") != "dumb"
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self.ascii_only = not encoding.startswith("utf")
        self.transient = transient  # verify: the bar is scaffolding, the report is what matters
        self._drawn = False  # a live line is on screen
        self._last_draw = 0.0

    def __call__(self, event: object) -> None:
        if self.stream is None:
            return
        try:
            if isinstance(event, Progress):
                self._progress(event)
            elif isinstance(event, Status | Waiting):
                self._clear()
                self._write(visible(event.message) + "\n")
        except (OSError, ValueError):
            self.stream = None

    def _progress(self, event: Progress) -> None:
        done = event.completed >= event.total
        if not self.live:
            if done and not self.transient:
                amount = format_size(event.total) if event.unit == "bytes" else f"{event.total} {event.unit}"
                self._write(f"{visible(event.action)} {visible(event.file)}: {visible(amount)} done\n")
            return
        now = time.monotonic()
        if not done and self._drawn and now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        line = progress_line(event, _columns(self.stream, self.environ), ascii_only=self.ascii_only)  # type: ignore[arg-type]
        self._write("\r" + line + "\x1b[K")
        self._drawn = True
        if done:
            if self.transient:
                self._clear()
            else:
                self._write("\n")
                self._drawn = False

    def _write(self, text: str) -> None:
        assert self.stream is not None
        self.stream.write(text)
        self.stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self._write("\r\x1b[K")
            self._drawn = False

    def close(self) -> None:
        """End a live line, so what follows starts on a fresh one."""
        if self.stream is None or not self._drawn:
            return
        try:
            self._write("\n")
        except (OSError, ValueError):
            self.stream = None
        self._drawn = False


def duration(seconds: float) -> str:
    """A duration the way Ollama's ``--verbose`` prints Go's ``time.Duration``: ``1.234567s``, ``12.3ms``."""
    if seconds >= 60:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}m{rest:.6f}".rstrip("0").rstrip(".") + "s"
    if seconds >= 1:
        return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.6f}".rstrip("0").rstrip(".") + "ms"
    return f"{seconds * 1e6:.3f}".rstrip("0").rstrip(".") + "µs"


def stats_block(done: Done) -> list[tuple[str, str]]:
    """Ollama's ``--verbose`` figures for one reply (prompt eval counts the tokens really evaluated)."""
    evaluated = done.prompt_tokens - done.cached_tokens
    prompt_rate = evaluated / done.prompt_seconds if done.prompt_seconds > 0 else 0.0
    drafts = []  # llamadeck's own, after Ollama's lines: speculative decoding's share of the reply
    if done.drafted:
        taken = f"{100 * done.accepted // done.drafted}% ({done.accepted}/{done.drafted} tokens)"
        drafts.append(("draft acceptance", taken))
    return [
        ("total duration", duration(done.total_seconds or done.prompt_seconds + done.generate_seconds)),
        ("load duration", duration(done.load_seconds)),
        ("prompt eval count", f"{evaluated} token(s)"),
        ("prompt eval duration", duration(done.prompt_seconds)),
        ("prompt eval rate", f"{prompt_rate:.2f} tokens/s"),
        ("eval count", f"{done.completion_tokens} token(s)"),
        ("eval duration", duration(done.generate_seconds)),
        ("eval rate", f"{done.tokens_per_second:.2f} tokens/s"),
        *drafts,
    ]


THINKING_OPENS = "Thinking...\n"  # Ollama's words around the reasoning, as `ollama run` prints them
THINKING_CLOSES = "...done thinking.\n\n"
FAINT, PLAIN = "\x1b[2m", "\x1b[0m"


class ReplyView:
    """A reply: tokens to stdout as they come; with ``verbose`` the figures to stderr at the end.

    A thinking model's reasoning comes first, between ``Thinking...`` and
    ``...done thinking.`` as ``ollama run`` shows it, faint on a terminal
    (plain text in a pipe, with ``NO_COLOR`` or on ``TERM=dumb``); with
    ``hide_thinking`` it is not shown. Unlike ``ProgressView`` a broken stdout
    is not swallowed: the reply is the result, and the command must stop when
    nobody reads it.
    """

    def __init__(
        self,
        *,
        verbose: bool = False,
        hide_thinking: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.verbose = verbose
        self.hide_thinking = hide_thinking
        self.open_line = False
        self.thinking = False  # the reasoning is being shown
        terminal = sys.stdout is not None and _is_terminal(sys.stdout)
        environ = os.environ if environ is None else environ
        self.faint = terminal and environ.get("TERM") != "dumb" and not environ.get("NO_COLOR")
        # a reply is text from a model: escaped like everything else, though a file keeps its \r
        self.keep = "\n\t" if terminal else "\n\t\r"

    def _show(self, text: str) -> None:
        out(text, end="")
        sys.stdout.flush()
        self.open_line = not text.endswith("\n")

    def _open_thinking(self) -> None:
        self.thinking = True
        self._show(FAINT + THINKING_OPENS if self.faint else THINKING_OPENS)

    def _close_thinking(self) -> None:
        self.thinking = False
        if self.open_line:
            out()
        self._show(THINKING_CLOSES + PLAIN if self.faint else THINKING_CLOSES)
        self.open_line = False  # the words end with a new line; the colour reset after it takes no room

    def end_thinking(self) -> None:
        """Close the reasoning shown, if any: the answer starts (or there is none)."""
        if self.thinking:
            self._close_thinking()

    def __call__(self, event: object) -> None:
        if isinstance(event, Token):
            if event.thinking and not self.hide_thinking:
                if not self.thinking:
                    self._open_thinking()
                self._show(visible(event.thinking, keep=self.keep))
            if event.text:
                self.end_thinking()
                self._show(visible(event.text, keep=self.keep))
        elif isinstance(event, Done):
            self.end_thinking()  # reasoning and no answer (cut off by the token limit)
            out()
            self.open_line = False
            if event.dropped_messages:
                warn(f"(the {event.dropped_messages} oldest messages were left out to fit the context)")
            if self.verbose:
                for name, value in stats_block(event):
                    warn(f"{name + ':':<22}{value}")

    def close(self) -> None:
        """End a reply cut short on its own line, so ``interrupted`` does not trail it."""
        if self.open_line or self.thinking:
            self.open_line = False
            with suppress(OSError, ValueError):
                out(PLAIN if self.thinking and self.faint else "")
                sys.stdout.flush()
            self.thinking = False
