"""The Chat tab: conversations (SQLite), the streaming reply view, the input box and the chat's settings.

Layout: a conversation list with a search box on the left (hidden at narrow
widths, ctrl+b shows it), on the right a header line (model, loaded or not,
system prompt), the ``ChatLog`` and the input. Each chat passes its id to the
engine as ``conversation``, so its KV state stays resident and a follow-up
costs only the new tokens.

Nothing is lost: the user's message is saved before the reply starts, the
reply row exists from its first token (``begin_reply``), is saved about once a
second while it streams and finished with how it ended (complete, stopped,
error). Engine calls run in one thread worker that posts ``ReplyDelta`` and
``ReplyDone``; store calls are quick and thread-safe (the store has its lock).
Nor is typed text lost: each chat keeps its draft (``drafts_pane``), and a message is counted against
the context before it is kept (``chat_sending``, the layer below this one, with the gauge).
Regenerate, edit and copy: ``chat_editing``, the layer below.
Keys: ``chat_input`` (the box), ``action_escape`` (Esc only leaves), the app's ctrl+c (stops).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Input, OptionList

from tui.chatstore import ChatStoreError, Conversation, StoredImage, StoredMessage
from tui.tables import printable
from tui.widgets import chat_dialogs
from tui.widgets.chat_attach import AttachingPane, AttachmentsBar
from tui.widgets.chat_format import error_text, shown_message, stats_line
from tui.widgets.chat_format_setting import Format, header_label
from tui.widgets.chat_header import ChatHeader
from tui.widgets.chat_input import ChatInput
from tui.widgets.chat_list import ChatSidebar
from tui.widgets.chat_log import ChatLog
from tui.widgets.chat_reply import Generation, ReplyDelta, ReplyDone, history, keep_message, stream_reply
from tui.widgets.chat_tools import kept
from tui.widgets.param_editor import overrides_text

if TYPE_CHECKING:
    from engine import Engine
    from tui.screens.chat_settings import ChatSettings

NARROW = 100  # below this many columns the conversation list is hidden until asked for (then over the chat)
ROOMY = 120  # from this many columns the list is at its widest (chat_pane.tcss)


@dataclass
class Draft:
    """A new chat's settings before its first message creates it in the store."""

    model: str = ""
    system: str | None = None
    parameters: dict[str, object] = field(default_factory=dict)
    format: Format = None  # the reply's (chat_format_setting)
    tools: list[dict[str, object]] | None = None  # Ollama's tools the model may call (chat_tools)


class ChatPane(AttachingPane):
    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")
    BINDINGS = [
        # first in the footer while a reply streams (the app's priority ctrl+c takes the key): a narrow
        # footer shows it, where at the app's place after the chat's keys it was cut off
        Binding("ctrl+c", "stop", "Stop reply", id="chat.stop_first"),
        Binding("ctrl+n", "new_chat", "New", id="chat.new"),
        Binding(
            "escape",
            "escape",
            "Leave (the box, an edit, the chat list, a search)",
            show=False,
            priority=True,
            id="chat.leave",
        ),
        Binding("s", "stop", "Stop the reply", show=False, id="chat.stop"),
        Binding("ctrl+r", "regenerate", "Regen", id="chat.regenerate"),
        Binding("e", "edit_last", "Edit", id="chat.edit"),
        Binding("ctrl+s", "settings", "Settings", id="chat.settings"),
        Binding("ctrl+g", "attach_image", "Image", id="chat.attach"),
        Binding("alt+g", "drop_image", "Take the last image off", show=False, id="chat.unattach"),
        Binding("alt+shift+g", "drop_images", "Take all images off", show=False, id="chat.unattach_all"),
        Binding("m", "pick_model", "Model", show=False, id="chat.model"),
        Binding("y", "copy_message", "Copy message", show=False, id="chat.copy"),
        Binding("Y", "copy_code", "Copy code", show=False, id="chat.copy_code"),
        Binding("f2", "rename", "Rename", show=False, id="chat.rename"),
        Binding("ctrl+d", "delete", "Delete chat", show=False, id="chat.delete"),
        Binding("ctrl+o", "export", "Export", show=False, id="chat.export"),
        Binding("slash", "search", "Search chats", show=False, id="chat.search"),
        Binding("ctrl+b", "toggle_list", "Chats", id="chat.list"),
        Binding("i,enter", "focus_input", "Write", show=False, id="chat.input"),
    ]

    list_shown: reactive[bool] = reactive(True)

    def __init__(self, engine: Engine, *, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.draft = Draft(model or "")
        self.start_model = model
        self.generation: Generation | None = None
        self._wide: bool | None = None
        self._all_chats: list[Conversation] | None = None  # the list as last read without a search
        self._saving: str | None = None  # a message on its way into the history (its reply follows)
        self._opened: tuple[Conversation, list[StoredMessage]] | None = None  # the last chat opened

    def compose(self) -> ComposeResult:
        yield ChatSidebar(id="chat-sidebar")
        with Vertical(id="chat-main"):
            yield ChatHeader(self.engine, id="chat-header")
            yield ChatLog(id="chat-log")
            yield AttachmentsBar(id="chat-attachments")
            yield ChatInput(id="chat-input", soft_wrap=True, placeholder="Write a message")

    def on_mount(self) -> None:
        self.box = self.query_one(ChatInput)  # kept: the draft is read from it after it unmounts
        self.render_header()

    # store ---------------------------------------------------------------------------------------

    @work(exclusive=True, group="chat-list")
    async def _read_list(self, search: str) -> None:
        """The list as the history holds it (read on the history's thread), unless the search moved on."""
        if self.store is None:
            return
        try:
            chats = await self.queue.call(self.store.conversations, search)
        except ChatStoreError as error:
            self.report(error)
            return
        if not search:
            self._all_chats = chats
        self._show_list(chats, search)

    def _show_list(self, chats: list[Conversation], search: str) -> None:
        sidebar = self.query_one(ChatSidebar)
        if sidebar.search == search:
            sidebar.show(chats, str(self.chat.id) if self.chat else sidebar.highlighted())

    def on_unmount(self) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """The app is closing: keep the drafts; stop a streaming reply and keep it, marked interrupted."""
        self.keep_drafts()
        gen, self.generation = self.generation, None
        if gen is None:
            return
        gen.cancel.cancel()
        if self.store is not None:
            with suppress(ChatStoreError):  # else the next start marks it interrupted with what was saved
                self.store.finish_reply(gen.reply_id, "".join(gen.text), status="interrupted")

    # list ----------------------------------------------------------------------------------------

    def refresh_list(self) -> None:
        """Read the list again; every chat (no search) is shown at once as last read, so a key that
        follows (a search cleared) finds them."""
        search = self.query_one(ChatSidebar).search
        if not search and self._all_chats is not None:
            self._show_list(self._all_chats, search)
        self._read_list(search)

    @on(Input.Changed, "#chat-search")
    def search_changed(self) -> None:
        self.refresh_list()

    @on(Input.Submitted, "#chat-search")
    def search_done(self) -> None:
        self.query_one("#chat-list").focus()

    @on(OptionList.OptionSelected, "#chat-list")
    def chat_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.open_chat(int(event.option.id))
            if not self._wide:
                self.list_shown = False  # narrow: the list made way for the chat
            self.query_one(ChatInput).focus()

    # showing a chat ------------------------------------------------------------------------------

    def open_chat(self, chat_id: int) -> None:
        self._open_chat(chat_id)

    @work(exclusive=True, group="chat-open")
    async def _open_chat(self, chat_id: int) -> None:
        if self.store is None:
            return
        try:
            chat = await self.queue.call(self.store.get, chat_id)
            messages = await self.queue.call(self.store.messages, chat_id)
        except ChatStoreError as error:
            self.report(error)
            self.refresh_list()
            return
        same = self.chat is not None and self.chat.id == chat.id
        if same and (self._opened == (chat, messages) or self.generation is not None):
            # shown as it is kept, or its reply (or a count before sending) runs live here: leaving and
            # entering it again would cancel that count and drop the message being sent
            self.refresh_list()
            return
        self._leave_chat()
        self.chat = chat
        self._enter_chat()
        self.show_messages(messages)
        self._opened = (chat, messages)
        self.render_header()
        self.refresh_list()

    def show_messages(self, messages: list[StoredMessage]) -> None:
        log = self.query_one(ChatLog)
        log.clear_messages()
        gen = self.generation
        if gen is not None:
            gen.stream = None
        for m in messages:
            if gen is not None and m.id == gen.reply_id:
                continue  # still streaming: shown live below
            log.add_message(
                m.role,
                shown_message(m.content),
                status=m.status,
                stats=stats_line(m.stats),
                images=m.images,
                **kept(m),
            )
        if gen is not None and self.chat is not None and gen.chat_id == self.chat.id:
            gen.stream = log.start_reply()
            gen.stream.append(printable("".join(gen.text)))

    def new_chat(self, model: str | None = None, *, keep_text: bool = False) -> None:
        """A draft: created in the store by its first message (no empty chats pile up).

        ``keep_text``: what the box holds goes with it (the chat it was typed for was deleted)."""
        current = self.chat.model if self.chat else self.draft.model
        self._to_new_chat(keep_text=keep_text)
        self.draft = Draft(model or current or str(getattr(self.app_config, "default_model", "") or ""))
        gen = self.generation
        if gen is not None:
            gen.stream = None
        self.query_one(ChatLog).clear_messages()
        self.render_header()
        self.refresh_list()
        if not self.draft.model:
            self.pick_first_model()

    @property
    def app_config(self) -> object:
        return getattr(self.app, "config", None)

    @work(thread=True, exit_on_error=False, group="chat-models")
    def pick_first_model(self) -> None:
        """A draft with no model takes the first local one (none: the header says to pull one)."""
        try:
            models = [m.reference for m in self.engine.list_models()]
        except Exception as error:  # noqa: BLE001 - reported as one line by the app
            self.app.call_from_thread(self.report, error)
            return
        if models:
            self.app.call_from_thread(self._set_draft_model, models[0])

    def _set_draft_model(self, model: str) -> None:
        if self.chat is None and not self.draft.model:
            self.draft.model = model
            self.render_header()

    @property
    def model(self) -> str:
        return self.chat.model if self.chat else self.draft.model

    @property
    def system(self) -> str | None:
        return self.chat.system if self.chat else self.draft.system

    @property
    def parameters(self) -> dict[str, object]:
        return dict(self.chat.parameters if self.chat else self.draft.parameters)

    @property
    def reply_format(self) -> Format:
        return self.chat.format if self.chat else self.draft.format

    def render_header(self) -> None:
        self.query_one(ChatHeader).show(
            self.model,
            system=bool(self.system),
            parameters=overrides_text(self.parameters),
            reply_format=header_label(self.reply_format),
            title=self.chat.title if self.chat else "new chat",
            editing=self.editing is not None,
        )

    # sending -------------------------------------------------------------------------------------

    @on(ChatInput.Submitted)
    def submitted(self, message: ChatInput.Submitted) -> None:
        if not self.typed_images(message.text):  # image paths in it are attached first (chat_attach)
            self.send(message.text)

    def send(self, text: str) -> None:
        if self.generation is not None or self._saving is not None:
            self.app.notify("a reply is streaming: ctrl+c stops it", severity="warning")
            return
        if self.store is None:
            self.app.notify("the chat history is still opening", severity="warning")
            return
        if not self.model:
            self.app.notify("pick a model first (m)", severity="warning")
            self.action_pick_model()
            return
        images = self.images_to_send()
        if images and self.sees.get(self.model) is False:
            self.app.notify(
                f"{self.model} cannot see images: alt+shift+g takes them off, m picks another model",
                severity="warning",
                markup=False,
            )
            return
        if not self.counted(text):  # counted against the context first (chat_sending): it may not fit
            return
        self._saving = text
        self._keep(text, images)

    @work(group="chat-send")
    async def _keep(self, text: str, images: list[StoredImage]) -> None:
        """The message into the history (on its thread: a locked file never stops keys), then its reply."""
        assert self.store is not None
        sent_from, editing, draft = self.chat_key, self.editing, vars(self.draft).copy()
        try:
            kept = await self.queue.call(keep_message, self.store, self.chat, draft, text, images, editing)
        except ChatStoreError as error:
            self._saving = None
            if self.chat is not None and self.chat.id == sent_from and await self._gone(self.chat.id):
                self._orphaned()
                return
            self.report(error)
            return
        finally:
            self._saving = None
        if self.chat_key != sent_from:  # another chat is shown now: the message is kept, its reply waits
            self.refresh_list()
            return
        chat, messages, reply_id = kept
        self.chat = chat
        self.box.sent(text)  # empty again, or the draft from before an edit
        self.images_sent(sent_from)
        if sent_from is None:
            self._new_chat_created()
        if self.editing is not None:
            self.editing = None
            self.show_messages(messages)
        else:
            self.query_one(ChatLog).add_message("user", shown_message(text), images=images)
        self.render_header()
        self.refresh_list()
        self._start(chat, messages, reply_id)

    async def _gone(self, chat_id: int) -> bool:
        """Whether a chat was deleted under us (by another window of the app)."""
        assert self.store is not None
        try:
            await self.queue.call(self.store.get, chat_id)
        except ChatStoreError:
            return True
        return False

    def _orphaned(self) -> None:
        """This chat was deleted elsewhere: its settings become a new draft; the typed text stays."""
        assert self.chat is not None
        old = self.chat
        self._to_new_chat(keep_text=True)
        self.draft = Draft(old.model, old.system, dict(old.parameters), old.format, old.tools)
        self.query_one(ChatLog).clear_messages()
        self.render_header()
        self.refresh_list()
        self.app.notify(
            "this chat was deleted in another window: press Enter to send your message as a new chat",
            severity="warning",
            markup=False,
        )

    @work(group="chat-send")
    async def start_reply(self) -> None:
        """Ask the engine for a reply to the chat as stored."""
        assert self.store is not None and self.chat is not None
        chat = self.chat
        try:
            messages = await self.queue.call(self.store.messages, chat.id)
            reply_id = await self.queue.call(self.store.begin_reply, chat.id)
        except ChatStoreError as error:
            self.report(error)
            return
        self._start(chat, messages, reply_id)

    def _start(self, chat: Conversation, messages: list[StoredMessage], reply_id: int) -> None:
        """The reply row exists: stream into it."""
        from engine import CancelToken

        turns = history(chat.system, messages)
        gen = Generation(
            chat.id, reply_id, CancelToken(), self.query_one(ChatLog).start_reply(), tools=chat.tools
        )
        self.generation = gen
        self.refresh_bindings()  # the footer shows the stop key while it streams
        options = {**dict(getattr(self.app_config, "parameters", {}) or {}), **chat.parameters}
        # keep-alive None: the engine's server settings, which hold config.toml's keep_alive (below
        # LLAMADECK_KEEP_ALIVE/OLLAMA_KEEP_ALIVE) for every load, the API's under --serve included
        self.generate(gen, chat.model, turns, options, None, chat.format)
        self.watch_reply(gen)  # until its first token: what it waits for (a load, the prompt)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-generate")
    def generate(
        self,
        gen: Generation,
        model: str,
        turns: list[dict[str, str]],
        options: dict[str, object],
        keep_alive: float | None,
        reply_format: Format = None,
    ) -> None:
        stream_reply(
            self.engine,
            self.store,
            gen,
            model,
            turns,
            options,
            keep_alive,
            post=self.post_message,
            current=lambda: self.generation is gen,
            format=reply_format,
        )

    @on(ReplyDelta)
    def reply_delta(self, message: ReplyDelta) -> None:
        gen = self.generation
        if gen is not None and gen.chat_id == message.chat_id and gen.stream is not None:
            gen.stream.think(printable(message.thinking))
            gen.stream.append(printable(message.text))
            gen.stream.calls(message.calls)
            if not gen.started:  # the model is loaded now: say so in the header
                gen.started = True
                self.render_header()

    @on(ReplyDone)
    def reply_done(self, message: ReplyDone) -> None:
        gen = self.generation
        if gen is None or gen.reply_id != message.reply_id:
            return
        self.generation = None
        self.refresh_bindings()
        if gen.stream is not None:
            gen.stream.finish(status=message.status, stats=stats_line(message.stats))
            if message.error is not None:
                self.query_one(ChatLog).add_message("error", printable(error_text(message.error)))
        if message.error is not None:
            self.report(message.error)
        self.render_header()
        self.refresh_list()

    # actions -------------------------------------------------------------------------------------

    def action_new_chat(self) -> None:
        self.new_chat()
        self.query_one(ChatInput).focus()

    def action_escape(self) -> None:
        """Leave, never stop: an edit (the draft comes back), the box (to the messages: commands),
        a search (cleared, to the list), the list (to the messages), a selected message."""
        focused = self.app.focused
        log = self.query_one(ChatLog)
        search = self.query_one("#chat-search", Input)
        if focused is self.box and self.editing is not None:
            self._leave_edit()
        elif focused is self.box:
            log.focus()
        elif focused is search:
            search.value = ""
            self.refresh_list()  # now, not on the Changed message: keys that follow see every chat
            self.query_one("#chat-list").focus()
        elif self.query_one(ChatSidebar).has_focus_within and self.query_one(ChatSidebar).clear_search():
            pass  # a search applied from the list: cleared first, every chat back; esc again leaves
        elif focused is self.query_one("#chat-list"):
            if not self._wide:
                self.list_shown = False
            log.focus()
        elif focused is log and log.selected_index is not None:
            log.action_select_none()
        elif self.editing is not None:
            self._leave_edit()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":  # s stops only while a reply streams; else the key is free
            return self.generation is not None
        return True

    def action_stop(self) -> None:
        gen = self.generation
        if gen is None:
            self.app.notify("no reply is streaming", timeout=2)
            return
        gen.cancel.cancel()

    def action_search(self) -> None:
        self.list_shown = True
        self.query_one("#chat-search", Input).focus()

    def action_focus_input(self) -> None:
        self.query_one(ChatInput).focus()

    def action_toggle_list(self) -> None:
        self.list_shown = not self.list_shown
        if self.list_shown:
            self.query_one("#chat-list").focus()
        elif self.query_one("#chat-sidebar").has_focus_within:
            self.query_one(ChatInput).focus()

    def watch_list_shown(self, shown: bool) -> None:
        self.query_one("#chat-sidebar").display = shown

    def on_resize(self, event: events.Resize) -> None:
        width = self.app.size.width  # the terminal's: a scrollbar shown for a moment is not a narrowing
        wide = width >= NARROW
        self.set_class(NARROW <= width < ROOMY, "-medium")  # a narrower list beside
        if wide != self._wide:
            self._wide = wide
            self.list_shown = wide
            self.set_class(not wide, "-narrow")  # the list hidden; shown, it lies over the chat

    @work(exclusive=True, group="chat-dialog")
    async def action_rename(self) -> None:
        await chat_dialogs.rename_chat(self)

    @work(exclusive=True, group="chat-dialog")
    async def action_delete(self) -> None:
        await chat_dialogs.delete_chat(self)

    @work(exclusive=True, group="chat-dialog")
    async def action_export(self) -> None:
        await chat_dialogs.export_chat(self)

    @work(exclusive=True, group="chat-dialog")
    async def action_pick_model(self) -> None:
        await chat_dialogs.pick_model(self)

    @work(exclusive=True, group="chat-dialog")
    async def action_settings(self) -> None:
        await chat_dialogs.edit_settings(self)

    def set_model(self, model: str) -> None:
        if self.chat is None:
            self.draft.model = model
        else:
            self.save_settings(self.chat.id, {"model": model})
        self.render_header()
        self.refresh_list()

    def apply_settings(self, chosen: ChatSettings) -> None:
        """The chat's settings as the settings dialog left them (a draft's until its first message)."""
        if self.chat is None:
            self.draft = Draft(
                chosen.model, chosen.system, dict(chosen.parameters), chosen.format, chosen.tools
            )
        else:
            self.save_settings(self.chat.id, vars(chosen))  # the same five fields
        self.render_header()
        self.refresh_list()
