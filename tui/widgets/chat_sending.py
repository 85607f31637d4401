"""The Chat pane's second layer: a message is counted against the context before it is sent, and the
gauge (a load in flight, the context used, memory, speed) follows the chat.

Enter counts first (``counted``): the box keeps the text, read-only, while a
thread counts the chat with the new message (``Engine.measure_chat``: the model
is loaded for it, as sending would load it); the log shows the message and a
pending reply that says what it waits for (``loading NAME 42% · 3.1 s``, then
``reading the prompt · 86 tokens``), polled from ``Engine.loading`` in another
thread until the first token. Counted:

- it fits: it is sent as before (``ChatPane.send`` keeps it and starts the reply);
- the message alone does not fit, or old turns would be left out where the
  chat's last reply kept them all: the pending views go, the text is editable
  again, and ``FitScreen`` offers to raise the chat's context (its ``num_ctx``),
  to send without the oldest turns, or to cancel;
- an error (no such model, a load that failed) or a stop: the same, the error said once.

Nothing is kept in the history until the message was counted, so a send that
fails leaves no message behind: its text stays in the box (and in the drafts).
Leaving the chat while it is counted stops the count (its load too).
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.message import Message
from textual.worker import get_current_worker

from tui.chatstore import ChatStoreError
from tui.tables import printable
from tui.widgets.chat_format import error_text, shown_message
from tui.widgets.chat_gauge import Gauge, from_stats, loading_text
from tui.widgets.chat_header import ChatHeader
from tui.widgets.chat_log import ChatLog
from tui.widgets.chat_reply import Generation, ReplyDone, history, loaded_context
from tui.widgets.drafts_pane import DraftsPane
from tui.widgets.message_view import STATUS_MARKS, MessageView

if TYPE_CHECKING:
    from engine import ContextUse, Engine, LoadingModel
    from tui.screens.fit import Misfit

POLL_S = 0.2  # how often a waiting reply asks the engine how far its model's load has got


@dataclass
class Checked(Message):
    """A message was counted (``use``), or counting it failed (``error``)."""

    gen: Generation
    use: ContextUse | None
    error: BaseException | None
    trimming: bool  # the chat's last reply already left old turns out (no need to ask again)
    context: int  # tokens the conversation holds as loaded (0: not known)
    trained: int  # the model's trained context (0: not known)


class SendingPane(DraftsPane):
    """Counting before sending, and the gauge, for the Chat pane (see the module's docstring)."""

    engine: Engine
    generation: Generation | None
    draft: Any  # chat_pane.Draft: a new chat's settings

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._counted: tuple[str, ContextUse] | None = None  # a message counted that fits: sent next
        self._sent_use: ContextUse | None = None  # its count, for the reply that starts now
        self._pending_user: MessageView | None = None  # the message shown while it is counted

    # what the pane above provides
    @property
    def model(self) -> str:
        raise NotImplementedError

    @property
    def system(self) -> str | None:
        raise NotImplementedError

    @property
    def parameters(self) -> dict[str, object]:
        raise NotImplementedError

    def send(self, text: str) -> None:
        raise NotImplementedError

    def images_to_send(self) -> list[Any]:
        return []

    def render_header(self) -> None:
        raise NotImplementedError

    @property
    def header(self) -> ChatHeader:
        return self.query_one(ChatHeader)

    # counting ---------------------------------------------------------------------------------

    def counted(self, text: str) -> bool:
        """True when ``text`` was counted and fits (``send`` keeps it now); else it is counted first."""
        counted, self._counted = self._counted, None
        if counted is not None and counted[0] == text:
            self._sent_use = counted[1]
            return True
        if self.engine.where != "local":  # a server counts the chat itself when it gets it: sent as it is
            return True
        from engine import CancelToken

        log = self.query_one(ChatLog)
        self._pending_user = log.add_message("user", shown_message(text), images=self.images_to_send())
        gen = Generation(self.chat.id if self.chat else 0, 0, CancelToken(), log.start_reply(), checking=text)
        gen.images = self.images_to_send()
        self.generation = gen
        self.refresh_bindings()  # the stop key: a count may load a model for a while
        self.box.read_only = True  # the text stays where it is until it is sent
        self.box.border_subtitle = "counting it against the context · ctrl+c stops"
        options = {
            **dict(getattr(getattr(self.app, "config", None), "parameters", {}) or {}),
            **self.parameters,
        }
        chat_id = self.chat.id if self.chat else None
        self.count(gen, self.model, self.system, chat_id, self.editing, options)
        self.poll_wait(gen, self.model)
        return False

    @work(thread=True, exit_on_error=False, group="chat-count")
    def count(
        self,
        gen: Generation,
        model: str,
        system: str | None,
        chat_id: int | None,
        editing: int | None,
        options: dict[str, object],
    ) -> None:
        """The chat as it would be sent (an edit replaces its message and all after it), counted."""
        from engine import PromptTooLong

        use: ContextUse | None = None
        error: BaseException | None = None
        trimming, context, trained = False, 0, 0
        try:
            messages = self.store.messages(chat_id) if chat_id is not None and self.store is not None else []
            if editing is not None:
                messages = [m for m in messages if m.id < editing]
            last = next((m for m in reversed(messages) if m.role == "assistant" and m.stats), None)
            trimming = bool(last is not None and last.stats and last.stats.get("dropped_messages"))
            asked: dict[str, Any] = {"role": "user", "content": gen.checking or ""}
            if gen.images:
                asked["images"] = [i.data for i in gen.images]
            turns = [*history(system, messages), asked]
            with suppress(Exception):  # a model that is not here: measuring it says so
                trained = self.engine.resolve(model).context_length
            use = self.engine.measure_chat(model, turns, options=options, cancel=gen.cancel)
        except Exception as failure:  # noqa: BLE001 - said by the pane, the text kept in the box
            error = failure
            if isinstance(failure, PromptTooLong):
                context = loaded_context(self.engine, model)
        self.post_message(Checked(gen, use, error, trimming, context, trained))

    @on(Checked)
    def _checked(self, message: Checked) -> None:
        from engine import Cancelled, PromptTooLong
        from tui.screens.fit import Misfit, fitting_context

        gen, use, error = message.gen, message.use, message.error
        if self.generation is not gen or gen.checking is None:
            return  # stopped, or the chat was left: what was typed stayed in the box
        self._drop_pending(gen)
        self.header.show_gauge(replace(self.header.gauge, loading=None))
        text = gen.checking
        if use is not None and (not use.dropped_messages or message.trimming):
            self.send_counted(text, use)
        elif isinstance(error, Cancelled):
            self.app.notify("not sent: your message is still in the box", timeout=3)
        elif use is not None or isinstance(error, PromptTooLong):
            needed = use.needed if use is not None else getattr(error, "needed", None)
            context = use.context if use is not None else message.context
            drop = use.dropped_messages if use is not None else 0
            raise_to = fitting_context(needed, message.trained)
            self.ask_to_fit(text, Misfit(self.model, context, needed, raise_to, message.trained, drop), use)
        elif error is not None:
            self.query_one(ChatLog).add_message("error", printable(error_text(error)))  # shown, not kept
            self.report(error)

    def send_counted(self, text: str, use: ContextUse) -> None:
        """Send ``text`` as counted (``send`` asks ``counted``, which says it fits)."""
        self.header.show_gauge(replace(self.header.gauge, used=use.prompt_tokens, context=use.context))
        self._counted = (text, use)
        self.send(text)
        self._counted = self._sent_use = None

    def _drop_pending(self, gen: Generation) -> None:
        """The count ended: its views go, the box is the user's again (the text never left it)."""
        if self.generation is gen:
            self.generation = None
            self.refresh_bindings()
        self.box.read_only = False
        self.box.show_mode()
        for view in (self._pending_user, gen.stream.view if gen.stream else None):
            if view is not None and view.is_attached:
                view.remove()
        self._pending_user = None

    @work(exclusive=True, group="chat-dialog")
    async def ask_to_fit(self, text: str, misfit: Misfit, use: ContextUse | None) -> None:
        """Raise the context (counted again: the model loads with it), send without old turns, or cancel."""
        from tui.screens.fit import FitScreen

        choice = await self.app.push_screen_wait(FitScreen(misfit))
        if choice == "raise" and misfit.raise_to is not None:
            self.set_context(misfit.raise_to)
            self.send(self.box.text)
        elif choice == "trim" and use is not None:
            self.app.notify(f"sent without the {use.dropped_messages} oldest messages", timeout=4)
            self.send_counted(text, use)
        else:
            self.box.focus()

    def set_context(self, size: int) -> None:
        """The chat's (or the new chat's) ``num_ctx``: its model loads with this context from now on."""
        parameters = {**self.parameters, "num_ctx": size}
        if self.chat is None:
            self.draft.parameters = parameters
        else:
            self.save_settings(self.chat.id, {"parameters": parameters})
        self.render_header()

    @work(group="chat-send")
    async def save_settings(self, chat_id: int, settings: dict[str, Any]) -> None:
        """A chat's settings changed: kept on the history's thread; the chat shown takes them when kept."""
        if self.store is None:
            return
        if self.chat is not None and self.chat.id == chat_id:  # shown at once, as they will be kept
            self.chat = replace(self.chat, **settings)
        try:
            await self.queue.call(self.store.update_settings, chat_id, **settings)
            chat = await self.queue.call(self.store.get, chat_id)
        except ChatStoreError as error:
            self.report(error)
            return
        if self.chat is not None and self.chat.id == chat_id:
            self.chat = chat
            self.render_header()

    # waiting for the first token --------------------------------------------------------------

    def watch_reply(self, gen: Generation) -> None:
        """A reply starts: its count (when it was counted) goes with it; it says what it waits for."""
        if self._sent_use is not None:
            gen.context, gen.prompt_tokens = self._sent_use.context, self._sent_use.prompt_tokens
        self.poll_wait(gen, self.model)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-wait")
    def poll_wait(self, gen: Generation, model: str) -> None:
        """Until the first token (or the end): the model's load in flight, shown where the reply waits."""
        worker = get_current_worker()
        try:
            reference: str | None = self.engine.resolve(model).reference
        except Exception:  # noqa: BLE001 - not here: nothing will load
            reference = None
        while not worker.is_cancelled and self.generation is gen:
            loading = next((m for m in self.engine.loading() if m.reference == reference), None)
            try:
                self.app.call_from_thread(self._show_wait, gen, loading)
            except RuntimeError:  # the app closed
                return
            if gen.started:
                return
            time.sleep(POLL_S)

    def _show_wait(self, gen: Generation, loading: LoadingModel | None) -> None:
        if self.generation is not gen:
            return
        if gen.chat_id == (self.chat.id if self.chat else 0):
            self.header.show_gauge(replace(self.header.gauge, loading=loading))
        view = gen.stream.view if gen.stream is not None else None
        if view is None:
            return
        if gen.started:
            note = STATUS_MARKS["streaming"]
        elif loading is not None:
            note = loading_text(loading)
        elif gen.checking is not None:
            note = "counting the prompt…"
        elif gen.prompt_tokens:
            note = f"reading the prompt · {gen.prompt_tokens:,} tokens"
        else:
            note = "waiting for the model…"
        view.show_note(note)

    # the gauge follows the chat ---------------------------------------------------------------

    def _enter_chat(self) -> None:
        """Another chat is shown: a count in flight stops (its text stayed in the box, so in the draft
        of the chat left); the gauge is the new chat's, read from its last reply in a thread."""
        gen = self.generation
        if gen is not None and gen.checking is not None:
            gen.cancel.cancel()
            self._drop_pending(gen)
        super()._enter_chat()
        self.header.show_gauge(Gauge())
        self.read_gauge(self.chat.id if self.chat else None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-gauge")
    def read_gauge(self, chat_id: int | None) -> None:
        if chat_id is None or self.store is None:
            return
        try:
            messages = self.store.messages(chat_id)
        except ChatStoreError:
            return  # said where the chat is read for showing
        last = next((m for m in reversed(messages) if m.role == "assistant" and m.stats), None)
        if last is not None:
            with suppress(RuntimeError):  # the app closed
                self.app.call_from_thread(self._gauge_read, chat_id, from_stats(last.stats))

    def _gauge_read(self, chat_id: int, gauge: Gauge) -> None:
        if self.chat is not None and self.chat.id == chat_id and self.header.gauge.used is None:
            self.header.show_gauge(gauge)

    @on(ReplyDone)
    def _gauge_after_reply(self, message: ReplyDone) -> None:
        """After ``ChatPane.reply_done``: the header shows the finished reply's figures."""
        if message.stats and self.chat is not None and self.chat.id == message.chat_id:
            self.header.show_gauge(from_stats(message.stats, self.header.gauge.context))
