"""The line above the conversation: the chat's model and whether it is loaded, its gauge, settings, title.

Whether the model is loaded (and its memory) is asked of the engine in a
thread after each change; the answer draws the line again only when it
changed, and a model's name is resolved once ("tiny" is "tiny:latest"), so
drawing never loops. The gauge (``chat_gauge``: a load in flight, the
context this chat uses, the last reply's speed) is given by the pane.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.widgets import Static

from engine import visible
from tui.widgets.chat_gauge import Gauge, figures, loading_text

if TYPE_CHECKING:
    from engine import Engine


class ChatHeader(Static):
    """One line: model (loaded or not), system prompt, parameters, title, and an edit in progress."""

    def __init__(self, engine: Engine, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.engine = engine
        self._shown: tuple[str, bool, int, str, bool, str] = ("", False, 0, "new chat", False, "")
        self._loaded: dict[str, tuple[int, int]] = {}  # reference -> (memory, context) of the models loaded
        self.gauge = Gauge()
        self._references: dict[str, str] = {}  # a chat's model name -> the reference it stands for
        self._checking = False

    def show(
        self, model: str, *, system: bool, parameters: int, title: str, editing: bool, reply_format: str = ""
    ) -> None:
        """Draw the line for this chat, then check whether its model is loaded (``reply_format``: named).

        The chat's settings and title go left (cut with an ellipsis when the line is short), the gauge
        right, so the figures stay in view at any width."""
        self._shown = (model, system, parameters, title, editing, reply_format)
        header = Text(no_wrap=True, overflow="ellipsis")
        gauge = Text(no_wrap=True)
        if model:
            header.append(visible(model), style="bold")
            row = self._loaded.get(self._references.get(model, model))  # "tiny" is "tiny:latest"
            shown = self.gauge if row is None else replace(self.gauge, context=row[1])
            parts = figures(shown, row[0] if row is not None else None)
            if self.gauge.loading is not None:
                header.append("  loading", style="dim")
                gauge.append(loading_text(self.gauge.loading, name=False), style="bold")
            elif row is not None:
                header.append("  loaded", style="dim")
            else:
                header.append(
                    "  not loaded" if parts else "  not loaded: loads on the first message", style="dim"
                )
            if self.gauge.loading is None:
                gauge.append(" · ".join(parts), style="dim")
        else:
            header.append("no model: press m to pick one, or pull one in the Models tab", style="bold")
        if system:
            header.append("  · system prompt", style="italic")
        if parameters:
            header.append(f"  · {parameters} parameter(s)", style="dim")
        if reply_format:
            header.append(f"  · {visible(reply_format)}", style="italic")
        header.append(f"  · {visible(title)}", style="dim")
        if editing:
            header.append("  · editing: enter resends, esc cancels", style="reverse")
        self.update(right_aligned(header, gauge, self.content_size.width))
        if not self._checking:
            self._checking = True
            self.check_loaded()

    def on_resize(self) -> None:
        self._show_again()

    def show_gauge(self, gauge: Gauge) -> None:
        """The chat's gauge changed (a load's progress, a count, a reply's figures): draw the line again."""
        if gauge != self.gauge:
            self.gauge = gauge
            self._show_again()

    def _show_again(self) -> None:
        model, system, parameters, title, editing, reply_format = self._shown
        self.show(
            model,
            system=system,
            parameters=parameters,
            title=title,
            editing=editing,
            reply_format=reply_format,
        )

    @work(thread=True, exit_on_error=False, group="chat-loaded")
    def check_loaded(self) -> None:
        model, learned = self._shown[0], False
        try:
            loaded = {m.reference: (m.memory, m.context) for m in self.engine.loaded()}  # figures that stay
            if model and model not in self._references:
                with suppress(Exception):  # a model that is not here: never loaded, the name as it is
                    self._references[model] = self.engine.resolve(model).reference
                    learned = True
        except Exception:  # noqa: BLE001 - only a hint in the header
            return
        finally:
            self._checking = False
        if loaded != self._loaded or learned:  # learned once per name: no render loop
            self._loaded = loaded
            self.app.call_from_thread(self._show_again)


def right_aligned(left: Text, right: Text, width: int) -> Text:
    """``left`` cut to leave room for ``right``, which ends the line (``width`` 0: not laid out yet)."""
    if not right:
        return left
    if width <= 0:
        return Text.assemble(left, "  ", right, no_wrap=True)
    room = max(width - right.cell_len - 2, 8)
    left.truncate(room, overflow="ellipsis")
    line = Text.assemble(left, " " * max(width - left.cell_len - right.cell_len, 2), right, no_wrap=True)
    line.truncate(width, overflow="ellipsis")
    return line
