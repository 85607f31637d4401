"""Each chat's unsent text: kept in memory at once, written to the chat history off the event loop.

A key press must never lose typed text, and must never wait on SQLite (a
history locked by another app would freeze the screen for up to 5 s). So a
change only updates :class:`Drafts` in memory; soon after (``SAVE_AFTER_S``,
or at once on a chat switch) one thread worker writes every changed draft in
one transaction, and goes round again while more changed meanwhile. There is
never more than one writer, so an older text never lands after a newer one.
Closing the app waits for that writer and writes what is left.

The chat shown is remembered the same way (``app_state`` key ``open_chat``),
so a restart opens the chat that was open, with its draft in the box.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tui.chatstore import ChatStoreError

if TYPE_CHECKING:
    from tui.chatstore import ChatStore, Conversation

log = logging.getLogger("llamadeck.tui")
Key = int | None  # a conversation's id; None: the new chat, not in the history yet
OPEN_CHAT = "open_chat"  # app_state key: the chat shown when the app closed ("new": a new chat)
NEW = "new"
SAVE_AFTER_S = 0.5
CLOSE_WAIT_S = 6.0  # longer than the history's 5 s busy timeout


@dataclass
class Opening:
    """What the Chat tab reads from the history before it shows anything (read in a thread)."""

    chats: list[Conversation] = field(default_factory=list)
    drafts: dict[Key, str] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)  # the box's Up/Down history
    open_chat: str | None = None  # OPEN_CHAT's value
    error: ChatStoreError | None = None


def read_opening(store: ChatStore) -> Opening:
    """The chats, drafts, sent messages and last open chat; a failure is kept to report, never raised."""
    try:
        return Opening(store.conversations(), store.drafts(), store.sent_messages(), store.state(OPEN_CHAT))
    except ChatStoreError as error:
        return Opening(error=error)


def joined(*texts: str) -> str:
    """Texts that must all be kept in one box: the non-blank ones, a line apart."""
    return "\n".join(t for t in texts if t.strip())


_UNSET = object()


class Drafts:
    """The drafts in memory, what is not written yet, and the one writer's state (thread-safe)."""

    def __init__(self) -> None:
        self.texts: dict[Key, str] = {}
        self._dirty: dict[Key, str] = {}
        self._open: object = _UNSET
        self._lock = threading.Lock()
        self._writing = False
        self._idle = threading.Event()
        self._idle.set()

    def get(self, key: Key) -> str:
        return self.texts.get(key, "")

    def load(self, drafts: dict[Key, str]) -> None:
        """Drafts read from the history (before any chat was shown: the pane merges what was typed)."""
        self.texts.update(drafts)

    def put(self, key: Key, text: str) -> bool:
        """Remember ``text`` as ``key``'s draft; True when it changed (a write is due)."""
        with self._lock:
            if self.texts.get(key, "") == text:
                return False
            self.texts[key] = text
            self._dirty[key] = text
            return True

    def opened(self, key: Key) -> None:
        """The chat shown now, for the next start."""
        with self._lock:
            self._open = NEW if key is None else str(key)

    def start_writing(self) -> bool:
        """True when a writer must start: something is due and none runs (it then counts as running)."""
        with self._lock:
            if self._writing or (not self._dirty and self._open is _UNSET):
                return False
            self._writing = True
            self._idle.clear()
            return True

    def write(self, store: ChatStore) -> None:
        """The writer, in a thread: write what is due until nothing is; a failure keeps it due and raises."""
        try:
            while True:
                with self._lock:
                    batch, self._dirty = self._dirty, {}
                    chat, self._open = self._open, _UNSET
                    if not batch and chat is _UNSET:
                        return
                try:
                    if batch:
                        store.save_drafts(batch)
                    if chat is not _UNSET:
                        store.set_state(OPEN_CHAT, str(chat))
                except ChatStoreError:
                    with self._lock:  # kept for the next try, unless newer text came meanwhile
                        self._dirty = {**batch, **self._dirty}
                        if self._open is _UNSET:
                            self._open = chat
                    raise
        finally:
            with self._lock:
                self._writing = False
                self._idle.set()

    def close(self, store: ChatStore) -> str | None:
        """The app is closing: wait for the writer, then write what is left here. A failure is
        returned as one line (no screen is left to show it: the app says it on stderr after it)."""
        self._idle.wait(CLOSE_WAIT_S)
        if self.start_writing():
            try:
                self.write(store)
            except ChatStoreError as error:
                log.warning("drafts not saved: %s", error)
                return f"unsent drafts not saved: {error}"
        return None
