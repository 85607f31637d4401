"""Progress from engine events: a bar with rate and ETA, shared by the pull and verify dialogs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static

from engine import visible

if TYPE_CHECKING:
    from engine import Event


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class EventProgress(Vertical):
    """Shows the latest Progress (bar, bytes, rate, ETA) and the latest Status or Waiting line."""

    DEFAULT_CSS = """
    EventProgress { height: auto; }
    EventProgress ProgressBar { width: 100%; }
    EventProgress ProgressBar Bar { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        yield ProgressBar(total=None, show_eta=False, id="bar")
        yield Static("", id="figures")

    def show(self, event: Event) -> None:
        from engine import Progress, format_size

        if isinstance(event, Progress):
            self.query_one("#bar", ProgressBar).update(total=max(event.total, 1), progress=event.completed)
            figures = (
                f"{format_size(event.completed)} / {format_size(event.total)}"
                f" · {format_size(int(event.rate))}/s · ETA {duration(event.eta)}"
            )
            self.query_one("#status", Static).update(Text(visible(f"{event.action} {event.file}")))
            self.query_one("#figures", Static).update(Text(figures))
        else:
            self.query_one("#status", Static).update(Text(visible(event.message)))


class Throttle:
    """An event sink that forwards at most one Progress every ``interval`` seconds (and each file's last)."""

    def __init__(self, forward: Callable[[Event], object], interval: float = 0.1) -> None:
        self.forward = forward
        self.interval = interval
        self.last = 0.0

    def __call__(self, event: Event) -> None:
        from engine import Progress

        now = time.monotonic()
        final = isinstance(event, Progress) and event.completed >= event.total
        if final or not isinstance(event, Progress) or now - self.last >= self.interval:
            self.last = now
            self.forward(event)
