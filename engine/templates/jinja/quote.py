"""Template text in an error message: one printable line, cut short.

Messages reach a terminal, and the text in them comes from a downloaded file:
control, format and separator characters are escaped.
"""

from __future__ import annotations

_QUOTE_LIMIT = 200  # characters of template text quoted in an error message


def quote(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """``text`` as one printable line: control, format and separator characters escaped, cut to ``limit``.

    Like ``ascii()``, but letters of every script stay readable.
    """
    escaped = "".join(
        c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii")
        for c in text[:limit]
    )
    return escaped[:limit] + "..." if len(escaped) > limit or len(text) > limit else escaped
