"""engine.text: the one escaping policy for untrusted text in messages and on the terminal."""

from __future__ import annotations

import ast

import pytest

from engine.text import one_line, quoted, visible

CASES = [
    # (text, quoted, one_line, visible)
    ("plain name", "'plain name'", "plain name", "plain name"),
    ("a\x1b[2Jb", "'a\\x1b[2Jb'", "a\\x1b[2Jb", "a\\x1b[2Jb"),
    ("x\x1b]0;pwned\x07y", "'x\\x1b]0;pwned\\x07y'", "x\\x1b]0;pwned\\x07y", "x\\x1b]0;pwned\\x07y"),
    ("\x9b31m", "'\\x9b31m'", "\\x9b31m", "\\x9b31m"),  # the one-byte CSI
    ("over\rwritten", "'over\\rwritten'", "over\\rwritten", "over\\rwritten"),
    ("two\nlines", "'two\\nlines'", "two\\nlines", "two\\nlines"),
    ("tab\there", "'tab\\there'", "tab\\there", "tab\\there"),
    ("para\u2029graph", "'para\\u2029graph'", "para\\u2029graph", "para\\u2029graph"),
    ("evil\u202etxt.exe", "'evil\\u202etxt.exe'", "evil\\u202etxt.exe", "evil\\u202etxt.exe"),
    ("nul\x00", "'nul\\x00'", "nul\\x00", "nul\\x00"),
    ("lone\ud800", "'lone\\ud800'", "lone\\ud800", "lone\\ud800"),
    ("zero\u200bwidth", "'zero\\u200bwidth'", "zero\\u200bwidth", "zero\u200bwidth"),  # shown where a name is
    ("back\\slash", "'back\\\\slash'", "back\\\\slash", "back\\slash"),  # no escape is the text's own
    ("🦙 llama", "'🦙 llama'", "🦙 llama", "🦙 llama"),
    ("日本語", "'日本語'", "日本語", "日本語"),
    ("it's", '"it\'s"', "it's", "it's"),
    ("'\"", "'\\'\"'", "'\"", "'\""),
]


@pytest.mark.parametrize(("text", "as_quoted", "as_line", "as_drawn"), CASES)
def test_each_character_is_shown_as_itself_or_as_its_escape(
    text: str, as_quoted: str, as_line: str, as_drawn: str
) -> None:
    assert quoted(text) == as_quoted
    assert one_line(text) == as_line
    assert visible(text) == as_drawn


@pytest.mark.parametrize("text", [case[0] for case in CASES])
def test_a_quote_is_what_python_would_write_for_the_text(text: str) -> None:
    shown = quoted(text)
    assert shown.isprintable() and ast.literal_eval(shown) == text


def test_quoted_with_ascii_only_shows_look_alike_letters() -> None:
    assert quoted("l\u0430test", ascii_only=True) == "'l\\u0430test'"
    assert one_line("caf\u00e9", ascii_only=True) == "caf\\xe9"


@pytest.mark.parametrize("limit", [10, 40, 80, 200])
def test_very_long_text_is_cut_at_the_limit_with_an_ellipsis(limit: int) -> None:
    text = "y" * 5000
    assert quoted(text, limit) == "'" + "y" * (limit - 5) + "'..."
    assert one_line(text, limit) == "y" * (limit - 3) + "..."
    assert len(quoted(text, limit)) == limit == len(one_line(text, limit))


def test_a_cut_never_splits_an_escape() -> None:
    shown = one_line("\x1b" * 100, 20)
    assert shown == "\\x1b" * 4 + "..."
    assert quoted("a\ud800" * 50, 30) == "'" + "a\\ud800" * 3 + "a'..."


def test_escaped_text_counts_toward_the_limit() -> None:
    assert len(quoted("\x00" * 40, 40)) <= 40 and len(one_line("\u202e" * 100, 50)) <= 50


def test_one_line_without_a_limit_keeps_everything() -> None:
    assert one_line("p" * 5000, None) == "p" * 5000


def test_visible_lets_through_what_the_caller_keeps() -> None:
    assert visible("a\nb\tc\r", keep="\n\t") == "a\nb\tc\\r"
    assert visible("\u202e", keep="\n") == "\\u202e"


def test_the_facade_exports_the_policy() -> None:
    import engine

    assert engine.visible is visible and engine.quoted is quoted and engine.one_line is one_line
