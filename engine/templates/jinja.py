"""Chat templates: turning messages into the prompt text a model was trained on.

A GGUF's ``tokenizer.chat_template`` is Jinja2 written by whoever uploaded the
file, so it is rendered as untrusted code: in jinja2's immutable sandbox (no
attribute escapes, no mutation of our data) and on a budget, because a sandbox
alone lets a template loop for ever or build a string of gigabytes.

The budget is checked at every place a template can spend time or memory:
each loop iteration, call (functions, methods, macros), filter, slice,
``+ * % **``, ``~``, list/dict literal and output. Operations whose result size can be
predicted (``'a' * 10**9``, ``'x'.ljust(n)``, ``|indent(n)``, ``'%999999999d'``)
are refused before they run; every value a template builds is measured, with
shared parts counted each time they would be printed, so that nesting cannot
multiply it past the limit either. Everything else is charged to a render-wide
total. A refusal is a :class:`TemplateError` with a one-line message; template
text quoted in a message is escaped, since it ends up on a terminal.

Templates compile lazily, on the first render, and the result (or the reason
it failed) is cached: a broken template never stops a model from running raw.
The environment matches Hugging Face's ``apply_chat_template`` (and
llama-cpp-python's ``Jinja2ChatFormatter``): ``trim_blocks``/``lstrip_blocks``,
``{% break %}``/``{% continue %}``, ``{% generation %}``, ``raise_exception``,
``strftime_now`` and a ``tojson`` that keeps non-ASCII text and key order.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MappingView, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from types import BuiltinMethodType, MethodType
from typing import Any, NoReturn, TypeVar

import jinja2
from jinja2 import filters as jf
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.nodes import EvalContext
from jinja2.parser import Parser
from jinja2.runtime import Context, LoopContext, Undefined, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace, pass_environment, pass_eval_context
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

from engine.errors import InvalidInput, TemplateError

__all__ = ["TIME_LIMIT_S", "TemplateError", "render_chat"]

TIME_LIMIT_S = 2.0  # one render, wall clock; read at each call so tests can shorten it
MIN_SIZE_LIMIT = 4 << 20  # characters: the output, and any one value, may always be this long ...
SIZE_FACTOR = 8  # ... or this many times the conversation (messages, tools, extra), if more
SPEND_FACTOR = 16  # everything a render builds, added up, may be this many times the size limit
MAX_TEMPLATE_CHARS = 256 << 10  # real templates are under 20 KiB; compiling cannot be interrupted
MAX_INT_BITS = 1 << 16  # integers a template may compute with ``*`` and ``**``
_ITEM_COST = 8  # what one list item or loop iteration is charged, in characters
_MEMO_MIN = 64  # containers at least this big are measured once per render, not at each use
_QUOTE_LIMIT = 200  # characters of template text quoted in an error message

_T = TypeVar("_T")


def render_chat(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    bos_token: str,
    eos_token: str,
    add_generation_prompt: bool = True,
    tools: list[Any] | None = None,
    extra: Mapping[str, object] | None = None,
) -> str:
    """The prompt for ``messages``, without a leading BOS (the tokenizer adds that itself).

    ``tools`` reaches the template as ``tools`` (OpenAI-style function schemas);
    ``extra`` holds further variables some templates read, such as
    ``date_string`` or ``enable_thinking``. Raises :class:`TemplateError` when
    the template does not compile, refuses the conversation
    (``raise_exception``) or runs past its time or size limit::

        render_chat(template, [{"role": "user", "content": "Hi"}], bos_token="<s>", eos_token="</s>")
    """
    compiled = _compile(template)
    if isinstance(compiled, str):
        raise TemplateError(compiled)
    variables: dict[str, Any] = dict(extra or {})
    core = {
        "messages": list(messages),
        "tools": tools,
        "bos_token": bos_token,
        "eos_token": eos_token,
        "add_generation_prompt": add_generation_prompt,
    }
    if clash := sorted(variables.keys() & core.keys()):
        raise InvalidInput(f"extra template variables may not replace {', '.join(map(_quote, clash))}")
    variables.update(core)
    try:
        budget = _Budget.for_inputs(variables)
    except RecursionError:
        raise InvalidInput("the conversation is nested too deeply to render") from None
    token = _budget.set(budget)
    try:
        text = _run(compiled, variables, budget)
    finally:
        _budget.reset(token)
    return text.removeprefix(bos_token) if bos_token else text


def _run(compiled: jinja2.Template, variables: dict[str, Any], budget: _Budget) -> str:
    """Render chunk by chunk, so the output is measured as it grows, not once it is whole."""
    parts: list[str] = []
    total = 0
    try:
        for chunk in compiled.generate(variables):
            budget.tick()
            total += len(chunk)
            if total > budget.size_limit:
                raise TemplateError(
                    f"the chat template's output passed {budget.size_limit:,} characters, "
                    "the limit for this conversation"
                )
            parts.append(chunk)
    except TemplateError:
        raise
    except RecursionError:
        raise TemplateError("the chat template recursed too deeply") from None
    except MemoryError:
        raise TemplateError("the chat template ran out of memory") from None
    except jinja2.TemplateError as error:  # undefined names, unsafe attributes, bad arguments
        raise TemplateError(f"the model's chat template failed: {_quote(error.message or '')}") from error
    except Exception as error:  # template code can raise anything: 1 + 'a', 1 / 0, int('x')
        raise TemplateError(
            f"the model's chat template failed: {type(error).__name__}: {_quote(str(error))}"
        ) from error
    return "".join(parts)


def _quote(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """``text`` as one printable line: control, format and separator characters escaped, cut to ``limit``.

    Like ``ascii()``, but letters of every script stay readable.
    """
    escaped = "".join(
        c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii")
        for c in text[:limit]
    )
    return escaped[:limit] + "..." if len(escaped) > limit or len(text) > limit else escaped


# -- the budget ----------------------------------------------------------------


@dataclass(eq=False)
class _Budget:
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
    def start(cls, size_limit: int) -> _Budget:
        limit = TIME_LIMIT_S
        return cls(time.monotonic() + limit, limit, size_limit, size_limit * SPEND_FACTOR)

    @classmethod
    def for_inputs(cls, variables: Mapping[str, Any]) -> _Budget:
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
            self.spend(_shallow(value))
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


_budget: ContextVar[_Budget] = ContextVar("llamadeck_chat_budget")


def _shallow(value: object) -> int:
    """What building ``value`` allocated, its parts aside."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, list | tuple | dict | set | frozenset):
        return _ITEM_COST * len(value)
    return 0


def _as_int(value: object) -> int:
    return value if isinstance(value, int) else 0  # anything else fails in the real call anyway


def _number(digits: str) -> int:
    return int(digits) if len(digits) < 10 else 1 << 62  # int() refuses thousands of digits


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(budget: _Budget, fmt: str) -> None:
    """Refuse ``'%999999999d' % 1`` before Python allocates it."""
    total = len(fmt)
    for spec in _PRINTF.finditer(fmt):
        if "*" in spec.groups():
            raise TemplateError("the chat template uses a '*' width in % formatting, which llamadeck refuses")
        total += sum(_number(g) for g in spec.groups() if g)
    budget.fits(total)


def _check_binop(budget: _Budget, operator: str, left: Any, right: Any) -> None:
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
        _check_printf(budget, left)


def _replace_size(s: object, old: object, new: object, count: object) -> int:
    if not (isinstance(s, str | bytes) and isinstance(old, type(s)) and isinstance(new, type(s))):
        return 0
    hits = len(s) + 1 if not old else s.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * (len(new) - len(old))


def _sized_join(budget: _Budget, sep: str | bytes, items: Iterable[Any], *, convert: bool) -> list[Any]:
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


def _check_method(
    budget: _Budget, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Refuse the string methods that can grow a value past the limit; the args to call with."""
    owner = getattr(func, "__self__", None)
    name = getattr(func, "__name__", "")
    if isinstance(owner, str | bytes):
        if name in _PADDING and args:
            budget.fits(_as_int(args[0]))
        elif name == "expandtabs":
            tab = "\t" if isinstance(owner, str) else b"\t"
            size = _as_int(args[0] if args else kwargs.get("tabsize", 8))
            budget.fits(len(owner) + owner.count(tab) * max(size, 0))  # type: ignore[arg-type]
        elif name == "replace" and len(args) >= 2:
            budget.fits(
                _replace_size(owner, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count"))
            )
        elif name == "join" and len(args) == 1:
            return (_sized_join(budget, owner, args[0], convert=False),)
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            budget.fits(len(owner) * max(longest, 1))
    elif isinstance(owner, int) and name == "to_bytes":
        budget.fits(_as_int(args[0] if args else kwargs.get("length", 1)))
    return args


# -- filters and globals -------------------------------------------------------


def _raise_exception(message: object) -> NoReturn:
    raise TemplateError(f"the chat template refused the conversation: {_quote(str(message))}")


def _strftime_now(fmt: str) -> str:
    if len(str(fmt)) > 1000:
        raise TemplateError("the chat template asked strftime_now for a format over 1,000 characters")
    return datetime.now().strftime(str(fmt))


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """Hugging Face's ``tojson``: non-ASCII kept, keys in their order, no HTML escaping."""
    width = len(indent) if isinstance(indent, str) else _as_int(indent)
    if width > 16 or (separators is not None and sum(len(str(s)) for s in separators) > 16):
        raise TemplateError("the chat template asked tojson for an indent or separators over 16 characters")
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _center(value: str, width: int = 80) -> str:
    _budget.get().fits(_as_int(width))
    return jf.do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    step = len(width) if isinstance(width, str) else _as_int(width)
    _budget.get().fits(len(text) + (text.count("\n") + 1) * step)
    return jf.do_indent(s, width, first, blank)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_printf(_budget.get(), str(value))
    return jf.do_format(value, *args, **kwargs)


@pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    if attribute is not None:
        value = map(jf.make_attrgetter(eval_ctx.environment, attribute), value)
    items = _sized_join(_budget.get(), str(d), value, convert=True)
    return jf.sync_do_join(eval_ctx, items, d)


@pass_eval_context
def _replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    _budget.get().fits(_replace_size(str(s), str(old), str(new), count))
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
    lines = len(text) // max(_as_int(width), 1) + text.count("\n") + 1
    _budget.get().fits(len(text) + lines * len(str(wrapstring or environment.newline_sequence)))
    return jf.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _budget.get().fits(_as_int(linecount))
    return jf.do_batch(value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if _as_int(slices) > 100_000:
        raise TemplateError("the chat template asked for over 100,000 slices")
    return jf.sync_do_slice(value, slices, fill_with)


@pass_environment
def _sum(
    environment: Any, iterable: Iterable[Any], attribute: str | int | None = None, start: Any = 0
) -> Any:
    """``sum`` one step at a time, so ``lists|sum(start=[])`` cannot run quadratic out of sight."""
    if attribute is not None:
        iterable = map(jf.make_attrgetter(environment, attribute), iterable)
    budget = _budget.get()
    total = start
    for item in iterable:
        budget.tick()
        _check_binop(budget, "+", total, item)
        total = budget.admit(total + item)
    return total


_REPLACED_FILTERS: dict[str, Callable[..., Any]] = {
    "tojson": _tojson,
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
_DROPPED = ("urlize", "lipsum")  # no chat template uses them; both can build text out of proportion


def _metered(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with the budget checked before and its result measured after (keeps jinja's pass_* marks)."""

    @functools.wraps(func)
    def metered(*args: Any, **kwargs: Any) -> Any:
        budget = _budget.get()
        budget.tick()
        return budget.admit(func(*args, **kwargs))

    return metered


def _guard_loop(iterable: Iterable[_T], cost: int) -> Iterator[_T]:
    """Each ``for`` iterates through here: one tick and one charge (with the body's fixed text) per item."""
    budget = _budget.get()
    for item in iterable:
        budget.tick()
        budget.spend(cost)
        yield item


@pass_eval_context
def _guard_concat(eval_ctx: EvalContext, parts: tuple[Any, ...]) -> str:
    """``a ~ b``: measured before it is joined."""
    budget = _budget.get()
    budget.fits(sum(budget.measure(p) for p in parts))
    return budget.admit(markup_join(parts) if eval_ctx.autoescape else str_join(parts))


def _guard_admit(value: _T) -> _T:
    return _budget.get().admit(value)


_GUARDS: dict[str, Callable[..., Any]] = {
    "_llamadeck_loop": _guard_loop,
    "_llamadeck_concat": _guard_concat,
    "_llamadeck_admit": _guard_admit,
}


# -- the environment -------------------------------------------------------------


class _GenerationTag(Extension):
    """Hugging Face's ``{% generation %}...{% endgeneration %}`` (marks training targets): rendered as is."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> list[nodes.Node]:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class _SizedFormatter(SandboxedFormatter):
    """``str.format`` whose field widths are refused before they are padded out."""

    _total = 0

    def vformat(self, format_string: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        self._total = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        budget = _budget.get()
        budget.tick()
        self._total += budget.measure(value) + sum(_number(n) for n in re.findall(r"\d+", format_spec))
        budget.fits(self._total)
        return super().format_field(value, format_spec)


class _SizedEscapeFormatter(_SizedFormatter, EscapeFormatter):
    pass


class _Sandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox with the budget checked in every hook it offers."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = _budget.get()
        budget.tick()
        if isinstance(obj, LoopContext) and args:  # loop(children) in a recursive for
            args = (_guard_loop(args[0], _ITEM_COST), *args[1:])
        else:
            args = _check_method(budget, obj, args, kwargs)
        return budget.admit(super().call(context, obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget.get()
        budget.tick()
        if type(left) is str and type(right) is str and operator == "+":  # nearly every binop in a template
            budget.take(len(left) + len(right))
            return left + right
        _check_binop(budget, operator, left, right)
        return budget.admit(self.binop_table[operator](left, right))

    # A lookup cannot loop by itself (every loop, call and output is checked), so only slices,
    # which copy, are hooked: sparing the clock on the commonest operation of all.
    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        return _budget.get().admit(value) if type(argument) is slice else value

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """jinja2's own ``str.format`` sandboxing, with a formatter that checks widths."""
        if not isinstance(value, MethodType | BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        formatter: SandboxedFormatter = (
            _SizedEscapeFormatter(self, escape=owner.escape)
            if isinstance(owner, Markup)
            else _SizedFormatter(self)
        )
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs = args[0]
                args = ()
            return type(owner)(formatter.vformat(owner, args, kwargs))

        return functools.update_wrapper(wrapper, value)


def _finalize(value: Any) -> Any:
    """Every ``{{ ... }}``, in the output or in a macro's buffer, is measured before it is printed."""
    return _budget.get().admit(value)


@functools.lru_cache(maxsize=1)
def _environment() -> _Sandbox:
    env = _Sandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[loopcontrols, _GenerationTag],
        finalize=_finalize,
    )
    for name in _DROPPED:
        env.filters.pop(name, None)
        env.globals.pop(name, None)
    env.filters.update({name: _metered(_REPLACED_FILTERS.get(name, f)) for name, f in env.filters.items()})
    env.filters.update(_GUARDS)
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
    return env


def _filter(node: nodes.Node, name: str, *args: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


def _fixed_text(body: list[nodes.Node]) -> int:
    """Characters of literal text in a loop body: what each iteration adds to a buffer, at most."""
    size = 0
    for child in body:
        for n in child.find_all((nodes.TemplateData, nodes.Const)):
            if isinstance(n, nodes.TemplateData):
                size += len(n.data)
            elif isinstance(n, nodes.Const) and isinstance(n.value, str):
                size += len(n.value)
    return size


class _Guard(NodeTransformer):
    """Routes what the sandbox has no hook for through the guards: loops, ``~`` and literals."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        cost = nodes.Const(_ITEM_COST + _fixed_text(node.body), lineno=node.lineno)
        node.iter = _filter(node.iter, "_llamadeck_loop", cost)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.Tuple(node.nodes, "load", lineno=node.lineno), "_llamadeck_concat")

    def _literal(self, node: nodes.List | nodes.Tuple | nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        parts = [x for p in node.items for x in ((p.key, p.value) if isinstance(p, nodes.Pair) else (p,))]
        if all(isinstance(p, nodes.Const) for p in parts):
            return node  # a constant is no bigger than the template
        return _filter(node, "_llamadeck_admit")

    visit_List = visit_Dict = _literal

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        return self._literal(node) if node.ctx == "load" else self.generic_visit(node)


@functools.lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template | str:
    """The compiled template, or the one-line reason it does not compile (cached too)."""
    broken = "the model's chat template is broken"
    if len(source) > MAX_TEMPLATE_CHARS:
        return f"{broken}: it is {len(source):,} characters long; llamadeck accepts {MAX_TEMPLATE_CHARS:,}"
    env = _environment()
    token = _budget.set(_Budget.start(MIN_SIZE_LIMIT))  # jinja evaluates constant expressions while compiling
    try:
        tree = _Guard().visit(env.parse(source))
        tree.set_environment(env)
        return env.from_string(tree)
    except jinja2.TemplateSyntaxError as error:
        return f"{broken}: line {error.lineno}: {_quote(error.message or '')}"
    except TemplateError as error:  # a constant jinja folds while compiling went over the budget
        return str(error)
    except RecursionError:
        return f"{broken}: it nests too deeply"
    except Exception as error:
        return f"{broken}: {type(error).__name__}: {_quote(str(error))}"
    finally:
        _budget.reset(token)
