"""The line above the conversation: the chat's model and whether it is loaded, its settings, its title.

Whether the model is loaded is asked of the engine in a thread after each
change; the answer draws the line again only when it changed, and a model's
name is resolved once ("tiny" is "tiny:latest"), so drawing never loops.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.widgets import Static

from engine import visible

if TYPE_CHECKING:
    from engine import Engine


class ChatHeader(Static):
    """One line: model (loaded or not), system prompt, parameters, title, and an edit in progress."""

    def __init__(self, engine: Engine, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.engine = engine
        self._shown: tuple[str, bool, str, str, bool, str] = ("", False, "", "new chat", False, "")
        self._loaded: set[str] = set()
        self._references: dict[str, str] = {}  # a chat's model name -> the reference it stands for
        self._checking = False

    def show(
        self, model: str, *, system: bool, parameters: str, title: str, editing: bool, reply_format: str = ""
    ) -> None:
        """Draw the line for this chat, then check whether its model is loaded (``reply_format``: named)."""
        self._shown = (model, system, parameters, title, editing, reply_format)
        header = Text(no_wrap=True, overflow="ellipsis")
        if model:
            header.append(visible(model), style="bold")
            loaded = self._references.get(model, model) in self._loaded  # "tiny" is "tiny:latest"
            header.append("  loaded" if loaded else "  not loaded: loads on the first message", style="dim")
        else:
            header.append("no model: press m to pick one, or pull one in the Models tab", style="bold")
        if system:
            header.append("  · system prompt", style="italic")
        if parameters:
            header.append(f"  · {parameters}", style="dim")  # the chat's own, named: temperature 0.2 · ...
        if reply_format:
            header.append(f"  · {visible(reply_format)}", style="italic")
        header.append(f"  · {visible(title)}", style="dim")
        if editing:
            header.append("  · editing: enter resends, esc cancels", style="reverse")
        self.update(header)
        if not self._checking:
            self._checking = True
            self.check_loaded()

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
            loaded = {m.reference for m in self.engine.loaded()}
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
