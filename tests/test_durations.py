"""keep_alive: one rule for the API, the TUI and the engine, after Ollama (``api/types.go``, ``envconfig``).

The API, ``config.toml`` and ``Engine.chat`` used to parse it each their own
way; the rows marked "was" pin where the copies disagreed.
"""

from __future__ import annotations

import math

import pytest

from engine import InvalidInput, parse_keep_alive
from engine.durations import MAX_SECONDS, parse_duration
from tui.config import SettingError, keep_alive_seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),  # the default, five minutes
        (300, 300.0),
        (0, 0.0),
        (1.5, 1.5),
        ("0", 0.0),
        ("-0", 0.0),
        ("5m", 300.0),
        ("+5m", 300.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        (".5h", 1800.0),
        ("5.m", 300.0),  # Go takes a number without a fraction after its point
        (" 2h ", 7200.0),
        ("42", 42.0),  # a bare number is seconds, as OLLAMA_KEEP_ALIVE takes it
        ("90", 90.0),
        ("2.5", 2.5),
        ("2us", 2e-6),
        ("2µs", 2e-6),  # U+00B5 micro sign
        ("2μs", 2e-6),  # U+03BC Greek mu: was refused by the TUI, Go takes both
        (-1, -1.0),
        (-300, -1.0),  # any negative is for ever, as Ollama
        ("-1", -1.0),
        ("-5m", -1.0),  # was -300.0 in the TUI (the API and Ollama: for ever)
        (-1e300, -1.0),  # for ever, however negative
        (-(10**400), -1.0),  # an integer too big for a float is compared, never converted
        (MAX_SECONDS, MAX_SECONDS),
    ],
)
def test_keep_alive_takes_ollamas_forms(value: object, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "",  # was the default in the API; Ollama refuses an empty duration
        "soon",
        "5 minutes",
        "5 m",
        "5x",
        "m",
        "m5",
        "--1",
        ".",
        "inf",
        "nan",
        "1e3",  # was 1000 seconds in the API (Python's float()); Go takes no exponent
        "1_000",  # was 1000 seconds in the API
        "٣",  # Arabic-Indic digit three: was 3 seconds in the TUI and the API (\d and float())
        "5m\x00",
        True,
        [],
        {},
        float("inf"),
        float("-inf"),
        float("nan"),
    ],
)
def test_keep_alive_refuses_what_is_not_a_duration(value: object) -> None:
    with pytest.raises(InvalidInput, match=r"keep_alive must be a duration like 5m, 1h30m"):
        parse_keep_alive(value)


@pytest.mark.parametrize(
    "value",
    ["9999999999999h", "-9999999999999h", "99999999999999999999", "292y", 1e300, 10**400, MAX_SECONDS * 2],
    ids=["hours", "negative hours", "bare seconds", "no y unit", "1e300", "10**400", "twice the most"],
)
def test_keep_alive_past_what_go_holds_is_refused_not_wrapped(value: object) -> None:
    """Go's ParseDuration refuses such a string; a number that long would wrap round (to unload at once)."""
    error = "longer than a duration can be" if value != "292y" else "must be a duration"
    with pytest.raises(InvalidInput, match=error):
        parse_keep_alive(value)


def test_parse_duration_is_gos() -> None:
    assert parse_duration("1h2m3s4ms5us6ns") == pytest.approx(3723.004005006)
    assert parse_duration("-1.5h") == -5400.0
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("300")  # Go's ParseDuration: "missing unit"
    with pytest.raises(OverflowError):
        parse_duration("3000000h")


@pytest.mark.parametrize(("text", "seconds"), [("5m", 300.0), ("-5m", -1.0), ("2μs", 2e-6), ("300", 300.0)])
def test_the_tui_reads_keep_alive_as_the_engine_does(text: str, seconds: float) -> None:
    assert keep_alive_seconds(text) == parse_keep_alive(text) == seconds


@pytest.mark.parametrize("text", ["soon", "", "9999999999999h", "٣"])
def test_the_tui_refuses_what_the_engine_refuses_naming_its_setting(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_keep_alive(text)
    with pytest.raises(SettingError, match="^keep-alive "):
        keep_alive_seconds(text)


def test_every_accepted_value_is_a_number_the_registry_can_use() -> None:
    for value in (0, 1, "1h", "-1", MAX_SECONDS):
        seconds = parse_keep_alive(value)
        assert seconds is not None and math.isfinite(seconds) and (seconds >= 0 or seconds == -1.0)
