"""Keys first: a key's frame is drawn at once, and a streaming reply draws in the gaps between keys.

Textual draws a screen on an update timer that pauses after each frame. Its
catch-up step puts the first tick after a pause one to two periods after the
last frame (17-33 ms at 60 fps), so a key pressed just after a streaming
reply's frame waited for that tick, and for whatever frame of the reply came
first: p95 key to screen 32 ms with two replies streaming against 5.5 ms idle
(``bench/tui_keys.py``, figure 5 of ``bench/tui_stream.py``). Here:

- the main screen draws as soon as it is idle after a key press, a paste or a
  scroll, instead of at the next tick (``KeysFirstScreen``);
- while the user types (input in the last ``FramePacer.TYPING_S``), a reply's
  frame waits until just after the next key's frame is written, the moment the
  next key is least likely to come, and is drawn then at once; or until it is
  ``FramePacer.STALE_S`` old.
  A fast reply still moves a few times a second; typing stays as quick as idle.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual import events
from textual.screen import Screen

INPUT_EVENTS = (events.Key, events.Paste, events.MouseScrollDown, events.MouseScrollUp, events.MouseDown)
"""What a person does and waits to see on screen."""


class FramePacer:
    """When a streaming reply's frame may be drawn: at once, or after the next key's frame."""

    TYPING_S = 0.3
    """Input this recent means the user is typing: reply frames wait for the gaps between keys."""
    STALE_S = 0.25
    """A reply's frame waits at most this long after its last, typing or not."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_input = float("-inf")
        self._held: list[Callable[[], object]] = []

    def input(self) -> None:
        self.last_input = self.clock()

    def typing(self) -> bool:
        return self.clock() - self.last_input < self.TYPING_S

    def hold(self, last_frame: float, release: Callable[[], object]) -> bool:
        """Whether a reply whose last frame was at ``last_frame`` (this clock) should wait now;
        if so ``release`` is called once, right after the next key's frame."""
        if not self.typing() or self.clock() - last_frame >= self.STALE_S:
            return False
        if release not in self._held:
            self._held.append(release)
        return True

    def release(self) -> bool:
        """A key's frame is written: the held replies draw now. Whether any was held."""
        held, self._held = self._held, []
        for release in held:
            release()
        return bool(held)


class KeysFirstScreen(Screen[None]):
    """The app's main screen: a frame for input is drawn when the screen is next idle."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.pacer = FramePacer()
        self.input_frames = 0  # frames drawn for input at once (tests, the bench)
        self._input_waiting = False

    def note_input(self) -> None:
        """Called by the app for each input event it is about to handle on this screen."""
        self.pacer.input()
        self._input_waiting = True

    def _frame_due(self) -> bool:
        return bool(
            self._layout_required
            or self._scroll_required
            or self._repaint_required
            or self._recompose_required
            or self._dirty_widgets
        )

    async def _on_idle(self, event: events.Idle) -> None:
        if self._input_waiting and self.is_current and not self.app._batch_count and self._frame_due():
            self._input_waiting = False
            self.input_frames += 1
            self._on_timer_update()  # Textual's own frame step (layout, render, display), now
            if self.pacer.release():
                self._input_waiting = True  # the replies it let go draw next, before the next key comes
        await super()._on_idle(event)
