"""The keys, one line each: what the footer shows and more."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", max_width=18)  # long key lists wrap: a 40-column terminal keeps room
        table.add_column()
        for title, keys in self.sections:
            table.add_row(f"[u]{title}[/u]", "")
            for key, description in keys:
                table.add_row(key, description)
            table.add_row("", "")
        with Vertical(id="dialog"):
            yield Static("Keys", id="title")
            with VerticalScroll(id="body"):
                yield Static(table)
            yield Label("Esc closes · Ctrl+P opens the command palette", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
