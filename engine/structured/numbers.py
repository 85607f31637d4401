"""Grammars for JSON numbers within bounds: ``minimum``, ``maximum`` and their exclusive forms, enforced.

A bound is enforced on the digits themselves, so any number the grammar
lets through is within it: an integer range is written out digit by digit
(``[0-9]`` classes per length, as llama.cpp's own converter does), and a
decimal bound compares the integer part and then the fraction digits one by
one (0.F >= 0.25 is "3-9 then anything", or "2 then >= 5", ...). Bounded
numbers are written without an exponent. Where a side is unbounded the
grammar still caps the digits (``MAX_INT_DIGITS`` before the point,
``FRACTION_DIGITS`` after it): stricter than the schema, never looser, and a
model cannot write digits for ever.

    integer(0, 120)                    # 0 ... 120, no leading zeros
    number((Decimal("0"), False), (Decimal("1"), True))   # 0 < x <= 1
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from engine.errors import UnsupportedSchema
from engine.structured.gbnf import alt, digit_class, group, repeat, seq

MAX_INT_DIGITS = 16  # digits before the point where nothing bounds them
FRACTION_DIGITS = 16  # digits after it
MAX_BOUND_DIGITS = 30  # a bound with more digits before its point is refused

Bound = tuple[Decimal, bool]  # a value and whether it is inclusive

_CAP = 10**MAX_INT_DIGITS - 1
_ANY_FRACTION = repeat("[0-9]", 1, FRACTION_DIGITS, what="digits")
_EXPONENT = "[eE] [-+]? [0-9]{1,2}"
UNBOUNDED_INTEGER = '"-"? ("0" | [1-9] [0-9]{0,15})'
UNBOUNDED_NUMBER = f'{UNBOUNDED_INTEGER} ("." {_ANY_FRACTION})? ({_EXPONENT})?'


# integers ----------------------------------------------------------------------------------------


def _same_length(low: str, high: str) -> str:
    """Every digit string of this length from ``low`` to ``high``."""
    if not low:
        return ""
    if low == high:
        return f'"{low}"'
    if low[0] == high[0]:
        return seq(f'"{low[0]}"', _same_length(low[1:], high[1:]))
    rest = len(low) - 1
    first, last = int(low[0]), int(high[0])
    low_whole = low[1:] == "0" * rest  # the branch of low's first digit takes every tail
    high_whole = high[1:] == "9" * rest
    options = []
    if not low_whole:
        options.append(seq(f'"{first}"', _same_length(low[1:], "9" * rest)))
    start, end = (first if low_whole else first + 1), (last if high_whole else last - 1)
    if start <= end:
        options.append(seq(digit_class(start, end), repeat("[0-9]", rest, rest, what="digits")))
    if not high_whole:
        options.append(seq(f'"{last}"', _same_length("0" * rest, high[1:])))
    return alt(*options)


def natural_range(low: int, high: int) -> str | None:
    """Integers ``low`` to ``high`` (both >= 0), written without leading zeros; None when there are none."""
    if low > high:
        return None
    options = []
    whole: list[int] = []  # lengths whose every number is in range: written as one repetition
    for length in range(len(str(low)), len(str(high)) + 1):
        a = max(low, 10 ** (length - 1) if length > 1 else 0)
        b = min(high, 10**length - 1)
        if length > 1 and a == 10 ** (length - 1) and b == 10**length - 1:
            whole.append(length)
        elif a <= b:
            options.append(_same_length(str(a), str(b)))
    if whole:
        digits = repeat("[0-9]", whole[0] - 1, whole[-1] - 1, what="digits")
        options.insert(1 if options and options[0] and low < 10 else 0, seq("[1-9]", digits))
    return alt(*options)


def _upper(low: int, high: int | None) -> int:
    """The largest magnitude written: ``high``, or the cap where nothing (or something huge) bounds it."""
    ceiling = max(_CAP, 10 ** len(str(low)) - 1)
    return ceiling if high is None else min(high, ceiling)


def _check_size(value: int | Decimal, what: str) -> None:
    if len(str(abs(int(value)))) > MAX_BOUND_DIGITS:
        raise UnsupportedSchema(f"{what} {value} has more than {MAX_BOUND_DIGITS} digits")


def integer(low: int | None, high: int | None, *, where: str = "an integer") -> str:
    """JSON integers from ``low`` to ``high`` (inclusive; None: unbounded)."""
    if low is None and high is None:
        return UNBOUNDED_INTEGER
    if low is not None and high is not None and low > high:
        raise UnsupportedSchema(f"{where}: no integer lies between {low} and {high}")
    options = []
    if high is None or high >= 0:
        a = max(low, 0) if low is not None else 0
        _check_size(a, f"{where}'s minimum")
        part = natural_range(a, _upper(a, high))
        if part is not None:
            options.append(part)
    if low is None or low < 0:
        a = max(-high, 1) if high is not None else 1
        _check_size(a, f"{where}'s maximum")
        part = natural_range(a, _upper(a, -low if low is not None else None))
        if part is not None:
            options.append(seq('"-"', group(part)))
    return alt(*options)


def integer_bounds(low: Bound | None, high: Bound | None) -> tuple[int | None, int | None]:
    """The integer range within decimal bounds: ``x > 2.5`` is ``x >= 3``."""
    a = b = None
    if low is not None:
        value, inclusive = low
        a = int(value.to_integral_value(ROUND_CEILING))
        if not inclusive and a == value:
            a += 1
    if high is not None:
        value, inclusive = high
        b = int(value.to_integral_value(ROUND_FLOOR))
        if not inclusive and b == value:
            b -= 1
    return a, b


# fractions ---------------------------------------------------------------------------------------

# A side of the fraction's comparison, on the digits still to come: None (satisfied whatever follows),
# or (digits, inclusive) meaning 0.rest >= 0.digits (lower) or <= (upper). Digits carry no trailing zeros.
_Side = tuple[str, bool] | None


def _lower_after(side: _Side, digit: int) -> _Side | bool:
    """The lower side once ``digit`` is written: False when it can no longer hold."""
    if side is None:
        return None
    digits, inclusive = side
    if not digits:  # what follows must be > 0 (inclusive would be None already)
        return side if digit == 0 else None
    first = int(digits[0])
    if digit < first:
        return False
    if digit > first:
        return None
    rest = digits[1:]
    return None if not rest and inclusive else (rest, inclusive)


def _upper_after(side: _Side, digit: int) -> _Side | bool:
    if side is None:
        return None
    digits, inclusive = side
    if not digits:  # what follows must be 0 (exclusive cannot be met at all)
        return side if digit == 0 and inclusive else False
    first = int(digits[0])
    if digit > first:
        return False
    if digit < first:
        return None
    rest = digits[1:]
    return (rest, inclusive) if rest or inclusive else False


def _empty_ok(lower: _Side, upper: _Side) -> bool:
    """Whether nothing more (the value so far, then zeros) meets both sides."""
    return lower is None and (upper is None or bool(upper[0]) or upper[1])


def _fraction(lower: _Side, upper: _Side) -> str | None:
    """Digit strings of at least one digit whose 0.digits meets both sides; None when there are none."""
    if lower is None and upper is None:
        return _ANY_FRACTION
    if lower is not None and not lower[0] and upper is None:  # > 0: some digit is not 0
        return f'"0"{{0,{FRACTION_DIGITS}}} [1-9] [0-9]{{0,{FRACTION_DIGITS}}}'
    if upper is not None and not upper[0]:  # <= 0: zeros only (< 0: nothing)
        if lower is not None or not upper[1]:
            return None
        return f'"0"{{1,{FRACTION_DIGITS}}}'
    groups: list[tuple[int, int, tuple[_Side, _Side]]] = []
    for digit in range(10):
        low, high = _lower_after(lower, digit), _upper_after(upper, digit)
        if low is False or high is False:
            continue
        state = (low, high)
        assert not isinstance(low, bool) and not isinstance(high, bool)
        if groups and groups[-1][1] == digit - 1 and groups[-1][2] == state:
            groups[-1] = (groups[-1][0], digit, state)
        else:
            groups.append((digit, digit, state))  # type: ignore[arg-type]
    options = []
    for first, last, (low, high) in groups:
        tail = _fraction(low, high)
        if _empty_ok(low, high):
            options.append(seq(digit_class(first, last), f"{group(tail)}?" if tail else ""))
        elif tail is not None:
            options.append(seq(digit_class(first, last), tail))
    return alt(*options) if options else None


def _split(value: Decimal) -> tuple[int, str]:
    """The integer part and the fraction digits (no trailing zeros) of a value >= 0."""
    text = format(value, "f")
    whole, _, fraction = text.partition(".")
    return int(whole), fraction.rstrip("0")


def _with_fraction(whole: str, lower: _Side, upper: _Side) -> str | None:
    """``whole`` then an optional fraction meeting both sides; None when nothing does."""
    fraction = _fraction(lower, upper)
    bare = _empty_ok(lower, upper)
    if fraction is None:
        return whole if bare else None
    tail = seq('"."', fraction)
    return seq(whole, f"({tail})?" if bare else tail)


def _rounded(bound: Bound | None, *, up: bool) -> Bound | None:
    """A bound with at most FRACTION_DIGITS decimals, rounded inwards (stricter, never looser)."""
    if bound is None:
        return None
    value, inclusive = bound
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or exponent >= -FRACTION_DIGITS:
        return bound
    with localcontext() as context:
        context.prec = MAX_BOUND_DIGITS + FRACTION_DIGITS + 8
        rounded = value.quantize(Decimal(1).scaleb(-FRACTION_DIGITS), ROUND_CEILING if up else ROUND_FLOOR)
    return (rounded, inclusive if rounded == value else True)


def _magnitude(lower: Bound | None, upper: Bound | None, where: str) -> str | None:
    """Non-negative numbers (no sign, no exponent) within the bounds; None when there are none."""
    if lower is not None:
        _check_size(lower[0], f"{where}'s minimum")
    lower, upper = _rounded(lower, up=True), _rounded(upper, up=False)
    if upper is not None and int(upper[0]) > _upper(int(lower[0]) + 1 if lower else 1, None):
        upper = None  # past what the grammar writes anyway (see _upper): no need to write it out
    if (lower is not None and upper is not None) and (
        lower[0] > upper[0] or (lower[0] == upper[0] and not (lower[1] and upper[1]))
    ):
        return None
    low_whole, low_digits = _split(lower[0]) if lower else (0, "")
    low_side: _Side = None if lower is None or (not low_digits and lower[1]) else (low_digits, lower[1])
    high_whole, high_side = None, None
    if upper is not None:
        high_whole, high_digits = _split(upper[0])
        high_side = (high_digits, upper[1])
    if high_whole == low_whole:
        return _with_fraction(f'"{low_whole}"', low_side, high_side)
    options = [_with_fraction(f'"{low_whole}"', low_side, None)]
    top = _upper(low_whole + 1, None if high_whole is None else high_whole - 1)
    middle = natural_range(low_whole + 1, top)
    if middle is not None:
        options.append(seq(group(middle), f'("." {_ANY_FRACTION})?'))
    if high_whole is not None and high_side != ("", False):  # x < n.0 leaves nothing with n before the point
        options.append(_with_fraction(f'"{high_whole}"', None, high_side))
    kept = [o for o in options if o is not None]
    return alt(*kept) if kept else None


def number(low: Bound | None, high: Bound | None, *, where: str = "a number") -> str:
    """JSON numbers within the bounds (None: unbounded), written without an exponent when bounded."""
    if low is None and high is None:
        return UNBOUNDED_NUMBER
    zero = Decimal(0)
    options = []
    # x >= 0, no sign
    if high is None or high[0] > zero or (high[0] == zero and high[1]):
        above = low if low is not None and (low[0] > zero or (low[0] == zero and not low[1])) else None
        part = _magnitude(above, high, where)
        if part is not None:
            options.append(part)
    # x < 0: a minus and the magnitude (-0 only where 0 itself is allowed)
    if low is None or low[0] < zero:
        limit: Bound | None = (-low[0], low[1]) if low is not None else None
        if high is None or high[0] > zero or (high[0] == zero and high[1]):
            least: Bound | None = None
        else:
            least = (-high[0], high[1])
        part = _magnitude(least, limit, where)
        if part is not None:
            options.append(seq('"-"', group(part)))
    if not options:
        raise UnsupportedSchema(f"{where}: no number lies within its minimum and maximum")
    return alt(*options)
