"""Ask for a conversation's new title."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from engine import visible


class RenameScreen(ModalScreen[str | None]):
    CSS_PATH = "rename.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.old_title = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text.assemble("Rename ", (visible(self.old_title), "bold")))
            yield Input(value=self.old_title, placeholder="a title for this chat", id="title")
            yield Label("Enter renames · Esc cancels", classes="hint")

    @on(Input.Submitted, "#title")
    def submit(self, event: Input.Submitted) -> None:
        title = " ".join(event.value.split())
        if title:
            self.dismiss(title)

    def action_cancel(self) -> None:
        self.dismiss(None)
