"""Long engine calls on a worker thread, so that Ctrl+C is heard at any moment.

Python delivers SIGINT to the main thread only, as a KeyboardInterrupt raised
wherever that thread happens to be. When the main thread itself runs
llama.cpp, "wherever" can be a ctypes log callback, which swallows the
exception: the load goes on and the whole reply is generated. So the engine
works on a worker thread and the main thread only waits on a queue and draws
what the worker reports. On Ctrl+C the main thread cancels the engine's
``CancelToken``, gives the worker ``GRACE_SECONDS`` to stop, and raises
``Interrupted``. A worker still stuck in C code by then (llama.cpp loading
weights) is left behind, and ``main`` ends the process with ``os._exit``
rather than wait for it (``worker_running``).

    def work(cancel, emit):
        return engine.pull(ref, on_event=emit, cancel=cancel)

    manifest = run_cancellable(work, on_item=view)   # view(event) runs on this thread
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from engine import CancelToken

T = TypeVar("T")
Emit = Callable[[Any], None]

GRACE_SECONDS = 2.0  # how long a cancelled worker gets to stop before the process leaves without it
_POLL_SECONDS = (
    0.2  # a wait that wakes up regularly, so a signal is handled even if a wait were not interruptible
)


class Interrupted(Exception):
    """Ctrl+C during a long engine call; ``note``: what the command wants said after ``interrupted``."""

    def __init__(self, note: str = "") -> None:
        super().__init__("interrupted" + note)
        self.note = note


_ITEM, _RESULT, _ERROR = "item", "result", "error"
_workers: list[threading.Thread] = []


def worker_running() -> bool:
    """Whether a worker is still running after its call ended: cancelled but stuck in C code."""
    return any(worker.is_alive() for worker in _workers)


def start_worker(target: Callable[[], None]) -> threading.Thread:
    """A daemon thread for engine work, started; ``worker_running`` knows it while it runs."""
    worker = threading.Thread(target=target, name="llamadeck-engine", daemon=True)
    _workers[:] = [w for w in _workers if w.is_alive()]
    _workers.append(worker)
    worker.start()
    return worker


def run_cancellable(work: Callable[[CancelToken, Emit], T], on_item: Emit, *, note: str = "") -> T:
    """Run ``work(cancel, emit)`` on a worker thread; call ``on_item`` here for everything it emits.

    Returns what ``work`` returns and raises what it raises. On Ctrl+C raises
    ``Interrupted``; on any other exception on this thread (a broken stdout
    pipe while printing) the worker is cancelled as well before it propagates.
    """
    from engine import CancelToken

    cancel = CancelToken()
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()

    def emit(item: object) -> None:
        inbox.put((_ITEM, item))

    def target() -> None:
        try:
            inbox.put((_RESULT, work(cancel, emit)))
        except BaseException as error:  # handed to the main thread, which decides
            inbox.put((_ERROR, error))

    worker = start_worker(target)
    try:
        while True:
            try:
                kind, value = inbox.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if kind == _ITEM:
                on_item(value)
            elif kind == _RESULT:
                return value
            else:
                raise value
    except KeyboardInterrupt:
        _stop(worker, cancel)
        raise Interrupted(note) from None
    except BaseException:
        _stop(worker, cancel)
        raise


def _stop(worker: threading.Thread, cancel: CancelToken) -> None:
    """Cancel the worker and give it a moment to stop; a second Ctrl+C stops the waiting."""
    cancel.cancel()
    with suppress(KeyboardInterrupt):
        worker.join(GRACE_SECONDS)
