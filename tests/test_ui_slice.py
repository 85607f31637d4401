"""The app thread's custom time slice (``tui/ui_slice.py``), asked of the real kernel."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from tui.ui_slice import SLICE_NS, ask_for_longer_slice, thread_slice_ns

T = TypeVar("T")


def on_a_thread(work: Callable[[], T]) -> T:
    """Run ``work`` on a thread of its own (the test's thread keeps its slice) and return its result."""
    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    return result[0]


def test_the_slice_is_the_asking_threads_own_and_not_passed_on() -> None:
    def ask() -> tuple[int | None, bool, int | None, int | None]:
        before = thread_slice_ns()
        granted = ask_for_longer_slice()
        return before, granted, thread_slice_ns(), on_a_thread(thread_slice_ns)

    default, granted, after, started_after = on_a_thread(ask)
    if granted:  # Linux 6.12 or later
        assert default != SLICE_NS and after == SLICE_NS
        assert started_after == default  # the engine's threads and workers keep the default
    else:  # an older kernel or another system: nothing changed
        assert after == default


def test_another_length_is_granted_as_asked() -> None:
    granted, after = on_a_thread(lambda: (ask_for_longer_slice(3_000_000), thread_slice_ns()))
    assert not granted or after == 3_000_000
