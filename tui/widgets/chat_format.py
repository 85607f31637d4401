"""How the Chat tab draws text it did not write: escaped, cut when huge, stats in a line, errors with advice.

The store keeps every message verbatim; only what is drawn changes.
"""

from __future__ import annotations

from collections.abc import Mapping

from tui.tables import printable

SHOWN_LIMIT = 32_000  # characters of one stored message drawn; a 1 MB paste took seconds per scroll


def shown_message(text: str) -> str:
    """A stored message for the screen: escaped, cut with a note past ``SHOWN_LIMIT`` (stored whole)."""
    if len(text) <= SHOWN_LIMIT:
        return printable(text)
    rest = len(text) - SHOWN_LIMIT
    return (
        printable(text[:SHOWN_LIMIT]) + f"\n\n… {rest:,} more characters (export the chat to read them all)"
    )


def stats_line(stats: Mapping[str, float] | None) -> str | None:
    """``42.1 tok/s · first token 0.31 s · 128 tokens · ctx 214 / 4.1k · 96 cached`` (None without stats)."""
    from tui.widgets.chat_gauge import reply_context

    if not stats:
        return None
    parts = []
    if "tokens_per_second" in stats:
        parts.append(f"{stats['tokens_per_second']:.1f} tok/s")
    if "prompt_seconds" in stats:
        parts.append(f"first token {stats['prompt_seconds']:.2f} s")
    if "completion_tokens" in stats:
        parts.append(f"{int(stats['completion_tokens'])} tokens")
    if (context := reply_context(stats)) is not None:
        parts.append(context)
    if stats.get("cached_tokens"):
        parts.append(f"{int(stats['cached_tokens'])} cached")
    if stats.get("load_seconds", 0) >= 0.1:
        parts.append(f"loaded in {stats['load_seconds']:.1f} s")
    if stats.get("dropped_messages"):
        parts.append(f"{int(stats['dropped_messages'])} oldest messages left out to fit")
    return " · ".join(parts) or None


def error_text(error: BaseException) -> str:
    """An engine error's message, with what to do in this tab when the model is the problem."""
    from engine import ModelNotFound

    text = str(error) or type(error).__name__
    if isinstance(error, ModelNotFound):
        text += " (press m to pick another model, or pull this one in the Models tab)"
    return text
