"""Reload a loaded model with other load settings: GPU layers, context, slots.

Dismissed with the options to load with (Ollama names: ``num_gpu``,
``num_ctx``, ``num_parallel``), or None. The rows are the app's one
parameter editor (``tui.widgets.param_editor``), prefilled with what is
loaded; a blank one inherits (the server settings, the Modelfile, built in).
Values are checked as the engine checks them, so a typo is a line in the
dialog naming the row ("Slots (num_parallel) must be ..."), not a failed load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from engine import visible
from tui.widgets.param_editor import RELOAD_PARAMS, Layer, ParamEditor, ParamError

if TYPE_CHECKING:
    from engine import LoadedModel


def current_options(row: LoadedModel) -> dict[str, int]:
    """What ``row`` was loaded with, as the options that would load it so again."""
    return {"num_gpu": row.gpu_layers, "num_ctx": row.context, "num_parallel": row.slots}


class ReloadScreen(ModalScreen[dict[str, object] | None]):
    CSS_PATH = "reload.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "reload", "Reload", priority=True),
    ]

    def __init__(self, row: LoadedModel, inherited: list[Layer] | None = None) -> None:
        """``inherited``: what a blank row gives, lowest first (``param_editor.chat_layers``)."""
        super().__init__()
        self.row = row
        self.inherited = inherited or []

    def compose(self) -> ComposeResult:
        current = current_options(self.row)
        with Vertical(id="dialog"):
            yield Static(Text(f"Reload {visible(self.row.reference)}"), id="title")
            yield ParamEditor(RELOAD_PARAMS, current, edited="this reload", below=self.inherited)
            yield Static("", id="error", markup=False)
            yield Static(
                Text("The model is unloaded, then loaded again: its conversations' caches are dropped."),
                id="note",
            )
            with Horizontal(id="buttons"):
                yield Button("Reload (ctrl+s)", variant="primary", id="reload")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.query_one("#p-num_ctx").focus()

    def options(self) -> dict[str, object]:
        """The options typed, checked; raises ParamError naming the first bad one as its row does."""
        return self.query_one(ParamEditor).values()

    @on(ParamEditor.Submitted)
    @on(Button.Pressed, "#reload")
    def action_reload(self) -> None:
        try:
            options = self.options()
        except ParamError as error:
            shown = self.query_one("#error", Static)
            shown.update(Text(visible(str(error))))
            shown.display = True
            return
        self.dismiss(options)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
