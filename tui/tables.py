"""Plain-text tables and human numbers for the command line."""

from __future__ import annotations

from datetime import UTC, datetime

from engine import DraftModel, visible
from tui.terminal import cell_width


def printable(text: str) -> str:
    """Multi-line text from a downloaded file (a licence, a template), safe to print.

    Control characters (terminal escapes) are shown escaped; line breaks and tabs stay.
    """
    return visible(text, keep="\n\t")


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by three spaces, like ``ollama list``.

    Every cell is escaped here, newlines included, so no caller can forget:
    names and quants come from downloaded files and Hub listings.
    """
    cells = [[visible(str(cell)) for cell in row] for row in [headers, *rows]]
    widths = [max(cell_width(cell) for cell in column) for column in zip(*cells, strict=True)]
    lines = [
        "   ".join(cell + " " * (w - cell_width(cell)) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join(lines)


def ago(iso: str, now: datetime | None = None) -> str:
    """``2 minutes ago``, ``3 days ago``; the date itself past a month."""
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return "-"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 60:
        return "just now" if seconds < 5 else f"{seconds} seconds ago"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            if unit == "day" and count > 30:
                return then.date().isoformat()
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def format_count(n: int) -> str:
    """Parameter counts as model cards write them: ``268.1M``, ``8.0B``."""
    for size, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= size:
            return f"{n / size:.1f}{suffix}"
    return str(n)


def draft_text(draft: DraftModel | None) -> str:
    """A draft model (Modelfile DRAFT) in one line: ``gemma3:270m (Q4_K_M, 268.1M)``; ``-`` for none."""
    if draft is None:
        return "-"
    facts = ", ".join(part for part in (draft.quant, format_count(draft.parameters)) if part)
    return f"{draft.source} ({facts})"


def ago_until(iso: str, now: datetime | None = None) -> str:
    """``4 minutes from now`` for an expiry time (``forever`` and odd values pass through)."""
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if then.tzinfo is None:
        return iso
    seconds = int((then - (now or datetime.now(UTC))).total_seconds())
    if seconds <= 0:
        return "now"
    if then.year > 2200:  # Ollama's far-future expiry for keep_alive < 0
        return "forever"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''} from now"
    return "now"
