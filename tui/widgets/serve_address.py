"""Where ``llamadeck --serve`` serves the API, in sight for as long as it runs.

A notification at start scrolls away; a client needs the address later. It sits
at the right end of the tab row (its own layer, so the tabs keep their place);
where the tabs leave no room for it, it takes a line of its own above them.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

TABS_WIDTH = 38  # " 1 Models  2 Sessions  3 Chat  4 Logs" and a gap


def label(url: str) -> str:
    """``http://127.0.0.1:11434`` -> ``API 127.0.0.1:11434`` (the scheme says nothing here)."""
    return f"API {url.removeprefix('http://')}"


class ServeAddress(Static):
    DEFAULT_CSS = """
    ServeAddress {
        dock: right;
        layer: above;
        width: auto;
        height: 1;
        padding: 0 1;
        color: $text-success;
    }
    ServeAddress.-own-line {
        layer: default;
        dock: top;
        width: 1fr;
        background: $panel;
    }
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(label(url), markup=False, **kwargs)
        self.url = url

    def place(self, width: int) -> None:
        """On the tab row when it fits beside the tabs in ``width`` columns; else on a line of its own."""
        self.set_class(width < TABS_WIDTH + len(label(self.url)) + 2, "-own-line")
