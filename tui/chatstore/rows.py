"""Values to and from SQLite: text kept verbatim, and rows another tool wrote read leniently.

Only lone surrogates, which UTF-8 cannot hold, are changed on the way in (to
U+FFFD). On the way out, bad UTF-8, blobs and broken JSON read as text or
empty settings: one foreign row never breaks a listing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from tui.chatstore.records import Conversation, StoredMessage

# sqlite3 error names (Python 3.11+ sets ``sqlite_errorname``) that mean the file itself is bad.
DAMAGED = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})

CONVERSATION_COLUMNS = "id, title, model, system, parameters, created, updated, format"
MESSAGE_COLUMNS = "id, conversation_id, role, content, status, stats, created"

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
    id_, title, model, system, parameters, created, updated, format_ = row
    return Conversation(
        id=int(id_),  # type: ignore[call-overload]
        title=as_text(title),
        model=as_text(model),
        system=None if system is None else as_text(system),
        parameters=parameters_from(parameters),
        created=as_text(created),
        updated=as_text(updated),
        format=format_from(format_),
    )


def message_from_row(row: tuple[object, ...]) -> StoredMessage:
    id_, conversation_id, role, content, status, stats, created = row
    return StoredMessage(
        id=int(id_),  # type: ignore[call-overload]
        conversation_id=int(conversation_id),  # type: ignore[call-overload]
        role=as_text(role),
        content=as_text(content),
        status=as_text(status),
        stats=stats_from(stats),
        created=as_text(created),
    )


def storable_or_none(text: str | None) -> str | None:
    return None if text is None else storable(text)
