"""Images of a message drawn as thumbnails, through the maintained library ``textual-image``.

Where the terminal can draw images (the kitty graphics protocol, sixel) they
are pictures; elsewhere coloured half blocks (two pixels a cell). The library
asks the terminal what it can do, which only works before Textual takes the
screen: ``prepare`` does that at start (``run_app``); without it (tests, a
pipe) thumbnails are half blocks, the same on every terminal.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Static

if TYPE_CHECKING:
    from textual.widget import Widget

    from tui.chatstore import StoredImage

_drawer: type[Widget] | None = None  # the textual-image widget class ``prepare`` chose


def prepare() -> None:
    """Ask the terminal which image protocol it speaks (call before the app starts)."""
    global _drawer
    from textual_image.renderable import HalfcellImage as HalfcellRenderable
    from textual_image.renderable import Image as Best
    from textual_image.renderable import UnicodeImage
    from textual_image.widget import HalfcellImage
    from textual_image.widget import Image as AutoImage

    _drawer = HalfcellImage if Best in (HalfcellRenderable, UnicodeImage) else AutoImage


def _widget_class() -> type[Widget]:
    if _drawer is not None:
        return _drawer
    from textual_image.widget import HalfcellImage

    return HalfcellImage


def caption(name: str, size: int) -> str:
    from engine import format_size  # here: the chat view starts without the engine

    return f"{name} · {format_size(size)}"


class ImageThumbs(Horizontal):
    """A message's images side by side, each a small picture with its name and size under it."""

    DEFAULT_CSS = """
    ImageThumbs { height: auto; }
    ImageThumbs > Vertical { width: 22; height: auto; margin: 0 1 0 0; }
    ImageThumbs .thumb { width: 20; height: 8; }
    ImageThumbs .caption { color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, images: Sequence[StoredImage]) -> None:
        super().__init__(classes="images")
        self.images = tuple(images)

    def compose(self) -> ComposeResult:
        from PIL import Image

        drawer = _widget_class()
        for image in self.images:
            with Vertical():
                try:
                    picture = Image.open(io.BytesIO(image.data))
                    picture.load()
                    yield drawer(picture, classes="thumb")  # type: ignore[arg-type]
                except Exception:  # noqa: BLE001 - kept bytes that no longer decode: the caption says so
                    yield Static(Content("(cannot show this image)"), classes="thumb")
                yield Static(Content(caption(image.name, image.size)), classes="caption")
