"""Images of a message drawn as thumbnails, through the maintained library ``textual-image``.

Where the terminal can draw images (the kitty graphics protocol, sixel) they
are pictures; elsewhere coloured half blocks (two pixels a cell). The library
asks the terminal what it can do, which only works before Textual takes the
screen: ``prepare`` does that at start (``run_app``); without it (tests, a
pipe) thumbnails are half blocks, the same on every terminal.

Each thumbnail is sized from its image, as a terminal chat or kitty's icat
shows one: its own aspect ratio (a cell is about twice as tall as wide: the
terminal's cell size in pixels where it draws pictures), at most ``MAX_ROWS``
rows (fewer on a short terminal), never wider than the message, never
enlarged past its own pixels (a tiny icon stays small, but readable). Several
images sit side by side and wrap to the next line where the message is too
narrow; a resize of the terminal fits them again (``refit``). The drawer gets
a copy shrunk to the cells it fills, so a repaint never scales a 40-megapixel
photo again.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

if TYPE_CHECKING:
    from PIL.Image import Image as Picture
    from textual.screen import Screen

    from tui.chatstore import StoredImage

MAX_ROWS = 10  # a thumbnail's height at most, on a terminal of 30 rows or more
MIN_ROWS = 3  # ... and at least (a short terminal, a tiny image: still something to see)
CAPTION = 20  # an image's column is as wide as its caption up to this, so a tall image's name still reads
GAP = 1  # columns between images side by side
UNREADABLE = "(cannot show this image)"

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


def cell_pixels(drawer: type[Widget]) -> tuple[int, int]:
    """The image pixels one cell shows, (wide, tall): half blocks 1 x 2; pictures the terminal's cell size
    (the library asked the terminal once, before the app started; 10 x 20 where it could not tell)."""
    from textual_image.widget import HalfcellImage

    if issubclass(drawer, HalfcellImage):
        return 1, 2
    from textual_image._terminal import get_cell_size  # the library's own answer: its drawing uses it

    cell = get_cell_size()
    return max(1, cell.width), max(1, cell.height)


def caption(name: str, size: int) -> str:
    from engine import format_size  # here: the chat view starts without the engine

    return f"{name} · {format_size(size)}"


def height_cap(screen_rows: int) -> int:
    """The tallest a thumbnail may be on a terminal ``screen_rows`` tall: a third of it, within bounds."""
    return max(MIN_ROWS, min(MAX_ROWS, screen_rows // 3))


def fit(
    pixels: tuple[int, int], max_cols: int, max_rows: int, cell: tuple[int, int] = (1, 2)
) -> tuple[int, int]:
    """The cells (columns, rows) an image of ``pixels`` (wide, tall) fills, its aspect kept: as tall as
    ``max_rows`` allows (never past its own pixels, but at least ``MIN_ROWS``), narrowed to ``max_cols``."""
    wide, tall = max(1, pixels[0]), max(1, pixels[1])
    cell_wide, cell_tall = cell
    cells_per_row = cell_tall * wide / (cell_wide * tall)  # columns one row of the image takes
    rows: float = min(max_rows, max(MIN_ROWS, math.ceil(tall / cell_tall)))
    cols = rows * cells_per_row
    if cols > max_cols:
        cols = max_cols
        rows = cols / cells_per_row
    return max(1, min(max_cols, round(cols))), max(1, round(rows))


@dataclass(frozen=True)
class Thumb:
    """Where one image goes: its picture's cells and its column's width (the picture or its caption)."""

    index: int
    cols: int
    rows: int
    width: int


def arrange(
    sizes: Sequence[tuple[int, int] | None],
    captions: Sequence[str],
    width: int,
    max_rows: int,
    cell: tuple[int, int] = (1, 2),
) -> tuple[tuple[Thumb, ...], ...]:
    """The images in lines ``width`` columns wide, left to right, a line full going on to the next
    (``None``: an image that does not decode, one line of text)."""
    width = max(1, width)
    lines: list[tuple[Thumb, ...]] = []
    line: list[Thumb] = []
    used = 0
    for index, (pixels, text) in enumerate(zip(sizes, captions, strict=True)):
        cols, rows = fit(pixels, width, max_rows, cell) if pixels else (min(width, len(UNREADABLE)), 1)
        column = min(width, max(cols, min(len(text), CAPTION)))
        if line and used + GAP + column > width:
            lines.append(tuple(line))
            line, used = [], 0
        used += (GAP if line else 0) + column
        line.append(Thumb(index, cols, rows, column))
    if line:
        lines.append(tuple(line))
    return tuple(lines)


def decode(data: bytes) -> Picture | None:
    """The image decoded and turned upright as its camera said (EXIF orientation: a phone's portrait photo
    is stored on its side), or None where its bytes no longer decode (the caption says so)."""
    from PIL import Image, ImageOps

    try:
        picture = Image.open(io.BytesIO(data))
        picture.load()
        ImageOps.exif_transpose(picture, in_place=True)  # no copy of a photo that is upright already
    except Exception:  # noqa: BLE001 - kept bytes another tool damaged: a line of text instead
        return None
    return picture


class ImageThumbs(Vertical):
    """A message's images side by side (wrapping), each a picture sized from its image with its name and
    size under it (see the module's docstring)."""

    DEFAULT_CSS = """
    ImageThumbs { height: auto; }
    ImageThumbs > .line { height: auto; }
    ImageThumbs .image { height: auto; margin: 0 1 0 0; }
    ImageThumbs .caption { color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, images: Sequence[StoredImage]) -> None:
        super().__init__(classes="images")
        self.images = tuple(images)
        self.captions = tuple(caption(i.name, i.size) for i in self.images)
        self.drawer = _widget_class()
        self.cell = cell_pixels(self.drawer)
        self.lines: tuple[tuple[Thumb, ...], ...] = ()  # as composed
        self._pictures: dict[int, Picture | None] = {}  # decoded once
        self._shrunk: dict[tuple[int, int, int], Picture] = {}  # (index, cols, rows) -> the copy drawn
        self._rows_seen = 0  # the terminal's height when last fitted
        self._sent: list[Widget] = []  # the library's widgets now shown (``release``)

    def picture(self, index: int) -> Picture | None:
        if index not in self._pictures:
            self._pictures[index] = decode(self.images[index].data)
        return self._pictures[index]

    def plan(self, width: int) -> tuple[tuple[Thumb, ...], ...]:
        """The lines for a message ``width`` columns wide on this terminal."""
        sizes = [None if (p := self.picture(i)) is None else p.size for i in range(len(self.images))]
        return arrange(sizes, self.captions, width, height_cap(self.app.size.height), self.cell)

    def _width(self) -> int:
        """The width to lay out for: this widget's once laid out; before, the nearest laid-out container's
        (the conversation's) less the borders and padding between (the message's), else the screen's."""
        between = 0
        for node in self.ancestors_with_self:
            if not isinstance(node, Widget) or node is self.screen:
                break
            if node.content_size.width:
                return max(1, node.content_size.width - between)
            between += node.styles.gutter.width
        return self.app.size.width

    @property
    def fitted(self) -> bool:
        """Laid out for the width it has (a test waits for this before it looks)."""
        return bool(self.content_size.width) and self.plan(self.content_size.width) == self.lines

    def compose(self) -> ComposeResult:
        self.lines = self.plan(self._width())
        for line in self.lines:
            with Horizontal(classes="line"):
                for thumb in line:
                    column = Vertical(classes="image")
                    column.styles.width = thumb.width
                    with column:
                        yield self._drawn(thumb)
                        yield Static(Content(self.captions[thumb.index]), classes="caption")

    def _drawn(self, thumb: Thumb) -> Widget:
        picture = self.picture(thumb.index)
        if picture is None:
            return Static(Content(UNREADABLE), classes="thumb")
        key = (thumb.index, thumb.cols, thumb.rows)
        if key not in self._shrunk:
            wide, tall = self.cell
            self._shrunk = {k: v for k, v in self._shrunk.items() if k[0] != thumb.index}
            mode = "RGBA" if picture.has_transparency_data else "RGB"
            self._shrunk[key] = picture.convert(mode).resize((thumb.cols * wide, thumb.rows * tall))
        drawn = self.drawer(self._shrunk[key], classes="thumb")  # type: ignore[arg-type]
        self._sent.append(drawn)
        drawn.styles.width = thumb.cols
        drawn.styles.height = thumb.rows
        return drawn

    # --- fitting again ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._rows_seen = self.app.size.height
        self.screen.screen_layout_refresh_signal.subscribe(self, self._laid_out, immediate=True)

    def on_resize(self, event: events.Resize) -> None:
        self.refit()

    def _laid_out(self, screen: Screen) -> None:
        """A terminal only taller or shorter changes no message's width, but the height cap."""
        if self.app.size.height != self._rows_seen:
            self._rows_seen = self.app.size.height
            self.refit()

    def refit(self) -> None:
        """Laid out again where the width or the terminal's height changed what goes where."""
        if self.content_size.width and not self.fitted:
            self.release()
            self.refresh(recompose=True)

    def on_unmount(self) -> None:
        self.release()

    def release(self) -> None:
        """The pictures sent to the terminal are freed there (kitty keeps each until told; the library
        frees one only when its widget draws another)."""
        for drawn in self._sent:
            drawn.image = None  # type: ignore[attr-defined]
        self._sent.clear()
