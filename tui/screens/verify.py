"""Verify one model (or all): re-hash its files with a progress bar, then the result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from engine import visible
from tui.screens.progress import EventProgress, Throttle

if TYPE_CHECKING:
    from engine import Engine, Event, VerifyReport


@dataclass
class VerifyEvent(Message):
    event: Event


@dataclass
class Verified(Message):
    reports: list[VerifyReport]


@dataclass
class VerifyFailed(Message):
    error: BaseException


def report_text(reports: list[VerifyReport]) -> Text:
    text = Text()
    for report in reports:
        if report.ok:
            text.append("✓ ", style="green bold")
            text.append(visible(report.reference))
            text.append(": ok\n")
            continue
        text.append("✗ ", style="red bold")
        text.append(visible(report.reference) + "\n")
        for problem in report.problems:
            text.append(f"    {visible(problem)}\n")
        if report.repair:
            text.append(f"    {visible(report.repair)}\n", style="italic")
    text.rstrip()
    return text


class VerifyScreen(ModalScreen[list | None]):
    """Dismissed with the reports, or None when cancelled."""

    CSS_PATH = "verify.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "close", "Close", show=False)]

    def __init__(self, engine: Engine, references: list[str] | None) -> None:
        super().__init__()
        self.engine = engine
        self.references = references
        self.reports: list[VerifyReport] | None = None
        from engine import CancelToken

        self.token = CancelToken()

    def compose(self) -> ComposeResult:
        what = ", ".join(self.references) if self.references else "every model"
        with Vertical(id="dialog"):
            yield Static(Text("Verify " + visible(what), style="bold"), id="title")
            yield EventProgress(id="progress")
            yield Static("", id="result")
            yield Label("verifying… · Esc: cancel", id="hint")

    def on_mount(self) -> None:
        self.run_verify()

    @work(thread=True, exclusive=True, exit_on_error=False, group="verify")
    def run_verify(self) -> None:
        throttle = Throttle(lambda e: self.post_message(VerifyEvent(e)))
        try:
            reports = self.engine.verify(
                self.references,
                on_event=throttle,
                cancel=self.token,
            )
        except Exception as error:  # noqa: BLE001 - Cancelled and engine errors: reported by the app
            self.post_message(VerifyFailed(error))
        else:
            self.post_message(Verified(reports))

    @on(VerifyEvent)
    def progress(self, message: VerifyEvent) -> None:
        self.query_one(EventProgress).show(message.event)

    @on(Verified)
    def verified(self, message: Verified) -> None:
        self.reports = message.reports
        self.query_one("#progress").display = False
        self.query_one("#result", Static).update(report_text(message.reports))
        self.query_one("#hint", Label).update("Enter or Esc: close")

    @on(VerifyFailed)
    def failed(self, message: VerifyFailed) -> None:
        from engine import Cancelled

        if isinstance(message.error, Cancelled):
            self.app.notify("verify cancelled")
        else:
            report = getattr(self.app, "report", None)
            if report is not None:
                report(message.error)
        self.dismiss(None)

    def on_unmount(self) -> None:
        self.token.cancel()  # the app is quitting, or the dialog closed: no download goes on unseen

    def action_cancel(self) -> None:
        if self.reports is None:
            self.token.cancel()
            self.query_one("#hint", Label).update("cancelling…")
        else:
            self.dismiss(self.reports)

    def action_close(self) -> None:
        if self.reports is not None:
            self.dismiss(self.reports)
