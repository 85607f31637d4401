"""Ask for the path of an image to attach to the next message (the Chat tab's ctrl+g).

The path completes as a shell's does, one directory level at a time: the
suggestion (shown greyed, taken with → or End) is the first entry of the
directory typed so far that starts with the last part, a directory with a ``/``.
"""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Label, Static

MAX_ENTRIES = 2_000  # a directory read for a suggestion stops here (a huge folder stays quick)


class PathSuggester(Suggester):
    """Completes a file system path from the entries of its directory (hidden ones only when asked)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        head, _, part = value.rpartition("/")
        folder = Path(head or ("/" if value.startswith("/") else ".")).expanduser()
        try:
            entries = sorted(e for i, e in enumerate(folder.iterdir()) if i < MAX_ENTRIES)
        except OSError:
            return None
        for entry in entries:
            if entry.name.startswith(part) and (part.startswith(".") or not entry.name.startswith(".")):
                tail = entry.name + ("/" if entry.is_dir() else "")
                return (head + "/" if "/" in value else "") + tail
        return None


class ImagePathScreen(ModalScreen[str | None]):
    CSS_PATH = "image_path.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Attach an image (JPEG, PNG or WebP) to your next message")
            yield Input(placeholder="./photo.png", suggester=PathSuggester(), id="image-path")
            yield Label("→ completes · Enter attaches · Esc cancels", classes="hint")

    @on(Input.Submitted, "#image-path")
    def submit(self, event: Input.Submitted) -> None:
        path = event.value.strip().strip("'\"")
        if path:
            self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
