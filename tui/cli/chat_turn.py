"""One reply of ``llamadeck chat``: the engine on a worker thread, drawn here, kept in the chat history.

Ctrl+C stops the reply, not the chat: while a reply streams, SIGINT only
cancels its token (a handler that raises nothing, so no KeyboardInterrupt
lands half-way through a redraw or a save); what was shown is what is kept,
marked ``stopped``. A second Ctrl+C while the engine is still stopping raises
KeyboardInterrupt as usual and the command ends (130).

The history is written as in the app: the reply row exists before the first
token (``streaming``), is saved about once a second, and finished with how it
ended, so a ``kill -9`` loses at most the last second of it (the next opening
of the history marks it ``interrupted``). A history that cannot be written
is said once; the chat goes on unsaved.
"""

from __future__ import annotations

import queue
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tui.cli.inline_render import reply_view
from tui.cli.interrupt import GRACE_SECONDS, start_worker
from tui.terminal import error, out, warn

if TYPE_CHECKING:
    from engine import CancelToken, Engine
    from tui.chatstore import ChatStore

SAVE_EVERY_S = 1.0  # as the app (tui.widgets.chat_reply): a crash loses at most this much of a reply
_POLL_S = 0.2
_END = object()


@dataclass
class Outcome:
    """How a reply ended, as the history keeps it."""

    text: str
    status: str  # complete, stopped, error, interrupted
    stats: dict[str, float] | None = None
    failure: BaseException | None = None
    thinking: str = ""  # the reasoning, kept beside the answer as the app keeps it


@dataclass
class Conversation:
    """The chat so far, and where it is kept (``chat_id`` None: not saved, or no longer)."""

    engine: Engine
    store: ChatStore
    model: str
    options: dict[str, object]
    think: bool | str | None
    keep_alive: float | None
    verbose: bool = False
    hide_thinking: bool = False
    key: str = ""  # the engine's conversation key: its KV state stays resident between turns
    chat_options: dict[str, object] = field(default_factory=dict)  # the chat's own, kept with it
    chat_id: int | None = None
    turns: list[dict[str, str]] = field(default_factory=list)
    saving: bool = True
    saved_title: str = ""  # the last chat saved, as the Chat tab lists it

    def restart(self) -> None:
        """A new conversation (``/clear``): the next message starts another chat in the history."""
        import uuid

        self.key, self.chat_id, self.turns = uuid.uuid4().hex, None, []

    def save(self, what: Callable[[ChatStore], Any]) -> Any:
        """One write to the history; on failure the chat goes on unsaved, and says so once."""
        from tui.chatstore import ChatStoreError

        if not self.saving:
            return None
        try:
            return what(self.store)
        except ChatStoreError as failure:
            self.saving = False
            warn(f"this chat is no longer saved: {failure}")
            return None

    def ask(self, text: str) -> Outcome:
        """Send ``text``; the reply is drawn as it streams and kept in the history."""
        from tui.chatstore import title_from

        if self.chat_id is None and self.saving:
            title, params = title_from(text), self.chat_options
            chat = self.save(lambda s: s.create(self.model, title=title, parameters=params))
            self.chat_id = chat.id if chat is not None else None
            self.saved_title = chat.title if chat is not None else self.saved_title
        reply_id: int | None = None
        if (chat_id := self.chat_id) is not None:
            self.save(lambda s: s.add_message(chat_id, "user", text))
            reply_id = self.save(lambda s: s.begin_reply(chat_id))
        self.turns.append({"role": "user", "content": text})
        outcome = Outcome("", "interrupted")
        try:
            outcome = self._stream(reply_id)
        finally:  # also when a second Ctrl+C or a broken stdout ends the command
            if reply_id is not None:
                end = outcome
                self.save(
                    lambda s: s.finish_reply(
                        reply_id, end.text, status=end.status, stats=end.stats, thinking=end.thinking
                    )
                )
        if outcome.text:
            self.turns.append({"role": "assistant", "content": outcome.text})
        if outcome.failure is not None:
            error(str(outcome.failure))
        return outcome

    def _stream(self, reply_id: int | None) -> Outcome:
        from engine import CancelToken, Done, Token

        cancel = CancelToken()
        inbox: queue.Queue[object] = queue.Queue()
        worker = start_worker(lambda: self._generate(cancel, inbox))
        view = reply_view(verbose=self.verbose, hide_thinking=self.hide_thinking)
        outcome = Outcome("", "complete")
        pieces: list[str] = []
        thoughts: list[str] = []
        saved = time.monotonic()
        try:
            with _ctrl_c_cancels(cancel):
                while not cancel.cancelled:
                    try:
                        item = inbox.get(timeout=_POLL_S)
                    except queue.Empty:
                        continue
                    if item is _END:
                        break
                    if isinstance(item, BaseException):
                        outcome.status, outcome.failure = "error", item
                    elif isinstance(item, Token):
                        pieces.append(item.text)
                        thoughts.append(item.thinking)
                        view(item)
                        if reply_id is not None and time.monotonic() - saved >= SAVE_EVERY_S:
                            saved = time.monotonic()
                            self.save(
                                lambda s: s.update_reply(
                                    reply_id, "".join(pieces), thinking="".join(thoughts)
                                )
                            )
                    elif isinstance(item, Done):
                        outcome.status, outcome.stats = _ended(item)
                        if item.reason == "error":
                            outcome.failure = RuntimeError(item.error or "generation failed")
                        view(item)
                if cancel.cancelled:  # the engine is told; it stops at its next step
                    outcome.status = "stopped"
                    worker.join(GRACE_SECONDS)
        finally:
            outcome.text, outcome.thinking = "".join(pieces), "".join(thoughts)
            view.close()
        out()  # a blank line before the next prompt, as ollama run leaves one
        return outcome

    def _generate(self, cancel: CancelToken, inbox: queue.Queue[object]) -> None:
        """On the worker thread: every event of the reply into ``inbox``, then ``_END``."""
        try:
            events = self.engine.chat(
                self.model,
                self.turns,
                options=self.options,
                conversation=self.key,
                think=self.think,
                keep_alive=self.keep_alive,
                cancel=cancel,
            )
            for event in events:
                if cancel.cancelled:
                    close = getattr(events, "close", None)
                    if close is not None:
                        close()  # frees the slot at the engine's next step
                    break
                inbox.put(event)
        except BaseException as failure:  # noqa: BLE001 - handed to the main thread, which shows it
            inbox.put(failure)
        finally:
            inbox.put(_END)


def _ended(done: Any) -> tuple[str, dict[str, float]]:
    """How the app keeps a finished reply (``tui.widgets.chat_reply``): its status and its stats."""
    from tui.widgets.chat_reply import done_stats, reply_status

    return reply_status(done.reason), done_stats(done)


@contextmanager
def _ctrl_c_cancels(cancel: CancelToken) -> Iterator[None]:
    """While the block runs, the first Ctrl+C cancels ``cancel``; a second one raises KeyboardInterrupt."""

    def first(signum: int, frame: object) -> None:
        cancel.cancel()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        with suppress(ValueError, TypeError):
            signal.signal(signal.SIGINT, previous)
