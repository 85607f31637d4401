"""The Chat tab's dialogs, each a flow that reads top to bottom: rename, delete, export, model, settings.

The pane's actions run them as workers (``push_screen_wait`` needs one); the history is asked on its
own thread (``pane.queue``). What a
dialog decides goes back through the pane (``set_model``, ``apply_settings``,
``new_chat``), which stays the one owner of the chat shown and its draft.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import OptionList

from engine import visible
from tui.chatstore import ChatStoreError, Conversation

if TYPE_CHECKING:
    from tui.widgets.chat_pane import ChatPane


async def target(pane: ChatPane) -> Conversation | None:
    """The chat an action on "a chat" means: the highlighted one in the list when it has focus."""
    listing = pane.query_one("#chat-list", OptionList)
    if listing.has_focus and listing.highlighted_option is not None and pane.store is not None:
        try:
            return await pane.queue.call(pane.store.get, int(listing.highlighted_option.id or 0))
        except ChatStoreError:
            return None
    return pane.chat


async def rename_chat(pane: ChatPane) -> None:
    """Give the chat a new title."""
    from tui.screens.rename import RenameScreen

    chat = await target(pane)
    if chat is None or pane.store is None:
        pane.app.notify("no chat to rename: write a message first", severity="warning")
        return
    title = await pane.app.push_screen_wait(RenameScreen(chat.title))
    if not title:
        return
    try:
        await pane.queue.call(pane.store.rename, chat.id, title)
        renamed = await pane.queue.call(pane.store.get, chat.id)
        if pane.chat is not None and pane.chat.id == chat.id:
            pane.chat = renamed
    except ChatStoreError as error:
        pane.report(error)
    pane.render_header()
    pane.refresh_list()


async def delete_chat(pane: ChatPane) -> None:
    """Delete the chat and its messages, after asking (not while a reply streams into it)."""
    from tui.screens.confirm import ConfirmScreen

    chat = await target(pane)
    if chat is None or pane.store is None:
        pane.app.notify("no chat to delete", severity="warning")
        return
    if pane.generation is not None and pane.generation.chat_id == chat.id:
        pane.app.notify("a reply is streaming in that chat: ctrl+c stops it", severity="warning")
        return
    question = Text.assemble("Delete the chat ", (visible(chat.title), "bold"), "?")
    question.append("\nIts messages are deleted too; this cannot be undone.")
    if not await pane.app.push_screen_wait(ConfirmScreen(question)):
        return
    try:
        await pane.queue.call(pane.store.delete, chat.id)
    except ChatStoreError as error:
        pane.report(error)
        return
    pane.app.notify(f"deleted {visible(chat.title)}", markup=False, timeout=3)
    if pane.chat is not None and pane.chat.id == chat.id:
        pane.new_chat(chat.model, keep_text=True)  # what was typed for it stays in the box
    pane.refresh_list()


async def export_chat(pane: ChatPane) -> None:
    """Write the chat as Markdown to a file, asking before replacing one."""
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.export import ExportScreen, default_export_path, write_atomically

    chat = await target(pane)
    if chat is None or pane.store is None:
        pane.app.notify("no chat to export: write a message first", severity="warning")
        return
    path = await pane.app.push_screen_wait(ExportScreen(chat.title, default_export_path(chat.title)))
    if path is None:
        return
    if path.exists():
        question = Text.assemble((visible(str(path)), "bold"), " exists. Replace it?")
        if not await pane.app.push_screen_wait(ConfirmScreen(question, yes="Replace")):
            return
    try:
        markdown = await pane.queue.call(pane.store.export_markdown, chat.id)
        await asyncio.to_thread(write_atomically, path, markdown)
    except (ChatStoreError, OSError) as error:
        pane.report(error)
        return
    pane.app.notify(f"exported to {visible(str(path))}", markup=False)


async def pick_model(pane: ChatPane) -> None:
    """Choose the chat's model among the local ones."""
    from tui.screens.model_picker import ModelPickerScreen, model_choices

    try:
        choices = await asyncio.to_thread(model_choices, pane.engine)
    except Exception as error:  # noqa: BLE001 - reported by the app
        pane.report(error)
        return
    model = await pane.app.push_screen_wait(ModelPickerScreen(choices, pane.model))
    if model:
        pane.set_model(model)


async def edit_settings(pane: ChatPane) -> None:
    """The chat's model, system prompt, parameters and reply format in one dialog."""
    from tui.screens.chat_settings import ChatSettings, ChatSettingsScreen
    from tui.widgets.chat_format_setting import engine_problem
    from tui.widgets.param_editor import chat_layers

    try:
        models = await asyncio.to_thread(lambda: [m.reference for m in pane.engine.list_models()])
    except Exception as error:  # noqa: BLE001 - reported by the app
        pane.report(error)
        return
    tools = pane.chat.tools if pane.chat else pane.draft.tools
    current = ChatSettings(pane.model, pane.system, pane.parameters, pane.reply_format, tools)
    check = functools.partial(engine_problem, pane.engine)
    settings = dict(getattr(pane.app_config, "parameters", {}) or {})
    layers = functools.partial(chat_layers, pane.engine, settings)
    chosen = await pane.app.push_screen_wait(ChatSettingsScreen(current, models, check, layers))
    if chosen is None:
        return
    pane.apply_settings(chosen)
