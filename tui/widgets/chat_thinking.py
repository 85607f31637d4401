"""A reply's reasoning in the Chat tab: shown faint as it streams, folded once the answer starts.

A thinking model's reasoning (``Token.thinking``) goes here, above its answer,
in a ``Collapsible`` whose title says what it is: "Thinking…" while it grows,
"Thought for 3.1 s" once folded. The title takes the focus, so Enter (or a
click) unfolds it again; the text is literal ``Content``, never markup.

    view = ThinkingView()
    view.add("The user asks for")          # buffered; ``show`` draws it (once a frame)
    view.show()
    view.fold()                            # the answer started
"""

from __future__ import annotations

import time
from pathlib import Path

from textual.content import Content
from textual.widgets import Collapsible, Static

THINKING = "Thinking…"


class ThinkingView(Collapsible):
    """The reasoning of one reply; see the module's docstring."""

    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")

    def __init__(self) -> None:
        self._body = Static(Content(""), classes="thinking-text")
        super().__init__(self._body, title=THINKING, collapsed=False, classes="thinking")
        self._parts: list[str] = []
        self._shown = 0  # parts drawn so far
        self._started = time.monotonic()
        self.folded_after: float | None = None  # seconds of reasoning, once the answer started

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def add(self, text: str) -> None:
        self._parts.append(text)

    def show(self) -> None:
        """Draw what came since the last time (nothing to do while folded: it is drawn when unfolded)."""
        if self._shown == len(self._parts) or self.collapsed:
            return
        self._shown = len(self._parts)
        self._body.update(Content(self.text.strip()))

    def fold(self) -> None:
        """The answer started: fold the reasoning and say how long it took."""
        if self.folded_after is not None:
            return
        self.folded_after = time.monotonic() - self._started
        self.title = f"Thought for {self.folded_after:.1f} s"
        self.collapsed = True

    def _watch_collapsed(self, collapsed: bool) -> None:
        """As Collapsible's, but never scrolls: the conversation keeps following its bottom."""
        self._update_collapsed(collapsed)
        self.post_message(self.Collapsed(self) if collapsed else self.Expanded(self))
        if not collapsed:
            self._shown = -1  # unfolded: draw what came while folded
            self.call_after_refresh(self.show)
