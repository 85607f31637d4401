"""The chat template interface: Jinja through it, when a template applies, Go templates refused clearly."""

# ruff: noqa: E501  (the real-world templates below are kept verbatim)

from __future__ import annotations

import base64
import re

import pytest

from engine.errors import InvalidInput, TemplateError
from engine.templates.go.template import GoTemplate
from engine.templates.jinja.render import render_chat
from engine.templates.known import known_formats, template_and_source
from engine.templates.message import Message
from engine.templates.render import (
    SOURCE_GGUF,
    SOURCE_MODELFILE,
    ChatTemplate,
    JinjaTemplate,
    is_go_template,
    template_for,
    with_system_prompt,
)

CHATML = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Jinja templates as Hugging Face publishes them (from Ollama's template/index.json)
ZEPHYR_JINJA = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
OPENCHAT_JINJA = "{{ bos_token }}{% for message in messages %}{{ 'GPT4 Correct ' + message['role'].title() + ': ' + message['content'] + '<|end_of_turn|>'}}{% endfor %}{% if add_generation_prompt %}{{ 'GPT4 Correct Assistant:' }}{% endif %}"

# Ollama's Go templates (template/*.gotmpl)
CHATML_GO = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
LLAMA3_GO = "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
MISTRAL_GO = '[INST] {{ range $index, $_ := .Messages }}\n{{- if eq .Role "system" }}{{ .Content }}\n\n{{ else if eq .Role "user" }}{{ .Content }}[/INST]\n{{- else if eq .Role "assistant" }} {{ .Content }}</s>[INST] {{ end }}\n{{- end }}'
GEMMA3_GO = '{{- range $i, $_ := .Messages }}\n{{- $last := eq (len (slice $.Messages $i)) 1 }}\n{{- if eq .Role "user" }}<start_of_turn>user\n{{- if and (eq $i 1) $.System }}\n{{ $.System }}\n{{ end }}\n{{ .Content }}<end_of_turn>\n{{ else if eq .Role "assistant" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n{{ end }}\n{{- if $last }}<start_of_turn>model\n{{ end }}\n{{- end }}'
LEGACY_GO = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
COMMENTED_GO = "{{/* a comment */}}{{ .Prompt }}"

GEMMA_TEMPLATE = known_formats()["gemma3"].template  # the demo model's, engine/templates/formats/gemma.jinja
HELLO = [Message("user", "Hello")]


def chatml(bos: str = "<s>") -> JinjaTemplate:
    return JinjaTemplate(CHATML, bos, "<|im_end|>")


# -- Jinja through the interface ---------------------------------------------------


def test_a_chatml_conversation_renders_through_the_interface() -> None:
    template: ChatTemplate = chatml()
    messages = [
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", "Hello."),
        Message("user", "Bye"),
    ]
    assert template.kind == "jinja" and template.source == CHATML
    assert template.render(messages) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n"
        "<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert template.render(messages, add_generation_prompt=False).endswith("Bye<|im_end|>\n")


def test_the_demo_gemma_template_folds_the_system_prompt_into_the_first_turn_and_drops_bos() -> None:
    template = JinjaTemplate(GEMMA_TEMPLATE, "<bos>", "<eos>", kind="builtin")
    messages = [
        Message("system", "Be brief."),
        Message("user", " Hi "),
        Message("assistant", "Hello."),
        Message("user", "Bye"),
    ]
    assert template.render(messages) == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_the_interface_renders_what_the_engine_renders_today() -> None:
    expected = render_chat(
        GEMMA_TEMPLATE, [{"role": "user", "content": "Why?"}], bos_token="<bos>", eos_token="<eos>"
    )
    assert JinjaTemplate(GEMMA_TEMPLATE, "<bos>", "<eos>").render([Message("user", "Why?")]) == expected


def test_bos_and_eos_reach_the_template_and_the_leading_bos_is_left_to_the_tokenizer() -> None:
    assert JinjaTemplate(OPENCHAT_JINJA, "<s>", "</s>").render(HELLO) == (
        "GPT4 Correct User: Hello<|end_of_turn|>GPT4 Correct Assistant:"
    )
    assert "Hello</s>" in JinjaTemplate(ZEPHYR_JINJA, "<s>", "</s>").render(HELLO)


def test_tools_and_tool_calls_reach_the_template() -> None:
    source = (
        "{% if tools %}[{{ tools | map(attribute='function') | map(attribute='name') | join(',') }}]{% endif %}"
        "{% for m in messages %}{{ m.role }}:{{ m.content }}"
        "{% for c in m.tool_calls or [] %}<call {{ c.function.name }} {{ c.function.arguments | tojson }}>{% endfor %}"
        "{% if m.name %}({{ m.name }}){% endif %}|{% endfor %}"
    )
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    messages = [
        Message("user", "Rain?"),
        Message(
            "assistant", "", tool_calls=({"function": {"name": "weather", "arguments": {"city": "Oslo"}}},)
        ),
        Message("tool", "yes", tool_name="weather"),
    ]
    assert JinjaTemplate(source, "", "").render(messages, tools=tools) == (
        '[weather]user:Rain?|assistant:<call weather {"city": "Oslo"}>|tool:yes(weather)|'
    )


def test_a_broken_template_fails_at_render_with_a_template_error() -> None:
    template = JinjaTemplate("{% for m in messages %}", "", "")  # constructing it never compiles
    with pytest.raises(TemplateError, match="chat template is broken"):
        template.render(HELLO)
    refusing = JinjaTemplate("{{ raise_exception('roles must alternate') }}", "", "")
    with pytest.raises(TemplateError, match="roles must alternate"):
        refusing.render(HELLO)


# -- which template applies --------------------------------------------------------

RECORDED = "llamadeck: Gemma turn format"


@pytest.mark.parametrize(
    ("source", "raw", "kind"),
    [
        (SOURCE_GGUF, None, "jinja"),
        (SOURCE_GGUF, False, "jinja"),
        (SOURCE_GGUF, True, None),
        (SOURCE_MODELFILE, None, "jinja"),
        (SOURCE_MODELFILE, False, "jinja"),
        (SOURCE_MODELFILE, True, None),
        (RECORDED, None, None),  # a base model continues the text, as today
        (RECORDED, False, "builtin"),
        (RECORDED, True, None),
        (None, None, None),
        (None, False, "builtin"),
    ],
)
def test_raw_decides_whether_a_template_applies(
    source: str | None, raw: bool | None, kind: str | None
) -> None:
    template = template_for(GEMMA_TEMPLATE, source, bos_token="<bos>", eos_token="<eos>", raw=raw)
    assert (template and template.kind) == kind
    if template is not None:
        assert template.render(HELLO) == "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n"


@pytest.mark.parametrize("raw", [None, False, True])
@pytest.mark.parametrize("missing", [None, ""])
def test_a_model_without_a_template_is_plain_completion(raw: bool | None, missing: str | None) -> None:
    assert template_for(missing, SOURCE_GGUF, bos_token="", eos_token="", raw=raw) is None


def test_the_template_gets_the_models_special_tokens() -> None:
    template = template_for(ZEPHYR_JINJA, SOURCE_GGUF, bos_token="<s>", eos_token="</s>", raw=None)
    assert isinstance(template, JinjaTemplate)
    assert (template.bos_token, template.eos_token) == ("<s>", "</s>")


@pytest.mark.parametrize(
    ("architecture", "name", "first_turn"),
    [
        ("gemma3", "Gemma turn", "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n"),
        ("qwen3", "ChatML", "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"),
        ("phi3", "Phi-3", "<|user|>\nHello<|end|>\n<|assistant|>\n"),
        ("cohere2", "Command-R", "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hello<|END_OF_TURN_TOKEN|>"),
    ],
)
def test_a_base_model_records_its_architectures_format_from_the_data_files(
    architecture: str, name: str, first_turn: str
) -> None:
    template, source = template_and_source(architecture, None)
    assert template == known_formats()[architecture].template and source == f"llamadeck: {name} format"
    rendered = JinjaTemplate(template, "<bos>", "<eos>", kind="builtin").render(HELLO)
    assert rendered.startswith(first_turn)


def test_an_own_template_wins_and_an_ambiguous_architecture_gets_none() -> None:
    assert template_and_source("gemma3", "{{ x }}") == ("{{ x }}", "gguf")
    assert template_and_source("llama", None) == (None, None)  # Llama 2, Llama 3, Mistral...: no guess
    assert len(known_formats()) == 11


# -- Go templates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [CHATML_GO, LLAMA3_GO, MISTRAL_GO, GEMMA3_GO, LEGACY_GO, COMMENTED_GO, "{{ $.System }}", "{{ end }}"],
)
def test_ollama_go_templates_are_recognised(source: str) -> None:
    assert is_go_template(source)


@pytest.mark.parametrize(
    "source",
    [
        CHATML,
        GEMMA_TEMPLATE,
        ZEPHYR_JINJA,
        OPENCHAT_JINJA,
        "{{ messages[0]['content'] }}",
        "{{ range(3) | join(',') }}",  # Jinja's range(), not Go's
        "{%- if .5 %}{{ .System }}{% endif %}",  # a Jinja statement: never Go
        "plain text",
        "",
    ],
)
def test_jinja_templates_are_not_taken_for_go(source: str) -> None:
    assert not is_go_template(source)


def test_a_go_template_model_still_runs_raw() -> None:
    assert template_for(LLAMA3_GO, SOURCE_MODELFILE, bos_token="", eos_token="", raw=True) is None


# -- built once ---------------------------------------------------------------------


def test_a_go_template_is_parsed_once_for_every_request_that_uses_it() -> None:
    source = CHATML_GO + "{{/* unique to this test */}}"
    first = template_for(source, SOURCE_MODELFILE, bos_token="<s>", eos_token="</s>", raw=None)
    again = template_for(source, SOURCE_MODELFILE, bos_token="<s>", eos_token="</s>", raw=False)
    assert isinstance(first, GoTemplate) and again is first  # the same parsed tree, not a second parse
    assert (
        first.render(HELLO)
        == again.render(HELLO)
        == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    )
    other = template_for(source + " ", SOURCE_MODELFILE, bos_token="<s>", eos_token="</s>", raw=None)
    assert other is not first and other is not None and other.source == source + " "


def test_a_jinja_template_is_built_once_per_text_and_tokens() -> None:
    first = template_for(ZEPHYR_JINJA, SOURCE_GGUF, bos_token="<s>", eos_token="</s>", raw=None)
    assert template_for(ZEPHYR_JINJA, SOURCE_GGUF, bos_token="<s>", eos_token="</s>", raw=None) is first
    other_tokens = template_for(ZEPHYR_JINJA, SOURCE_GGUF, bos_token="<s>", eos_token="<|end|>", raw=None)
    assert isinstance(other_tokens, JinjaTemplate) and other_tokens.eos_token == "<|end|>"
    builtin = template_for(
        ZEPHYR_JINJA, "llamadeck: Zephyr format", bos_token="<s>", eos_token="</s>", raw=False
    )
    assert builtin is not None and builtin.kind == "builtin"  # the kind is part of what is built


def test_a_go_template_that_cannot_be_built_fails_each_time_it_is_asked_for() -> None:
    for _ in range(2):
        with pytest.raises(TemplateError, match="define"):
            template_for('{{ define "x" }}{{ end }}', SOURCE_MODELFILE, bos_token="", eos_token="", raw=None)


# -- the system prompt -------------------------------------------------------------


def test_the_models_system_prompt_goes_first_when_the_conversation_has_none() -> None:
    assert with_system_prompt(HELLO, "You are terse.") == [Message("system", "You are terse."), *HELLO]


def test_a_conversations_own_system_prompt_wins() -> None:
    messages = [Message("system", "You are verbose."), *HELLO]
    assert with_system_prompt(messages, "You are terse.") == messages


@pytest.mark.parametrize("system", [None, ""])
def test_no_system_prompt_leaves_the_conversation_as_it_is(system: str | None) -> None:
    assert with_system_prompt(HELLO, system) == HELLO


def test_modelfile_messages_come_before_the_conversation_and_after_the_system_prompt() -> None:
    preset = [Message("user", "Who are you?"), Message("assistant", "A pirate.")]
    assert with_system_prompt(HELLO, "Arr.", preset=preset) == [Message("system", "Arr."), *preset, *HELLO]


def test_only_the_first_message_is_looked_at_as_ollama_does() -> None:
    messages = [*HELLO, Message("system", "Later.")]
    assert with_system_prompt(messages, "First.")[0] == Message("system", "First.")


def test_the_system_prompt_reaches_the_rendered_prompt() -> None:
    prompt = chatml().render(with_system_prompt(HELLO, "You are terse."))
    assert prompt.startswith("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello")


# -- messages from JSON ------------------------------------------------------------


def test_a_message_from_json_is_read_as_ollama_reads_it() -> None:
    image = b"\x89PNG"
    message = Message.of(
        {
            "role": "User",
            "content": None,
            "images": [base64.b64encode(image).decode()],
            "tool_call_id": "ignored",
            "tool_name": "",
        }
    )
    assert message == Message("user", "", images=(image,))
    assert message.for_template() == {"role": "user", "content": ""}


def test_a_turns_reasoning_reaches_templates_under_both_names() -> None:
    message = Message.of({"role": "assistant", "content": "Paris.", "thinking": "The capital."})
    assert message.thinking == "The capital."
    assert message.for_template() == {
        "role": "assistant",
        "content": "Paris.",
        "thinking": "The capital.",  # gpt-oss's template
        "reasoning_content": "The capital.",  # Qwen3's
    }
    with pytest.raises(InvalidInput, match=r"message\.thinking must be a string"):
        Message.of({"role": "assistant", "thinking": 3})


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("hi", "messages[2] must be an object"),
        ({"content": "hi"}, "messages[2].role must be a non-empty string"),
        ({"role": " ", "content": "hi"}, "messages[2].role must be a non-empty string"),
        ({"role": "user", "content": 3}, "messages[2].content must be a string"),
        ({"role": "user", "content": ["a"]}, "messages[2].content must be a string"),
        ({"role": "tool", "tool_name": 3}, "messages[2].tool_name must be a string"),
        ({"role": "assistant", "tool_calls": "weather"}, "messages[2].tool_calls must be a list of objects"),
        ({"role": "user", "images": "abc"}, "messages[2].images must be a list"),
        ({"role": "user", "images": ["not base64!"]}, "messages[2].images[0] must be a base64 string"),
    ],
)
def test_a_malformed_message_is_refused_saying_where(raw: object, error: str) -> None:
    with pytest.raises(InvalidInput, match="^" + re.escape(error)):
        Message.of(raw, where="messages[2]")


def test_detection_reads_a_hostile_template_in_linear_time() -> None:
    # no clock: a pattern that rescans from every "{{" took 50 s on a tenth of this, so it would hang the suite
    assert not is_go_template("{{" * 200_000 + "{{ " * 200_000)
