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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from tui.chatstore import DEFAULT_TITLE, ChatStore, ChatStoreError, Conversation, StoredMessage, title_from
from tui.tables import ago
from tui.terminal import escape
from tui.widgets.chat_log import ChatLog, ReplyStream, last_code_block

if TYPE_CHECKING:
    from engine import CancelToken, Done, Engine

NARROW = 100  # below this many columns the conversation list is hidden until asked for
SAVE_EVERY_S = 1.0


# -- pure helpers ------------------------------------------------------------------------------------


def done_stats(done: Done) -> dict[str, float]:
    """What a reply's stats line is made from, as the store keeps it."""
    return {
        "tokens_per_second": round(done.tokens_per_second, 2),
        "prompt_seconds": round(done.prompt_seconds, 3),
        "generate_seconds": round(done.generate_seconds, 3),
        "load_seconds": round(done.load_seconds, 3),
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "cached_tokens": done.cached_tokens,
        "dropped_messages": done.dropped_messages,
    }


def stats_line(stats: Mapping[str, float] | None) -> str | None:
    """``42.1 tok/s · first token 0.31 s · 128 tokens · 96 cached`` (None without stats)."""
    if not stats:
        return None
    parts = []
    if "tokens_per_second" in stats:
        parts.append(f"{stats['tokens_per_second']:.1f} tok/s")
    if "prompt_seconds" in stats:
        parts.append(f"first token {stats['prompt_seconds']:.2f} s")
    if "completion_tokens" in stats:
        parts.append(f"{int(stats['completion_tokens'])} tokens")
    if stats.get("cached_tokens"):
        parts.append(f"{int(stats['cached_tokens'])} cached")
    if stats.get("load_seconds", 0) >= 0.1:
        parts.append(f"loaded in {stats['load_seconds']:.1f} s")
    if stats.get("dropped_messages"):
        parts.append(f"{int(stats['dropped_messages'])} oldest messages left out to fit")
    return " · ".join(parts) or None


def history(system: str | None, messages: list[StoredMessage]) -> list[dict[str, str]]:
    """The messages the engine gets: the system prompt, then every non-empty user and assistant turn."""
    turns = [{"role": "system", "content": system}] if system else []
    for m in messages:
        if m.role in ("user", "assistant", "system") and m.content:
            turns.append({"role": m.role, "content": m.content})
    return turns


def shown(text: str) -> str:
    """Text for the screen: terminal controls (ESC, BEL, ...) from a model or a file as visible escapes.

    Newlines and tabs stay. The store keeps the text verbatim; only what is drawn changes.
    """
    return escape(text, keep="\n\t")


SHOWN_LIMIT = 32_000  # characters of one stored message drawn; a 1 MB paste took seconds per scroll


def shown_message(text: str) -> str:
    """A stored message for the screen: escaped, cut with a note past ``SHOWN_LIMIT`` (stored whole)."""
    if len(text) <= SHOWN_LIMIT:
        return shown(text)
    rest = len(text) - SHOWN_LIMIT
    return shown(text[:SHOWN_LIMIT]) + f"\n\n… {rest:,} more characters (export the chat to read them all)"


def error_text(error: BaseException) -> str:
    """An engine error's message, with what to do in this tab when the model is the problem."""
    from engine import ModelNotFound

    text = str(error) or type(error).__name__
    if isinstance(error, ModelNotFound):
        text += " (press m to pick another model, or pull this one in the Models tab)"
    return text


def reply_status(reason: str) -> str:
    return {"cancelled": "stopped", "error": "error"}.get(reason, "complete")


# -- messages and state --------------------------------------------------------------------------------


@dataclass
class ReplyDelta(Message):
    chat_id: int
    text: str


@dataclass
class ReplyDone(Message):
    chat_id: int
    reply_id: int
    status: str  # complete, stopped, error
    stats: dict[str, float] | None
    error: BaseException | None


@dataclass
class Generation:
    """The one reply streaming now (the view may be gone while another chat is shown)."""

    chat_id: int
    reply_id: int
    cancel: CancelToken
    stream: ReplyStream | None
    text: list[str] = field(default_factory=list)
    started: bool = False  # the first token was shown


@dataclass
class Draft:
    """A new chat's settings before its first message creates it in the store."""

    model: str = ""
    system: str | None = None
    parameters: dict[str, object] = field(default_factory=dict)


class ChatInput(TextArea):
    """The message box: Enter sends, Shift+Enter or Ctrl+J starts a new line."""

    @dataclass
    class Submitted(Message):
        text: str

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            if self.text.strip():
                self.post_message(self.Submitted(self.text))
            return
        if event.key in ("shift+enter", "ctrl+j"):
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        await super()._on_key(event)


# -- the pane ------------------------------------------------------------------------------------------


class ChatPane(Horizontal):
    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")
    BINDINGS = [
        Binding("ctrl+n", "new_chat", "New", id="chat.new"),
        Binding(
            "escape",
            "escape",
            "Stop the reply (else leave the input)",
            show=False,
            priority=True,
            id="chat.stop",
        ),
        Binding("ctrl+r", "regenerate", "Regen", id="chat.regenerate"),
        Binding("ctrl+e", "edit_last", "Edit", priority=True, id="chat.edit"),
        Binding("ctrl+s", "settings", "Settings", id="chat.settings"),
        Binding("m", "pick_model", "Model", show=False, id="chat.model"),
        Binding("y", "copy_message", "Copy message", show=False, id="chat.copy"),
        Binding("Y,ctrl+y", "copy_code", "Copy code", priority=True, show=False, id="chat.copy_code"),
        Binding("f2", "rename", "Rename", show=False, id="chat.rename"),
        Binding("ctrl+d", "delete", "Delete chat", priority=True, show=False, id="chat.delete"),
        Binding("ctrl+o", "export", "Export", show=False, id="chat.export"),
        Binding("slash", "search", "Search chats", show=False, id="chat.search"),
        Binding("ctrl+b", "toggle_list", "Chats", id="chat.list"),
        Binding("i", "focus_input", "Write", show=False, id="chat.input"),
    ]

    list_shown: reactive[bool] = reactive(True)

    def __init__(self, engine: Engine, *, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.store: ChatStore | None = None
        self.chat: Conversation | None = None
        self.draft = Draft(model or "")
        self.start_model = model
        self.generation: Generation | None = None
        self.editing: int | None = None  # the user message an edit replaces (it and all after it)
        self._wide: bool | None = None
        self._loaded: set[str] = set()
        self._references: dict[str, str] = {}  # a chat's model name -> the reference it stands for
        self._checking = False

    def compose(self) -> ComposeResult:
        with Vertical(id="chat-sidebar"):
            yield Input(placeholder="/ search chats", id="chat-search", compact=True)
            yield OptionList(id="chat-list")
        with Vertical(id="chat-main"):
            yield Static("", id="chat-header")
            yield ChatLog(id="chat-log")
            yield ChatInput(id="chat-input", soft_wrap=True, placeholder="Write a message")

    def on_mount(self) -> None:
        box = self.query_one(ChatInput)
        box.border_title = "Message"
        box.border_subtitle = "enter sends · ctrl+j new line"
        self.render_header()

    # store ---------------------------------------------------------------------------------------

    def attach(self, store: ChatStore) -> None:
        """Called by the app once the history is open: show the latest chat (or a new one on ``model``)."""
        self.store = store
        chats = self._conversations()
        if self.start_model or not chats:
            self.new_chat(self.start_model)
        else:
            self.open_chat(chats[0].id)
        self.refresh_list()

    def _conversations(self) -> list[Conversation]:
        if self.store is None:
            return []
        try:
            search = self.query_one("#chat-search", Input).value.strip()
            return self.store.conversations(search)
        except ChatStoreError as error:
            self.app.report(error)  # type: ignore[attr-defined]
            return []

    def _report(self, error: BaseException) -> None:
        self.app.report(error)  # type: ignore[attr-defined]

    def on_unmount(self) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """The app is closing: stop a streaming reply and keep it, marked interrupted."""
        gen, self.generation = self.generation, None
        if gen is None:
            return
        gen.cancel.cancel()
        if self.store is not None:
            with suppress(ChatStoreError):  # else the next start marks it interrupted with what was saved
                self.store.finish_reply(gen.reply_id, "".join(gen.text), status="interrupted")

    # list ----------------------------------------------------------------------------------------

    def refresh_list(self) -> None:
        chats = self._conversations()
        listing = self.query_one("#chat-list", OptionList)
        highlighted = listing.highlighted_option.id if listing.highlighted_option else None
        listing.clear_options()
        for chat in chats:
            prompt = Text(escape(chat.title), no_wrap=True, overflow="ellipsis")
            model = chat.model.rsplit("/", 1)[-1]
            prompt.append(f"\n{ago(chat.updated)} · {escape(model)}", style="dim")
            listing.add_option(Option(prompt, id=str(chat.id)))
        ids = [str(c.id) for c in chats]
        current = str(self.chat.id) if self.chat else highlighted
        if current in ids:
            listing.highlighted = ids.index(current)

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
        if self.store is None:
            return
        try:
            chat = self.store.get(chat_id)
            messages = self.store.messages(chat_id)
        except ChatStoreError as error:
            self._report(error)
            self.refresh_list()
            return
        self._leave_edit()
        self.chat = chat
        self.show_messages(messages)
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
            log.add_message(m.role, shown_message(m.content), status=m.status, stats=stats_line(m.stats))
        if gen is not None and self.chat is not None and gen.chat_id == self.chat.id:
            gen.stream = log.start_reply()
            gen.stream.append(shown("".join(gen.text)))

    def new_chat(self, model: str | None = None) -> None:
        """A draft: created in the store by its first message (no empty chats pile up)."""
        self._leave_edit()
        current = self.chat.model if self.chat else self.draft.model
        self.chat = None
        self.draft = Draft(model or current or str(getattr(self.app_config, "default_model", "") or ""))
        self.draft.parameters = dict(getattr(self.app_config, "parameters", {}) or {})
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
            self.app.call_from_thread(self._report, error)
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

    def render_header(self) -> None:
        header = Text(no_wrap=True, overflow="ellipsis")
        if self.model:
            header.append(escape(self.model), style="bold")
            loaded = self._references.get(self.model, self.model) in self._loaded  # "tiny" is "tiny:latest"
            header.append("  loaded" if loaded else "  not loaded: loads on the first message", style="dim")
        else:
            header.append("no model: press m to pick one, or pull one in the Models tab", style="bold")
        if self.system:
            header.append("  · system prompt", style="italic")
        if self.parameters:
            header.append(f"  · {len(self.parameters)} parameter(s)", style="dim")
        title = self.chat.title if self.chat else "new chat"
        header.append(f"  · {escape(title)}", style="dim")
        if self.editing is not None:
            header.append("  · editing: enter resends, esc cancels", style="reverse")
        self.query_one("#chat-header", Static).update(header)
        if not self._checking:
            self._checking = True
            self.check_loaded()

    @work(thread=True, exit_on_error=False, group="chat-loaded")
    def check_loaded(self) -> None:
        model, learned = self.model, False
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
            self.app.call_from_thread(self.render_header)

    # sending -------------------------------------------------------------------------------------

    @on(ChatInput.Submitted)
    def submitted(self, message: ChatInput.Submitted) -> None:
        self.send(message.text)

    def send(self, text: str) -> None:
        if self.generation is not None:
            self.app.notify("a reply is streaming: esc stops it", severity="warning")
            return
        if self.store is None:
            self.app.notify("the chat history is still opening", severity="warning")
            return
        if not self.model:
            self.app.notify("pick a model first (m)", severity="warning")
            self.action_pick_model()
            return
        try:
            if self.chat is None:
                draft = self.draft
                self.chat = self.store.create(
                    draft.model, title=title_from(text), system=draft.system, parameters=draft.parameters
                )
            elif self.chat.title == DEFAULT_TITLE and not self.store.messages(self.chat.id):
                self.store.rename(self.chat.id, title_from(text))
                self.chat = self.store.get(self.chat.id)
            if self.editing is not None:
                self.store.delete_from(self.editing)
            self.store.add_message(self.chat.id, "user", text)
        except ChatStoreError as error:
            if self.chat is not None and self._gone(self.chat.id):
                self._orphaned()
                return
            self._report(error)
            return
        self.query_one(ChatInput).clear()
        if self.editing is not None:
            self.editing = None
            self.show_messages(self.store.messages(self.chat.id))
        else:
            self.query_one(ChatLog).add_message("user", shown_message(text))
        self.render_header()
        self.refresh_list()
        self.start_reply()

    def _gone(self, chat_id: int) -> bool:
        """Whether a chat was deleted under us (by another window of the app)."""
        assert self.store is not None
        try:
            self.store.get(chat_id)
        except ChatStoreError:
            return True
        return False

    def _orphaned(self) -> None:
        """This chat was deleted elsewhere: its settings become a new draft; the typed text stays."""
        assert self.chat is not None
        old = self.chat
        self.chat = None
        self.draft = Draft(old.model)
        self.draft.system, self.draft.parameters = old.system, dict(old.parameters)
        self.query_one(ChatLog).clear_messages()
        self.render_header()
        self.refresh_list()
        self.app.notify(
            "this chat was deleted in another window: press Enter to send your message as a new chat",
            severity="warning",
            markup=False,
        )

    def start_reply(self) -> None:
        """Ask the engine for a reply to the chat as stored."""
        from engine import CancelToken

        assert self.store is not None and self.chat is not None
        chat = self.chat
        try:
            turns = history(chat.system, self.store.messages(chat.id))
            reply_id = self.store.begin_reply(chat.id)
        except ChatStoreError as error:
            self._report(error)
            return
        gen = Generation(chat.id, reply_id, CancelToken(), self.query_one(ChatLog).start_reply())
        self.generation = gen
        options = {**dict(getattr(self.app_config, "parameters", {}) or {}), **chat.parameters}
        self.generate(gen, chat.model, turns, options, self.keep_alive())

    def keep_alive(self) -> float | None:
        text = getattr(self.app_config, "keep_alive", None)
        if not text:
            return None
        try:
            from tui.config import keep_alive_seconds

            return keep_alive_seconds(str(text))
        except Exception:  # noqa: BLE001 - a bad setting was logged when the config loaded
            return None

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-generate")
    def generate(
        self,
        gen: Generation,
        model: str,
        turns: list[dict[str, str]],
        options: dict[str, object],
        keep_alive: float | None,
    ) -> None:
        from engine import Cancelled, Done, Token

        status: str = "complete"
        stats: dict[str, float] | None = None
        failure: BaseException | None = None
        saved = time.monotonic()
        try:
            events = self.engine.chat(
                model,
                turns,
                options=options,
                conversation=str(gen.chat_id),
                keep_alive=keep_alive,
                cancel=gen.cancel,
            )
            for event in events:
                if gen.cancel.cancelled:  # what was shown is what is kept, whatever the engine had queued
                    status = "stopped"
                    close = getattr(events, "close", None)
                    if close is not None:
                        close()  # frees the slot at the engine's next step
                    break
                if isinstance(event, Token):
                    gen.text.append(event.text)
                    self.post_message(ReplyDelta(gen.chat_id, event.text))
                    if time.monotonic() - saved >= SAVE_EVERY_S and self.store is not None:
                        saved = time.monotonic()
                        self.store.update_reply(gen.reply_id, "".join(gen.text))
                elif isinstance(event, Done):
                    status = reply_status(event.reason)
                    stats = done_stats(event)
                    if event.reason == "error":
                        failure = RuntimeError(event.error or "generation failed")
        except Cancelled:
            status = "stopped"
        except Exception as error:  # noqa: BLE001 - the reply is kept, marked error, and the error shown
            status, failure = "error", error
        if self.store is not None and self.generation is gen:
            try:
                self.store.finish_reply(gen.reply_id, "".join(gen.text), status=status, stats=stats)
            except ChatStoreError as error:
                failure = failure or error
        self.post_message(ReplyDone(gen.chat_id, gen.reply_id, status, stats, failure))

    @on(ReplyDelta)
    def reply_delta(self, message: ReplyDelta) -> None:
        gen = self.generation
        if gen is not None and gen.chat_id == message.chat_id and gen.stream is not None:
            gen.stream.append(shown(message.text))
            if not gen.started:  # the model is loaded now: say so in the header
                gen.started = True
                self.render_header()

    @on(ReplyDone)
    def reply_done(self, message: ReplyDone) -> None:
        gen = self.generation
        if gen is None or gen.reply_id != message.reply_id:
            return
        self.generation = None
        if gen.stream is not None:
            gen.stream.finish(status=message.status, stats=stats_line(message.stats))
            if message.error is not None:
                self.query_one(ChatLog).add_message("error", shown(error_text(message.error)))
        if message.error is not None:
            self._report(message.error)
        self.render_header()
        self.refresh_list()

    # actions -------------------------------------------------------------------------------------

    def action_new_chat(self) -> None:
        self.new_chat()
        self.query_one(ChatInput).focus()

    def action_escape(self) -> None:
        if self.generation is not None:
            self.action_stop()
            return
        focused = self.app.focused
        log = self.query_one(ChatLog)
        if self.editing is not None:
            self._leave_edit()
            self.query_one(ChatInput).clear()
        elif focused is log and log.selected_index is not None:
            log.action_select_none()
        elif focused is self.query_one("#chat-search"):
            self.query_one("#chat-list").focus()
        elif focused is self.query_one("#chat-list"):
            self.query_one(ChatInput).focus()
        elif focused is self.query_one(ChatInput):
            log.focus()

    def action_stop(self) -> None:
        gen = self.generation
        if gen is None:
            self.app.notify("no reply is streaming", timeout=2)
            return
        gen.cancel.cancel()

    def _busy(self) -> bool:
        if self.generation is not None:
            self.app.notify("a reply is streaming: esc stops it", severity="warning")
            return True
        if self.store is None or self.chat is None:
            self.app.notify("no chat yet: write a message first", severity="warning")
            return True
        return False

    def action_regenerate(self) -> None:
        if self._busy():
            return
        assert self.store is not None and self.chat is not None
        try:
            messages = self.store.messages(self.chat.id)
            last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
            if last_user is None:
                self.app.notify("nothing to regenerate", severity="warning")
                return
            if last_user + 1 < len(messages):
                self.store.delete_from(messages[last_user + 1].id)
            messages = messages[: last_user + 1]
        except ChatStoreError as error:
            self._report(error)
            return
        self._leave_edit()
        self.show_messages(messages)
        self.start_reply()

    def action_edit_last(self) -> None:
        if self._busy():
            return
        assert self.store is not None and self.chat is not None
        try:
            messages = self.store.messages(self.chat.id)
        except ChatStoreError as error:
            self._report(error)
            return
        last = next((m for m in reversed(messages) if m.role == "user"), None)
        if last is None:
            self.app.notify("no message of yours to edit", severity="warning")
            return
        self.editing = last.id
        box = self.query_one(ChatInput)
        box.load_text(last.content)
        box.move_cursor(box.document.end)
        box.border_title = "Editing your last message (enter resends, esc cancels)"
        box.focus()
        self.render_header()

    def _leave_edit(self) -> None:
        """Cancelled, or left for another chat: the old message's text must not be sent elsewhere."""
        if self.editing is not None:
            self.editing = None
            box = self.query_one(ChatInput)
            box.load_text("")
            box.border_title = "Message"
            self.render_header()

    def _copy(self, text: str, what: str) -> None:
        self.app.copy_to_clipboard(text)  # OSC 52: reaches the user's own terminal, also over SSH
        self._local_clipboard(text)
        self.app.notify(f"copied {what} ({len(text)} characters)", timeout=2)

    @work(thread=True, exit_on_error=False, group="chat-clipboard")
    def _local_clipboard(self, text: str) -> None:
        """pyperclip as well where this machine has a clipboard; none (SSH, headless): OSC 52 was sent."""
        try:
            import pyperclip

            pyperclip.copy(text)
        except Exception:  # noqa: BLE001, S110 - no local clipboard is the normal case over SSH
            pass

    def _message_text(self) -> tuple[str, str] | None:
        log = self.query_one(ChatLog)
        view = log.selected()
        if view is None:
            views = [v for v in log.message_views() if v.role == "assistant"] or log.message_views()
            view = views[-1] if views else None
        if view is None:
            return None
        return view.content, f"the {view.role} message"

    def action_copy_message(self) -> None:
        found = self._message_text()
        if found is None:
            self.app.notify("no message to copy", severity="warning")
            return
        self._copy(*found)

    def action_copy_code(self) -> None:
        log = self.query_one(ChatLog)
        selected = log.selected()
        views = [selected] if selected is not None else list(reversed(log.message_views()))
        for view in views:
            code = last_code_block(view.content)
            if code is not None:
                self._copy(code, "the code block")
                return
        self.app.notify("no code block to copy", severity="warning")

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
        wide = event.size.width >= NARROW
        if wide != self._wide:
            self._wide = wide
            self.list_shown = wide
            self.set_class(not wide, "-narrow")

    def _target(self) -> Conversation | None:
        """The chat an action on "a chat" means: the highlighted one in the list when it has focus."""
        listing = self.query_one("#chat-list", OptionList)
        if listing.has_focus and listing.highlighted_option is not None and self.store is not None:
            try:
                return self.store.get(int(listing.highlighted_option.id or 0))
            except ChatStoreError:
                return None
        return self.chat

    @work(exclusive=True, group="chat-dialog")
    async def action_rename(self) -> None:
        from tui.screens.rename import RenameScreen

        chat = self._target()
        if chat is None or self.store is None:
            self.app.notify("no chat to rename: write a message first", severity="warning")
            return
        title = await self.app.push_screen_wait(RenameScreen(chat.title))
        if not title:
            return
        try:
            self.store.rename(chat.id, title)
            if self.chat is not None and self.chat.id == chat.id:
                self.chat = self.store.get(chat.id)
        except ChatStoreError as error:
            self._report(error)
        self.render_header()
        self.refresh_list()

    @work(exclusive=True, group="chat-dialog")
    async def action_delete(self) -> None:
        from tui.screens.confirm import ConfirmScreen

        chat = self._target()
        if chat is None or self.store is None:
            self.app.notify("no chat to delete", severity="warning")
            return
        if self.generation is not None and self.generation.chat_id == chat.id:
            self.app.notify("a reply is streaming in that chat: esc stops it", severity="warning")
            return
        question = Text.assemble("Delete the chat ", (escape(chat.title), "bold"), "?")
        question.append("\nIts messages are deleted too; this cannot be undone.")
        if not await self.app.push_screen_wait(ConfirmScreen(question)):
            return
        try:
            self.store.delete(chat.id)
        except ChatStoreError as error:
            self._report(error)
            return
        self.app.notify(f"deleted {escape(chat.title)}", markup=False, timeout=3)
        if self.chat is not None and self.chat.id == chat.id:
            self.new_chat(chat.model)
        self.refresh_list()

    @work(exclusive=True, group="chat-dialog")
    async def action_export(self) -> None:
        from tui.screens.confirm import ConfirmScreen
        from tui.screens.export import ExportScreen, default_export_path, write_atomically

        chat = self._target()
        if chat is None or self.store is None:
            self.app.notify("no chat to export: write a message first", severity="warning")
            return
        path = await self.app.push_screen_wait(ExportScreen(chat.title, default_export_path(chat.title)))
        if path is None:
            return
        if path.exists():
            question = Text.assemble((escape(str(path)), "bold"), " exists. Replace it?")
            if not await self.app.push_screen_wait(ConfirmScreen(question, yes="Replace")):
                return
        try:
            markdown = self.store.export_markdown(chat.id)
            await asyncio.to_thread(write_atomically, path, markdown)
        except (ChatStoreError, OSError) as error:
            self._report(error)
            return
        self.app.notify(f"exported to {escape(str(path))}", markup=False)

    @work(exclusive=True, group="chat-dialog")
    async def action_pick_model(self) -> None:
        from tui.screens.model_picker import ModelPickerScreen, model_choices

        try:
            choices = await asyncio.to_thread(model_choices, self.engine)
        except Exception as error:  # noqa: BLE001 - reported by the app
            self._report(error)
            return
        model = await self.app.push_screen_wait(ModelPickerScreen(choices, self.model))
        if model:
            self.set_model(model)

    def set_model(self, model: str) -> None:
        if self.chat is None:
            self.draft.model = model
        elif self.store is not None:
            try:
                self.store.update_settings(self.chat.id, model=model)
                self.chat = self.store.get(self.chat.id)
            except ChatStoreError as error:
                self._report(error)
        self.render_header()
        self.refresh_list()

    @work(exclusive=True, group="chat-dialog")
    async def action_settings(self) -> None:
        from tui.screens.chat_settings import ChatSettings, ChatSettingsScreen

        try:
            models = await asyncio.to_thread(lambda: [m.reference for m in self.engine.list_models()])
        except Exception as error:  # noqa: BLE001 - reported by the app
            self._report(error)
            return
        current = ChatSettings(self.model, self.system, self.parameters)
        chosen = await self.app.push_screen_wait(ChatSettingsScreen(current, models))
        if chosen is None:
            return
        if self.chat is None:
            self.draft = Draft(chosen.model, chosen.system, dict(chosen.parameters))
        elif self.store is not None:
            try:
                self.store.update_settings(
                    self.chat.id, model=chosen.model, system=chosen.system, parameters=chosen.parameters
                )
                self.chat = self.store.get(self.chat.id)
            except ChatStoreError as error:
                self._report(error)
        self.render_header()
        self.refresh_list()
