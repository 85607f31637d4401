"""Ask for the new name of a copy."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class CopyScreen(ModalScreen[str | None]):
    CSS_PATH = "copy.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text.assemble("Copy ", (self.source, "bold"), " to a new local name"))
            yield Input(placeholder="name[:tag], e.g. mymodel:latest", id="name")
            yield Label("Enter copies · Esc cancels", classes="hint")

    @on(Input.Submitted, "#name")
    def submit(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        if name:
            self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)
