"""Readline's motions and kill ring for the message box, as pure functions over the box's lines.

Why our own: Textual's TextArea has keys that look like readline's and are not.
Its ctrl+a jumps to the first non-blank, ctrl+k deletes a blank line whole,
ctrl+y is redo, nothing it deletes can be yanked back, and alt+b or alt+f
type the letter. A bash or zsh user types these keys without looking, so they
must do what readline does (GNU readline's manual, "Commands For Moving" and
"Killing And Yanking"):

- alt+b / alt+f: back to the start of this or the previous word, forward to the
  end of this or the next one (a word is letters and digits);
- ctrl+w: kill back to the previous white space (``unix-word-rubout``);
  alt+backspace and alt+d kill a word back or forward;
- ctrl+k / ctrl+u: kill to the end / the start of the line; in a box of several
  lines, at the end (start) of a line they kill the line break, as Emacs does;
- ctrl+y yanks the last kill, alt+y right after swaps it for the one before;
  kills in a row join into one (forward kills append, backward kills prepend);
- ctrl+t swaps the two characters around the cursor.

Locations are TextArea's ``(row, column)``; each function gets the document's
lines and a location and gives a location back, so they are table-tested.
"""

from __future__ import annotations

Location = tuple[int, int]
KILL_RING_SIZE = 30  # kills kept for alt+y; a chat box needs few


def _word(character: str) -> bool:
    return character.isalnum()


def word_back(lines: list[str], location: Location) -> Location:
    """alt+b: the start of the word the cursor is in or after (line breaks are not words)."""
    row, column = location
    while True:
        line = lines[row]
        while column > 0 and not _word(line[column - 1]):
            column -= 1
        if column > 0:
            break
        if row == 0:
            return 0, 0
        row -= 1
        column = len(lines[row])
    while column > 0 and _word(lines[row][column - 1]):
        column -= 1
    return row, column


def word_forward(lines: list[str], location: Location) -> Location:
    """alt+f: the end of the word the cursor is in or before."""
    row, column = location
    while True:
        line = lines[row]
        while column < len(line) and not _word(line[column]):
            column += 1
        if column < len(line):
            break
        if row == len(lines) - 1:
            return row, len(line)
        row += 1
        column = 0
    line = lines[row]
    while column < len(line) and _word(line[column]):
        column += 1
    return row, column


def rubout_back(lines: list[str], location: Location) -> Location:
    """ctrl+w: back over white space (line breaks too), then to the white space before the word."""
    row, column = location
    while True:
        line = lines[row]
        while column > 0 and line[column - 1].isspace():
            column -= 1
        if column > 0:
            break
        if row == 0:
            return 0, 0
        row -= 1
        column = len(lines[row])
    while column > 0 and not lines[row][column - 1].isspace():
        column -= 1
    return row, column


def line_end_kill(lines: list[str], location: Location) -> Location:
    """ctrl+k: the end of the line; at the end already, the start of the next (the break is killed)."""
    row, column = location
    if column < len(lines[row]):
        return row, len(lines[row])
    if row + 1 < len(lines):
        return row + 1, 0
    return location


def line_start_kill(lines: list[str], location: Location) -> Location:
    """ctrl+u: the start of the line; at the start already, the end of the line before."""
    row, column = location
    if column > 0:
        return row, 0
    if row > 0:
        return row - 1, len(lines[row - 1])
    return location


def transpose(lines: list[str], location: Location) -> tuple[Location, Location, str, Location] | None:
    """ctrl+t: (start, end, replacement, cursor after), or None where readline does nothing.

    Swaps the characters before and at the cursor and moves past them; at the
    end of a line it swaps the last two (readline's ``transpose-chars``).
    """
    row, column = location
    line = lines[row]
    if len(line) < 2 or column == 0:
        return None
    if column >= len(line):
        column = len(line) - 1
    start, end = (row, column - 1), (row, column + 1)
    return start, end, line[column] + line[column - 1], end


class KillRing:
    """What ctrl+k/u/w and alt+d/backspace killed, newest last; ctrl+y yanks it, alt+y rotates."""

    def __init__(self, size: int = KILL_RING_SIZE) -> None:
        self.size = size
        self.entries: list[str] = []
        self._index = -1

    def kill(self, text: str, *, backward: bool, join: bool) -> None:
        """Keep ``text``; ``join`` (the key before was a kill too) adds it to the newest entry."""
        if not text:
            return
        if join and self.entries:
            newest = self.entries[-1]
            self.entries[-1] = text + newest if backward else newest + text
        else:
            self.entries.append(text)
            del self.entries[: -self.size]
        self._index = len(self.entries) - 1

    def yank(self) -> str | None:
        """The newest kill (None: nothing was killed yet)."""
        if not self.entries:
            return None
        self._index = len(self.entries) - 1
        return self.entries[-1]

    def rotate(self) -> str | None:
        """The kill before the one yanked last, going round (alt+y right after a yank)."""
        if not self.entries:
            return None
        self._index = (self._index - 1) % len(self.entries)
        return self.entries[self._index]
