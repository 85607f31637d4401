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
        self.blocks = blocks
        self.set_class(bool(blocks) and blocks[-1].joins_next, "-joined")
        self.update(_Stack(blocks))
