"""The Logs tab: the app's own log (actions, engine errors) and the engine's log when the facade offers it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Log

from engine import visible

if TYPE_CHECKING:
    from engine import Engine


@dataclass
class LogLine(Message):
    line: str


def new_lines(old: list[str], new: list[str]) -> list[str]:
    """The lines of ``new`` after its overlap with the end of ``old`` (a ring buffer that moved on)."""
    for k in range(min(len(old), len(new)), 0, -1):
        if old[-k:] == new[:k]:
            return new[k:]
    return new


class PaneHandler(logging.Handler):
    """Python logging records into the Logs tab (kept until the pane exists)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.pane: LogsPane | None = None
        self.pending: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - a logging handler never raises
            return
        if self.pane is None:
            self.pending.append(line)
        else:
            self.pane.add_line(line)


class LogsPane(Vertical):
    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")
    BINDINGS = [Binding("e", "end", "Follow", id="logs.end")]

    def __init__(self, engine: Engine, handler: PaneHandler, interval: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.handler = handler
        self.interval = interval
        self.engine_lines: list[str] = []

    def compose(self) -> ComposeResult:
        yield Log(id="log", max_lines=5000, auto_scroll=True)

    def on_mount(self) -> None:
        log = self.query_one(Log)
        for line in self.handler.pending:
            log.write_lines([visible(part) for part in line.splitlines() or [""]])
        self.handler.pending.clear()
        self.handler.pane = self
        if callable(getattr(self.engine, "logs", None)):  # Engine.logs() -> list[str], asked of the facade
            self.set_interval(self.interval, self.poll_engine)
            self.poll_engine()

    def on_unmount(self) -> None:
        self.handler.pane = None

    def add_line(self, line: str) -> None:
        """Thread-safe (post_message is): the line is written by the event loop."""
        self.post_message(LogLine(line))

    @on(LogLine)
    def write(self, message: LogLine) -> None:
        # a record with a traceback is several lines: each escaped on its own, so they read as lines
        self.query_one(Log).write_lines([visible(part) for part in message.line.splitlines() or [""]])

    def poll_engine(self) -> None:
        try:
            lines = [str(line) for line in self.engine.logs()]
        except Exception as error:  # noqa: BLE001 - one line, never a traceback
            self.add_line(f"{time.strftime('%H:%M:%S')} engine log unreadable: {error}")
            return
        fresh = new_lines(self.engine_lines, lines)
        self.engine_lines = lines
        log = self.query_one(Log)
        for line in fresh:
            log.write_line(visible(line.rstrip("\n")))

    def action_end(self) -> None:
        self.query_one(Log).scroll_end(animate=False)
