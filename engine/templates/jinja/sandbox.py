"""The Jinja environment chat templates run in, and the compile cache.

jinja2's immutable sandbox (no attribute escapes, no mutation of our data)
with the budget checked in every hook it offers, Hugging Face's
``{% generation %}`` tag, and a tree rewrite that routes loops, ``~`` and
literals through the guards. Templates compile lazily, on the first render,
and the result (or the reason it failed) is cached.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from types import BuiltinMethodType, MethodType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

from engine.errors import TemplateError
from engine.templates.jinja.budget import (
    ITEM_COST,
    MIN_SIZE_LIMIT,
    Budget,
    check_binop,
    check_method,
    current_budget,
    width_of,
)
from engine.templates.jinja.filters import (
    DROPPED,
    GUARDS,
    REPLACED_FILTERS,
    guard_loop,
    metered,
    raise_exception,
    strftime_now,
)
from engine.text import one_line

MAX_TEMPLATE_CHARS = 256 << 10  # real templates are under 20 KiB; compiling cannot be interrupted


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
        budget = current_budget.get()
        budget.tick()
        self._total += budget.measure(value) + sum(width_of(n) for n in re.findall(r"\d+", format_spec))
        budget.fits(self._total)
        return super().format_field(value, format_spec)


class _SizedEscapeFormatter(_SizedFormatter, EscapeFormatter):
    pass


class _Sandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox with the budget checked in every hook it offers."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = current_budget.get()
        budget.tick()
        if isinstance(obj, LoopContext) and args:  # loop(children) in a recursive for
            args = (guard_loop(args[0], ITEM_COST), *args[1:])
        else:
            args = check_method(budget, obj, args, kwargs)
        return budget.admit(super().call(context, obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = current_budget.get()
        budget.tick()
        if type(left) is str and type(right) is str and operator == "+":  # nearly every binop in a template
            budget.take(len(left) + len(right))
            return left + right
        check_binop(budget, operator, left, right)
        return budget.admit(self.binop_table[operator](left, right))

    # A lookup cannot loop by itself (every loop, call and output is checked), so only slices,
    # which copy, are hooked: sparing the clock on the commonest operation of all.
    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        return current_budget.get().admit(value) if type(argument) is slice else value

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
    return current_budget.get().admit(value)


@functools.lru_cache(maxsize=1)
def _environment() -> _Sandbox:
    env = _Sandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[loopcontrols, _GenerationTag],
        finalize=_finalize,
    )
    for name in DROPPED:
        env.filters.pop(name, None)
        env.globals.pop(name, None)
    env.filters.update({name: metered(REPLACED_FILTERS.get(name, f)) for name, f in env.filters.items()})
    env.filters.update(GUARDS)
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
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
        cost = nodes.Const(ITEM_COST + _fixed_text(node.body), lineno=node.lineno)
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
def compile_template(source: str) -> jinja2.Template | str:
    """The compiled template, or the one-line reason it does not compile (cached too)."""
    broken = "the model's chat template is broken"
    if len(source) > MAX_TEMPLATE_CHARS:
        return f"{broken}: it is {len(source):,} characters long; llamadeck accepts {MAX_TEMPLATE_CHARS:,}"
    env = _environment()
    token = current_budget.set(
        Budget.start(MIN_SIZE_LIMIT)
    )  # jinja evaluates constant expressions while compiling
    try:
        tree = _Guard().visit(env.parse(source))
        tree.set_environment(env)
        return env.from_string(tree)
    except jinja2.TemplateSyntaxError as error:
        return f"{broken}: line {error.lineno}: {one_line(error.message or '')}"
    except TemplateError as error:  # a constant jinja folds while compiling went over the budget
        return str(error)
    except RecursionError:
        return f"{broken}: it nests too deeply"
    except Exception as error:
        return f"{broken}: {type(error).__name__}: {one_line(str(error))}"
    finally:
        current_budget.reset(token)
