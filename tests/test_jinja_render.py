"""Jinja chat templates: real templates render as Hugging Face and llama-cpp-python render them."""

# ruff: noqa: E501  (the snippets below are kept on one line each)

from __future__ import annotations

import time

import pytest

from engine.errors import InvalidInput, TemplateError
from engine.templates.jinja import filters
from engine.templates.jinja.render import render_chat
from engine.templates.known import known_formats
from tests.support.jinja_templates import CONVERSATIONS, TEMPLATES, WEATHER_TOOL, render

GEMMA_TEMPLATE = known_formats()["gemma3"].template


# -- the behaviour moved from test_runtime.py ------------------------------------------------------


def test_gemma_template_renders_without_a_second_bos() -> None:
    text = render_chat(
        GEMMA_TEMPLATE,
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        bos_token="<bos>",
        eos_token="<eos>",
    )
    assert text == "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_chatml_template_renders_turns_and_generation_prompt() -> None:
    template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    hi = [{"role": "user", "content": "Hi"}]
    assert render_chat(template, hi, bos_token="<s>", eos_token="</s>") == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    without = render_chat(template, hi, bos_token="<s>", eos_token="</s>", add_generation_prompt=False)
    assert without == "<|im_start|>user\nHi<|im_end|>\n"


def test_sandbox_escape_attempt_is_refused() -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError):
        render("{{ messages.append(1) }}")  # the immutable sandbox: our data stays ours


def test_raise_exception_refuses_the_conversation() -> None:
    with pytest.raises(TemplateError, match="refused the conversation: roles must alternate$"):
        render("{{ raise_exception('roles must alternate') }}")


def test_broken_syntax_says_where() -> None:
    with pytest.raises(TemplateError, match="broken: line 2: "):
        render("ok\n{% for %}")


def test_template_error_is_the_engine_one() -> None:
    with pytest.raises(InvalidInput) as caught:  # what a user's request gets: an InvalidInput
        render("{% for %}")
    assert type(caught.value) is TemplateError


# -- what templates get ----------------------------------------------------------------------------


def test_tools_and_extra_variables_reach_the_template() -> None:
    template = "{{ tools[0].function.name }} {{ date_string }} {{ enable_thinking }}"
    text = render(
        template, tools=[WEATHER_TOOL], extra={"date_string": "1 May 2026", "enable_thinking": False}
    )
    assert text == "get_weather 1 May 2026 False"
    assert render("{{ tools is none }}") == "True"


def test_extra_may_not_replace_messages() -> None:
    with pytest.raises(InvalidInput, match="messages"):
        render("x", extra={"messages": []})


def test_loop_controls_work() -> None:
    template = (
        "{% for x in range(9) %}{% if x == 1 %}{% continue %}{% endif %}"
        "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"
    )
    assert render(template) == "023"


def test_tojson_keeps_text_and_key_order_like_hugging_face() -> None:
    assert render("{{ {'é': '<b>', 'a': 1}|tojson }}") == '{"é": "<b>", "a": 1}'
    assert render("{{ [1]|tojson(indent=2) }}") == "[\n  1\n]"
    assert render("{{ {'b': 1, 'a': 2}|tojson(sort_keys=true, separators=(',', ':')) }}") == '{"a":2,"b":1}'


def test_helpers_templates_commonly_use() -> None:
    assert render("{{ strftime_now('%Y') }}") == time.strftime("%Y")
    assert render("{% generation %}kept{% endgeneration %}") == "kept"
    assert render("{{ messages|map(attribute='role')|join(', ') }}") == "user"


PLAIN_JINJA_SNIPPETS = [
    "[{{ messages[0].nonexistent }}]",
    "{{ [nonexistent] }} {{ {'a': nope} }} {{ nonexistent ~ 'x' }}",
    "{% for x in nonexistent %}a{% else %}empty{% endfor %}",
    "{{ messages[0].keys() }} {{ (messages[0].items()|list)[0] }} {{ messages[0]|dictsort }}",
    "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{{ loop.cycle('a', 'b') }}{% endfor %}",
    "{% for a, b in [(1, 2), (3, 4)] %}{{ a ~ b }}{% endfor %}{% set x, y = 5, 6 %}{{ x * y }}",
    "{% for x in [3, 1, 2]|sort if x > 1 %}{{ x }}{% endfor %}{{ [1, 2, 3][1:] }} {{ 'abc'[::-1] }}",
    "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}",
    "{% macro m(a, b='x') %}<{{ a }}{{ b }}{{ varargs }}{{ kwargs }}>{% endmacro %}{{ m(1) }}{{ m(1, 2, 3, k=4) }}",
    "{% macro w() %}[{{ caller() }}]{% endmacro %}{% call w() %}inside{% endcall %}",
    "{% filter upper %}shout {{ 'this' }}{% endfilter %}{% set b %}block {{ 1 + 1 }}{% endset %}{{ b }}",
    "{% for x in [[1, [2]], [3]] recursive %}({% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}){% endfor %}",
    "{{ [1, 2]|join(', ') }} {{ [{'a': 'x'}, {'a': 'y'}]|join('-', attribute='a') }} {{ [[1], [2]]|sum(start=[]) }} {{ [1, 2]|sum }}",
    "{{ range(5)|batch(2, 0)|list }} {{ range(5)|slice(2)|list }} {{ 'a\nb'|indent(2, true) }} {{ 'x'|center(5) }}",
    "{{ '%s-%05d' % ('a', 7) }} {{ '%(k)s' % {'k': 'v'} }} {{ '{}:{:>4}'.format('a', 'b') }} {{ '{k}'.format_map({'k': 1}) }}",
    "{{ 'a b c'|replace(' ', '_') }} {{ 'aaa'.replace('a', 'b', 2) }} {{ ('a ' * 5)|wordwrap(4) }} {{ '%s|%s'|format(1, 2) }}",
    "{{ 'x'.ljust(3) }}| {{ '7'.zfill(3) }} {{ 'a\tb'.expandtabs(4) }} {{ '-'.join(['a', 'b']) }} {{ 'a,b'.split(',') }}",
    "{{ 2 ** 10 }} {{ 7 % 3 }} {{ 'ab' * 2 }} {{ [0] * 3 }} {{ (1, 2) + (3,) }} {{ 10 // 3 }} {{ 1.5 * 2 }} {{ true + 1 }}",
    "{{ none }} {{ [none, true, 1.0] }} {{ dict(a=1) }} {{ messages|map(attribute='role')|list }} {{ messages|selectattr('role', 'eq', 'user')|list|length }}",
    "{{ messages|tojson }} {{ {'é': '<&>'}|tojson(indent=1) }} {{ 'x'|tojson }}",
    "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{% set j = joiner('|') %}{{ j() }}x{{ j() }}y",
    "{% for i in range(3) %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}{% for i in range(9) %}{% if i > 1 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "{% with a = 1, b = [2] %}{{ a }}{{ b }}{% endwith %}{{ (1, 'two') }} {{ 1 in [1] }} {{ 'b' in 'abc' }} {{ messages is sequence }}",
    "{% autoescape true %}{{ '<b>' ~ 'x' }}{{ ['<i>']|join }}{% endautoescape %}",
]


@pytest.mark.parametrize("snippet", PLAIN_JINJA_SNIPPETS)
def test_renders_like_a_plain_sandbox(snippet: str) -> None:
    """The hooks and rewrites change no result: only limits differ."""
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    plain = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    plain.filters["tojson"] = filters.tojson
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    expected = plain.from_string(snippet).render(messages=messages)
    assert render(snippet, messages) == expected


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_agrees_with_llama_cpp_python(name: str, conversation: str) -> None:
    formatting = pytest.importorskip("llama_cpp.llama_chat_format")
    template, bos, eos = TEMPLATES[name]
    messages = CONVERSATIONS[conversation]
    if name == "mistral" and conversation == "several_turns":
        messages = messages[1:]  # Mistral puts the system text before the last user turn only
    for add_generation_prompt in (True, False):
        theirs = formatting.Jinja2ChatFormatter(template, eos, bos, add_generation_prompt)(messages=messages)
        ours = render_chat(
            template, messages, bos_token=bos, eos_token=eos, add_generation_prompt=add_generation_prompt
        )
        assert ours == theirs.prompt.removeprefix(bos)


@pytest.mark.parametrize("name", ["llama3", "mistral"])
def test_agrees_with_llama_cpp_python_on_tools(name: str) -> None:
    formatting = pytest.importorskip("llama_cpp.llama_chat_format")
    template, bos, eos = TEMPLATES[name]
    messages = CONVERSATIONS["several_turns"][1:]
    theirs = formatting.Jinja2ChatFormatter(template, eos, bos)(
        messages=messages, tools=[WEATHER_TOOL], date_string="1 May 2026"
    )
    ours = render_chat(
        template,
        messages,
        bos_token=bos,
        eos_token=eos,
        tools=[WEATHER_TOOL],
        extra={"date_string": "1 May 2026"},
    )
    assert ours == theirs.prompt.removeprefix(bos)
    assert "Zürich <today>" in ours
