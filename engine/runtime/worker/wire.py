"""Messages between the engine and a model's worker process: length-prefixed pickles over a socket pair.

Both ends are this program (the engine spawned the worker and handed it one
end of a ``socketpair``), so pickle is safe here and fast: a streamed token
is one small tuple. A message is a tuple whose first item names it; which
names exist is in ``parent.py`` and ``child.py``. ``Writer`` sends whole
messages from any thread; ``read_message`` returns None when the other end
is gone.
"""

from __future__ import annotations

import pickle
import socket
import struct
import threading
from typing import Any

_LENGTH = struct.Struct("<I")
MAX_MESSAGE = 1 << 30  # a batch of embeddings is the largest message: far below this


class Writer:
    """Sends whole messages on a socket; thread-safe (the compute thread and others share it)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        """Send one message; raises OSError when the other end is gone."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._sock.sendall(_LENGTH.pack(len(data)) + data)


def read_message(stream: Any) -> tuple[Any, ...] | None:
    """The next message, or None at the end of the stream (the other process is gone)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    if length > MAX_MESSAGE:
        return None  # not something this program wrote: treat the peer as gone
    data = stream.read(length)
    if len(data) < length:
        return None
    message = pickle.loads(data)  # noqa: S301 (our own child or parent at the other end)
    return message if isinstance(message, tuple) else None


def portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling (an engine error does), else a LlamadeckError with its message."""
    from engine.errors import LlamadeckError

    try:
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (made here, read here)
    except Exception:  # noqa: BLE001 (an exception whose __init__ pickling cannot rebuild)
        copy = None
    if isinstance(copy, LlamadeckError):
        return copy
    return LlamadeckError(
        f"{type(error).__name__}: {error}" if not isinstance(error, LlamadeckError) else str(error)
    )
