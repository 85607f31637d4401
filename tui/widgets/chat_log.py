"""The Chat tab's conversation, a ``MessageView`` per message; replies stream as Markdown at a steady rate.

Why not one Textual ``Markdown`` fed by ``MarkdownStream``: it re-parses and
re-lays out the whole reply as it grows (202 tok/s here, 2.45x slower at the end
of a 3.5k-token reply), and a Textual ``Markdown`` per block still mounts a
widget tree per block, whose layout grows with the reply. Here:

- ``ReplyStream.append`` only buffers; a timer per streaming message renders
  once a frame (``FRAME_S``), never per token.
- ``BlockSplitter`` cuts the text into FINISHED top-level blocks and one OPEN
  tail, looking at each new line once; a long fence is finished in pieces of
  ``FENCE_PIECE_LINES`` lines that are drawn as one code box. A finished block
  is rendered (Rich Markdown: parsed, fences highlighted) once, as a
  ``RenderedBlock`` that keeps its lines; only the small tail is rendered
  again, once a frame.
- Finished blocks go into ``BlockView`` chunks of ``BlockView.CHUNK`` blocks:
  one leaf widget per chunk, so Textual's layout pass stays short however long
  the reply, and a block joining a chunk replays the lines already rendered.
- Colours come from the app theme's variables (``Look``); a theme change
  renders the blocks again.

So a frame costs what the tail costs, not what the reply costs. Model text is
always text: Rich Markdown renders ``[bold]`` literally, and plain messages are
``Content``, never console markup.

    log = ChatLog()
    stream = log.start_reply()
    for delta in deltas:
        stream.append(delta)           # O(1), any rate
    stream.finish(status="complete", stats="42 tok · 38.1 tok/s")
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual._context import NoActiveAppError  # Textual's own getters import it from here too
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Static

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console, ConsoleOptions
    from rich.segment import Segment
    from rich.theme import Theme

ROLES = ("user", "assistant", "system", "error")
FRAME_S = 1 / 25
"""Seconds between renders of a streaming reply's tail (25 fps)."""

STATUS_MARKS = {
    "complete": "",
    "streaming": "● streaming",
    "stopped": "■ stopped",
    "interrupted": "⚠ interrupted",
    "error": "✗ error",
}

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^#{1,6}(?:[ \t]|$)")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")


def _fence_open(line: str) -> tuple[str, int, str] | None:
    """(fence char, fence length, info) when ``line`` opens a fenced code block."""
    m = _FENCE.match(line)
    if m is None:
        return None
    marker, info = m.group(2), m.group(3)
    if marker[0] == "`" and "`" in info:  # ```inline``` at the start of a line is a code span
        return None
    return marker[0], len(marker), info.strip()


def _fence_close(line: str, char: str, length: int) -> bool:
    body = line.lstrip(" ")
    if len(line) - len(body) > 3:
        return False
    body = body.rstrip()
    return len(body) >= length and body == char * len(body)


def last_code_block(markdown: str) -> str | None:
    """The contents of the last fenced code block in ``markdown`` (an unclosed last fence counts), or None.

    >>> last_code_block("text\\n```py\\nprint(1)\\n```\\n")
    'print(1)\\n'
    """
    found: str | None = None
    fence: tuple[str, int, int] | None = None  # char, length, indent
    lines: list[str] = []
    for raw in markdown.splitlines():
        line = raw.rstrip("\r")
        if fence is None:
            opened = _fence_open(line)
            if opened is not None:
                fence = (opened[0], opened[1], len(line) - len(line.lstrip(" ")))
                lines = []
        elif _fence_close(line, fence[0], fence[1]):
            found = "".join(f"{x}\n" for x in lines)
            fence = None
        else:
            indent = fence[2]
            lines.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
    if fence is not None:
        found = "".join(f"{x}\n" for x in lines)
    return found


WARM_AFTER_S = 0.5
"""Seconds after mount to load the lexers in a thread (not during the first frame)."""
WARM_LANGUAGES = (
    "python",
    "javascript",
    "typescript",
    "rust",
    "go",
    "c",
    "cpp",
    "java",
    "bash",
    "json",
    "yaml",
    "toml",
)


def warm_highlighting() -> None:
    """Load Markdown and the common lexers off the UI thread: a reply's first fence then stalls no frame."""
    import io

    from rich.console import Console
    from rich.markdown import Markdown as RichMarkdown

    console = Console(file=io.StringIO(), width=80)
    for language in WARM_LANGUAGES:
        console.print(
            RichMarkdown(f"# x\n\n- a\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```{language}\nx = 1\n```\n")
        )


class Piece(str):
    """A finished block's Markdown; a long fence comes in pieces that are drawn as one code box."""

    continues: bool = False  # the rest of the fence before it (it starts with a repeated opening fence)
    joins_next: bool = False  # the fence goes on in the next piece (it ends with an added closing fence)


FENCE_PIECE_LINES = 40
"""An open fence is cut every this many lines, so the tail of a long code block stays small."""


class _GcPause:
    """No full (oldest-generation) garbage collections while replies stream.

    A full collection walks every object of the app and stalled frames and key
    presses by 60-140 ms here, several times a reply. While any reply streams,
    automatic collection is off and each frame collects the young generations
    only (well under a millisecond); at the end it is on again. Textual does
    the same around smooth scrolling (``App.PAUSE_GC_ON_SCROLL``).
    """

    streams = 0
    was_enabled = False

    @classmethod
    def begin(cls) -> None:
        if cls.streams == 0:
            cls.was_enabled = gc.isenabled()
            gc.disable()
        cls.streams += 1

    @classmethod
    def end(cls) -> None:
        cls.streams -= 1
        if cls.streams == 0 and cls.was_enabled:
            gc.enable()

    @classmethod
    def frame(cls) -> None:
        if cls.streams and cls.was_enabled:
            gc.collect(1)


class BlockSplitter:
    """Cuts streamed Markdown into finished top-level blocks and an open tail, looking at each line once.

    A block is finished when a closing fence ends a fenced code block, when a
    fence or an ATX heading starts (the heading line is a block of its own), or
    when a line at column 0 follows a blank line (so list continuations and
    indented code stay with their block; items of one loose list stay together).
    A fence longer than ``FENCE_PIECE_LINES`` is finished in pieces (``Piece``).
    """

    def __init__(self) -> None:
        self._pending = ""  # the open tail: text not yet cut into a block
        self._scan = 0  # where the first line not yet looked at starts, in _pending
        self._fence: tuple[str, int, bool] | None = None  # char, length, nested in a list item
        self._opener = ""  # the line that opened the fence
        self._fence_lines = 0  # lines of the open fence in the tail
        self._reopen = ""  # the opener again, before the tail of a fence cut in pieces
        self._content = False  # the tail has a non-blank line
        self._blank = False  # the last line looked at was blank (after content)
        self._list = False  # the tail's block is a list

    @property
    def tail(self) -> str:
        return self._reopen + self._pending

    @property
    def continuing(self) -> bool:
        """The tail goes on with a fence whose start is already finished."""
        return bool(self._reopen)

    @property
    def in_fence(self) -> bool:
        return self._fence is not None

    def feed(self, text: str) -> list[str]:
        """Add ``text``; return the blocks it finished, in order."""
        out: list[str] = []
        self._pending += text
        while (end := self._pending.find("\n", self._scan)) >= 0:
            start, self._scan = self._scan, end + 1
            self._line(self._pending[start:end].rstrip("\r"), start, end + 1, out)
        return out

    def close(self) -> list[str]:
        """The end of the text: the tail becomes the last block (an unclosed fence renders to the end)."""
        out: list[str] = []
        self._cut(len(self._pending), out)
        self._pending, self._scan, self._fence, self._reopen = "", 0, None, ""
        return out

    def _cut(self, at: int, out: list[str], closer: str = "") -> None:
        """End a block at ``at`` (blank lines alone are no block: they stay, leading the next one)."""
        if self._pending[:at].strip():
            piece = Piece(self._reopen + self._pending[:at] + closer)
            piece.continues, piece.joins_next = bool(self._reopen), bool(closer)
            out.append(piece)
            self._pending = self._pending[at:]
            self._scan -= at
            self._reopen = ""
        self._content = self._blank = self._list = False

    def _line(self, line: str, start: int, end: int, out: list[str]) -> None:
        if self._fence is not None:
            char, length, nested = self._fence
            if _fence_close(line, char, length):
                self._fence = None
                if not nested:
                    self._cut(end, out)
            elif not nested:
                self._fence_lines += 1
                if self._fence_lines >= FENCE_PIECE_LINES:
                    self._cut(end, out, closer=char * length + "\n")
                    self._reopen, self._fence_lines = self._opener, 0
                    self._content = True
            return
        if not line.strip():
            self._blank = self._content
            return
        indent = len(line) - len(line.lstrip(" \t"))
        opened = _fence_open(line)
        if opened is not None:
            nested = self._list and indent > 0
            if not nested:
                self._cut(start, out)
                self._opener, self._fence_lines = self._pending[: end - start].rstrip("\r\n") + "\n", 0
            self._fence = (opened[0], opened[1], nested)
            self._content, self._blank = True, False
            return
        if indent == 0 and _HEADING.match(line):
            self._cut(start, out)
            self._cut(end - start, out)
            return
        is_item = bool(_LIST_ITEM.match(line))
        if self._blank and indent == 0 and not (self._list and is_item):
            self._cut(start, out)
        if not self._content:
            self._list = is_item
        self._content, self._blank = True, False


@dataclass(frozen=True)
class Look:
    """How Markdown is drawn under one app theme: Rich styles from the theme's variables, a code theme."""

    name: str
    dark: bool
    styles: Theme

    @classmethod
    def default(cls) -> Look:
        return cls.of("", True, {})

    @classmethod
    def of(cls, name: str, dark: bool, variables: dict[str, str]) -> Look:
        from rich.color import Color, ColorParseError
        from rich.errors import StyleSyntaxError
        from rich.style import Style
        from rich.theme import Theme

        def color(var: str) -> Color | None:
            try:  # a theme variable such as "#0178D4"; "auto 60%" and the like are left to the default
                return Color.parse(variables[var][:7])
            except (KeyError, ColorParseError):
                return None

        styles = {
            "markdown.code": Style(bold=True, color=color("text-accent")),
            "markdown.link": Style(color=color("text-primary"), underline=True),
            "markdown.link_url": Style(color=color("text-primary"), underline=True),
            "markdown.item.bullet": Style(bold=True, color=color("text-accent")),
            "markdown.item.number": Style(bold=True, color=color("text-accent")),
            "markdown.table.border": Style(color=color("primary")),
            "markdown.table.header": Style(bold=True, color=color("text-primary")),
            "markdown.block_quote": Style(italic=True, color=color("text-secondary")),
            "markdown.hr": Style(color=color("primary")),
        }
        for level in range(1, 7):
            heading = Style(color=color(f"markdown-h{level}-color"))
            with contextlib.suppress(StyleSyntaxError):  # an odd text-style in a user's theme: colour alone
                heading = Style.parse(variables.get(f"markdown-h{level}-text-style", "bold")) + heading
            styles[f"markdown.h{level}"] = heading
        styles["markdown.h1.border"] = Style(color=color("markdown-h1-color"))
        return cls(name, dark, Theme(styles, inherit=True))


_LOOKS: dict[str, Look] = {}


def app_look(app: App[object]) -> Look:
    """The Look of the app's current theme, made once per theme name (a frame asks for it)."""
    look = _LOOKS.get(app.theme)
    if look is None:
        theme = app.current_theme
        look = _LOOKS[app.theme] = Look.of(theme.name, theme.dark, app.theme_variables)

    return look


class RenderedBlock:
    """One Markdown block as a Rich renderable, rendered (parsed, highlighted) once per width.

    Textual renders a renderable twice (to measure, then to paint) and a chunk
    is re-laid out when a block joins it: those passes replay the lines of the
    first. ``renders`` counts the real renders, so tests can check that
    streaming never re-renders a finished block.
    """

    def __init__(self, source: str, look: Look, *, continues: bool = False, joins_next: bool = False) -> None:
        self.source = source
        self.look = look
        self.continues = continues or getattr(source, "continues", False)
        self.joins_next = joins_next or getattr(source, "joins_next", False)
        self.renders = 0
        self._width = -1
        self._lines: list[list[Segment]] = []

    def lines(self, console: Console, options: ConsoleOptions) -> list[list[Segment]]:
        if options.max_width != self._width:
            from rich.markdown import Markdown as RichMarkdown

            code_theme = "monokai" if self.look.dark else "default"
            markdown = RichMarkdown(self.source, code_theme=code_theme, hyperlinks=True)
            with console.use_theme(self.look.styles):
                lines = console.render_lines(markdown, options.update(height=None), pad=False)
            lines = _trim(lines)
            # the pieces of a long fence: one code box, without the padding lines where they meet
            self._lines = lines[int(self.continues) : len(lines) - int(self.joins_next)]
            self._width = options.max_width
            self.renders += 1
        return self._lines


def _trim(lines: list[list[Segment]]) -> list[list[Segment]]:
    """Without blank lines at the top and the bottom (a chunk puts one blank line between blocks)."""

    def blank(line: list[Segment]) -> bool:
        return all(not seg.text.strip() and not (seg.style and seg.style.bgcolor) for seg in line)

    start, end = 0, len(lines)
    while start < end and blank(lines[start]):
        start += 1
    while end > start and blank(lines[end - 1]):
        end -= 1
    return lines[start:end]


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


class ReplyStream:
    """The feeder of a streaming assistant message: ``append`` buffers, the view renders per frame."""

    def __init__(self, view: MessageView) -> None:
        self.view = view
        self._new: list[str] = []  # appended since the last frame
        self._old: list[str] = []  # taken by earlier frames
        self._finish: tuple[str, str | None] | None = None
        self._rendered = asyncio.Event()

    def append(self, text: str) -> None:
        if text and self._finish is None:
            self._new.append(text)

    @property
    def text(self) -> str:
        return "".join(self._old) + "".join(self._new)

    @property
    def finished(self) -> bool:
        return self._finish is not None

    def finish(self, *, status: str = "complete", stats: str | None = None) -> None:
        """Flush, render the final Markdown, show the status mark and the stats line."""
        if self._finish is None:
            self._finish = (status, stats)
            self.view.request_flush()

    async def wait_rendered(self) -> None:
        """Until the final render after ``finish`` is on screen (for tests and the bench)."""
        await self._rendered.wait()

    def _take(self) -> str:
        if not self._new:
            return ""
        delta = "".join(self._new)
        self._new.clear()
        self._old.append(delta)
        return delta


class MessageView(Widget):
    """One message: a header (role, status mark), the body, and a stats line."""

    status: reactive[str] = reactive("complete")

    def __init__(
        self, role: str, content: str = "", *, status: str = "complete", stats: str | None = None
    ) -> None:
        super().__init__(classes=f"-{role if role in ROLES else 'system'}")
        self.role = role
        self._content = content
        self._stats = stats
        self.set_reactive(MessageView.status, status)
        self.stream: ReplyStream | None = None
        self._splitter = BlockSplitter()
        self._tail: BlockView | None = None
        self._tail_text = ""
        self._timer: Timer | None = None
        self._lock = asyncio.Lock()
        self._gc_paused = False

    @property
    def content(self) -> str:
        return self.stream.text if self.stream is not None else self._content

    @property
    def stats(self) -> str | None:
        return self._stats

    @property
    def markdown(self) -> bool:
        return self.role == "assistant"

    def chunks(self) -> list[BlockView]:
        """The widgets of the finished blocks (not the open tail)."""
        return [w for w in self.children if isinstance(w, BlockView) and w is not self._tail]

    def blocks(self) -> list[RenderedBlock]:
        """The finished blocks, in order."""
        return [block for chunk in self.chunks() for block in chunk.blocks]

    def compose(self) -> ComposeResult:
        yield Static(self._header(), classes="header")
        if self.status == "streaming":
            self._tail = BlockView([], classes="tail")
            yield self._tail
        elif self.markdown:
            yield BlockView([RenderedBlock(self._content, self._look())])
        else:
            yield Static(Content(self._content), classes="text")
        yield Static(Content(self._stats or ""), classes="stats")

    def on_mount(self) -> None:
        self.query_one(".stats").display = bool(self._stats)
        if self.stream is not None and self._tail is not None:
            self._timer = self.set_interval(FRAME_S, self.flush)
            if ChatLog.PAUSE_GC_WHILE_STREAMING:
                _GcPause.begin()
                self._gc_paused = True
            if self.stream.finished:
                self.request_flush()

    def _look(self) -> Look:
        try:
            return app_look(self.app)
        except NoActiveAppError:  # built outside a running app
            return Look.default()

    def _header(self) -> Content:
        mark = STATUS_MARKS.get(self.status, self.status)
        return Content.assemble((self.role, "bold"), ("  " + mark) if mark else "")

    def watch_status(self, status: str) -> None:
        self.set_class(status not in ("complete", "streaming"), "-flagged")
        if self.is_mounted:
            self.query_one(".header", Static).update(self._header())

    def _resume_gc(self) -> None:
        if self._gc_paused:
            self._gc_paused = False
            _GcPause.end()

    def on_unmount(self) -> None:
        self._resume_gc()
        if self.stream is not None:
            self.stream._rendered.set()  # removed mid-stream (chat cleared): release waiters

    def request_flush(self) -> None:
        if self.is_mounted:
            self.call_later(self.flush)

    async def flush(self) -> None:
        """One frame: cut finished blocks off the new text, mount them once, re-render the tail."""
        stream = self.stream
        if stream is None or self._tail is None:
            return
        async with self._lock:
            if self._tail is None:
                return
            if self._gc_paused:
                _GcPause.frame()
            delta = stream._take()
            final = stream._finish
            blocks = self._splitter.feed(delta) if delta else []
            if final is not None:
                blocks += self._splitter.close()
            look = self._look()
            if blocks:
                await self._add_blocks([RenderedBlock(block, look) for block in blocks])
            tail = self._splitter.tail
            if final is not None:
                await self._tail.remove()
                self._tail = None
                if self._timer is not None:
                    self._timer.stop()
                self._resume_gc()
                self._content = stream.text
                status, stats = final
                self._stats = stats
                stats_line = self.query_one(".stats", Static)
                stats_line.update(Content(stats or ""))
                stats_line.display = bool(stats)
                self.status = status
                self.call_after_refresh(stream._rendered.set)
            elif blocks or tail != self._tail_text:
                continues = self._splitter.continuing
                self._tail.show([RenderedBlock(tail, look, continues=continues)] if tail.strip() else [])
                self._tail_text = tail

    async def _add_blocks(self, blocks: list[RenderedBlock]) -> None:
        """Put finished blocks into the last chunk while it has room, else into new chunks."""
        chunks = self.chunks()
        last = chunks[-1] if chunks else None
        new: list[BlockView] = []
        for block in blocks:
            if last is None or last.full:
                last = BlockView([])
                new.append(last)
            last.blocks.append(block)
        for chunk in {*chunks[-1:], *new}:
            chunk.show(chunk.blocks)
        if new:
            await self.mount_all(new, before=self._tail)

    def restyle(self) -> None:
        """Render the blocks again in the app's theme (its colours, dark or light code highlighting)."""
        look = self._look()
        for chunk in self.query_children(BlockView):
            if any(block.look != look for block in chunk.blocks):
                chunk.show(
                    [RenderedBlock(block.source, look) for block in chunk.blocks]
                )  # a Piece keeps its marks


class ChatLog(VerticalScroll, can_focus=True):
    """The conversation, newest at the bottom; follows the bottom unless the reader scrolled up."""

    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "select_previous", "Previous message", show=False, id="chat_log.previous"),
        Binding("down,j", "select_next", "Next message", show=False, id="chat_log.next"),
        Binding("end", "select_none", "Follow", show=False, id="chat_log.follow"),
    ]

    PAUSE_GC_WHILE_STREAMING: ClassVar[bool] = True
    """Full garbage collections wait until no reply streams (see ``_GcPause``)."""

    selected_index: reactive[int | None] = reactive(None)

    def on_mount(self) -> None:
        self.anchor()
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self.set_timer(
            WARM_AFTER_S, lambda: self.run_worker(warm_highlighting, thread=True, group="chat_log.warm")
        )

    def _theme_changed(self, _theme: object) -> None:
        _LOOKS.pop(self.app.theme, None)  # a theme file may have been edited and registered again
        for view in self.message_views():
            view.restyle()

    def clear_messages(self) -> None:
        self.selected_index = None
        self.remove_children()

    def add_message(
        self, role: str, content: str, *, status: str = "complete", stats: str | None = None
    ) -> MessageView:
        view = MessageView(role, content, status=status, stats=stats)
        self.mount(view)
        return view

    def start_reply(self) -> ReplyStream:
        """Append an empty assistant message in the streaming state and return its feeder."""
        view = MessageView("assistant", status="streaming")
        stream = view.stream = ReplyStream(view)
        self.mount(view)
        return stream

    def message_views(self) -> list[MessageView]:
        return list(self.query_children(MessageView))

    def selected(self) -> MessageView | None:
        """The message the user moved to (highlighted), or None: then the last one is meant."""
        views = self.message_views()
        if self.selected_index is None or not views:
            return None
        return views[min(self.selected_index, len(views) - 1)]

    def action_select_previous(self) -> None:
        count = len(self.message_views())
        if count:
            index = count - 1 if self.selected_index is None else max(0, self.selected_index - 1)
            self.selected_index = index

    def action_select_next(self) -> None:
        count = len(self.message_views())
        if self.selected_index is not None:
            index = self.selected_index + 1
            self.selected_index = None if index >= count else index

    def action_select_none(self) -> None:
        """Back to the newest message, following the bottom."""
        self.selected_index = None
        self.anchor()

    def watch_selected_index(self, old: int | None, new: int | None) -> None:
        views = self.message_views()
        for index in (old, new):
            if index is not None and index < len(views):
                views[index].set_class(index == new, "-selected")
        if new is None:
            self.anchor()
        elif new < len(views):
            self.release_anchor()
            self.scroll_to_widget(
                views[new], animate=False, top=views[new].outer_size.height > self.size.height
            )
