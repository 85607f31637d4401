"""Streamed Markdown cut into finished top-level blocks and an open tail, each new line looked at once.

A long fenced code block is finished in pieces of ``FENCE_PIECE_LINES`` lines
(``Piece``) that are drawn as one code box, so the open tail stays small.
``last_code_block`` finds what "copy code" copies, with the same fence rules.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^#{1,6}(?:[ \t]|$)")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")


def _fence_open(line: str) -> tuple[str, int, str] | None:
    """(fence char, fence length, info) when ``line`` opens a fenced code block."""
    m = _FENCE.match(line)
    if m is None:
        return None
    marker, info = m.group(2), m.group(3)
    if marker[0] == "`" and "`" in info:  # ```inline``` at the start of a line is a code span
        return None
    return marker[0], len(marker), info.strip()


def _fence_close(line: str, char: str, length: int) -> bool:
    body = line.lstrip(" ")
    if len(line) - len(body) > 3:
        return False
    body = body.rstrip()
    return len(body) >= length and body == char * len(body)


def last_code_block(markdown: str) -> str | None:
    """The contents of the last fenced code block in ``markdown`` (an unclosed last fence counts), or None.

    >>> last_code_block("text\\n```py\\nprint(1)\\n```\\n")
    'print(1)\\n'
    """
    found: str | None = None
    fence: tuple[str, int, int] | None = None  # char, length, indent
    lines: list[str] = []
    for raw in markdown.splitlines():
        line = raw.rstrip("\r")
        if fence is None:
            opened = _fence_open(line)
            if opened is not None:
                fence = (opened[0], opened[1], len(line) - len(line.lstrip(" ")))
                lines = []
        elif _fence_close(line, fence[0], fence[1]):
            found = "".join(f"{x}\n" for x in lines)
            fence = None
        else:
            indent = fence[2]
            lines.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
    if fence is not None:
        found = "".join(f"{x}\n" for x in lines)
    return found


class Piece(str):
    """A finished block's Markdown; a long fence comes in pieces that are drawn as one code box."""

    continues: bool = False  # the rest of the fence before it (it starts with a repeated opening fence)
    joins_next: bool = False  # the fence goes on in the next piece (it ends with an added closing fence)


FENCE_PIECE_LINES = 40
"""An open fence is cut every this many lines, so the tail of a long code block stays small."""


class BlockSplitter:
    """Cuts streamed Markdown into finished top-level blocks and an open tail, looking at each line once.

    A block is finished when a closing fence ends a fenced code block, when a
    fence or an ATX heading starts (the heading line is a block of its own), or
    when a line at column 0 follows a blank line (so list continuations and
    indented code stay with their block; items of one loose list stay together).
    A fence longer than ``FENCE_PIECE_LINES`` is finished in pieces (``Piece``).
    """

    def __init__(self) -> None:
        self._pending = ""  # the open tail: text not yet cut into a block
        self._scan = 0  # where the first line not yet looked at starts, in _pending
        self._fence: tuple[str, int, bool] | None = None  # char, length, nested in a list item
        self._opener = ""  # the line that opened the fence
        self._fence_lines = 0  # lines of the open fence in the tail
        self._reopen = ""  # the opener again, before the tail of a fence cut in pieces
        self._content = False  # the tail has a non-blank line
        self._blank = False  # the last line looked at was blank (after content)
        self._list = False  # the tail's block is a list

    @property
    def tail(self) -> str:
        return self._reopen + self._pending

    @property
    def continuing(self) -> bool:
        """The tail goes on with a fence whose start is already finished."""
        return bool(self._reopen)

    @property
    def in_fence(self) -> bool:
        return self._fence is not None

    def feed(self, text: str) -> list[str]:
        """Add ``text``; return the blocks it finished, in order."""
        out: list[str] = []
        self._pending += text
        while (end := self._pending.find("\n", self._scan)) >= 0:
            start, self._scan = self._scan, end + 1
            self._line(self._pending[start:end].rstrip("\r"), start, end + 1, out)
        return out

    def close(self) -> list[str]:
        """The end of the text: the tail becomes the last block (an unclosed fence renders to the end)."""
        out: list[str] = []
        self._cut(len(self._pending), out)
        self._pending, self._scan, self._fence, self._reopen = "", 0, None, ""
        return out

    def _cut(self, at: int, out: list[str], closer: str = "") -> None:
        """End a block at ``at`` (blank lines alone are no block: they stay, leading the next one)."""
        if self._pending[:at].strip():
            piece = Piece(self._reopen + self._pending[:at] + closer)
            piece.continues, piece.joins_next = bool(self._reopen), bool(closer)
            out.append(piece)
            self._pending = self._pending[at:]
            self._scan -= at
            self._reopen = ""
        self._content = self._blank = self._list = False

    def _line(self, line: str, start: int, end: int, out: list[str]) -> None:
        if self._fence is not None:
            char, length, nested = self._fence
            if _fence_close(line, char, length):
                self._fence = None
                if not nested:
                    self._cut(end, out)
            elif not nested:
                self._fence_lines += 1
                if self._fence_lines >= FENCE_PIECE_LINES:
                    self._cut(end, out, closer=char * length + "\n")
                    self._reopen, self._fence_lines = self._opener, 0
                    self._content = True
            return
        if not line.strip():
            self._blank = self._content
            return
        indent = len(line) - len(line.lstrip(" \t"))
        opened = _fence_open(line)
        if opened is not None:
            nested = self._list and indent > 0
            if not nested:
                self._cut(start, out)
                self._opener, self._fence_lines = self._pending[: end - start].rstrip("\r\n") + "\n", 0
            self._fence = (opened[0], opened[1], nested)
            self._content, self._blank = True, False
            return
        if indent == 0 and _HEADING.match(line):
            self._cut(start, out)
            self._cut(end - start, out)
            return
        is_item = bool(_LIST_ITEM.match(line))
        if self._blank and indent == 0 and not (self._list and is_item):
            self._cut(start, out)
        if not self._content:
            self._list = is_item
        self._content, self._blank = True, False
