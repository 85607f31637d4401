"""Readline's motions and kill ring as the message box uses them, table by table (GNU readline's rules)."""

from __future__ import annotations

import pytest

from tui.widgets import readline_edit as rl

TEXT = ["  hello big-world", "", "über 42 x"]


@pytest.mark.parametrize(
    ("start", "back", "forward"),
    [
        ((0, 17), (0, 12), (2, 4)),  # end of "world": back to its start; forward past the blank line
        ((0, 12), (0, 8), (0, 17)),  # start of "world": "big" before it
        ((0, 9), (0, 8), (0, 11)),  # inside "big"
        ((0, 2), (0, 0), (0, 7)),  # start of "hello": back to the very start
        ((1, 0), (0, 12), (2, 4)),  # the blank line: words on the lines around
        ((2, 0), (0, 12), (2, 4)),  # "über" is a word (letters, not just ASCII)
        ((2, 9), (2, 8), (2, 9)),  # the end: forward stays
    ],
)
def test_word_motions(start: rl.Location, back: rl.Location, forward: rl.Location) -> None:
    assert rl.word_back(TEXT, start) == back
    assert rl.word_forward(TEXT, start) == forward


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ((0, 17), (0, 8)),  # ctrl+w goes back to white space, so "big-world" goes whole
        ((0, 8), (0, 2)),  # over the spaces, then "hello"
        ((2, 0), (0, 8)),  # line breaks are white space
        ((0, 1), (0, 0)),
    ],
)
def test_rubout_goes_back_to_white_space(start: rl.Location, target: rl.Location) -> None:
    assert rl.rubout_back(TEXT, start) == target


def test_kills_to_line_ends_take_the_break_at_the_end() -> None:
    assert rl.line_end_kill(TEXT, (0, 3)) == (0, 17)
    assert rl.line_end_kill(TEXT, (0, 17)) == (1, 0)  # the break
    assert rl.line_end_kill(TEXT, (2, 9)) == (2, 9)  # nothing after the last line
    assert rl.line_start_kill(TEXT, (2, 4)) == (2, 0)
    assert rl.line_start_kill(TEXT, (2, 0)) == (1, 0)  # the break before
    assert rl.line_start_kill(TEXT, (0, 0)) == (0, 0)


def test_transpose_swaps_around_the_cursor_and_at_the_end_the_last_two() -> None:
    assert rl.transpose(["abc"], (0, 1)) == ((0, 0), (0, 2), "ba", (0, 2))
    assert rl.transpose(["abc"], (0, 3)) == ((0, 1), (0, 3), "cb", (0, 3))
    assert rl.transpose(["abc"], (0, 0)) is None  # nothing before the cursor
    assert rl.transpose(["a"], (0, 1)) is None


def test_kill_ring_joins_kills_in_a_row_and_rotates() -> None:
    ring = rl.KillRing(size=3)
    assert ring.yank() is None and ring.rotate() is None
    ring.kill("world", backward=True, join=False)
    ring.kill("hello ", backward=True, join=True)  # backward: before
    ring.kill("!", backward=False, join=True)  # forward: after
    assert ring.yank() == "hello world!"
    ring.kill("", backward=False, join=False)  # an empty kill keeps nothing
    for word in ("a", "b", "c"):
        ring.kill(word, backward=False, join=False)
    assert ring.entries == ["a", "b", "c"]  # the oldest went
    assert ring.yank() == "c" and ring.rotate() == "b" and ring.rotate() == "a" and ring.rotate() == "c"
