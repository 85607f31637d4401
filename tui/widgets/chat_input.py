"""The Chat tab's message box: Enter sends, Shift+Enter or Ctrl+J starts a new line."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea


class ChatInput(TextArea):
    """The message box: Enter sends, Shift+Enter or Ctrl+J starts a new line."""

    @dataclass
    class Submitted(Message):
        text: str

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            if self.text.strip():
                self.post_message(self.Submitted(self.text))
            return
        if event.key in ("shift+enter", "ctrl+j"):
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        await super()._on_key(event)

    def start_editing(self, text: str) -> None:
        """A sent message back in the box to change; the border says how to resend or cancel."""
        self.load_text(text)
        self.move_cursor(self.document.end)
        self.border_title = "Editing your last message (enter resends, esc cancels)"
        self.focus()

    def stop_editing(self) -> None:
        """An empty box for a new message again."""
        self.load_text("")
        self.border_title = "Message"
