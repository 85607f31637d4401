"""What ``run`` reads: its prompt argument and, when stdin is not a terminal, the text piped in.

As ``ollama run`` does (its cmd/cmd.go, ``RunHandler``): the piped text comes
first, then the prompt, joined by one space, so ``git diff | llamadeck run
MODEL "review this"`` asks about the diff; with no prompt argument the piped
text alone is the prompt. Unlike Go, which sends any bytes and lets JSON turn
the bad ones into U+FFFD, the prompt must be text: stdin that is not UTF-8, or
holds NUL bytes (binary data, UTF-16 text), is a one-line error, and so is
stdin past ``MAX_STDIN_BYTES`` (the API's bound on a JSON body: no more could
go to a server, and no model's context holds that much anyway).
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO

from tui.cli.common import CliError

MAX_STDIN_BYTES = 16 << 20  # as api.limits.MAX_JSON_BYTES
_CHUNK = 1 << 16
ASK = 'give a prompt: llamadeck run MODEL "PROMPT" (or pipe one in)'


def argument_text(given: str) -> str:
    """The prompt argument as text: under ``LANG=C`` a UTF-8 argument arrives as escaped bytes."""
    if not any("\udc80" <= c <= "\udcff" for c in given):
        return given
    try:
        return os.fsencode(given).decode("utf-8")
    except UnicodeDecodeError:
        raise CliError("the prompt is not valid UTF-8 text") from None


def read_bounded(stream: BinaryIO, limit: int = MAX_STDIN_BYTES) -> bytes:
    """All of ``stream``, refusing past ``limit`` bytes without reading (or holding) more than that.

    Ctrl+C while it waits for the writer raises KeyboardInterrupt, as anywhere.
    """
    parts: list[bytes] = []
    size = 0
    read = getattr(stream, "read1", stream.read)  # what the pipe has now, not a wait for a full chunk
    while chunk := read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise CliError(
                f"stdin holds more than {limit >> 20} MiB: pipe in less (a model's context holds far less)"
            )
        parts.append(chunk)
    return b"".join(parts)


def decode_piped(data: bytes) -> str:
    """Piped bytes as text: UTF-8 (a byte-order mark dropped), no NUL; else a one-line CliError."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as bad:
        raise CliError(f"stdin is not valid UTF-8 text (a bad byte at offset {bad.start})") from None
    if "\0" in text:
        at = data.index(b"\0")
        raise CliError(f"stdin is not text: it holds a NUL byte at offset {at} (binary data? UTF-16 text?)")
    return text


def run_prompt(given: str | None) -> str:
    """``run``'s prompt: the piped text (when stdin is not a terminal), a space, the prompt argument.

    Either may be missing, not both; a prompt of white space only is refused too.
    """
    parts = [] if given is None else [argument_text(given)]
    stdin = sys.stdin
    if stdin is not None and not stdin.isatty():
        piped = decode_piped(read_bounded(stdin.buffer))
        if piped:  # an empty pipe (</dev/null, a script's closed stdin) adds nothing, as in Ollama
            parts.insert(0, piped)
    elif given is None:
        raise CliError(ASK.replace("or pipe one in", "stdin is closed") if stdin is None else ASK)
    prompt = " ".join(parts)
    if not prompt:
        raise CliError(ASK.replace("or pipe one in", "the piped stdin was empty"))
    if not prompt.strip():
        raise CliError(ASK.replace("(or pipe one in)", "(this one is only white space)"))
    return prompt
