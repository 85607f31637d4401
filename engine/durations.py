"""Durations as Ollama writes them, and the one keep_alive rule the API, the TUI and the engine share.

Ollama's API takes ``keep_alive`` as a number of seconds or a Go duration
string (``time.ParseDuration``: "5m", "1h30m", "250ms", "1.5h"), and its
``OLLAMA_KEEP_ALIVE`` also takes a bare number of seconds ("300"). llamadeck
takes all of these wherever a keep-alive is given (a request, ``config.toml``,
a call of the engine) and reads them here, so the answer never depends on
the door it came in by::

    parse_keep_alive("1h30m")  # 5400.0
    parse_keep_alive("300")    # 300.0 (seconds, as OLLAMA_KEEP_ALIVE takes it)
    parse_keep_alive("-5m")    # -1.0: any negative keeps the model loaded for ever
    parse_keep_alive(None)     # None: the default, five minutes

As in Go, the units are ns, us (µs, μs), ms, s, m and h, a duration is one or
more number-unit pairs with an optional sign ("0" needs no unit), digits are
ASCII, and a duration past what Go can hold (about 292 years) is refused
rather than wrapped round; so is a number of seconds that long.
"""

from __future__ import annotations

import math
import re

from engine.errors import InvalidInput

DEFAULT_KEEP_ALIVE = 300.0  # seconds, as Ollama's OLLAMA_KEEP_ALIVE
FOREVER = -1.0  # what every negative keep-alive becomes: never unloaded by the clock
MAX_SECONDS = (2**63 - 1) / 1e9  # Go's time.Duration: int64 nanoseconds, about 292 years

KEEP_ALIVE_HELP = "a duration like 5m, 1h30m or 300 (seconds); 0 unloads at once, -1 keeps for ever"

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_PART = re.compile(rf"({_NUMBER})(ns|us|µs|μs|ms|s|m|h)")
_SECONDS = re.compile(rf"[+-]?{_NUMBER}")
_GO_DURATION = re.compile(rf"[+-]?(?:{_NUMBER}(?:ns|us|µs|μs|ms|s|m|h))+")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (``time.ParseDuration``); ValueError when it is not one.

    >>> parse_duration("1m30s")
    90.0
    """
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _GO_DURATION.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not a duration")
    sign = -1.0 if text.startswith("-") else 1.0
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    if seconds > MAX_SECONDS:
        raise OverflowError(f"{text[:40]!r} is longer than a duration can be")
    return sign * seconds


def parse_keep_alive(value: object, *, name: str = "keep_alive") -> float | None:
    """Seconds to keep a model loaded after a reply: None (the default, five minutes), 0 or more; -1 for ever.

    ``value`` is a number of seconds, a Go duration string or a bare number
    of seconds as a string, each possibly negative (for ever); surrounding
    spaces are ignored. Anything else is InvalidInput with a message that
    names the setting as ``name`` and says what it takes.
    """
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value != value or value in (math.inf, -math.inf):  # compared, never converted: ints may be huge
            raise InvalidInput(f"{name} must be {KEEP_ALIVE_HELP}, not {value!r:.40}")
        if value < 0:  # as Ollama: any negative number keeps the model for ever
            return FOREVER
        if value > MAX_SECONDS:
            raise _too_long(name, value)
        return float(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be {KEEP_ALIVE_HELP}, not {type(value).__name__}")
    text = value.strip()
    try:
        if _SECONDS.fullmatch(text):  # "300", "-1": seconds, as OLLAMA_KEEP_ALIVE takes them
            seconds = float(text)
            if abs(seconds) > MAX_SECONDS:
                raise OverflowError(text)
        else:
            seconds = parse_duration(text)
    except OverflowError:
        raise _too_long(name, value) from None
    except ValueError:
        raise InvalidInput(f"{name} must be {KEEP_ALIVE_HELP}, not {ascii(value)[:40]}") from None
    return FOREVER if seconds < 0 else seconds or 0.0  # -0 is 0


def _too_long(name: str, value: object) -> InvalidInput:
    shown = ascii(value)[:40] if isinstance(value, str) else f"{value!r:.40}"
    return InvalidInput(
        f"{name} {shown} is longer than a duration can be (about 292 years): -1 keeps the model for ever"
    )
