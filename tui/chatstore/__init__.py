"""The Chat tab's conversations, kept in SQLite: ``$XDG_DATA_HOME/llamadeck/chats.db``.

One :class:`ChatStore` per app; the TUI calls it from thread workers, and a
second app (or ``llamadeck`` process) may have the same file open, so:

* WAL mode, ``busy_timeout`` of 5 s, foreign keys on; every write is one
  ``BEGIN IMMEDIATE`` transaction (a writer waits for another instead of
  failing half-way), and one connection per store behind a lock
  (``check_same_thread=False``) makes it safe from any thread.
* The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS`
  holds one step per version (oterm's ``store/upgrades``), applied at open in
  one transaction. A database from a newer llamadeck is refused and left
  untouched (not even switched to WAL).
* A reply still ``"streaming"`` when a store opens was cut off by a crash: it
  becomes ``"interrupted"`` with what came kept. (A second app opening while
  the first streams does the same to a live reply; the streaming app's next
  :meth:`ChatStore.update_reply`, about a second later, sets it back.)
* Text is kept verbatim: any Unicode, NUL characters, megabytes. Only lone
  surrogates, which UTF-8 cannot hold, become U+FFFD. Rows a foreign tool wrote
  (bad UTF-8, blobs, broken JSON) read as text or empty settings; they never
  break a listing.

Every failure a user could meet is a :class:`ChatStoreError` with a one-line
message; a wrong ``role`` or ``status`` is a bug and a ``ValueError``.
:meth:`ChatStore.open_or_fresh` is how the app opens its history: it always
gives a store, plus a warning to show when it had to set a damaged file aside
or fall back to memory.

Example::

    store, warning = ChatStore.open_or_fresh(default_chat_db())
    chat = store.create("gemma3:270m")
    store.add_message(chat.id, "user", "Hello")
    reply = store.begin_reply(chat.id)
    store.update_reply(reply, "Hi")
    store.finish_reply(reply, "Hi there!", status="complete", stats={"tokens_per_second": 41.5})
    store.rename(chat.id, title_from("Hello"))
    store.save_drafts({chat.id: "half a question", None: "the new chat's"})  # unsent text, kept

Drafts (each chat's unsent text, the new chat's under None), a small
key-value ``state`` for the app, and ``sent_messages`` (the message box's
Up/Down history) live here too, so nothing typed is lost to a restart.

The package, one job a module: ``opening`` (where the file is, how it opens:
checks, migrations at open, setting a damaged file aside), ``history``
(``ChatStore``: transactions, conversations, messages, search), ``schema``
(the migrations), ``images`` (images of messages, stored once by hash), ``records``
(the data types, errors and titles), ``rows``
(values to and from SQLite) and ``export`` (the Markdown transcript).
"""

from __future__ import annotations

from tui.chatstore.export import render_markdown
from tui.chatstore.history import ChatStore
from tui.chatstore.images import image
from tui.chatstore.opening import BUSY_TIMEOUT_S, default_chat_db
from tui.chatstore.records import (
    DEFAULT_TITLE,
    FINISHED,
    ROLES,
    STATUSES,
    TITLE_LENGTH,
    ChatStoreError,
    Conversation,
    DamagedChatStore,
    NewerChatStore,
    StoredImage,
    StoredMessage,
    title_from,
)
from tui.chatstore.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_S",
    "DEFAULT_TITLE",
    "FINISHED",
    "MIGRATIONS",
    "ROLES",
    "SCHEMA_VERSION",
    "STATUSES",
    "TITLE_LENGTH",
    "ChatStore",
    "ChatStoreError",
    "Conversation",
    "DamagedChatStore",
    "NewerChatStore",
    "StoredImage",
    "StoredMessage",
    "default_chat_db",
    "image",
    "render_markdown",
    "title_from",
]
