"""Jinja chat templates that misbehave: compiled once, stopped in time and size, reported on one line."""

from __future__ import annotations

import tracemalloc

import pytest

from engine.errors import TemplateError
from engine.templates.jinja import budget, sandbox
from tests.support.jinja_templates import render

# -- compiling lazily, once ------------------------------------------------------------------------


def test_broken_template_compiles_only_when_rendered_and_only_once() -> None:
    broken = "{% if %} lazily broken"
    before = sandbox.compile_template.cache_info()
    for _ in range(3):
        with pytest.raises(TemplateError, match="broken"):
            render(broken)
    after = sandbox.compile_template.cache_info()
    assert after.misses - before.misses == 1 and after.hits - before.hits == 2


def test_good_template_is_compiled_once() -> None:
    template = "{{ messages|length }} unique to this test"
    before = sandbox.compile_template.cache_info()
    assert render(template) == render(template) == "1 unique to this test"
    assert sandbox.compile_template.cache_info().misses - before.misses == 1


# -- time, size and memory limits ------------------------------------------------------------------


def _refused(template: str, match: str | None = None) -> TemplateError:
    """Refused in one line. No clock: where a limit failed, these would hang the suite, not pass."""
    with pytest.raises(TemplateError, match=match) as caught:
        render(template)
    assert "\n" not in str(caught.value)
    return caught.value


def test_nested_range_loops_stop_within_the_limit() -> None:
    _refused("{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}")


def test_loops_without_any_call_stop_within_the_limit() -> None:
    """No call or lookup inside: only the loop itself can be checked."""
    _refused("{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}")


def test_slow_loop_hits_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "TIME_LIMIT_S", 0.5)
    slow = (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% if loop.last %}{% endif %}"
        "{% endfor %}{% endfor %}"
    )
    with pytest.raises(TemplateError, match=r"ran longer than 0\.5 s"):  # the clock, not another limit
        render(slow)


def test_recursive_macro_is_stopped() -> None:
    _refused("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursed too deeply")
    _refused("{% macro f(n) %}{{ f(n + 1) }}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
    _refused("{% for x in [1] recursive %}{{ loop([1, 2]) }}{% endfor %}")


def test_huge_repetition_is_refused_without_allocating_it() -> None:
    tracemalloc.start()
    try:
        for template in (
            "{{ 'a' * 10**9 }}",
            "{{ [1, 2] * 10**9 }}",
            "{{ 2 ** (10**9) }}",  # jinja reads 2 ** 10 ** 9 as (2 ** 10) ** 9
            "{{ 'a'.ljust(10**9) }}",
            "{{ 'a'|center(1000000000) }}",
            "{{ '%0999999999d' % 1 }}",
            "{{ '{:>999999999}'.format(1) }}",
            "{{ ('a\\n' * 1000)|indent(4000000) }}",
            "{{ range(100000)|join('x' * 100) }}",
        ):
            _refused(template)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


def test_doubling_and_shared_nesting_are_refused() -> None:
    _refused(
        "{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "tried to build a value",
    )
    _refused(  # each level is small; printing it would be 2**40 items
        "{% set ns = namespace(l=['x' * 100]) %}{% for i in range(40) %}{% set ns.l = [ns.l, ns.l] %}"
        "{% endfor %}{{ ns.l }}",
        "tried to build a value",
    )


def test_output_size_is_limited() -> None:
    _refused("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "output passed")


def test_size_limit_grows_with_the_conversation() -> None:
    big = "y" * (1 << 20)
    messages = [{"role": "user", "content": big}]
    text = render("{% for i in range(6) %}{{ messages[0].content }}{% endfor %}", messages)
    assert len(text) == 6 << 20  # past the 4 MiB floor: the limit is 8x the conversation


def test_buffered_output_is_limited_too() -> None:
    """A macro or ``{% set %}`` block collects its text out of sight of the output count."""
    _refused(
        "{% set x %}{% for i in range(100000) %}{% for j in range(100) %}{{ 'x' * 10000 }}"
        "{% endfor %}{% endfor %}{% endset %}",
        "in all",
    )


# -- messages are one escaped line -----------------------------------------------------------------


def test_control_characters_in_raise_exception_are_escaped() -> None:
    error = _refused("{{ raise_exception('bad\\x1b[2J\\nrole\\u202e\\r' ~ 'z' * 500) }}")
    message = str(error)
    assert message.isprintable() and "\x1b" not in message
    assert "bad\\x1b[2J\\nrole\\u202e\\r" in message
    assert len(message) < 300 and message.endswith("...")


def test_control_characters_in_syntax_errors_are_escaped() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{% \x1b[31mevil\x07 %}")
    message = str(caught.value)
    assert (
        message.isprintable()
        and "x1b" in message
        and message.startswith("the model's chat template is broken")
    )


def test_jinja_runtime_errors_are_escaped() -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{ messages[0]['x\\x1by'].z }}")
    assert str(caught.value).isprintable()
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render("{{ 1 / 0 }}")
