"""Pick the model a chat talks to, from the local models (loaded ones marked)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from engine import visible

if TYPE_CHECKING:
    from engine import Engine


@dataclass(frozen=True)
class ModelChoice:
    reference: str
    detail: str  # "Q4_K_M · 0.3 GB · 270M"
    loaded: bool


def model_choices(engine: Engine) -> list[ModelChoice]:
    """The local models, loaded ones first (they answer at once); call it in a thread worker."""
    from engine import format_size

    loaded = {m.reference for m in engine.loaded()} if engine.manages_models else set()  # /v1: unknown
    choices = []
    for m in engine.list_models():
        parts = [m.quant or "", format_size(m.size), m.size_label or ""]
        choices.append(ModelChoice(m.reference, " · ".join(p for p in parts if p), m.reference in loaded))
    return sorted(choices, key=lambda c: (not c.loaded, c.reference.lower()))


class ModelPickerScreen(ModalScreen[str | None]):
    CSS_PATH = "model_picker.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, choices: list[ModelChoice], current: str | None = None) -> None:
        super().__init__()
        self.choices = choices
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Model for this chat", id="title")
            options = []
            for choice in self.choices:
                prompt = Text(visible(choice.reference), style="bold")
                prompt.append(f"  {visible(choice.detail)}", style="dim")
                if choice.loaded:
                    prompt.append("  loaded", style="green")
                options.append(Option(prompt, id=choice.reference))
            yield OptionList(*options, id="models")
            if not self.choices:
                yield Static("No local models yet: pull one in the Models tab (1, then p).", id="none")
            yield Label("Enter picks · Esc cancels", classes="hint")

    def on_mount(self) -> None:
        models = self.query_one("#models", OptionList)
        models.display = bool(self.choices)
        references = [c.reference for c in self.choices]
        if self.current in references:
            models.highlighted = references.index(self.current)
        models.focus()

    @on(OptionList.OptionSelected, "#models")
    def picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
