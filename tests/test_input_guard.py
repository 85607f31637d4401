"""A bracketed paste with escape sequences in it is one Paste of clean text, never key presses; a
terminal's late answer to a query is no key press either.

Textual's own parser is the control: given the same bytes it reissues what follows each ESC of the
paste as keys (the bug found in tmux: pasted ANSI-colored text ran its letters as commands).
"""

from __future__ import annotations

from textual import events
from textual._xterm_parser import XTermParser

from tui.input_guard import PASTE_END, PASTE_START, GuardedParser, clean_paste

HOSTILE = (
    "abc \x1b[31mred\x1b[0m q1\x11\x03 \x1b]52;c;aGk=\x07tab\there\r\nline\x1b\x1bq\x1bP1$r\x1b\\ end\x00"
)
CLEAN = "abc red q1 tab\there\r\nline end"


def events_of(parser: XTermParser, *chunks: str) -> list[object]:
    seen: list[object] = []
    for chunk in chunks:
        seen.extend(parser.feed(chunk))
    return seen


def described(seen: list[object]) -> list[tuple[str, str]]:
    return [
        ("paste", e.text) if isinstance(e, events.Paste) else ("key", e.key)
        for e in seen
        if isinstance(e, events.Paste | events.Key)
    ]


def test_textual_alone_turns_a_pasted_escape_into_key_presses() -> None:
    """The control: why this module exists (if Textual fixes it, this test says so)."""
    seen = described(events_of(XTermParser(), PASTE_START + HOSTILE + PASTE_END))
    assert any(kind == "key" for kind, _ in seen), seen


def test_a_paste_with_escapes_is_one_clean_paste() -> None:
    seen = described(events_of(GuardedParser(), "x", PASTE_START + HOSTILE + PASTE_END, "y"))
    assert seen == [("key", "x"), ("paste", CLEAN), ("key", "y")]


def test_markers_split_at_every_place_across_two_reads() -> None:
    wire = "k" + PASTE_START + HOSTILE + PASTE_END + "z"
    for cut in range(1, len(wire)):
        seen = described(events_of(GuardedParser(), wire[:cut], wire[cut:]))
        assert seen == [("key", "k"), ("paste", CLEAN), ("key", "z")], (cut, seen)


def test_a_paste_read_one_character_at_a_time() -> None:
    wire = PASTE_START + HOSTILE + PASTE_END
    seen = described(events_of(GuardedParser(), *wire))
    assert seen == [("paste", CLEAN)]


def test_keys_outside_a_paste_are_textuals() -> None:
    wire = "q\x1b[A\x11" + PASTE_START + "p" + PASTE_END + "\x1b[B"
    assert described(events_of(GuardedParser(), wire)) == described(events_of(XTermParser(), wire))
    assert described(events_of(GuardedParser(), wire)) == [
        ("key", "q"),
        ("key", "up"),
        ("key", "ctrl+q"),
        ("paste", "p"),
        ("key", "down"),
    ]


def test_two_pastes_and_a_big_one() -> None:
    big = ("lorem \x1b[1mipsum\x1b[0m\n" * 50_000)[:-1]
    chunks = [PASTE_START + "one" + PASTE_END + PASTE_START + big[:5000]]
    chunks += [big[i : i + 4096] for i in range(5000, len(big), 4096)] + [PASTE_END]
    seen = described(events_of(GuardedParser(), *chunks))
    assert seen == [("paste", "one"), ("paste", clean_paste(big))]
    assert clean_paste(big) == ("lorem ipsum\n" * 50_000)[:-1]


def test_clean_paste_keeps_every_printable_character() -> None:
    text = "naïve — 日本語 😀 [bold]x[/] [@click=app.quit]q[/] \\x1b"
    assert clean_paste(text) == text


def test_a_late_device_attributes_answer_is_not_typed() -> None:
    """What reached the box as "[?1;2c" when a key was typed while textual-image asked the terminal."""
    wire = "tq\x1b[?1;2c1\x1b[>0;276;0c\x1b[6;20;10t\x1b_Gi=1;OK\x1b\\x"
    assert described(events_of(GuardedParser(), wire)) == [
        ("key", "t"),
        ("key", "q"),
        ("key", "1"),
        ("key", "x"),
    ]
    typed = "".join(k for kind, k in described(events_of(XTermParser(), wire)) if kind == "key")
    assert "left_square_bracket" in typed  # the control: Textual alone types the answers as keys


def test_textuals_own_answers_still_reach_it() -> None:
    """The in-band resize report (mode 2048) ends in "t" too; it stays a Resize."""
    seen = events_of(GuardedParser(), "\x1b[48;40;120;800;1200t")
    assert [(e.size.width, e.size.height) for e in seen if isinstance(e, events.Resize)] == [(120, 40)]
