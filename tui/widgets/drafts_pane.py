"""The Chat pane's first layer: whose draft the message box holds, kept on every switch and saved.

``ChatPane`` builds on :class:`DraftsPane`: this layer reads the history at
start (in a thread: chats, drafts, sent messages, the chat left open), moves
each chat's draft in and out of the box as chats change, and saves drafts
through ``chat_drafts.Drafts`` off the event loop. The pane above decides
which chat is shown (``open_chat``, ``new_chat``) and calls ``_leave_chat``
before a switch and ``_enter_chat`` after it.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import TextArea

from tui.chatstore import ChatStoreError
from tui.widgets.chat_drafts import NEW, SAVE_AFTER_S, Drafts, Key, Opening, joined, read_opening
from tui.widgets.history_queue import HistoryQueue

if TYPE_CHECKING:
    from textual.timer import Timer

    from tui.chatstore import ChatStore, Conversation
    from tui.widgets.chat_input import ChatInput


@dataclass
class DraftsNotSaved(Message):
    error: ChatStoreError


class DraftsPane(Horizontal):
    """Drafts and the history's opening for the Chat pane (see the module's docstring)."""

    box: ChatInput  # the message box, set by the pane once mounted (read again at unmount)
    start_model: str | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store: ChatStore | None = None
        self.chat: Conversation | None = None
        self.editing: int | None = None  # the user message an edit replaces (it and all after it)
        self.drafts = Drafts()
        self._save_timer: Timer | None = None
        self.queue = HistoryQueue()  # every other history call of the pane, off the event loop, in order

    # what the pane above provides
    def open_chat(self, chat_id: int) -> None:
        raise NotImplementedError

    def new_chat(self, model: str | None = None, *, keep_text: bool = False) -> None:
        raise NotImplementedError

    def refresh_list(self) -> None:
        raise NotImplementedError

    def report(self, error: BaseException) -> None:
        self.app.report(error)  # type: ignore[attr-defined]

    # --- opening -------------------------------------------------------------------------------

    def attach(self, store: ChatStore) -> None:
        """Called by the app once the history is open: read it in a thread, then show a chat."""
        self.read_history(store)

    @work(thread=True, exit_on_error=False, group="chat-store")
    def read_history(self, store: ChatStore) -> None:
        opening = read_opening(store)
        with suppress(RuntimeError):  # the app closed meanwhile
            self.app.call_from_thread(self._history_read, store, opening)

    def _history_read(self, store: ChatStore, opening: Opening) -> None:
        """Show the chat open when the app closed (else the latest), or a new one on ``start_model``,
        with its draft; text typed before the history opened stays in the box (the new chat's)."""
        if opening.error is not None:
            self.report(opening.error)
        self.store = store
        typed = self.box.draft
        self.drafts.load(opening.drafts)
        if typed.strip() and typed != self.drafts.get(None):
            self.drafts.put(None, joined(self.drafts.get(None), typed))
        self.box.show_draft(self.drafts.get(None))  # the box is the new chat's until another opens
        self.box.sent_history[:0] = opening.sent
        ids = [c.id for c in opening.chats]
        last = int(opening.open_chat) if opening.open_chat and opening.open_chat.isdigit() else None
        left_new = opening.open_chat == NEW and self.drafts.get(None)
        if typed.strip() or self.start_model or not ids or left_new:
            self.new_chat(self.start_model)
        else:
            self.open_chat(last if last in ids else ids[0])
        self.refresh_list()

    def keep_drafts(self) -> None:
        """The app is closing: the box's draft too, all written before the history closes (with
        whatever the queue still holds)."""
        self.queue.close()
        if self.store is not None:
            self.drafts.put(self.chat_key, self.box.draft)
            problem = self.drafts.close(self.store)
            if problem is not None:
                getattr(self.app, "exit_notes", []).append(problem)  # said after the screen is gone

    # --- switching -----------------------------------------------------------------------------

    @property
    def chat_key(self) -> Key:
        """Whose draft the box holds: the chat's id, None for a new chat."""
        return self.chat.id if self.chat else None

    def _leave_chat(self) -> str:
        """Before another chat is shown: keep this one's draft (an edit in progress ends); returns it."""
        text = self.box.draft
        self.drafts.put(self.chat_key, text)
        self.editing = None
        return text

    def _enter_chat(self) -> None:
        """The chat shown now: its draft in the box, remembered as the one open, saved at once."""
        self.box.show_draft(self.drafts.get(self.chat_key))
        self.drafts.opened(self.chat_key)
        self.save_drafts()

    def _to_new_chat(self, *, keep_text: bool) -> None:
        """The new chat is shown next, with its draft; ``keep_text``: and what the box held for the
        chat left (it was deleted), added after."""
        left, carried = self.chat_key, self._leave_chat()
        self.chat = None
        if keep_text and left is not None and carried.strip():
            self.drafts.put(None, joined(self.drafts.get(None), carried))
        self._enter_chat()

    def _new_chat_created(self) -> None:
        """The new chat's first message made it a chat in the history: its draft went with it."""
        assert self.chat is not None
        self.drafts.put(None, "")
        self.drafts.opened(self.chat.id)
        self.save_drafts()

    # --- saving --------------------------------------------------------------------------------

    @on(TextArea.Changed, "#chat-input")
    def draft_changed(self) -> None:
        if self.drafts.put(self.chat_key, self.box.draft) and self._save_timer is None:
            self._save_timer = self.set_timer(SAVE_AFTER_S, self.save_drafts)

    def save_drafts(self) -> None:
        """Write the drafts that changed, in the one writer thread (started unless it runs)."""
        if self._save_timer is not None:
            self._save_timer.stop()
            self._save_timer = None
        if self.store is not None and self.drafts.start_writing():
            self.write_drafts(self.store)

    @work(thread=True, exit_on_error=False, group="chat-drafts")
    def write_drafts(self, store: ChatStore) -> None:
        try:
            self.drafts.write(store)
        except ChatStoreError as error:
            self.post_message(DraftsNotSaved(error))  # never call_from_thread: closing waits for this

    @on(DraftsNotSaved)
    def drafts_not_saved(self, message: DraftsNotSaved) -> None:
        self.report(message.error)  # they stay due: the next change tries again
