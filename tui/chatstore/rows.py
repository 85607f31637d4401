"""Values to and from SQLite: text kept verbatim, and rows another tool wrote read leniently.

Only lone surrogates, which UTF-8 cannot hold, are changed on the way in (to
U+FFFD). On the way out, bad UTF-8, blobs and broken JSON read as text or
empty settings: one foreign row never breaks a listing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tui.chatstore.records import Conversation, StoredMessage

# sqlite3 error names (Python 3.11+ sets ``sqlite_errorname``) that mean the file itself is bad.
DAMAGED = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})

CONVERSATION_COLUMNS = "id, title, model, system, parameters, created, updated, format, tools"
MESSAGE_COLUMNS = (
    "id, conversation_id, role, content, status, stats, created, thinking, tool_calls, tool_name"
)

_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` as SQLite can keep it: lone surrogates (not encodable as UTF-8) become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def lenient(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return lenient(value)
    return "" if value is None else str(value)


def to_json(value: Mapping[str, object], what: str) -> str:
    try:
        return storable(json.dumps(dict(value), ensure_ascii=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be JSON values: {error}") from None


def parameters_from(raw: object) -> dict[str, object]:
    try:
        value = json.loads(as_text(raw))
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def format_to(value: str | Mapping[str, object] | None) -> str | None:
    """A reply format as stored: None for free text, else its JSON."""
    if value is None:
        return None
    return storable(json.dumps(value if isinstance(value, str) else dict(value), ensure_ascii=False))


def format_from(raw: object) -> str | dict[str, object] | None:
    """A stored reply format; what is not ``"json"`` or an object (a damaged row) is free text."""
    if raw is None:
        return None
    try:
        value = json.loads(as_text(raw))
    except (ValueError, RecursionError):
        return None
    return value if value == "json" or isinstance(value, dict) else None


def objects_to(value: Sequence[Mapping[str, Any]] | None, what: str) -> str | None:
    """A list of JSON objects as stored (tools, tool calls); None (or empty) as NULL."""
    if not value:
        return None
    try:
        return storable(json.dumps([dict(item) for item in value], ensure_ascii=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be JSON values: {error}") from None


def objects_from(raw: object) -> list[dict[str, Any]]:
    """A stored list of objects; what is not one (NULL, a damaged row) is empty."""
    if raw is None:
        return []
    try:
        value = json.loads(as_text(raw))
    except (ValueError, RecursionError):
        return []
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def stats_from(raw: object) -> dict[str, float] | None:
    if raw is None:
        return None
    try:
        value = json.loads(as_text(raw))
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    return {
        str(k): float(v) for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def contains(haystack: object, needle: object) -> bool:
    """The SQL function behind search: a literal, case-folded substring test (``%``/``_`` mean themselves)."""
    if not isinstance(haystack, bytes | str) or not isinstance(needle, str):
        return False
    return needle in as_text(haystack).casefold()


def conversation_from_row(row: tuple[object, ...]) -> Conversation:
    id_, title, model, system, parameters, created, updated, format_, tools = row
    return Conversation(
        id=int(id_),  # type: ignore[call-overload]
        title=as_text(title),
        model=as_text(model),
        system=None if system is None else as_text(system),
        parameters=parameters_from(parameters),
        created=as_text(created),
        updated=as_text(updated),
        format=format_from(format_),
        tools=objects_from(tools) or None,
    )


def message_from_row(row: tuple[object, ...]) -> StoredMessage:
    id_, conversation_id, role, content, status, stats, created, thinking, calls, tool_name = row
    return StoredMessage(
        id=int(id_),  # type: ignore[call-overload]
        conversation_id=int(conversation_id),  # type: ignore[call-overload]
        role=as_text(role),
        content=as_text(content),
        status=as_text(status),
        stats=stats_from(stats),
        created=as_text(created),
        thinking=as_text(thinking),
        tool_calls=tuple(objects_from(calls)),
        tool_name=None if tool_name is None else as_text(tool_name),
    )


def storable_or_none(text: str | None) -> str | None:
    return None if text is None else storable(text)
