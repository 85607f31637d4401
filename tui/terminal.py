"""Safe output for the command line: every byte that reaches the terminal goes through here.

Three hazards this module exists for:

* Text from outside (GGUF headers, Hub file names, error messages quoting
  them, generated tokens) may hold terminal escapes: callers pass it through
  the engine's one policy, ``engine.visible``, which shows control characters
  as ``\\x1b`` instead of sending them. What stays here is what only a
  terminal has: cell widths and the three standard streams.
* Any of the three standard streams may be closed (``<&-``, ``>&-``,
  ``2>&-``): Python then sets ``sys.stdin``/``sys.stdout``/``sys.stderr`` to
  None, and ``print(file=None)`` silently writes to *stdout*. Diagnostics go
  through ``warn``, which writes to stderr or drops the line, never elsewhere.
* The reader of stdout may go away (``llamadeck ls | head -1``): see
  ``silence_stdout``, as the Python docs recommend for SIGPIPE.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from contextlib import suppress

from engine import visible


def cell_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide (CJK) characters two, combining marks none."""
    width = 0
    for c in text:
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return width


def guard_standard_fds() -> None:
    """Put /dev/null on any of fds 0, 1, 2 that is closed.

    Otherwise the next file llamadeck (or llama.cpp) opens takes that number,
    and whatever a library writes to "stdout" lands in a model file. Python
    already set the matching ``sys.std*`` to None; that stays, so commands
    still see that the stream is closed.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)


def harden_streams() -> None:
    """Never fail on a character the terminal's encoding lacks: write it as an escape instead."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def warn(message: str) -> None:
    """One diagnostic line on stderr; dropped when stderr is closed or gone. Never raises."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(message + "\n")
        stream.flush()
    except (OSError, ValueError):  # a closed pipe or file: nobody is reading diagnostics
        pass


def error(message: str) -> None:
    """``Error: ...`` on one line, escaped: messages may quote names and text from outside."""
    warn("Error: " + visible(" ".join(message.split("\n"))))


def out(text: str = "", end: str = "\n") -> None:
    """A line of results on stdout (the caller escapes what came from outside)."""
    assert sys.stdout is not None, "main() refuses to run a command when stdout is closed"
    sys.stdout.write(text + end)


def flush_all() -> None:
    """Push out what is buffered; a broken pipe is left for the caller to notice on stdout."""
    if sys.stdout is not None:
        sys.stdout.flush()
    if sys.stderr is not None:
        with suppress(OSError, ValueError):
            sys.stderr.flush()


def silence_stdout() -> None:
    """After a broken pipe: point fd 1 at /dev/null so Python's exit-time flush has nowhere to fail.

    The recipe from the ``signal`` module docs ("Note on SIGPIPE"); without
    it Python prints ``Exception ignored ... BrokenPipeError`` at exit.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
    finally:
        os.close(devnull)
