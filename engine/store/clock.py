"""The time a manifest records as its creation: UTC, to the second, in ISO 8601.

One function, so every way a model enters the store (pull, import, create,
copy) stamps it alike.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    """The current time as a manifest's ``created``: ``2025-06-01T10:00:00+00:00``."""
    return datetime.now(UTC).isoformat(timespec="seconds")
