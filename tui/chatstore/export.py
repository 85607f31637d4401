"""A conversation as a readable Markdown transcript (the Chat tab's export)."""

from __future__ import annotations

import json
import math
from typing import Any

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
    if chat.tools:
        names = ", ".join(f"`{name}`" for name in _tool_names(chat.tools))
        lines.append(f"- Tools: {names}")
    if chat.system:
        lines += ["", "## System prompt", "", chat.system]
    for message in messages:
        heading = _ROLE_HEADINGS.get(message.role, message.role.title())
        if message.role == "tool" and message.tool_name:
            heading += f" result: `{one_line(message.tool_name)}`"
        lines += ["", f"## {heading}", ""]
        if message.thinking:
            lines += ["<details><summary>Thinking</summary>", "", message.thinking, "", "</details>", ""]
        if message.content:
            lines.append(message.content)
        for image in message.images:  # the bytes stay in the history: named, sized and hashed here
            size = f"{image.size / 1024:,.1f} KiB"
            lines += ["", f"*Image:* `{one_line(image.name)}` ({size}, sha256 `{image.sha256[:16]}`)"]
        for call in message.tool_calls:
            name, arguments = call_parts(call)
            if message.content or call is not message.tool_calls[0]:
                lines.append("")
            lines += [f"**Tool call:** `{one_line(name)}`", "", *_fenced(arguments)]
        if note := _STATUS_NOTES.get(message.status):
            if message.content:
                lines.append("")
            lines.append(note)
        if message.stats and message.role == "assistant":
            lines += ["", f"<sub>{_format_stats(message.stats)}</sub>"]
    return "\n".join(lines) + "\n"


def call_parts(call: dict[str, Any]) -> tuple[str, object]:
    """A stored call's name and arguments (Ollama's ``{"function": {"name", "arguments"}}``, or bare)."""
    function = call.get("function")
    body = function if isinstance(function, dict) else call
    return str(body.get("name") or "?"), body.get("arguments", {})


def _tool_names(tools: list[dict[str, Any]]) -> list[str]:
    return [call_parts(tool)[0] for tool in tools]


def _fenced(value: object) -> list[str]:
    text = json.dumps(value, ensure_ascii=False, indent=2)
    fence = "```"
    while fence in text:
        fence += "`"
    return [f"{fence}json", text, fence]


def _format_stats(stats: dict[str, float]) -> str:
    parts = []
    for key, value in stats.items():
        shown = f"{value:.1f}" if math.isfinite(value) and value != int(value) else f"{value:g}"
        parts.append(f"{key.replace('_', ' ')}: {shown}")
    return ", ".join(parts)
