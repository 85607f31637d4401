"""What one Jinja render may spend, and the sizes predicted before an operation runs.

A sandbox alone lets a template loop for ever or build a string of gigabytes.
The :class:`Budget` of the render in progress (:data:`current_budget`) is
checked at every place a template can spend time or memory; operations whose
result size can be predicted (``'a' * 10**9``, ``'x'.ljust(n)``,
``'%999999999d'``) are refused by the ``check_*`` functions before they run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, MappingView
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, TypeVar

from jinja2.runtime import Undefined
from jinja2.utils import Namespace

from engine.errors import TemplateError

TIME_LIMIT_S = 2.0  # one render, wall clock; read at each call so tests can shorten it
MIN_SIZE_LIMIT = 4 << 20  # characters: the output, and any one value, may always be this long ...
SIZE_FACTOR = 8  # ... or this many times the conversation (messages, tools, extra), if more
SPEND_FACTOR = 16  # everything a render builds, added up, may be this many times the size limit
MAX_INT_BITS = 1 << 16  # integers a template may compute with ``*`` and ``**``
ITEM_COST = 8  # what one list item or loop iteration is charged, in characters
_MEMO_MIN = 64  # containers at least this big are measured once per render, not at each use

_T = TypeVar("_T")


@dataclass(eq=False)
class Budget:
    """What one render (or compile) may still spend; every hook below checks it."""

    deadline: float
    time_limit: float
    size_limit: int  # the longest value (as printed) and the whole output
    spend_limit: int  # everything built, added up
    spent: int = 0
    steps: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # id -> measured size of big, immutable containers
    keep: list[object] = field(default_factory=list)  # keeps those ids from being reused

    @classmethod
    def start(cls, size_limit: int) -> Budget:
        limit = TIME_LIMIT_S
        return cls(time.monotonic() + limit, limit, size_limit, size_limit * SPEND_FACTOR)

    @classmethod
    def for_inputs(cls, variables: Mapping[str, Any]) -> Budget:
        budget = cls.start(1 << 62)  # the caller's data is trusted: measured, never refused
        size = sum(budget.measure(value) for value in variables.values())
        budget.size_limit = max(MIN_SIZE_LIMIT, SIZE_FACTOR * size)
        budget.spend_limit = budget.size_limit * SPEND_FACTOR
        return budget

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateError(
                f"the chat template ran longer than {self.time_limit:g} s (does it loop for ever?)"
            )

    def fits(self, size: int) -> None:
        if size > self.size_limit:
            raise TemplateError(
                f"the chat template tried to build a value of {size:,} characters; "
                f"the limit for this conversation is {self.size_limit:,}"
            )

    def spend(self, amount: int) -> None:
        self.spent += amount
        if self.spent > self.spend_limit:
            raise TemplateError(
                f"the chat template built more than {self.spend_limit:,} characters in all, "
                "the limit for this conversation"
            )

    def take(self, size: int) -> None:
        """Room for a new string of ``size`` characters: it fits, and it is paid for."""
        if size > self.size_limit:
            self.fits(size)
        self.spend(size)

    def admit(self, value: _T) -> _T:
        """``value``, once it fits the size limit and what it newly allocated is paid for."""
        self.tick()
        if isinstance(value, str):  # the common case, kept short
            self.take(len(value))
        else:
            self.fits(self.measure(value))
            self.spend(shallow(value))
        return value

    def measure(self, value: object) -> int:
        """How long ``value`` prints, roughly: characters plus one per item, shared parts each time."""
        return len(value) if type(value) is str else self._walk(value)[0]

    def _walk(self, value: object) -> tuple[int, bool]:
        """The size and whether it may be memoized (nothing inside can change, as a namespace can)."""
        if isinstance(value, (str, bytes)):
            return len(value), True
        if isinstance(value, int):
            return value.bit_length() // 3 + 1, True
        if isinstance(value, Undefined):  # prints as '' or 'Undefined'; any other use raises
            return 1, True
        if (known := self.sizes.get(id(value))) is not None:
            return known, True
        children: Iterable[object]
        pure = True
        if type(value) is dict:  # messages: checked first, isinstance on an ABC is slow
            children = chain(value.keys(), value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            children = value
        elif isinstance(value, Mapping):
            children = chain(value.keys(), value.values())
        elif isinstance(value, MappingView) and isinstance(getattr(value, "mapping", None), Mapping):
            children = (value.mapping,)  # type: ignore[attr-defined]  # dict views
        elif isinstance(value, Namespace):  # {% set ns.x = ... %} changes it: never memoized
            attrs = object.__getattribute__(value, "_Namespace__attrs")
            children, pure = chain(attrs.keys(), attrs.values()), False
        else:
            return 1, True
        size = 1
        for child in children:
            if type(child) is str:  # most of them, measured without a call
                size += len(child) + 1
            else:
                self.steps += 1
                if not self.steps & 0xFFF:
                    self.tick()
                child_size, child_pure = self._walk(child)
                size += child_size + 1
                pure = pure and child_pure
            if size > self.size_limit:
                self.fits(size)
        if pure and size >= _MEMO_MIN:
            self.sizes[id(value)] = size
            self.keep.append(value)
        return size, pure


current_budget: ContextVar[Budget] = ContextVar("llamadeck_chat_budget")


def shallow(value: object) -> int:
    """What building ``value`` allocated, its parts aside."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, list | tuple | dict | set | frozenset):
        return ITEM_COST * len(value)
    return 0


def as_int(value: object) -> int:
    return value if isinstance(value, int) else 0  # anything else fails in the real call anyway


def width_of(digits: str) -> int:
    return int(digits) if len(digits) < 10 else 1 << 62  # int() refuses thousands of digits


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def check_printf(budget: Budget, fmt: str) -> None:
    """Refuse ``'%999999999d' % 1`` before Python allocates it."""
    total = len(fmt)
    for spec in _PRINTF.finditer(fmt):
        if "*" in spec.groups():
            raise TemplateError("the chat template uses a '*' width in % formatting, which llamadeck refuses")
        total += sum(width_of(g) for g in spec.groups() if g)
    budget.fits(total)


def check_binop(budget: Budget, operator: str, left: Any, right: Any) -> None:
    """Refuse a ``+ * ** %`` whose result would be too big, before computing it."""
    if operator == "+" and isinstance(left, str | bytes | list | tuple):
        budget.fits(budget.measure(left) + budget.measure(right))
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TemplateError("the chat template multiplies numbers too big for a prompt")
        elif isinstance(right, int):
            budget.fits(budget.measure(left) * right)
        elif isinstance(left, int):
            budget.fits(budget.measure(right) * left)
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
        if right > 0 and left.bit_length() * right > MAX_INT_BITS:
            raise TemplateError("the chat template raises a number to a power too big for a prompt")
    elif operator == "%" and isinstance(left, str):
        check_printf(budget, left)


def replace_size(s: object, old: object, new: object, count: object) -> int:
    if not (isinstance(s, str | bytes) and isinstance(old, type(s)) and isinstance(new, type(s))):
        return 0
    hits = len(s) + 1 if not old else s.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * (len(new) - len(old))


def sized_join(budget: Budget, sep: str | bytes, items: Iterable[Any], *, convert: bool) -> list[Any]:
    """``items`` as a list, refused as soon as joining them with ``sep`` would be too long."""
    out: list[Any] = []
    total = 0
    for item in items:
        budget.tick()
        # str.join refuses anything but strings itself; the join filter prints them
        size = len(item) if isinstance(item, str | bytes) else budget.measure(item) if convert else 0
        total += size + len(sep)
        budget.fits(total)
        out.append(item)
    return out


_PADDING = frozenset({"ljust", "rjust", "center", "zfill"})


def check_method(budget: Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse the string methods that can grow a value past the limit; the args to call with."""
    owner = getattr(func, "__self__", None)
    name = getattr(func, "__name__", "")
    if isinstance(owner, str | bytes):
        if name in _PADDING and args:
            budget.fits(as_int(args[0]))
        elif name == "expandtabs":
            tab = "\t" if isinstance(owner, str) else b"\t"
            size = as_int(args[0] if args else kwargs.get("tabsize", 8))
            budget.fits(len(owner) + owner.count(tab) * max(size, 0))  # type: ignore[arg-type]
        elif name == "replace" and len(args) >= 2:
            budget.fits(
                replace_size(owner, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count"))
            )
        elif name == "join" and len(args) == 1:
            return (sized_join(budget, owner, args[0], convert=False),)
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            budget.fits(len(owner) * max(longest, 1))
    elif isinstance(owner, int) and name == "to_bytes":
        budget.fits(as_int(args[0] if args else kwargs.get("length", 1)))
    return args
