"""The Chat pane's third layer: acting on messages already sent — regenerate the last reply, edit and
resend the last message, copy a message or a code block.

``ChatPane`` builds on :class:`EditingPane`; it provides ``start_reply`` and
``show_messages``. An edit keeps the id of the message it replaces in
``editing`` (the drafts layer), so the send that follows deletes it and every
later message first; Esc leaves the edit and the draft from before comes back.
"""

from __future__ import annotations

from textual import work

from tui.chatstore import ChatStoreError, StoredMessage
from tui.clipboard import copy_text
from tui.widgets.chat_input import ChatInput
from tui.widgets.chat_log import ChatLog
from tui.widgets.chat_sending import SendingPane


class EditingPane(SendingPane):
    """Regenerate, edit, copy for the Chat pane (see the module's docstring); the keys are bound in
    ``ChatPane.BINDINGS``, so the footer and F1 keep one order."""

    # what the pane above provides
    def start_reply(self) -> object:  # a worker
        raise NotImplementedError

    def show_messages(self, messages: list[StoredMessage]) -> None:
        raise NotImplementedError

    def edit_images(self, message: StoredMessage) -> None:
        """The edited message's images come back as attachments (``chat_attach``)."""

    def edit_left(self) -> None:
        """An edit was cancelled: the attachments from before it come back."""

    _saving: str | None = None  # a message on its way into the history (chat_pane)

    def _busy(self) -> bool:
        if self.generation is not None or self._saving is not None:
            self.app.notify("a reply is streaming: ctrl+c stops it", severity="warning")
            return True
        if self.store is None or self.chat is None:
            self.app.notify("no chat yet: write a message first", severity="warning")
            return True
        return False

    @work(group="chat-send")
    async def action_regenerate(self) -> None:
        if self._busy():
            return
        assert self.store is not None and self.chat is not None
        try:
            messages = await self.queue.call(self.store.messages, self.chat.id)
            last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
            if last_user is None:
                self.app.notify("nothing to regenerate", severity="warning")
                return
            if last_user + 1 < len(messages):
                await self.queue.call(self.store.delete_from, messages[last_user + 1].id)
            messages = messages[: last_user + 1]
        except ChatStoreError as error:
            self.report(error)
            return
        self._leave_edit()
        self.show_messages(messages)
        self.start_reply()

    @work(group="chat-send")
    async def action_edit_last(self) -> None:
        if self._busy():
            return
        assert self.store is not None and self.chat is not None
        try:
            messages = await self.queue.call(self.store.messages, self.chat.id)
        except ChatStoreError as error:
            self.report(error)
            return
        last = next((m for m in reversed(messages) if m.role == "user"), None)
        if last is None:
            self.app.notify("no message of yours to edit", severity="warning")
            return
        self.editing = last.id
        self.query_one(ChatInput).start_editing(last.content)
        self.edit_images(last)
        self.render_header()

    def _leave_edit(self) -> None:
        """Cancelled: the old message's text leaves the box, the draft from before comes back."""
        if self.editing is not None:
            self.editing = None
            self.box.stop_editing()
            self.edit_left()
            self.render_header()

    def _copy(self, text: str, what: str) -> None:
        copy_text(self, text)
        self.app.notify(f"copied {what} ({len(text)} characters)", timeout=2)

    def action_copy_message(self) -> None:
        view = self.query_one(ChatLog).message_to_copy()
        if view is None:
            self.app.notify("no message to copy", severity="warning")
            return
        self._copy(view.content, f"the {view.role} message")

    def action_copy_code(self) -> None:
        code = self.query_one(ChatLog).code_to_copy()
        if code is None:
            self.app.notify("no code block to copy", severity="warning")
            return
        self._copy(code, "the code block")
