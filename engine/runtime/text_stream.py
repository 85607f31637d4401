"""Token pieces in, text out: whole UTF-8 characters, and stop strings cut before anyone sees them.

Pieces go through an incremental UTF-8 decoder (a character split over byte
tokens appears once whole), and stop strings are matched on the text, held
back while the text could still become one; the reply never contains the
stop string. The scheduler keeps one ``TextStream`` per request.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class TextStream:
    """Token pieces in, text out: whole UTF-8 characters, stop strings cut and never shown.

    ``feed`` returns the text that is safe to show now and whether a stop
    string was met (then everything from it on is dropped). Text that could
    be the start of a stop string is held back until it is not. ``stopped_by``
    is the stop string that was met (None until one is).
    """

    __slots__ = ("_decode", "_stops", "_hold_max", "_pending", "stopped_by")

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        self._stops = tuple(s for s in stop if s)
        self._hold_max = max((len(s) for s in self._stops), default=1) - 1
        self._pending = ""
        self.stopped_by: str | None = None

    def feed(self, piece: bytes) -> tuple[str, bool]:
        text = self._decode(piece)
        if not self._stops:
            return text, False
        text = self._pending + text
        cut = -1
        for stop in self._stops:
            at = text.find(stop)
            if at >= 0 and (cut < 0 or at < cut):
                cut, self.stopped_by = at, stop
        if cut >= 0:
            self._pending = ""
            return text[:cut], True
        hold = self._held(text)
        self._pending = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold], False

    def _held(self, text: str) -> int:
        """The longest end of ``text`` that begins some stop string."""
        for n in range(min(len(text), self._hold_max), 0, -1):
            tail = text[-n:]
            if any(stop.startswith(tail) for stop in self._stops):
                return n
        return 0

    def flush(self) -> str:
        """Whatever was held back (an unfinished character becomes U+FFFD)."""
        text = self._pending + self._decode(b"", True)
        self._pending = ""
        return text
