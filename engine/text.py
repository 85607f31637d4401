"""The one escaping policy for untrusted text shown to a person.

Names and text reach llamadeck from the network (Hub file names, server
replies), from files (GGUF headers, Modelfiles, chat templates, config) and
from requests. Quoted in a one-line message or drawn on a terminal, such text
must not forge a line (``\\n``, ``\\r``, U+2028), move the terminal's cursor or
set its title (ESC sequences and other controls), reorder what is read
(bidi overrides, "Trojan Source"), or crash an encoder (lone surrogates from
undecodable bytes). Every such character is written as its Python escape
(``\\x1b``, ``\\u202e``), so the reader sees it and nothing acts on it.

Two strengths, for two jobs:

* ``quoted`` and ``one_line`` put a name or reason inside a message: every
  character that does not print as itself is escaped -- invisible ones
  (zero-width spaces, no-break spaces) too, since they make two names look
  the same -- and so is the backslash, so that an escape shown is never the
  text's own; the result is cut at a limit with an ellipsis.
* ``visible`` draws whole text (a model's reply, a licence, a table cell):
  only what acts on the terminal or on the reading order is escaped, so
  emoji with joiners and every script stay as written, and ``keep`` lets the
  caller's own line breaks through.
"""

from __future__ import annotations

import unicodedata

# Formatting characters that reorder or hide text (Trojan Source): escaped wherever text is shown.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Controls, lone surrogates, and the line and paragraph separators (which end a line in some readers).
_ACTING = frozenset({"Cc", "Cs", "Zl", "Zp"})
_ELLIPSIS = "..."  # ASCII: a message must survive a C locale's stderr


def _escaped(char: str) -> str:
    """``char`` as Python writes it in a string literal, without the quotes (``\\x1b``, ``\\u202e``)."""
    return ascii(char)[1:-1]


def _acts(char: str) -> bool:
    """Whether ``char`` acts on a terminal or on the reading order instead of showing as itself."""
    return char in _BIDI or unicodedata.category(char) in _ACTING


def visible(text: str, keep: str = "") -> str:
    """``text`` for drawing: controls, lone surrogates, line separators and bidi overrides escaped.

    ``keep`` names the few controls the caller wants through as they are
    (``"\\n\\t"`` for multi-line text such as a licence). Everything else
    stays, emoji and other scripts included:

    >>> visible("a\\x1b]0;pwned\\x07b 🦙")
    'a\\\\x1b]0;pwned\\\\x07b 🦙'
    """
    return "".join(_escaped(c) if c not in keep and _acts(c) else c for c in text)


def _pieces(text: str, *, ascii_only: bool, quote: str = "") -> list[str]:
    """Each character of ``text`` as a message shows it: itself, or its escape."""
    return [
        "\\" + c
        if c == quote
        else _escaped(c)
        if c == "\\" or not c.isprintable() or (ascii_only and not c.isascii())
        else c
        for c in text
    ]


def _cut(pieces: list[str], room: int) -> tuple[str, bool]:
    """The leading ``pieces`` that fit in ``room`` characters (never half an escape), and whether all did."""
    if sum(map(len, pieces)) <= room:
        return "".join(pieces), True
    taken, used = [], 0
    for piece in pieces:
        if used + len(piece) > room - len(_ELLIPSIS):
            break
        taken.append(piece)
        used += len(piece)
    return "".join(taken), False


def one_line(text: str, limit: int | None = 200, *, ascii_only: bool = False) -> str:
    """``text`` as one printable line, unquoted: for a reason or a path inside a message.

    Every character that does not print as itself (controls, line breaks,
    bidi overrides, zero-width and other invisible characters, lone
    surrogates) is escaped, and so is ``\\``. Past ``limit`` characters (None:
    no limit) the line is cut, never inside an escape, and ends in "..." (``limit`` counts it).
    ``ascii_only`` escapes every non-ASCII letter too, where a look-alike
    letter would deceive (a Cyrillic "а" in a name).

    >>> one_line("line 1\\nline 2\\u202e")
    'line 1\\\\nline 2\\\\u202e'
    """
    pieces = _pieces(text, ascii_only=ascii_only)
    if limit is None:
        return "".join(pieces)
    shown, whole = _cut(pieces, limit)
    return shown if whole else shown + _ELLIPSIS


def quoted(text: str, limit: int = 80, *, ascii_only: bool = False) -> str:
    """``text`` quoted as Python's ``repr`` would, on one printable line of at most ``limit`` characters.

    Escaped as by ``one_line``; quoted in ``'``, or in ``"`` when the text
    holds a ``'`` and no ``"`` (the other quote is then escaped). Cut text
    ends in "..." after its closing quote, so the reader sees there was more:

    >>> quoted("it's")
    '"it\\'s"'
    >>> quoted("x" * 100, limit=10)
    "'xxxxx'..."
    """
    mark = '"' if "'" in text and '"' not in text else "'"
    shown, whole = _cut(_pieces(text, ascii_only=ascii_only, quote=mark), max(limit - 2, 1))
    return f"{mark}{shown}{mark}" if whole else f"{mark}{shown}{mark}{_ELLIPSIS}"


__all__ = ["one_line", "quoted", "visible"]
