"""Reload a loaded model with other load settings: GPU layers, context, slots.

Dismissed with the options to load with (Ollama names: ``num_gpu``,
``num_ctx``, ``num_parallel``), or None. Values are checked here, as the
engine checks them, so a typo is a line in the dialog, not a failed load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from engine import visible
from tui.config import SettingError, check_parameters

if TYPE_CHECKING:
    from engine import LoadedModel

FIELDS = (
    ("num_gpu", "GPU layers", "-1: all that fit · 0: CPU only"),
    ("num_ctx", "Context", "tokens per conversation"),
    ("num_parallel", "Slots", "conversations at once · 0: from memory"),
)


def current_options(row: LoadedModel) -> dict[str, int]:
    """What ``row`` was loaded with, as the options that would load it so again."""
    return {"num_gpu": row.gpu_layers, "num_ctx": row.context, "num_parallel": row.slots}


class ReloadScreen(ModalScreen[dict[str, object] | None]):
    CSS_PATH = "reload.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, row: LoadedModel) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        current = current_options(self.row)
        with Vertical(id="dialog"):
            yield Static(Text(f"Reload {visible(self.row.reference)}"), id="title")
            for name, label, help_ in FIELDS:
                with Horizontal(classes="field"):
                    yield Label(label, classes="label")
                    yield Input(str(current[name]), id=name, type="integer", compact=True)
                    yield Label(help_, classes="help")
            yield Static("", id="error", markup=False)
            yield Static(
                Text("The model is unloaded, then loaded again: its conversations' caches are dropped."),
                id="note",
            )
            with Horizontal(id="buttons"):
                yield Button("Reload (Enter)", variant="primary", id="reload")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#num_ctx", Input).focus()

    def options(self) -> dict[str, object]:
        """The options typed, checked; raises SettingError naming the first bad one."""
        raw: dict[str, object] = {}
        for name, label, _ in FIELDS:
            text = self.query_one(f"#{name}", Input).value.strip()
            if not text:
                raise SettingError(f"{label}: give a whole number")
            raw[name] = text
        return check_parameters(raw, source="the reload dialog")

    @on(Input.Submitted)
    @on(Button.Pressed, "#reload")
    def confirm(self) -> None:
        try:
            options = self.options()
        except SettingError as error:
            shown = self.query_one("#error", Static)
            shown.update(Text(visible(str(error))))
            shown.display = True
            return
        self.dismiss(options)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
