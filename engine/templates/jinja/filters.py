"""The filters and globals a Jinja chat template gets, each one metered by the budget.

Hugging Face's extras (``raise_exception``, ``strftime_now``, a ``tojson`` that
keeps non-ASCII text and key order), jinja's own filters with their size
checked before they pad, join or repeat (:data:`REPLACED_FILTERS`), and the
guards the compiled template calls for loops, ``~`` and literals (:data:`GUARDS`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, NoReturn, TypeVar

from jinja2 import filters as jf
from jinja2.nodes import EvalContext
from jinja2.runtime import markup_join, str_join
from jinja2.utils import pass_environment, pass_eval_context

from engine.errors import TemplateError
from engine.templates.jinja.budget import (
    as_int,
    check_binop,
    check_printf,
    current_budget,
    replace_size,
    sized_join,
)
from engine.text import one_line

_T = TypeVar("_T")


def raise_exception(message: object) -> NoReturn:
    raise TemplateError(f"the chat template refused the conversation: {one_line(str(message))}")


def strftime_now(fmt: str) -> str:
    if len(str(fmt)) > 1000:
        raise TemplateError("the chat template asked strftime_now for a format over 1,000 characters")
    return datetime.now().strftime(str(fmt))


def tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """Hugging Face's ``tojson``: non-ASCII kept, keys in their order, no HTML escaping."""
    width = len(indent) if isinstance(indent, str) else as_int(indent)
    if width > 16 or (separators is not None and sum(len(str(s)) for s in separators) > 16):
        raise TemplateError("the chat template asked tojson for an indent or separators over 16 characters")
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _center(value: str, width: int = 80) -> str:
    current_budget.get().fits(as_int(width))
    return jf.do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    step = len(width) if isinstance(width, str) else as_int(width)
    current_budget.get().fits(len(text) + (text.count("\n") + 1) * step)
    return jf.do_indent(s, width, first, blank)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    check_printf(current_budget.get(), str(value))
    return jf.do_format(value, *args, **kwargs)


@pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    if attribute is not None:
        value = map(jf.make_attrgetter(eval_ctx.environment, attribute), value)
    items = sized_join(current_budget.get(), str(d), value, convert=True)
    return jf.sync_do_join(eval_ctx, items, d)


@pass_eval_context
def _replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    current_budget.get().fits(replace_size(str(s), str(old), str(new), count))
    return jf.do_replace(eval_ctx, s, old, new, count)


@pass_environment
def _wordwrap(
    environment: Any,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = str(s)
    lines = len(text) // max(as_int(width), 1) + text.count("\n") + 1
    current_budget.get().fits(len(text) + lines * len(str(wrapstring or environment.newline_sequence)))
    return jf.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    current_budget.get().fits(as_int(linecount))
    return jf.do_batch(value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if as_int(slices) > 100_000:
        raise TemplateError("the chat template asked for over 100,000 slices")
    return jf.sync_do_slice(value, slices, fill_with)


@pass_environment
def _sum(
    environment: Any, iterable: Iterable[Any], attribute: str | int | None = None, start: Any = 0
) -> Any:
    """``sum`` one step at a time, so ``lists|sum(start=[])`` cannot run quadratic out of sight."""
    if attribute is not None:
        iterable = map(jf.make_attrgetter(environment, attribute), iterable)
    budget = current_budget.get()
    total = start
    for item in iterable:
        budget.tick()
        check_binop(budget, "+", total, item)
        total = budget.admit(total + item)
    return total


REPLACED_FILTERS: dict[str, Callable[..., Any]] = {
    "tojson": tojson,
    "center": _center,
    "indent": _indent,
    "format": _format,
    "join": _join,
    "replace": _replace,
    "wordwrap": _wordwrap,
    "batch": _batch,
    "slice": _slice,
    "sum": _sum,
}
DROPPED = ("urlize", "lipsum")  # no chat template uses them; both can build text out of proportion


def metered(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with the budget checked before and its result measured after (keeps jinja's pass_* marks)."""

    @functools.wraps(func)
    def metered(*args: Any, **kwargs: Any) -> Any:
        budget = current_budget.get()
        budget.tick()
        return budget.admit(func(*args, **kwargs))

    return metered


def guard_loop(iterable: Iterable[_T], cost: int) -> Iterator[_T]:
    """Each ``for`` iterates through here: one tick and one charge (with the body's fixed text) per item."""
    budget = current_budget.get()
    for item in iterable:
        budget.tick()
        budget.spend(cost)
        yield item


@pass_eval_context
def _guard_concat(eval_ctx: EvalContext, parts: tuple[Any, ...]) -> str:
    """``a ~ b``: measured before it is joined."""
    budget = current_budget.get()
    budget.fits(sum(budget.measure(p) for p in parts))
    return budget.admit(markup_join(parts) if eval_ctx.autoescape else str_join(parts))


def _guard_admit(value: _T) -> _T:
    return current_budget.get().admit(value)


GUARDS: dict[str, Callable[..., Any]] = {
    "_llamadeck_loop": guard_loop,
    "_llamadeck_concat": _guard_concat,
    "_llamadeck_admit": _guard_admit,
}
