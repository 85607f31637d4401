"""A reply's life: the turns the engine gets, the messages its worker posts, what the store keeps of it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

from tui.chatstore import DEFAULT_TITLE, ChatStoreError, title_from
from tui.widgets.chat_tools import ReplyPieces, chat_turn

if TYPE_CHECKING:
    from engine import CancelToken, Done, Engine
    from tui.chatstore import ChatStore, Conversation, StoredImage, StoredMessage
    from tui.widgets.message_view import ReplyStream

SAVE_EVERY_S = 1.0


@dataclass
class ReplyDelta(Message):
    chat_id: int
    text: str
    thinking: str = ""  # a thinking model's reasoning, shown apart (and kept with the reply)
    calls: tuple[dict[str, Any], ...] = ()  # tool calls the text held (chat_tools), Ollama's shape


@dataclass
class ReplyDone(Message):
    chat_id: int
    reply_id: int
    status: str  # complete, stopped, error
    stats: dict[str, float] | None
    error: BaseException | None


@dataclass
class Generation:
    """The one reply streaming now (the view may be gone while another chat is shown).

    Before it is sent, the message is counted against the context (``chat_sending``): then
    ``checking`` holds its text, ``reply_id`` is 0 (no reply row yet) and ``chat_id`` 0 for a new chat.
    """

    chat_id: int
    reply_id: int
    cancel: CancelToken
    stream: ReplyStream | None
    text: list[str] = field(default_factory=list)
    started: bool = False  # the first token was shown
    thinking: list[str] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None  # the chat's, which the reply may call
    context: int = 0  # tokens the conversation may hold, when counted before sending (kept in its stats)
    prompt_tokens: int = 0  # its prompt, when counted before sending
    checking: str | None = None  # the message being counted before it is sent
    images: list[StoredImage] = field(default_factory=list)  # the counted message's attached images


def history(system: str | None, messages: list[StoredMessage]) -> list[dict[str, Any]]:
    """The messages the engine gets: the system prompt, then every non-empty turn (tool calls and
    results as Ollama's, ``chat_tools.chat_turn``; a message's images as its ``images``)."""
    turns: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        turn = chat_turn(m)
        if turn is not None and m.images:
            turn["images"] = [i.data for i in m.images]  # bytes, as the engine takes them
        if turn is not None:
            turns.append(turn)
    return turns


def keep_message(
    store: ChatStore,
    chat: Conversation | None,
    draft: dict[str, Any],
    text: str,
    images: list[StoredImage],
    editing: int | None,
) -> tuple[Conversation, list[StoredMessage], int]:
    """On the history's thread: the user's message kept (a new chat created from ``draft``, titled by
    it; an edit replacing its message and all after), then the reply's row; the chat, its messages
    with the new one (the turns the engine gets) and the reply's id."""
    if chat is None:  # a Draft's fields are the store's settings: model, system, parameters, format, tools
        chat = store.create(title=title_from(text), **draft)
    elif chat.title == DEFAULT_TITLE and not store.messages(chat.id):
        store.rename(chat.id, title_from(text))
        chat = store.get(chat.id)
    if editing is not None:
        store.delete_from(editing)
    store.add_message(chat.id, "user", text, images=images)
    messages = store.messages(chat.id)
    return chat, messages, store.begin_reply(chat.id)


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


def loaded_context(engine: Engine, model: str) -> int:
    """The context ``model`` holds per conversation as loaded now (0: not loaded, or not known)."""
    try:
        reference = engine.resolve(model).reference
        return next((m.context for m in engine.loaded() if m.reference == reference), 0)
    except Exception:  # noqa: BLE001 - only a figure of the stats line
        return 0


def reply_status(reason: str) -> str:
    return {"cancelled": "stopped", "error": "error"}.get(reason, "complete")


def stream_reply(
    engine: Engine,
    store: ChatStore | None,
    gen: Generation,
    model: str,
    turns: list[dict[str, Any]],
    options: dict[str, object],
    keep_alive: float | None,
    *,
    post: Callable[[Message], object],
    current: Callable[[], bool],
    format: str | dict[str, object] | None = None,
) -> None:
    """On a worker thread: ask the engine, post each token, keep the reply in the store as it grows.

    The reply is saved about once a second while it streams and finished with how it ended,
    unless ``current()`` says ``gen`` is no longer the pane's reply (the app closing saved it).
    """
    from engine import Cancelled, Done, Token

    status: str = "complete"
    stats: dict[str, float] | None = None
    failure: BaseException | None = None
    saved = time.monotonic()
    pieces = ReplyPieces(gen.tools)
    try:
        events = engine.chat(
            model,
            turns,
            options=options,
            conversation=str(gen.chat_id),
            keep_alive=keep_alive,
            cancel=gen.cancel,
            format=format,
            tools=gen.tools,
        )
        for event in events:
            if gen.cancel.cancelled:  # what was shown is what is kept, whatever the engine had queued
                status = "stopped"
                close = getattr(events, "close", None)
                if close is not None:
                    close()  # frees the slot at the engine's next step
                break
            if isinstance(event, Token):
                text, calls = pieces.feed(event.text)
                gen.text.append(text)
                gen.thinking.append(event.thinking)
                post(ReplyDelta(gen.chat_id, text, event.thinking, tuple(calls)))
                if time.monotonic() - saved >= SAVE_EVERY_S and store is not None:
                    saved = time.monotonic()
                    thinking = "".join(gen.thinking)
                    store.update_reply(
                        gen.reply_id, "".join(gen.text), thinking=thinking, tool_calls=pieces.calls
                    )
            elif isinstance(event, Done):
                status = reply_status(event.reason)
                stats = done_stats(event)
                stats["context"] = gen.context or loaded_context(engine, model)
                if event.reason == "error":
                    failure = RuntimeError(event.error or "generation failed")
    except Cancelled:
        status = "stopped"
    except Exception as error:  # noqa: BLE001 - the reply is kept, marked error, and the error shown
        status, failure = "error", error
    text, calls = pieces.finish()  # what the parser held back: a call cut short stays text
    if text or calls:
        gen.text.append(text)
        post(ReplyDelta(gen.chat_id, text, "", tuple(calls)))
    if store is not None and current():
        try:
            thinking = "".join(gen.thinking)
            store.finish_reply(
                gen.reply_id,
                "".join(gen.text),
                status=status,
                stats=stats,
                thinking=thinking,
                tool_calls=pieces.calls,
            )
        except ChatStoreError as error:
            failure = failure or error
    post(ReplyDone(gen.chat_id, gen.reply_id, status, stats, failure))
