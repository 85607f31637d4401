"""The footer, showing ``^p palette`` at its right end only where the keys leave room for it.

Textual's Footer docks the palette's key over the right end of the row; when the
keys run longer than the row (the Chat tab outside the box while a reply
streams, at 80 columns) they run under it, and a letter of theirs showed past
it ("^p palettel"). Here the palette's key is left out whenever the keys and it
would not fit; Ctrl+P works all the same, and F1 lists it.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # the key widget Footer.compose yields (no public name)

KEY_MARGIN = 2  # what a compact key adds to its key and description: a space between, one after


def key_width(key: FooterKey) -> int:
    return len(key.key_display) + len(key.description) + KEY_MARGIN


class FittingFooter(Footer):
    """Textual's Footer, but the palette's key only where it fits beside the keys."""

    def compose(self) -> ComposeResult:
        width = self.app.size.width
        used = 0
        for widget in super().compose():
            if isinstance(widget, FooterKey):
                if widget.has_class("-command-palette") and used + key_width(widget) > width:
                    continue
                used += key_width(widget)
            yield widget
