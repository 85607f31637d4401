"""What the chat history holds, as the app sees it: conversations, messages, statuses, errors, titles."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ROLES = frozenset({"system", "user", "assistant", "tool"})
STATUSES = frozenset({"complete", "streaming", "stopped", "interrupted", "error"})
FINISHED = STATUSES - {"streaming"}
DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 48


class ChatStoreError(Exception):
    """The chat history cannot do what was asked; the message is one line for the user."""


class DamagedChatStore(ChatStoreError):
    """The file is not a (llamadeck) SQLite database, or it is corrupted: safe to set aside."""


class NewerChatStore(ChatStoreError):
    """The file was written by a newer llamadeck: left untouched."""


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    model: str
    system: str | None
    parameters: dict[str, object]
    created: str  # ISO 8601, UTC
    updated: str
    format: str | dict[str, object] | None = None  # the reply's: None free text, "json", or a JSON schema
    tools: list[dict[str, Any]] | None = None  # Ollama's tools the model may call; None: none


@dataclass(frozen=True)
class StoredImage:
    """An image attached to a message: the name it was attached by (a file's), its bytes and their hash."""

    name: str
    data: bytes = field(repr=False)
    sha256: str = ""

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: str
    content: str
    status: str  # one of STATUSES
    stats: dict[str, float] | None
    created: str
    thinking: str = ""  # a reply's reasoning, shown folded above it
    tool_calls: tuple[dict[str, Any], ...] = ()  # a reply's calls, as Ollama's message.tool_calls
    tool_name: str | None = None  # a "tool" message: the tool whose result it is
    images: tuple[StoredImage, ...] = ()  # a user message's attached images, in order


_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """``text`` on one line: control characters and runs of white space become one space, trimmed."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()


def title_from(text: str) -> str:
    """A chat title from its first user message: the first non-blank line, at most 48 characters.

    >>> title_from("  How do I sort a dict by value?\\nI tried sorted().")
    'How do I sort a dict by value?'
    """
    for line in text.splitlines():
        line = one_line(line)
        if line:
            break
    else:
        return DEFAULT_TITLE
    if len(line) > TITLE_LENGTH:
        line = line[: TITLE_LENGTH - 1].rstrip() + "…"
    return line
