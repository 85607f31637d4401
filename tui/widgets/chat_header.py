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
        self._shown: tuple[str, bool, str, str, bool, str] = ("", False, "", "new chat", False, "")
        self._loaded: dict[str, tuple[int, int]] = {}  # reference -> (memory, context) of the models loaded
        self.gauge = Gauge()
        self._references: dict[str, str] = {}  # a chat's model name -> the reference it stands for
        self._checking = False

    def show(
        self, model: str, *, system: bool, parameters: str, title: str, editing: bool, reply_format: str = ""
    ) -> None:
        """Draw the line for this chat, then check whether its model is loaded (``reply_format``: named).

        The gauge ends the line (``fit_line``): a short line cuts the title first, never the figures."""
        self._shown = (model, system, parameters, title, editing, reply_format)
        header = Text(no_wrap=True, overflow="ellipsis")
        gauge: list[Text] = []
        hint = False
        if model:
            header.append(visible(model), style="bold")
            row = self._loaded.get(self._references.get(model, model))  # "tiny" is "tiny:latest"
            shown = self.gauge if row is None else replace(self.gauge, context=row[1])
            parts = figures(shown, row[0] if row is not None else None)
            if self.gauge.loading is not None:  # said once, at the right end
                gauge.append(Text(loading_text(self.gauge.loading, name=False), style="bold"))
            elif row is not None:
                header.append("  loaded", style="dim")
            else:
                header.append("  not loaded", style="dim")
            if self.gauge.loading is None:
                gauge += [Text(part, style="dim") for part in parts or ["loads on the first message"]]
                hint = not parts  # the first to go on a short line
        else:
            header.append("no model: press m to pick one, or pull one in the Models tab", style="bold")
        if editing:
            header.append("  · editing: enter resends, esc cancels", style="reverse")
        settings_at = len(header.plain)
        if system:
            header.append("  · system prompt", style="italic")
        if parameters:
            header.append(f"  · {parameters}", style="dim")  # the chat's own, named: temperature 0.2 · ...
        if reply_format:
            header.append(f"  · {visible(reply_format)}", style="italic")
        title_at = len(header.plain)
        header.append(f"  · {visible(title)}", style="dim")
        self.update(fit_line(header, (settings_at, title_at), gauge, self.content_size.width, lead=not hint))
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


def fit_line(left: Text, cuts: tuple[int, int], gauge: list[Text], width: int, *, lead: bool = True) -> Text:
    """The header in ``width`` cells (0: not laid out yet): ``left`` (the chat's settings from ``cuts[0]``,
    its title from ``cuts[1]``), the gauge at the right end. When the line is short the title is cut,
    then the gauge keeps its first figure (the context used, or the load's progress), then the title
    goes, then the settings, then the gauge: the model, an edit in progress and the first figure stay.
    ``lead`` False: the first figure is only a hint, gone as soon as the others."""
    core, bare = left[: cuts[0]], left[: cuts[1]]
    first = gauge[:1] if lead else []
    title = left.cell_len - bare.cell_len
    tries: list[tuple[Text, list[Text]]] = [
        (left, gauge),
        (left, first),
        (bare, first),
        (core, first),
        (core, []),
    ]
    for line, parts in tries:
        right = Text(" · ", style="dim").join(parts)
        need = line.cell_len - (title - min(title, 12) if line is left else 0)
        if width <= 0 or need + (right.cell_len + 2 if parts else 0) <= width:
            return right_aligned(line, right, width)
    return right_aligned(core, Text(), width)


def right_aligned(left: Text, right: Text, width: int) -> Text:
    """``left`` cut to leave room for ``right``, which ends the line (``width`` 0: not laid out yet)."""
    if width <= 0:
        return Text.assemble(left, "  ", right, no_wrap=True) if right else left
    left = left.copy()
    left.truncate(max(width - right.cell_len - 2, 8) if right else width, overflow="ellipsis")
    if not right:
        return left
    line = Text.assemble(left, " " * max(width - left.cell_len - right.cell_len, 2), right, no_wrap=True)
    line.truncate(width, overflow="ellipsis")
    return line
