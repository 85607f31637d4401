"""The Chat tab's conversation, a ``MessageView`` per message; replies stream as Markdown at a steady rate.

Why not one Textual ``Markdown`` fed by ``MarkdownStream``: it re-parses and
re-lays out the whole reply as it grows (202 tok/s here, 2.45x slower at the end
of a 3.5k-token reply), and a Textual ``Markdown`` per block still mounts a
widget tree per block, whose layout grows with the reply. Here:

- ``ReplyStream.append`` only buffers; a timer per streaming message renders
  once a frame (``FRAME_S``), never per token (``message_view``).
- ``BlockSplitter`` cuts the text into FINISHED top-level blocks and one OPEN
  tail, looking at each new line once; a long fence is finished in pieces of
  ``FENCE_PIECE_LINES`` lines that are drawn as one code box. A finished block
  is rendered (Rich Markdown: parsed, fences highlighted) once, as a
  ``RenderedBlock`` that keeps its lines; only the small tail is rendered
  again, once a frame (``markdown_blocks``, ``markdown_render``).
- Finished blocks go into ``BlockView`` chunks of ``BlockView.CHUNK`` blocks:
  one leaf widget per chunk, so Textual's layout pass stays short however long
  the reply, and a block joining a chunk replays the lines already rendered
  (``block_view``).
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

from pathlib import Path
from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.reactive import reactive

from tui.widgets.markdown_blocks import last_code_block
from tui.widgets.markdown_render import forget_look, warm_highlighting
from tui.widgets.message_view import MessageView, ReplyStream

WARM_AFTER_S = 0.5
"""Seconds after mount to load the lexers in a thread (not during the first frame)."""


class ChatLog(VerticalScroll, can_focus=True):
    """The conversation, newest at the bottom; follows the bottom unless the reader scrolled up."""

    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "select_previous", "Previous message", show=False, id="chat_log.previous"),
        Binding("down,j", "select_next", "Next message", show=False, id="chat_log.next"),
        Binding("end", "select_none", "Follow", show=False, id="chat_log.follow"),
    ]

    selected_index: reactive[int | None] = reactive(None)

    def on_mount(self) -> None:
        self.anchor()
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self.set_timer(
            WARM_AFTER_S, lambda: self.run_worker(warm_highlighting, thread=True, group="chat_log.warm")
        )

    def _theme_changed(self, _theme: object) -> None:
        forget_look(self.app.theme)  # a theme file may have been edited and registered again
        for view in self.message_views():
            view.restyle()

    def clear_messages(self) -> None:
        self.selected_index = None
        self.remove_children()

    def add_message(
        self, role: str, content: str, *, status: str = "complete", stats: str | None = None, **kept: Any
    ) -> MessageView:
        """``kept``: what the history holds besides the text (``thinking``, ``tool_calls``, ``tool_name``)."""
        view = MessageView(role, content, status=status, stats=stats, **kept)
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

    def message_to_copy(self) -> MessageView | None:
        """What "copy message" copies: the selected message, else the last reply, else the last message."""
        view = self.selected()
        if view is None:
            views = [v for v in self.message_views() if v.role == "assistant"] or self.message_views()
            view = views[-1] if views else None
        return view

    def code_to_copy(self) -> str | None:
        """What "copy code" copies: the selected message's last code block, else the newest one there is."""
        selected = self.selected()
        views = [selected] if selected is not None else list(reversed(self.message_views()))
        for view in views:
            code = last_code_block(view.content)
            if code is not None:
                return code
        return None

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
