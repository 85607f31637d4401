"""Bounded numbers in grammars, judged by llama.cpp's grammar engine (``tests/support/grammar_oracle.py``),
and the top_p shortcut of constrained sampling, against a simulation of llama.cpp's top_p.

Sound: whatever the grammar lets a model write is within the bounds.
Complete for plain numbers: any integer, or decimal without an exponent and
with few digits, that is within the bounds is allowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import UnsupportedSchema
from engine.runtime.llama.constrained import cut_decided
from engine.structured.numbers import Bound, integer, number
from tests.support.grammar_oracle import Oracle

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    with Oracle() as judge:
        yield judge


def grammar(expression: str) -> str:
    return f"root ::= {expression}\n"


def within(value: Decimal, low: Bound | None, high: Bound | None) -> bool:
    if low is not None and (value < low[0] or (value == low[0] and not low[1])):
        return False
    return not (high is not None and (value > high[0] or (value == high[0] and not high[1])))


def test_an_integer_range_allows_exactly_its_integers(oracle: Oracle) -> None:
    rule = grammar(integer(-15, 120))
    allowed = [
        t
        for t in ["0", "7", "-15", "120", "99", "-9", "121", "-16", "007", "-0", "1.0", "1e2"]
        if oracle.accepts(rule, t)
    ]
    assert allowed == ["0", "7", "-15", "120", "99", "-9"]


def test_decimal_bounds_compare_the_fraction_digit_by_digit(oracle: Oracle) -> None:
    rule = grammar(number((Decimal("-2.5"), True), (Decimal("3.25"), False)))
    candidates = [
        "-2.5",
        "-2.50",
        "-2.51",
        "-2.4",
        "3.25",
        "3.250",
        "3.249",
        "3.2",
        "0",
        "-0",
        "3",
        "-3",
        "1e0",
    ]
    allowed = [t for t in candidates if oracle.accepts(rule, t)]
    assert allowed == ["-2.5", "-2.50", "-2.4", "3.249", "3.2", "0", "-0", "3"]


def test_an_exclusive_zero_minimum_needs_a_digit_that_is_not_zero(oracle: Oracle) -> None:
    rule = grammar(number((Decimal(0), False), (Decimal(1), True)))
    allowed = [
        t for t in ["0", "0.0", "0.000", "0.0001", "0.5", "1", "1.0", "1.01", "2"] if oracle.accepts(rule, t)
    ]
    assert allowed == ["0.0001", "0.5", "1", "1.0"]


def test_bounds_that_leave_nothing_are_refused() -> None:
    with pytest.raises(UnsupportedSchema, match="no integer"):
        integer(5, 4)
    with pytest.raises(UnsupportedSchema, match="no number"):
        number((Decimal(1), False), (Decimal(1), True))


def test_a_bound_with_too_many_digits_is_refused_and_a_huge_maximum_is_no_bound() -> None:
    with pytest.raises(UnsupportedSchema, match="digits"):
        integer(10**40, None)
    assert len(integer(None, 10**300)) < 300  # not written out: past the 16 digits the grammar writes anyway
    assert len(number(None, (Decimal("1e300"), True))) < 300


integers = st.integers(min_value=-(10**6), max_value=10**6)


@SETTINGS
@given(
    low=st.none() | integers,
    high=st.none() | integers,
    candidates=st.lists(st.integers(min_value=-(10**7), max_value=10**7), min_size=5, max_size=12),
)
def test_integers_are_allowed_exactly_within_their_bounds(
    oracle: Oracle, low: int | None, high: int | None, candidates: list[int]
) -> None:
    if low is not None and high is not None and low > high:
        low, high = high, low
    rule = grammar(integer(low, high))
    probes = (
        candidates
        + [v for v in (low, high) if v is not None]
        + [v + d for v in (low, high) if v is not None for d in (-1, 1)]
    )
    for value in probes:
        inside = (low is None or value >= low) and (high is None or value <= high)
        assert oracle.accepts(rule, str(value)) == inside, (low, high, value)


def decimals(places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=-1000, max_value=1000, places=places, allow_nan=False, allow_infinity=False)


bounds = st.none() | st.tuples(st.integers(0, 3).flatmap(decimals), st.booleans())


def written(value: Decimal, places: int) -> str:
    """A decimal as a model might write it: a fixed number of places (trailing zeros kept)."""
    return format(value.quantize(Decimal(1).scaleb(-places)) if places else value.to_integral_value(), "f")


@SETTINGS
@given(
    low=bounds,
    high=bounds,
    values=st.lists(st.tuples(decimals(4), st.integers(0, 5)), min_size=5, max_size=12),
)
def test_decimals_are_allowed_exactly_within_their_bounds(
    oracle: Oracle, low: Bound | None, high: Bound | None, values: list[tuple[Decimal, int]]
) -> None:
    if low is not None and high is not None and low[0] > high[0]:
        low, high = high, low
    try:
        rule = grammar(number(low, high))
    except UnsupportedSchema:
        assert low is not None and high is not None and low[0] == high[0] and not (low[1] and high[1])
        return
    probes = [written(v, places) for v, places in values]
    for bound in (low, high):
        if bound is not None:
            probes += [
                written(bound[0] + d, p)
                for d in (Decimal("-0.001"), Decimal(0), Decimal("0.001"))
                for p in (0, 3, 4)
            ]
    for text in probes:
        value = Decimal(text)
        accepted = oracle.accepts(rule, text)
        if accepted:
            assert within(value, low, high), (low, high, text)
        elif not (text.startswith("-") and value == 0):  # "-0.0" is only written where negatives are allowed
            assert not within(value, low, high), (low, high, text)


def kept_by_top_p(logits: list[float], top_p: float) -> list[int]:
    """llama.cpp's top_p on tokens given best first: the shortest head whose probabilities reach top_p."""
    weights = np.exp(np.array(logits, dtype=np.float64) - max(logits))
    cumulative = np.cumsum(weights / weights.sum())
    return list(range(int(np.searchsorted(cumulative, top_p)) + 1))


@SETTINGS
@given(
    logits=st.lists(st.floats(-20, 20), min_size=8, max_size=60),
    allowed=st.lists(st.booleans(), min_size=60, max_size=60),
    tried=st.integers(1, 59),
    top_p=st.floats(0.05, 0.99),
)
def test_a_top_p_cut_called_decided_is_the_cut_every_allowed_token_would_give(
    logits: list[float], allowed: list[bool], tried: int, top_p: float
) -> None:
    """Checked: the ``tried`` best-scored tokens. Whenever ``cut_decided`` says the allowed ones among them
    decide top_p's cut, the cut over all allowed tokens (checked or not) keeps exactly those tokens."""
    values = np.array(sorted(logits, reverse=True), dtype=np.float32)
    tried = min(tried, len(values))
    mask = np.array(allowed[: len(values)])
    checked_allowed = values[:tried][mask[:tried]]
    if not cut_decided(checked_allowed, values, values[:tried], top_p):
        return
    every_allowed = values[mask]
    assert kept_by_top_p(list(every_allowed), top_p) == kept_by_top_p(list(checked_allowed), top_p)
