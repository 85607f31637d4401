"""A chat's reply format (Ollama's ``format``): typed in the settings dialog, checked, named in the header.

Empty is free text, ``json`` any JSON object, anything else a JSON schema
typed or pasted as JSON. The dialog checks a schema with the engine itself
(``Engine.chat`` builds its grammar at the call, before any model loads, and
the iterator is closed unread), so a schema the engine cannot enforce is
refused when saved, with the engine's one-line message, not at the first send.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine import Engine

Format = str | dict[str, object] | None


def format_text(value: str | Mapping[str, object] | None) -> str:
    """What the dialog's field shows for a stored format."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(dict(value), indent=2, ensure_ascii=False)


def parse_format(text: str) -> tuple[Format, str | None]:
    """The format typed in the dialog, or the problem with it (one line)."""
    text = text.strip()
    if not text:
        return None, None
    if text.lower() == "json":
        return "json", None
    try:
        value = json.loads(text)
    except RecursionError:
        return None, "Reply format: the schema nests too deeply"
    except ValueError as error:
        return None, f'Reply format: not JSON ({error}); leave it empty for free text or write "json"'
    if not isinstance(value, dict):
        return None, 'Reply format: a JSON schema is an object ({...}); or write "json" for any JSON object'
    return value, None


def engine_problem(engine: Engine, model: str, value: Format) -> str | None:
    """What the engine says of ``value`` for ``model`` (blocking, cheap: nothing loads); None if it takes it.

    Only the format's own errors count: a model that is gone is the first send's to report."""
    from engine import InvalidInput

    if value is None or not model:
        return None
    try:
        events = engine.chat(model, [{"role": "user", "content": "check"}], format=value)
    except InvalidInput as error:  # UnsupportedSchema among them, naming the construct
        return f"Reply format: {error}"
    except Exception:  # noqa: BLE001 - not the format's fault: the first send says what it is
        return None
    close = getattr(events, "close", None)
    if close is not None:
        close()
    return None


def header_label(value: str | Mapping[str, object] | None) -> str:
    """The header's name for a chat's reply format; empty for free text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "reply: JSON"
    title = value.get("title")
    return f"reply: schema {title}" if isinstance(title, str) and title else "reply: JSON schema"
