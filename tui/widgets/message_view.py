"""One message of the conversation, and the feeder that streams a reply into it a frame at a time.

``ReplyStream.append`` only buffers; a timer per streaming message renders once
a frame (``FRAME_S``), never per token: new finished blocks are rendered once and
mounted into ``BlockView`` chunks, and only the small open tail is rendered again.
A thinking model's reasoning (``ReplyStream.think``) goes into a ``ThinkingView``
above the answer, folded once the answer starts; a reply's tool calls
(``ReplyStream.calls``) are shown as calls where they came (``chat_tools``).
A message from the history brings its kept reasoning (folded), its calls, and
a ``"tool"`` message shows as the result of its tool.
While any reply streams, full garbage collections wait (``_GcPause``).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual._context import NoActiveAppError  # Textual's own getters import it from here too
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Static

from tui.widgets.block_view import BlockView
from tui.widgets.chat_thinking import ThinkingView
from tui.widgets.chat_tools import KeptThinking, ToolCallView, ToolResultView
from tui.widgets.image_thumbs import ImageThumbs
from tui.widgets.markdown_blocks import BlockSplitter
from tui.widgets.markdown_render import Look, RenderedBlock, app_look

if TYPE_CHECKING:
    from tui.chatstore import StoredImage
    from tui.frames import FramePacer

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


class ReplyStream:
    """The feeder of a streaming assistant message: ``append`` buffers, the view renders per frame."""

    def __init__(self, view: MessageView) -> None:
        self.view = view
        self._new: list[str] = []  # appended since the last frame
        self._old: list[str] = []  # taken by earlier frames
        self._thoughts: list[str] = []  # reasoning since the last frame
        self._calls: list[dict[str, Any]] = []  # tool calls since the last frame
        self._finish: tuple[str, str | None] | None = None
        self._rendered = asyncio.Event()

    def append(self, text: str) -> None:
        if text and self._finish is None:
            self._new.append(text)

    def think(self, text: str) -> None:
        """Reasoning, shown apart above the answer."""
        if text and self._finish is None:
            self._thoughts.append(text)

    def calls(self, calls: Sequence[dict[str, Any]]) -> None:
        """Tool calls the reply made (Ollama's shape), shown as calls after the text so far."""
        if calls and self._finish is None:
            self._calls.extend(calls)

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

    def _take_thoughts(self) -> str:
        thoughts = "".join(self._thoughts)
        self._thoughts.clear()
        return thoughts

    def _take(self) -> str:
        if not self._new:
            return ""
        delta = "".join(self._new)
        self._new.clear()
        self._old.append(delta)
        return delta


class MessageView(Widget):
    """One message: a header (role, status mark), the body, and a stats line."""

    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")

    PAUSE_GC_WHILE_STREAMING: ClassVar[bool] = True
    """Full garbage collections wait until no reply streams (see ``_GcPause``)."""

    status: reactive[str] = reactive("complete")

    def __init__(
        self,
        role: str,
        content: str = "",
        *,
        status: str = "complete",
        stats: str | None = None,
        thinking: str = "",
        tool_calls: Sequence[dict[str, Any]] = (),
        tool_name: str | None = None,
        images: Sequence[StoredImage] = (),
    ) -> None:
        super().__init__(classes=f"-{role if role in ROLES else 'system'}")
        self.images = tuple(images)  # a user message's attached images, drawn as thumbnails
        self.role = role
        self._content = content
        self._stats = stats
        self._kept = (thinking, tuple(tool_calls), tool_name)  # from the history
        self.set_reactive(MessageView.status, status)
        self.stream: ReplyStream | None = None
        self._splitter = BlockSplitter()
        self._tail: BlockView | None = None
        self._tail_text = ""
        self._timer: Timer | None = None
        self._lock = asyncio.Lock()
        self._gc_paused = False
        self._flushed_at = float("-inf")  # the last frame, on the pacer's clock
        self.thinking: ThinkingView | None = None

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
        thinking, calls, tool_name = self._kept
        yield Static(self._header(), classes="header")
        if self.images:
            yield ImageThumbs(self.images)
        if thinking.strip():
            self.thinking = KeptThinking(thinking)
            yield self.thinking
        if self.status == "streaming":
            self._tail = BlockView([], classes="tail")
            yield self._tail
        elif self.role == "tool":
            yield ToolResultView(self._content, tool_name)
        elif self.markdown:
            if self._content or not calls:
                yield BlockView([RenderedBlock(self._content, self._look())])
        else:
            yield Static(Content(self._content), classes="text")
        yield from (ToolCallView(call) for call in calls)
        yield Static(Content(self._stats or ""), classes="stats")

    def on_mount(self) -> None:
        for stats in self.query(".stats"):  # none when the chat was cleared while this mounted
            stats.display = bool(self._stats)
        if self.stream is not None and self._tail is not None:
            self._timer = self.set_interval(FRAME_S, self._frame_due)
            if self.PAUSE_GC_WHILE_STREAMING:
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

    def show_note(self, note: str) -> None:
        """While a reply waits for its first token: what it waits for (a load, the prompt) beside the role."""
        if self.is_mounted and self.status == "streaming":
            self.query_one(".header", Static).update(Content.assemble((self.role, "bold"), "  " + note))

    def _resume_gc(self) -> None:
        if self._gc_paused:
            self._gc_paused = False
            _GcPause.end()

    def on_unmount(self) -> None:
        self._resume_gc()
        if self.stream is not None:
            self.stream._rendered.set()  # removed mid-stream (chat cleared): release waiters

    async def _frame_due(self) -> None:
        """The frame timer: render now, unless the user is typing (then after the next key's frame)."""
        pacer = self._pacer()
        if pacer is not None and pacer.hold(self._flushed_at, self.request_flush):
            return
        await self.flush()

    def _pacer(self) -> FramePacer | None:
        return getattr(self.screen, "pacer", None)  # the app's main screen has one; none in a bare App

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
            pacer = self._pacer()
            self._flushed_at = pacer.clock() if pacer is not None else 0.0
            if self._gc_paused:
                _GcPause.frame()
            await self._think(stream._take_thoughts())
            delta = stream._take()
            calls, stream._calls = stream._calls, []
            final = stream._finish
            if self.thinking is not None and delta.strip():
                self.thinking.fold()  # the answer started
            blocks = self._splitter.feed(delta) if delta else []
            if final is not None:
                blocks += self._splitter.close()
            look = self._look()
            if calls:  # the text before a call is whole: its blocks go first, then the call
                blocks += self._splitter.close()
            if blocks:
                await self._add_blocks([RenderedBlock(block, look) for block in blocks])
            if calls:
                await self.mount_all([ToolCallView(call) for call in calls], before=self._tail)
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

    async def _think(self, thoughts: str) -> None:
        """Reasoning of this frame: into the ThinkingView, mounted above the answer when the first comes."""
        if thoughts:
            if self.thinking is None:
                self.thinking = ThinkingView()
                await self.mount(self.thinking, after=self.query_one(".header"))
            self.thinking.add(thoughts)
        if self.thinking is not None:
            self.thinking.show()

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
