"""Engine events drawn on a terminal: one live progress line, status lines above it.

On a terminal the bar redraws in place; piped into a file or CI log it writes
one line per file when the transfer ends, so logs stay readable.
"""

from __future__ import annotations

import shutil
from typing import TextIO

from engine.events import Event, Progress, Status, Waiting
from engine.units import format_size


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def progress_line(event: Progress, width: int) -> str:
    """``downloading Model-Q4_K_M.gguf  45% ▕█████     ▏ 1.2 GB/2.6 GB  85 MB/s  17s``"""
    numbers = (
        f" {event.fraction:4.0%} {format_size(event.completed)}/{format_size(event.total)}"
        f"  {format_size(int(event.rate))}/s  {_duration(event.eta)}"
    )
    label = f"{event.action} {event.file}"
    bar_width = max(width - len(label) - len(numbers) - 4, 10)
    filled = int(bar_width * min(event.fraction, 1.0))
    bar = "▕" + "█" * filled + " " * (bar_width - filled) + "▏"
    line = f"{label} {bar}{numbers}"
    return line[: width - 1]


class ProgressView:
    """An event sink for the CLI."""

    def __init__(self, stream: TextIO, *, transient: bool = False) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.transient = transient  # verify: the bar is scaffolding, the report is what matters
        self._live = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, Progress):
            self._progress(event)
        elif isinstance(event, Status | Waiting):
            self._clear()
            self.stream.write(event.message + "\n")
            self.stream.flush()

    def _progress(self, event: Progress) -> None:
        done = event.completed >= event.total
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r\x1b[2K" + progress_line(event, width))
            self._live = True
            if done:
                self._clear() if self.transient else self._end_line()
        elif done and not self.transient:
            self.stream.write(f"{event.action} {event.file}: {format_size(event.total)} done\n")
        self.stream.flush()

    def _end_line(self) -> None:
        self.stream.write("\n")
        self._live = False

    def _clear(self) -> None:
        if self._live:
            self.stream.write("\r\x1b[2K")
            self._live = False

    def close(self) -> None:
        if self._live:
            self._end_line()
        self.stream.flush()
