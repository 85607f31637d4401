"""Network text (file names, the server's reasons, paths) fit to quote in a one-line message.

Text is escaped and cut by the engine's one policy (``engine.text``) after
it is scrubbed of every token this process sends: a token seen once
(``keep_secret``) is hidden from every message and from ``HUB_LOG`` from
then on.
"""

from __future__ import annotations

import threading

from engine.text import one_line

_QUOTE_LIMIT = 160  # characters of network text quoted in a message
_SECRET_MIN = 8  # shorter "tokens" are not scrubbed from messages: they would eat ordinary words


_secrets: frozenset[str] = frozenset()  # every token we send: scrubbed from any message (copied on add)
_secrets_lock = threading.Lock()


def keep_secret(secret: str) -> None:
    """Have ``clean`` hide ``secret`` from now on (not when it is so short it would eat words)."""
    global _secrets
    if len(secret) >= _SECRET_MIN and secret not in _secrets:
        with _secrets_lock:
            _secrets = _secrets | {secret}


def clean(text: str, *, limit: int = _QUOTE_LIMIT) -> str:
    """``text`` fit to quote in a one-line message: tokens hidden, then escaped and cut by ``one_line``."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return one_line(text, limit)


def error_reason(error: BaseException) -> str:
    """The first line of what went wrong, escaped: often text the server sent."""
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return clean(text or type(error).__name__)


def server_reason(error: BaseException) -> str:
    """`` (the server's reason)`` of an HTTP error answer, or nothing."""
    message = getattr(error, "server_message", None)
    if not message:
        response = getattr(error, "response", None)
        message = getattr(response, "reason_phrase", None)
    if not message:
        return ""
    first = next((line.strip() for line in str(message).splitlines() if line.strip()), "")
    return f" ({clean(first)})" if first else ""
