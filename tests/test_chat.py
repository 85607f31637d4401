"""Chat templates: rendering real templates, and hostile ones failing fast, small and on one line."""

# ruff: noqa: E501  (the real-world templates below are kept verbatim)

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest

from engine.templates import jinja as chat
from engine.templates.jinja import TemplateError, render_chat
from engine.ingest.embedded import GEMMA_TEMPLATE
from engine.errors import InvalidInput
from engine.errors import TemplateError as EngineTemplateError

# -- real-world templates (as published in tokenizer_config.json / GGUF metadata) ----------------

CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA_31 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

GEMMA_3 = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
"""

MISTRAL_V3 = """{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}

{#- This block checks for alternating user/assistant messages, skipping tool calling messages #}
{%- set ns = namespace() %}
{%- set ns.index = 0 %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or message.role == "tool_results" or (message.tool_calls is defined and message.tool_calls is not none)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
            {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\\n\\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""

TEMPLATES = {
    "chatml": (CHATML, "<s>", "<|im_end|>"),
    "llama3": (LLAMA_31, "<|begin_of_text|>", "<|eot_id|>"),
    "gemma3": (GEMMA_3, "<bos>", "<eos>"),
    "mistral": (MISTRAL_V3, "<s>", "</s>"),
}

SYSTEM = {"role": "system", "content": "You are terse.\nAnswer in English."}
CONVERSATIONS: dict[str, list[dict[str, Any]]] = {
    "one_turn": [{"role": "user", "content": "Hi"}],
    "system_and_turn": [SYSTEM, {"role": "user", "content": "What is 2+2?"}],
    "several_turns": [
        SYSTEM,
        {"role": "user", "content": "  Name a colour.  "},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another, in <b>bold</b>?"},
        {"role": "assistant", "content": "**Rouge** — en français ✓"},
        {"role": "user", "content": "Thanks!\n\nBye."},
    ],
    "no_system_turns": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c 'quoted' \"twice\" {{ not a template }}"},
    ],
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city, e.g. Zürich <today>",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}


def render(template: str, messages: list[dict[str, Any]] | None = None, **kwargs: Any) -> str:
    return render_chat(
        template, messages or [{"role": "user", "content": "hi"}], bos_token="", eos_token="", **kwargs
    )


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
    assert TemplateError is EngineTemplateError
    assert issubclass(TemplateError, InvalidInput)


# -- compiling lazily, once ------------------------------------------------------------------------


def test_broken_template_compiles_only_when_rendered_and_only_once() -> None:
    broken = "{% if %} lazily broken"
    before = chat._compile.cache_info()
    for _ in range(3):
        with pytest.raises(TemplateError, match="broken"):
            render(broken)
    after = chat._compile.cache_info()
    assert after.misses - before.misses == 1 and after.hits - before.hits == 2


def test_good_template_is_compiled_once() -> None:
    template = "{{ messages|length }} unique to this test"
    before = chat._compile.cache_info()
    assert render(template) == render(template) == "1 unique to this test"
    assert chat._compile.cache_info().misses - before.misses == 1


# -- time, size and memory limits ------------------------------------------------------------------


def _refused_in_time(
    template: str, match: str | None = None, limit: float = chat.TIME_LIMIT_S
) -> TemplateError:
    start = time.monotonic()
    with pytest.raises(TemplateError, match=match) as caught:
        render(template)
    assert time.monotonic() - start < limit + 1
    assert "\n" not in str(caught.value)
    return caught.value


def test_nested_range_loops_stop_within_the_limit() -> None:
    _refused_in_time(
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}"
    )


def test_loops_without_any_call_stop_within_the_limit() -> None:
    """No call or lookup inside: only the loop itself can be checked."""
    _refused_in_time("{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}")


def test_slow_loop_hits_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat, "TIME_LIMIT_S", 0.5)
    slow = "{% for i in range(100000) %}{% for j in range(100000) %}{% if loop.last %}{% endif %}{% endfor %}{% endfor %}"
    start = time.monotonic()
    with pytest.raises(TemplateError, match=r"ran longer than 0\.5 s"):
        render(slow)
    assert time.monotonic() - start < 1.5


def test_recursive_macro_is_stopped() -> None:
    _refused_in_time("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursed too deeply")
    _refused_in_time("{% macro f(n) %}{{ f(n + 1) }}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
    _refused_in_time("{% for x in [1] recursive %}{{ loop([1, 2]) }}{% endfor %}")


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
            _refused_in_time(template)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


def test_doubling_and_shared_nesting_are_refused() -> None:
    _refused_in_time(
        "{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "tried to build a value",
    )
    _refused_in_time(  # each level is small; printing it would be 2**40 items
        "{% set ns = namespace(l=['x' * 100]) %}{% for i in range(40) %}{% set ns.l = [ns.l, ns.l] %}"
        "{% endfor %}{{ ns.l }}",
        "tried to build a value",
    )


def test_output_size_is_limited() -> None:
    _refused_in_time("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "output passed")


def test_size_limit_grows_with_the_conversation() -> None:
    big = "y" * (1 << 20)
    messages = [{"role": "user", "content": big}]
    text = render("{% for i in range(6) %}{{ messages[0].content }}{% endfor %}", messages)
    assert len(text) == 6 << 20  # past the 4 MiB floor: the limit is 8x the conversation


def test_buffered_output_is_limited_too() -> None:
    """A macro or ``{% set %}`` block collects its text out of sight of the output count."""
    _refused_in_time(
        "{% set x %}{% for i in range(100000) %}{% for j in range(100) %}{{ 'x' * 10000 }}"
        "{% endfor %}{% endfor %}{% endset %}",
        "in all",
    )


# -- messages are one escaped line -----------------------------------------------------------------


def test_control_characters_in_raise_exception_are_escaped() -> None:
    error = _refused_in_time("{{ raise_exception('bad\\x1b[2J\\nrole\\u202e\\r' ~ 'z' * 500) }}")
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
    plain.filters["tojson"] = chat._tojson
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
