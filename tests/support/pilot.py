"""Waiting on a Textual app under test: its workers done, what they posted handled."""

from __future__ import annotations

import asyncio
from typing import Any


async def settle(app: Any, pilot: Any) -> None:
    """Let workers finish and what they posted be handled (bounded).

    The panes' exclusive pollers cancel one another when they overlap (a slow
    machine): a cancelled worker is fine, a failed one raises here.
    """
    from textual.worker import WorkerCancelled

    for _ in range(3):
        results = await asyncio.gather(*(w.wait() for w in list(app.workers)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException) and not isinstance(r, WorkerCancelled)]
        if failures:
            raise failures[0]
        await pilot.pause()
