"""A reply drawn under the shell prompt with its Markdown rendered (``rich``), as it streams.

The text of a reply grows at its end, so what is above its last Markdown
block cannot change any more (CommonMark closes a block for good once the
next one starts): those blocks are printed once, for good, into the
terminal's scrollback, and only the last, still-growing block is redrawn in
place (``rich.live``, erased and reprinted at most ``REDRAW_SECONDS`` apart).
The redrawn part never grows past the screen's height (only its last rows
are shown while it streams; the whole block is printed at the end): a live
area taller than the screen cannot be redrawn and would be printed twice.

Model text is escaped first (``engine.visible``: no terminal escape reaches
the terminal) and links show their address (no hidden OSC 8 targets). The
reasoning of a thinking model is shown faint before the answer, as ``run``
shows it (``ReplyView``). Not on a terminal, with ``TERM=dumb`` or
``NO_COLOR``, ``reply_view`` gives ``run``'s plain ``ReplyView`` instead.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING

from engine import Done, Token, visible
from tui.cli.progress import ReplyView, stats_block
from tui.terminal import warn

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.segment import Segment

REDRAW_SECONDS = 0.08  # about twelve redraws a second: smooth to read, cheap on a slow terminal
SYNC_BEGIN, SYNC_END = "\x1b[?2026h", "\x1b[?2026l"  # synchronized output: no flicker where supported


def renders_markdown(environ: Mapping[str, str] | None = None) -> bool:
    """Whether replies are drawn as Markdown: stdout is a terminal that can redraw, and colour is wanted."""
    env = os.environ if environ is None else environ
    if env.get("TERM", "") == "dumb" or env.get("NO_COLOR"):
        return False
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except (OSError, ValueError):
        return False


def reply_view(*, verbose: bool, hide_thinking: bool) -> ReplyView | MarkdownReply:
    """The view for one reply: Markdown on a terminal that can show it, ``run``'s plain text elsewhere."""
    if renders_markdown():
        return MarkdownReply(verbose=verbose, hide_thinking=hide_thinking)
    return ReplyView(verbose=verbose, hide_thinking=hide_thinking)


def markdown_parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt().enable("strikethrough").enable("table")  # the parser rich.markdown uses


def settled(text: str, parser: MarkdownIt) -> int:
    """How many characters at the start of ``text`` are whole Markdown blocks that later text cannot change.

    Everything before the start of the last top-level block (counted on
    whole lines only: half a line may yet turn into anything).
    """
    whole = text[: text.rfind("\n") + 1]
    starts = [t.map[0] for t in parser.parse(whole) if t.level == 0 and t.map and t.nesting >= 0]
    if len(starts) < 2:
        return 0
    offset = 0
    for _ in range(starts[-1]):
        offset = whole.index("\n", offset) + 1
    return offset


def _blank(line: list[Segment]) -> bool:
    return all(not s.text.strip() and (s.style is None or s.style.bgcolor is None) for s in line)


class _Lines:
    """Rendered lines, each ended: printed as they are."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        for line in self.lines:
            yield from line
            yield Segment.line()


class MarkdownReply:
    """An event sink like ``ReplyView`` (tokens, then Done) that renders the answer's Markdown as it grows.

    The live part is drawn by hand, not with ``rich.live``: its lines are
    each ended, so the cursor rests at the start of the line below them and
    going back over them is one ``CSI n F`` (no off-by-one when a line fills
    the width), and it is drawn only from this thread (no refresh thread
    writing while Ctrl+C is handled).
    """

    def __init__(self, *, verbose: bool = False, hide_thinking: bool = False) -> None:
        from rich.console import Console

        self.verbose = verbose
        self.thoughts = ReplyView(hide_thinking=hide_thinking)  # the reasoning: faint plain text, as run
        self.console = Console(file=sys.stdout, highlight=False, emoji=False, markup=False)
        self.parser = markdown_parser()
        self.text = ""  # the answer so far, escaped
        self.printed = 0  # characters of it printed for good
        self.blocks = 0  # groups of blocks printed: the next one needs a blank line before it
        self.live_rows = 0  # lines of the live part on the screen now, above the cursor
        self.next_draw = 0.0  # time.monotonic() of the next redraw allowed

    def __call__(self, event: object) -> None:
        if isinstance(event, Token):
            if event.thinking:
                self.thoughts(Token("", event.thinking))
            if event.text:
                self.thoughts.end_thinking()
                self.text += visible(event.text, keep="\n\t")
                self._draw()
        elif isinstance(event, Done):
            self.thoughts.end_thinking()  # reasoning and no answer (cut off by the token limit)
            self.close()
            if event.dropped_messages:
                warn(f"(the {event.dropped_messages} oldest messages were left out to fit the context)")
            if self.verbose:
                for name, value in stats_block(event):
                    warn(f"{name + ':':<22}{value}")

    def _lines(self, text: str) -> list[list[Segment]]:
        """``text`` rendered at the terminal's width, without blank lines around it (one is put between
        groups of blocks, as rich puts one between the blocks of one document)."""
        from rich.markdown import Markdown

        markdown = Markdown(text, hyperlinks=False)  # "text (address)": where a link goes stays visible
        lines = self.console.render_lines(markdown, pad=False)
        while lines and _blank(lines[0]):
            lines.pop(0)
        while lines and _blank(lines[-1]):
            lines.pop()
        return lines

    def _write(self, lines: list[list[Segment]]) -> None:
        self.console.print(_Lines(lines))

    def _erase(self) -> None:
        if self.live_rows:
            self.console.file.write(f"\x1b[{self.live_rows}F\x1b[J")  # to the live part's first line; clear
            self.live_rows = 0

    def _draw(self) -> None:
        now = time.monotonic()
        if now < self.next_draw:
            return
        rest = self.text[self.printed :]
        done = settled(rest, self.parser)
        gap: list[list[Segment]] = [[]] if self.blocks else []  # the blank line between groups of blocks
        lines = self._lines(rest[done:])
        # below the live part is the cursor's line; above it at least one more: erasing from the top
        # row would clear the whole screen, which tmux (scroll-on-clear) copies into the scrollback
        room = max(self.console.size.height - 2 - len(gap), 1)
        file = self.console.file
        file.write(SYNC_BEGIN)
        self._erase()
        if done and (settled_lines := self._lines(rest[:done])):
            self._write(gap + settled_lines)
            self.blocks += 1
            self.printed += done
            gap = [[]]
        if lines:
            shown = gap + lines[-room:]
            self._write(shown)
            self.live_rows = len(shown)
        file.write(SYNC_END)
        file.flush()
        # a block of thousands of lines takes a while to render: then redraw less often, not lag behind
        self.next_draw = now + max(REDRAW_SECONDS, 3 * (time.monotonic() - now))

    def close(self) -> None:
        """Print what is still live for good (a reply done, stopped or failed); the line after is fresh."""
        self.thoughts.close()
        rest = self.text[self.printed :]
        self.printed = len(self.text)
        with suppress(OSError, ValueError):
            self._erase()
            if lines := self._lines(rest):
                self._write(([[]] if self.blocks else []) + lines)
                self.blocks += 1
            self.console.file.flush()
