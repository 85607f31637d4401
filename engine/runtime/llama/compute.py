"""The one thread of the process that runs llama.cpp compute (``COMPUTE``): every decode of every context.

Why one thread for all, and not one per scheduler, is in ``ComputeThread``'s
docstring: OpenMP keeps a team of threads per calling thread. Schedulers
attach to it as ``Poller``s; one-off calls (a context made or freed, a batch
of embeddings) go through ``COMPUTE.call``.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

_T = TypeVar("_T")


class Poller(Protocol):
    """What the compute thread steps: a scheduler. Both methods run on the compute thread."""

    def wants_step(self) -> bool:
        """Whether ``tick`` has anything to do (called under ``COMPUTE.cond``)."""
        ...

    def tick(self) -> bool:
        """Do one step; False when nothing could be done (then the thread naps briefly)."""
        ...


class _Call:
    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class ComputeThread:
    """The one thread of this process that runs llama.cpp compute: every decode of every context.

    The CPU build runs its kernels on an OpenMP team, and libgomp keeps one
    team per calling thread for as long as that thread lives. Once two
    threads have called ``llama_decode``, the teams' threads outnumber the
    cores and libgomp stops spinning at its barriers: on this 2-core box a
    bare greedy loop on the demo Gemma went from 99-101 tok/s to 79-86, in
    whichever thread decoded next (2026-11-25); loading a model in another
    thread did no harm. So schedulers do not get a thread each:
    this one steps every attached scheduler in turn and runs one-off calls
    (contexts made and freed, embeddings, the benchmark's bare loops).
    Several models on a CPU fight for the same cores anyway; on a GPU the
    steps of two models interleave on the one device.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._calls: collections.deque[_Call] = collections.deque()
        self._pollers: list[Poller] = []
        self._thread: threading.Thread | None = None

    def _ensure_started(self) -> None:  # under cond
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="llama.cpp compute", daemon=True)
            self._thread.start()

    @property
    def current(self) -> bool:
        """Whether the calling thread is the compute thread."""
        return threading.current_thread() is self._thread

    def call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the compute thread and return (or raise) what it did."""
        if self.current:
            return fn()
        call = _Call(fn)
        with self.cond:
            self._ensure_started()
            self._calls.append(call)
            self.cond.notify()
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def attach(self, poller: Poller) -> None:
        with self.cond:
            self._ensure_started()
            self._pollers.append(poller)
            self.cond.notify()

    def detach(self, poller: Poller) -> None:
        with self.cond:
            if poller in self._pollers:
                self._pollers.remove(poller)

    def notify(self) -> None:
        with self.cond:
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self._calls and not any(p.wants_step() for p in self._pollers):
                    self.cond.wait()
                calls = list(self._calls)
                self._calls.clear()
                pollers = list(self._pollers)
            for call in calls:
                try:
                    call.result = call.fn()
                except BaseException as error:  # noqa: BLE001 (handed to the caller)
                    call.error = error
                call.done.set()
            progressed = bool(calls)
            for poller in pollers:
                try:
                    progressed = poller.tick() or progressed
                except BaseException:  # noqa: BLE001 (a poller handles its own errors; never stop the others)
                    self.detach(poller)
            if not progressed:
                with self.cond:
                    self.cond.wait(0.01)


COMPUTE = ComputeThread()
