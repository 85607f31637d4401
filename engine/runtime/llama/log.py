"""llama.cpp's log, kept off the terminal: whole lines into ``LLAMA_LOG`` and a size-capped file.

Printed to stderr, llama.cpp's log would tear a full-screen UI. ``llama_log_set``
sends it here instead: the latest lines stay in ``LLAMA_LOG`` (for error
messages and ``Engine.logs``) and every line goes to a file in the state
directory (``$XDG_STATE_HOME/llamadeck/llama.log``), rotated past
``LOG_FILE_BYTES``. ``error_mark`` and ``last_error_line`` find the reason
llama.cpp logged for a call that failed.
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_cpp

LLAMA_LOG: collections.deque[str] = collections.deque(maxlen=200)  # the latest llama.cpp log lines
LOG_FILE_BYTES = 2 << 20  # the log file is rotated to llama.log.1 past this size

_DEBUG, _ERROR, _CONT = 1, 4, 5  # ggml_log_level
_log_lock = threading.Lock()
_log_callback: Any = None  # kept alive for as long as llama.cpp may call it


def default_log_path() -> Path:
    """``$XDG_STATE_HOME/llamadeck/llama.log``, ``~/.local/state/llamadeck/llama.log`` by default."""
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if state and os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "llamadeck" / "llama.log"


class _LogSink:
    """Whole lines of llama.cpp's log into the ring buffer and a size-capped file.

    llama.cpp sends a line in pieces at times (``GGML_LOG_LEVEL_CONT``, the
    dots of a load), so pieces are joined until a newline. Debug lines are
    dropped: llama.cpp may send some per decode, and they help nobody here.
    """

    def __init__(self) -> None:
        self.path: Path | None = None  # None until first written: default_log_path() then
        self.max_bytes = LOG_FILE_BYTES
        self.file: Any = None
        self.size = 0
        self.partial = ""
        self.keep = True  # whether the line being continued is kept
        self.errors: collections.deque[str] = collections.deque(maxlen=20)  # the latest error lines
        self.n_errors = 0  # error lines ever seen: a mark taken before a call finds that call's lines
        self.failed = False  # the file could not be written: the ring buffer still works
        self.echo: Callable[[str], None] | None = None  # a worker process also hands each line to the engine

    def take(self, level: int, text: str) -> None:
        if level != _CONT:
            self.keep = level != _DEBUG
            if self.partial:  # a piece that never got its newline
                self._line(self.partial)
                self.partial = ""
        if not self.keep:
            return
        text = self.partial + text
        *lines, self.partial = text.split("\n")
        for line in lines:
            self._line(line)
            if level == _ERROR:
                self.errors.append(line)
                self.n_errors += 1

    def _line(self, line: str) -> None:
        line = line.rstrip()
        if not line:
            return
        LLAMA_LOG.append(line)
        if self.echo is not None:
            self.echo(line)
        if self.failed:
            return
        try:
            self._write(line + "\n")
        except OSError:
            self.failed = True

    def _write(self, text: str) -> None:
        if self.file is None:
            path = self.path or default_log_path()
            self.path = path
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115 (kept open)
            self.size = self.file.tell()
        if self.size + len(text) > self.max_bytes:
            self.file.close()
            assert self.path is not None
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self.file = open(self.path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
            self.size = 0
        self.file.write(text)
        self.file.flush()
        self.size += len(text)

    def redirect(self, path: Path | None, max_bytes: int) -> None:
        if self.file is not None:
            self.file.close()
        self.file, self.path, self.max_bytes, self.failed = None, path, max_bytes, False


_sink = _LogSink()


@atexit.register
def _close_log() -> None:
    """Close the log file at exit; whatever llama.cpp logs from C after that is dropped."""
    with _log_lock:
        if _sink.file is not None:
            _sink.file.close()
            _sink.file = None
            _sink.failed = True  # nothing reopens it during shutdown


def set_log_file(path: Path | None, *, max_bytes: int = LOG_FILE_BYTES) -> None:
    """Write llama.cpp's log to ``path`` from now on (None: the default in the state directory)."""
    with _log_lock:
        _sink.redirect(path, max_bytes)


def log_file() -> Path:
    """Where llama.cpp's log goes."""
    return _sink.path or default_log_path()


def route_llama_log() -> None:
    """Send llama.cpp's log into ``LLAMA_LOG`` and the log file instead of stderr (once per process)."""
    global _log_callback
    with _log_lock:
        if _log_callback is not None:
            return

        @llama_cpp.llama_log_callback
        def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            try:
                with _log_lock:
                    _sink.take(level, text.decode("utf-8", "replace"))
            except Exception:  # noqa: BLE001 (an exception must never cross into C)
                pass

        _log_callback = collect
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def route_mtmd_log() -> None:
    """Send the multimodal library's (``mtmd``: vision projectors) log the same way as llama.cpp's."""
    from llama_cpp import mtmd_cpp

    route_llama_log()
    mtmd_cpp.mtmd_log_set(_log_callback, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(_log_callback, ctypes.c_void_p(0))


def echo_llama_log(write: Callable[[str], None]) -> None:
    """Also hand every kept line to ``write`` (a worker process sends them to the engine on stderr)."""
    route_llama_log()
    with _log_lock:
        _sink.echo = write


def error_mark() -> int:
    return _sink.n_errors


def last_error_line(mark: int | None = None) -> str:
    """llama.cpp's first error line since ``mark`` (``error_mark()`` before a call: later lines are
    consequences of the first), else its latest line mentioning an error or failure; one line, escaped."""
    with _log_lock:
        new = _sink.n_errors - mark if mark is not None else 0
        errors = list(_sink.errors)[-new:] if 0 < new <= len(_sink.errors) else []
    if errors:
        return one_line(errors[0])
    for line in reversed(LLAMA_LOG):
        if "error" in line.lower() or "fail" in line.lower():
            return one_line(line)
    return ""


def one_line(text: str, limit: int = 200) -> str:
    """Text from llama.cpp (which may quote a downloaded file's strings) fit for a one-line message."""
    text = " ".join(text.split())
    return ascii(text)[1:-1][:limit] if not text.isprintable() else text[:limit]


def forward_llama_log(write: Callable[[str], None]) -> None:
    """Send llama.cpp's log to ``write`` instead, pieces as they come, debug lines dropped (a child process
    that prints it for its parent: ``quantize_model``)."""
    global _log_callback
    level_kept = [True]

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        try:
            if level != _CONT:
                level_kept[0] = level != _DEBUG
            if level_kept[0]:
                write(text.decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 (an exception must never cross into C)
            pass

    with _log_lock:
        _log_callback = forward
        llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
