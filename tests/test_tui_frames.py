"""Keys first (``tui/frames.py``): a key's frame is drawn when the screen is next idle, not at the update
timer's next tick, and while the user types a streaming reply's frames wait for the gaps between keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import events

from engine import Engine
from tests.support.chat_app import TINY, make_app, pane, sync, until
from tui.frames import FramePacer, KeysFirstScreen
from tui.widgets.block_view import BlockView
from tui.widgets.chat_input import ChatInput
from tui.widgets.chat_log import ChatLog


class Clock:
    """A clock the test moves by hand: what is 'recent' does not depend on how fast the machine is."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_reply_frame_waits_only_while_the_user_types_and_only_until_stale() -> None:
    clock = Clock()
    pacer = FramePacer(clock)
    released: list[str] = []
    assert not pacer.hold(clock.now, lambda: released.append("idle"))  # nobody typing: draw now
    pacer.input()
    assert pacer.typing()
    assert pacer.hold(clock.now, lambda: released.append("a"))
    clock.now += FramePacer.STALE_S
    assert not pacer.hold(clock.now - FramePacer.STALE_S, lambda: released.append("stale"))  # too old
    clock.now += FramePacer.TYPING_S
    assert not pacer.typing()
    assert not pacer.hold(clock.now, lambda: released.append("after"))  # typing stopped
    assert released == []
    assert pacer.release()  # something was held: the screen draws it next
    assert released == ["a"]
    assert not pacer.release()
    assert released == ["a"]  # each hold is released once


def test_the_same_reply_held_twice_is_released_once() -> None:
    clock = Clock()
    pacer = FramePacer(clock)
    released: list[int] = []

    def release() -> None:
        released.append(1)

    pacer.input()
    assert pacer.hold(clock.now, release) and pacer.hold(clock.now, release)
    pacer.release()
    assert released == [1]


def tail_text(log: ChatLog) -> str:
    views = log.message_views()
    if not views:
        return ""  # still mounting
    tails = [child for child in views[-1].query_children(BlockView) if child.has_class("tail")]
    return "".join(block.source for tail in tails for block in tail.blocks)


def typing_into_the_box(app: Any) -> tuple[KeysFirstScreen, ChatInput]:
    """The app's main screen and its message box, focused: where keys go in these tests."""
    screen = app.screen
    assert isinstance(screen, KeysFirstScreen)
    box = app.query_one(ChatInput)
    box.focus()
    return screen, box


@sync
async def test_a_key_is_drawn_when_the_screen_is_next_idle(
    engine: Engine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        screen, box = typing_into_the_box(app)
        await pilot.pause()
        seen: list[int] = []  # screen.input_frames when the first frame showing the key was written

        def hook() -> None:
            if "x" in box.text and not seen:
                seen.append(screen.input_frames)

        app.post_display_hook = hook  # type: ignore[method-assign]
        before = screen.input_frames
        app.post_message(events.Key("x", "x"))  # as the terminal's driver posts a key
        await until(pilot, lambda: bool(seen))
        assert seen == [before + 1]  # the key's own frame, drawn for it, not a later timer tick


@sync
async def test_a_streaming_reply_waits_for_the_next_key_while_the_user_types(
    engine: Engine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        screen, box = typing_into_the_box(app)
        clock = screen.pacer.clock = Clock()  # frozen: 'typing' and 'fresh' stay true until moved
        await until(pilot, lambda: pane(app).store is not None)  # the chat opened
        log = app.query_one(ChatLog)
        stream = log.start_reply()
        stream.append("first words ")
        await until(pilot, lambda: "first" in tail_text(log))  # not typing: drawn on its timer
        app.post_message(events.Key("a", "a"))  # the user types
        await until(pilot, lambda: box.text == "a")
        stream.append("second words ")
        await pilot.pause(0.5)  # many frame-timer periods: each one holds the reply
        assert "second" not in tail_text(log)
        app.post_message(events.Key("b", "b"))  # the next key's frame releases it
        await until(pilot, lambda: "second" in tail_text(log))
        stream.append("third words ")
        await pilot.pause(0.5)
        assert "third" not in tail_text(log)
        clock.now += FramePacer.STALE_S  # no key for a while: the reply draws on its own again
        await until(pilot, lambda: "third" in tail_text(log))
        assert box.text == "ab"
        stream.finish()
        await stream.wait_rendered()
