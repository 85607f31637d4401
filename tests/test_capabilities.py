"""What a model can do, decided as Ollama decides it (engine.capabilities): table-driven, no files."""

from __future__ import annotations

import pytest

from engine.capabilities import CAPABILITIES, capabilities, template_capabilities
from engine.templates.known import known_formats
from tests.support.tiny_gguf import CHAT_TEMPLATE

LLAMA = {"general.architecture": "llama", "llama.block_count": 2}

# Ollama's llama 3.1 library template, cut to what decides
LLAMA31_GO = (
    "{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>\n{{ .System }}"
    "{{- if .Tools }}You have these tools: {{ range .Tools }}{{ . }}{{ end }}{{ end }}<|eot_id|>{{ end }}"
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
    "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
# Ollama's qwen3 template, cut: tools, and thinking through .Thinking and $.IsThinkSet
QWEN3_GO = (
    "{{- if .Tools }}<|im_start|>system\n# Tools\n{{ range .Tools }}{{ . }}{{ end }}<|im_end|>\n{{ end }}"
    "{{- range $i, $_ := .Messages }}<|im_start|>{{ .Role }}\n"
    "{{- if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ if and $.IsThinkSet (not $.Think) }}<think>\n\n</think>\n\n{{ end }}"
)
CODER_GO = (
    "{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>"
    "{{ else }}{{ .Prompt }}{{ end }}"
)
# the GGUF chat templates of Qwen 3 and DeepSeek-R1, cut to what decides
QWEN3_JINJA = (
    "{%- if tools %}<|im_start|>system\n# Tools{% for tool in tools %}{{ tool | tojson }}{% endfor %}"
    "<|im_end|>{% endif %}{% for message in messages %}{% if '</think>' in message.content %}"
    "{% set reasoning = message.content.split('</think>')[0].split('<think>')[-1] %}{% endif %}"
    "<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and "
    "enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
R1_JINJA = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}"
    "{% set content = message['content'] %}{% set content = content.split('</think>')[-1] %}"
    "<｜Assistant｜>{{ content }}<｜end▁of▁sentence｜>{% else %}<｜User｜>{{ message['content'] }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<｜Assistant｜>{% endif %}"
)
TOOL_CALL_JINJA = (
    "{% for m in messages %}{% if m.tool_calls %}<tool_call>{{ m.tool_calls | tojson }}{% endif %}"
    "{% endfor %}"
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (None, set()),
        ("", set()),
        (CHAT_TEMPLATE, set()),
        (LLAMA31_GO, {"tools"}),
        (QWEN3_GO, {"tools", "thinking"}),
        (CODER_GO, {"insert"}),
        ("{{ .Prompt }}", set()),
        ("{{ if .Think }}think hard{{ end }}{{ .Prompt }}", {"thinking"}),
        (QWEN3_JINJA, {"tools", "thinking"}),
        (R1_JINJA, {"thinking"}),
        (R1_JINJA.replace("{% set content", "{% set reasoning_content = 1 %}{% set content"), set()),
        (TOOL_CALL_JINJA, {"tools"}),
        ("{% if tools %}{{ tools }}{% endif %}{{ messages[0]['content'] }}", {"tools"}),  # Ollama's own test
        ("{{ messages[0]['content'] }} <think> only opens", set()),
        ('{{ range .Messages }}{{ define "x" }}{{ end }}{{ .Tools }}{{ end }}', set()),  # no chat: nothing
    ],
)
def test_templates_offer_tools_thinking_and_insert_as_ollama_reads_them(
    template: str | None, expected: set[str]
) -> None:
    assert template_capabilities(template) == expected


def test_the_built_in_formats_for_base_models_offer_nothing_beyond_completion() -> None:
    for architecture, known in known_formats().items():
        assert capabilities({"general.architecture": architecture}, known.template) == ("completion",)


@pytest.mark.parametrize(
    ("metadata", "template", "expected"),
    [
        (LLAMA, None, ("completion",)),
        (LLAMA, LLAMA31_GO, ("completion", "tools")),
        (LLAMA, QWEN3_JINJA, ("completion", "tools", "thinking")),
        ({**LLAMA, "llama.pooling_type": 1}, None, ("embedding",)),
        ({"general.architecture": "bert", "bert.pooling_type": 2}, TOOL_CALL_JINJA, ("embedding",)),
        ({"general.architecture": "qwen3", "qwen3.pooling_type": 3}, None, ("embedding",)),
        ({**LLAMA, "llama.pooling_type": 0}, None, ("completion",)),  # pooling none: it generates
        ({"general.architecture": "bert", "bert.pooling_type": 4}, None, ()),  # a reranker: neither here
        ({"general.architecture": "gpt-oss"}, None, ("completion", "thinking")),
        ({"general.architecture": "gemma3", "gemma3.vision.block_count": 27}, None, ("completion", "vision")),
        ({**LLAMA, "tokenizer.ggml.fim_pre_token_id": 5, "tokenizer.ggml.fim_suf_token_id": 6}, None,
         ("completion", "insert")),
        ({**LLAMA, "tokenizer.ggml.prefix_token_id": 5, "tokenizer.ggml.suffix_token_id": 6}, None,
         ("completion", "insert")),
        ({**LLAMA, "tokenizer.ggml.fim_pre_token_id": 5}, None, ("completion",)),  # a prefix alone is no FIM
        ({**LLAMA, "llama.vision.block_count": None}, None, ("completion",)),
        ({}, None, ("completion",)),  # an unreadable header: the template alone decides
    ],
)  # fmt: skip
def test_capabilities_from_the_header_and_the_template(
    metadata: dict[str, object], template: str | None, expected: tuple[str, ...]
) -> None:
    assert capabilities(metadata, template) == expected
    assert list(expected) == [c for c in CAPABILITIES if c in expected]  # always in one order
