"""A message that will not fit the context: raise the context, leave out the oldest turns, or cancel.

Asked before anything is sent (``chat_sending``), so a message that does not fit
never fails after it was kept; cancelling leaves the text in the box.
Keys: r raises, t trims, Esc or c cancels (each button says its key).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui.widgets.chat_gauge import short_name


@dataclass(frozen=True)
class Misfit:
    """Why a message does not fit, and what would make it fit."""

    model: str
    context: int  # tokens a conversation holds now
    needed: int | None  # tokens the whole chat takes (None: far more than any context holds)
    raise_to: int | None  # a context that holds it all, within what the model was trained for; None: none
    trained: int  # the model's trained context (0: not known)
    drop: int  # oldest messages left out if sent as it is (0: even the message alone does not fit)


class FitScreen(ModalScreen[str | None]):
    """Answers "raise", "trim" or None (cancel)."""

    CSS_PATH = "fit.tcss"
    BINDINGS = [
        Binding("r", "choose('raise')", "Raise the context", show=False),
        Binding("t", "choose('trim')", "Leave out old turns", show=False),
        Binding("c,escape", "choose('')", "Cancel", show=False),
    ]

    def __init__(self, misfit: Misfit) -> None:
        super().__init__()
        self.misfit = misfit

    def compose(self) -> ComposeResult:
        m = self.misfit
        need = f"{m.needed:,} tokens" if m.needed is not None else "far more tokens"
        text = Text("This message does not fit the context\n", style="bold")
        text.append(f"With the chat so far it needs {need}; {short_name(m.model)} holds {m.context:,} now.")
        if m.raise_to is None:
            most = f"at most {m.trained:,} tokens" if m.trained else "no more"
            text.append(f"\nThe model was trained for {most}: raising the context cannot hold it all.")
        if not m.drop:
            text.append("\nThe message alone does not fit: shorten it, or raise the context.")
        with Vertical(id="dialog"):
            yield Static(text, id="question")
            if m.raise_to is not None:
                yield Button(f"Raise the context to {m.raise_to:,} tokens (r)", variant="primary", id="raise")
            if m.drop:
                yield Button(f"Send without the {m.drop} oldest messages (t)", id="trim")
            yield Button("Cancel: keep the text in the box (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query(Button).first().focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose("" if event.button.id == "cancel" else str(event.button.id))

    def action_choose(self, choice: str) -> None:
        if choice == "raise" and self.misfit.raise_to is None or choice == "trim" and not self.misfit.drop:
            return  # not offered
        self.dismiss(choice or None)


def fitting_context(needed: int | None, trained: int) -> int | None:
    """The smallest round context (a multiple of 512) that holds ``needed`` tokens and room for a reply,
    within ``trained`` (0: not known, not capped); None when no context the model allows holds it."""
    if needed is None:
        return None
    size = -(-(needed + 256) // 512) * 512  # the engine keeps min(256, n_ctx // 8) for the reply
    if trained and size > trained:
        return trained if trained - min(256, trained // 8) >= needed else None
    return size
