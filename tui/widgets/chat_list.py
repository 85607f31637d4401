"""The Chat tab's sidebar: a search box over the list of chats, and a line that says why the list is empty.

Each chat is two lines, its title and "age · model", each cut with an ellipsis
at the sidebar's width (``text-wrap: nowrap`` in the .tcss: an OptionList
wraps Rich text whatever its ``no_wrap`` says). A search that matches nothing
says so ("no chat matches …"), instead of a blank list that looks like every
chat is gone. How wide the sidebar is, and whether it sits beside the
conversation or over it, is the Chat pane's CSS (``chat_pane.tcss``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from engine import visible
from tui.tables import ago

if TYPE_CHECKING:
    from tui.chatstore import Conversation

NO_CHATS = "No chats yet: write a message to start one."


def no_match(search: str) -> str:
    return f"no chat matches “{visible(search)}”\nesc clears the search"


def entry(chat: Conversation) -> Text:
    """A chat in the list: its title, then when and with which model (dim)."""
    prompt = Text(visible(chat.title))
    model = chat.model.rsplit("/", 1)[-1]
    prompt.append(f"\n{ago(chat.updated)} · {visible(model)}", style="dim")
    return prompt


class ChatSidebar(Vertical):
    """The search box, the list and the empty list's line; the pane fills it with ``show``."""

    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ search chats", id="chat-search", compact=True)
        yield Static("", id="chat-list-empty")  # under the search; the list stays focusable
        yield OptionList(id="chat-list")

    @property
    def search(self) -> str:
        return self.query_one("#chat-search", Input).value.strip()

    def show(self, chats: list[Conversation], current: str | None) -> None:
        """These chats, ``current`` (an id, or None) highlighted; an empty list says why it is empty."""
        listing = self.query_one("#chat-list", OptionList)
        listing.clear_options()
        listing.add_options(Option(entry(chat), id=str(chat.id)) for chat in chats)
        ids = [str(c.id) for c in chats]
        if current in ids:
            listing.highlighted = ids.index(current)
        empty = self.query_one("#chat-list-empty", Static)
        search = self.search
        empty.update(Text(no_match(search) if search else NO_CHATS))
        empty.display = not chats
        self.set_class(bool(search) and not chats, "-no-match")

    def highlighted(self) -> str | None:
        listing = self.query_one("#chat-list", OptionList)
        return listing.highlighted_option.id if listing.highlighted_option else None

    def clear_search(self) -> bool:
        """Empty the search box (the list shows every chat again); whether it held anything."""
        box = self.query_one("#chat-search", Input)
        had = bool(box.value)
        box.value = ""
        return had
