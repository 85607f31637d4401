"""Turning what JSON and Modelfiles give (``0.7``, ``"0.7"``, ``"1e-3"``, ``true``) into option values.

The converters the option table (``engine.options``) is built from: each
returns the value in its Python type or raises ``Refused``, and the table
words the one-line error. Apart from the table so that the rules of reading a
number (no NaN, no booleans as ints, linear-time matching) are in one place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

MAX_INT = 2**31 - 1  # the largest count llama.cpp takes (its ints are 32-bit)


class Refused(Exception):
    """A value does not fit its option; the spec words the message unless this says more."""

    def __init__(self, expect: str | None = None) -> None:
        super().__init__(expect)
        self.expect = expect


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")  # one way to match: linear time


def as_number(value: object) -> float | int:
    """An int or a finite float from what JSON or a Modelfile gives: 3, 0.7, "0.7", "1e-3"."""
    if isinstance(value, bool):  # True is an int to Python, not to JSON
        raise Refused
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER.fullmatch(text):
            raise Refused
        try:
            return int(text)
        except ValueError:
            value = float(text)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise Refused


def float_in(
    low: float | None = None, high: float | None = None, *, above: bool = False
) -> Callable[..., float]:
    def convert(value: object) -> float:
        try:
            number = float(as_number(value))
        except OverflowError:
            raise Refused from None
        if not math.isfinite(number):
            raise Refused
        if low is not None and (number <= low if above else number < low):
            raise Refused
        if high is not None and number > high:
            raise Refused
        return number

    return convert


def int_in(low: int, high: int | None = None, *, also: tuple[int, ...] = ()) -> Callable[..., int]:
    """A whole number from ``low`` to ``high``, or one of ``also``; llama.cpp's ints are 32-bit."""

    def convert(value: object) -> int:
        number = as_number(value)
        if isinstance(number, float):
            if not number.is_integer():
                raise Refused
            number = int(number)
        if number in also:
            return number
        if number < low or (high is not None and number > high):
            raise Refused
        if high is None and number > MAX_INT:
            raise Refused(f"a whole number from {low} to {MAX_INT}")
        return number

    return convert


def choice(choices: tuple[str, ...], booleans: Mapping[bool, str] | None = None) -> Callable[..., str]:
    words = {c: c for c in choices}
    if booleans:
        words |= {str(b).lower(): w for b, w in booleans.items()}

    def convert(value: object) -> str:
        if booleans and isinstance(value, bool):
            return booleans[value]
        if isinstance(value, str) and (word := words.get(value.strip().lower())):
            return word
        raise Refused

    return convert


__all__ = ["MAX_INT", "Refused", "choice", "float_in", "int_in", "as_number"]
