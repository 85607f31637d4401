"""Finished Markdown blocks of a message, a chunk of them per leaf widget, one under the other."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.widgets import Static

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console, ConsoleOptions
    from rich.segment import Segment

    from tui.widgets.markdown_render import RenderedBlock


class _Stack:
    """Blocks one under the other with a blank line between them (a chunk's renderable)."""

    def __init__(self, blocks: list[RenderedBlock]) -> None:
        self.blocks = blocks

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        from rich.segment import Segment

        new_line = Segment.line()
        for index, block in enumerate(self.blocks):
            if index and not block.continues:
                yield new_line
            for line in block.lines(console, options):
                yield from line
                yield new_line


class BlockView(Static):
    """Up to ``CHUNK`` finished blocks of a message in one leaf widget (or the open tail, or an old message).

    Few leaves keep Textual's layout pass short however long the conversation;
    a block joining a chunk replays the lines of the blocks already there.
    """

    CHUNK: ClassVar[int] = 8

    def __init__(self, blocks: list[RenderedBlock], *, classes: str | None = None) -> None:
        super().__init__(_Stack(blocks), classes=classes)
        self.blocks = blocks

    @property
    def source(self) -> str:
        return "\n".join(block.source for block in self.blocks)

    @property
    def full(self) -> bool:
        return len(self.blocks) >= self.CHUNK

    def show(self, blocks: list[RenderedBlock]) -> None:
        """Show ``blocks``; the screen is laid out again only when the height changes.

        A streaming reply's tail is shown again for every frame: most frames add
        words to its last line, and a layout pass there would re-place and
        repaint every widget on the screen (the message box included) for
        nothing, which is what made keys slow while a reply streamed.
        """
        self.blocks = blocks
        self.set_class(bool(blocks) and blocks[-1].joins_next, "-joined")
        shape = self._shape(blocks)
        layout = shape is None or shape != self._shown_shape
        self._shown_shape = shape
        self.update(_Stack(blocks), layout=layout)

    _shown_shape: tuple[int, int] | None = None

    def _shape(self, blocks: list[RenderedBlock]) -> tuple[int, int] | None:
        """This widget's width and the lines ``blocks`` take at it (rendered once and kept by each block,
        so the paint that follows reuses them); None before the first layout gives the widget a width."""
        width = self.content_size.width
        if not width or not self.is_mounted:
            return None
        options = self.app.console.options.update_width(width)
        lines = sum(len(block.lines(self.app.console, options)) for block in blocks)
        return width, lines + sum(1 for index, block in enumerate(blocks) if index and not block.continues)
