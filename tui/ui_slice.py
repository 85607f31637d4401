"""The app thread's time slice: long enough that drawing a frame is not cut in two by the scheduler tick.

While a model decodes, llama.cpp's threads keep every core busy. Linux's
scheduler (EEVDF, 6.6+) gives each thread a short default slice (0.7 ms x
(1 + log2 cores)); a frame of the app takes 3-5 ms of CPU, so at the next tick a
decode thread took the core in the middle of it and the frame waited a whole
tick (4 ms at 250 Hz) to finish. Since Linux 6.12 a thread may ask for a custom
slice of its own (``sched_setattr``'s ``sched_runtime`` under SCHED_OTHER, no
privilege needed); the app's thread asks for ``SLICE_NS``. That sets how long
one turn may last, not how many turns it gets: its share of the CPU, and the
decode threads', stay as they were. Measured with ``bench/tui_keys.py``, the
default and this slice alternating by block in one run, six runs: p95
key-to-screen with two replies streaming ÷ idle 1.63 -> 1.32 on average (five
runs lower or equal, the blocks' noise is ±0.3). Elsewhere (older kernels,
other systems) nothing changes.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform
import sys
import threading

log = logging.getLogger("llamadeck.tui")

SLICE_NS = 8_000_000
SCHED_OTHER = 0
SCHED_FLAG_RESET_ON_FORK = 0x01
SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}  # sched_setattr, sched_getattr


class _SchedAttr(ctypes.Structure):
    """``struct sched_attr`` (VER1, 56 bytes) of ``linux/sched/types.h``."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


@functools.cache
def _calls() -> tuple[ctypes.CDLL, int, int] | None:
    """libc and the two syscall numbers of this machine, found once."""
    numbers = SYSCALLS.get(platform.machine()) if sys.platform == "linux" else None
    if numbers is None:
        return None
    try:
        return ctypes.CDLL(None, use_errno=True), *numbers
    except OSError:
        return None


def thread_slice_ns(tid: int = 0) -> int | None:
    """The custom slice thread ``tid`` (0: the calling thread) runs with, in nanoseconds; None if unknown."""
    calls = _calls()
    if calls is None:
        return None
    libc, _, getattr_call = calls
    attr = _SchedAttr()
    if libc.syscall(getattr_call, tid, ctypes.byref(attr), ctypes.sizeof(attr), 0) != 0:
        return None
    return int(attr.sched_runtime)


def ask_for_longer_slice(slice_ns: int = SLICE_NS) -> bool:
    """Ask for ``slice_ns`` for the calling thread if it runs under the default policy; True if granted."""
    calls = _calls()
    if calls is None:
        return False
    libc, setattr_call, getattr_call = calls
    current = _SchedAttr()
    if libc.syscall(getattr_call, 0, ctypes.byref(current), ctypes.sizeof(current), 0) != 0:
        return False
    if current.sched_policy != SCHED_OTHER:
        return False  # a real-time or batch thread: someone chose its policy, leave it
    wanted = _SchedAttr(
        size=ctypes.sizeof(_SchedAttr),
        sched_policy=SCHED_OTHER,
        sched_flags=SCHED_FLAG_RESET_ON_FORK,  # threads and processes started from here get the default
        sched_nice=os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
        sched_runtime=slice_ns,
    )
    if libc.syscall(setattr_call, 0, ctypes.byref(wanted), 0) != 0:
        log.debug("custom time slice refused: errno %d", ctypes.get_errno())
        return False
    return thread_slice_ns() == slice_ns  # kernels before 6.12 accept the call and ignore the slice
