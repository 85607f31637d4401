"""A conversation as a readable Markdown transcript (the Chat tab's export)."""

from __future__ import annotations

import json
import math

from tui.chatstore.records import DEFAULT_TITLE, Conversation, StoredMessage, one_line

_ROLE_HEADINGS = {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool"}
_STATUS_NOTES = {
    "stopped": "*(reply stopped by the user)*",
    "interrupted": "*(reply interrupted: llamadeck closed before it finished)*",
    "streaming": "*(reply still being written)*",
    "error": "*(reply failed)*",
}


def render_markdown(chat: Conversation, messages: list[StoredMessage]) -> str:
    """The transcript :meth:`ChatStore.export_markdown` gives (a pure function, for tests and previews)."""
    title = one_line(chat.title) or DEFAULT_TITLE
    lines = [
        f"# {title}",
        "",
        f"- Model: `{chat.model}`",
        f"- Created: {chat.created}",
        f"- Updated: {chat.updated}",
    ]
    if chat.parameters:
        lines.append(f"- Parameters: `{json.dumps(chat.parameters, ensure_ascii=False)}`")
    if chat.system:
        lines += ["", "## System prompt", "", chat.system]
    for message in messages:
        lines += ["", f"## {_ROLE_HEADINGS.get(message.role, message.role.title())}", ""]
        if message.content:
            lines.append(message.content)
        if note := _STATUS_NOTES.get(message.status):
            if message.content:
                lines.append("")
            lines.append(note)
        if message.stats and message.role == "assistant":
            lines += ["", f"<sub>{_format_stats(message.stats)}</sub>"]
    return "\n".join(lines) + "\n"


def _format_stats(stats: dict[str, float]) -> str:
    parts = []
    for key, value in stats.items():
        shown = f"{value:.1f}" if math.isfinite(value) and value != int(value) else f"{value:g}"
        parts.append(f"{key.replace('_', ' ')}: {shown}")
    return ", ".join(parts)
