"""Ollama's Go templates in pure Python: conversations and tools rendered as Ollama's ``Execute`` does.

Every vendored template (tests/data/go_templates, from Ollama's library) is
rendered over many conversations by Python and by a copy of Ollama's
``Template.Execute`` in Go (tests/support/gorender), and must match byte for
byte, errors included; all cases go to one Go process. Without a Go toolchain
these tests fail (CI installs golang-go): they never skip.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest

from engine.errors import TemplateError
from engine.templates.go.template import GoTemplate
from engine.templates.message import Message
from engine.templates.render import SOURCE_MODELFILE, template_for
from tests.support.gorender import GoRender, python_render, same, session_oracle

TEMPLATES_DIR = Path(__file__).parent / "data" / "go_templates"
TEMPLATES = {p.stem: p.read_text(encoding="utf-8") for p in sorted(TEMPLATES_DIR.glob("*.gotmpl"))}


@pytest.fixture(scope="session")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> GoRender:
    return session_oracle(tmp_path_factory)


# -- conversations ----------------------------------------------------------------

ODD_TEXTS = [
    "Hello",
    "",
    "{{ .Content }} and {{- end }}",
    "<b>\"quoted\"</b> & 'single'",
    "line one\nline two\r\n\ttabbed",
    "emoji 🙂, accents é, CJK 漢字, separator \u2028 and \u2029",
    "100% sure %s %d %v",
    "back\\slash and `raw`",
    "   padded   ",
    "\x00\x01 control",
    "[img] here",
]

ARGUMENT_VALUES: list[Any] = [
    1,
    -2,
    0.5,
    1e6,
    123456789,
    1e21,
    1e-7,
    0.0001,
    12345678901234567890,
    True,
    False,
    None,
    "text <tag> & more",
    "",
    [1, "two", None, [3.5]],
    {"nested": {"deep": [1, 2]}, "b": "x", "a": 2},
]

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather <now> & later",
            "parameters": {
                "type": "object",
                "required": ["city"],
                "properties": {
                    "unit": {"type": "string", "enum": ["c", "f"], "description": "Unit"},
                    "city": {"type": "string", "description": 'The city\'s "name"'},
                    "days": {"type": ["integer", "null"], "description": "How many days"},
                },
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "filters": {
                        "type": "object",
                        "properties": {"z": {"type": "boolean"}, "a": {"type": "number"}},
                    },
                    "limit": {"type": "integer"},
                },
            },
        },
    },
    {"type": "function", "function": {"name": "no_params", "parameters": {"type": "object"}}},
    {
        "type": "function",
        "items": {"odd": True},
        "function": {
            "name": "shapes",
            "description": "line\nbreak \u2028 & <x>",
            "parameters": {
                "type": "object",
                "$defs": {"Point": {"type": "object", "n": 1.5e-9}},
                "items": [1, 2.5, None],
                "required": [],
                "properties": {
                    "list": {"type": "array", "items": {"type": "number"}, "required": ["x"]},
                    "choice": {"type": "string", "enum": [1, "two", None, 3.25]},
                    "none": {},
                },
            },
        },
    },
]


def tool_call(rng: random.Random) -> dict[str, Any]:
    call: dict[str, Any] = {"function": {"name": rng.choice(["get_weather", "search", "x<y>"])}}
    if rng.random() < 0.85:
        keys = rng.sample(["city", "unit", "q", "zeta", "alpha", "é"], rng.randint(0, 3))
        call["function"]["arguments"] = {k: rng.choice(ARGUMENT_VALUES) for k in keys}
    if rng.random() < 0.3:
        call["function"]["index"] = rng.randint(0, 3)
    if rng.random() < 0.3:
        call["id"] = f"call_{rng.randint(0, 99)}"
    return call


def conversation(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """A random conversation in Ollama's JSON shape, and maybe tools."""
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": rng.choice(ODD_TEXTS)})
    for _ in range(rng.randint(0, 4)):
        role = rng.choices(["user", "assistant", "tool", "system"], weights=[5, 4, 1, 1])[0]
        message: dict[str, Any] = {"role": role, "content": rng.choice(ODD_TEXTS)}
        if role == "assistant" and rng.random() < 0.35:
            message["tool_calls"] = [tool_call(rng) for _ in range(rng.randint(1, 2))]
            if rng.random() < 0.6:
                message["content"] = ""
        if role == "tool" and rng.random() < 0.7:
            message["tool_name"] = "get_weather"
        if role == "user" and rng.random() < 0.1:
            message["images"] = [base64.b64encode(b"\x89PNG\x00").decode()]
        messages.append(message)
    if rng.random() < 0.8:
        messages.append({"role": "user", "content": rng.choice(ODD_TEXTS)})
    if rng.random() < 0.25:
        messages.append({"role": "assistant", "content": rng.choice(ODD_TEXTS)})
    tools = rng.choice([None, None, [], TOOLS, TOOLS[:1], TOOLS[2:], TOOLS[3:]])
    return messages, tools


CONVERSATIONS = [conversation(random.Random(seed)) for seed in range(150)]
CONVERSATIONS += [
    ([], None),
    ([{"role": "system", "content": "only a system prompt"}], None),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], None),
    (
        [
            {"role": "system", "content": "s1"},
            {"role": "user", "content": "u"},
            {"role": "system", "content": "s2"},
        ],
        None,
    ),
    ([{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}], TOOLS),
]


@pytest.fixture(scope="module")
def ollama_results(oracle: GoRender) -> dict[str, list[dict[str, str]]]:
    """Go's render of every conversation with every template, in one run."""
    cases = [
        {"mode": "ollama", "template": source, "messages": messages, "tools": tools}
        for source in TEMPLATES.values()
        for messages, tools in CONVERSATIONS
    ]
    answers = oracle.run(cases)
    n = len(CONVERSATIONS)
    return {name: answers[i * n : (i + 1) * n] for i, name in enumerate(TEMPLATES)}


def test_at_least_eight_families_are_vendored() -> None:
    assert len(TEMPLATES) >= 8
    assert {"llama3-instruct", "gemma-instruct", "chatml", "mistral-instruct", "phi-3", "command-r"} <= set(
        TEMPLATES
    )


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_conversation_renders_as_ollama_renders_it(
    name: str, ollama_results: dict[str, list[dict[str, str]]]
) -> None:
    template = GoTemplate.parse(TEMPLATES[name])
    rendered = 0
    for (messages, tools), go in zip(CONVERSATIONS, ollama_results[name], strict=True):
        conversation = [Message.of(m) for m in messages]
        python = python_render(lambda c=conversation, t=tools: template.render(c, tools=t))
        assert same(python, go), (
            f"{name}: {json.dumps(messages)} tools={tools is not None}\n{python}\n!=\n{go}"
        )
        rendered += "out" in go
    assert rendered >= len(CONVERSATIONS) * 0.9  # the cases exercise the template, not its errors


# -- Ollama's legacy path, on its own templates --------------------------------------

LEGACY_CASES = [
    "{{ .System }}|{{ .Prompt }}|{{ .Response }}|",
    "{{ if .System }}S:{{ .System }}\n{{ end }}U:{{ .Prompt }}\nA:",  # no .Response: Ollama appends one
    "{{ .Prompt }}{{ if .Response }} -> {{ .Response }}{{ end }} tail",
    '{{ .Prompt }}{{ .Response | printf "[%s]" }}tail',
    '{{ .Prompt }}{{ printf "%s-%s" .Response .Prompt }}tail{{ .System }}',
    "{{ range $x := .Prompt }}{{ end }}",
    "{{ with .Prompt }}<{{ . }}>{{ .Response }}{{ end }}after",
    "{{ if .Prompt }}{{ .Response }}{{ else }}none{{ end }}",
    "{{ json .Prompt }} {{ .Response }}",
    "{{ .Response }}{{ json .Prompt }}",
    "{{ .Prompt }} {{ .Response.X }} x",
    "{{ .Prompt }} {{ $.Response }} x",
    "{{ .Missing }}{{ .Prompt }}{{ .Missing.X }}",
]

LEGACY_CONVERSATIONS = [
    [{"role": "user", "content": "u1"}],
    [{"role": "system", "content": "sys"}, {"role": "user", "content": "u1"}],
    [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ],
    [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "partial"}],
    [
        {"role": "user", "content": "u1"},
        {"role": "system", "content": "late"},
        {"role": "user", "content": "u2"},
    ],
    [{"role": "assistant", "content": "first"}, {"role": "tool", "content": "t"}],
    [],
]


@pytest.fixture(scope="module")
def legacy_results(oracle: GoRender) -> list[dict[str, str]]:
    return oracle.run(
        [{"mode": "ollama", "template": t, "messages": m} for t in LEGACY_CASES for m in LEGACY_CONVERSATIONS]
    )


@pytest.mark.parametrize("index", range(len(LEGACY_CASES)), ids=[c[:40] for c in LEGACY_CASES])
def test_a_legacy_template_is_cut_after_response_as_ollama_cuts_it(
    index: int, legacy_results: list[dict[str, str]]
) -> None:
    source = LEGACY_CASES[index]
    n = len(LEGACY_CONVERSATIONS)
    for messages, go in zip(LEGACY_CONVERSATIONS, legacy_results[index * n : (index + 1) * n], strict=True):
        python = python_render(lambda m=messages: GoTemplate.parse(source).render([Message.of(x) for x in m]))
        assert same(python, go), f"{source!r} {messages}\npython: {python}\ngo:     {go}"


def test_the_last_legacy_turn_stops_where_the_model_answers() -> None:
    template = GoTemplate.parse(TEMPLATES["legacy-chatml"])
    prompt = template.render([Message("user", "Hi"), Message("assistant", "Hel")])
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHel"


# -- through the engine's template interface --------------------------------------------


def test_template_for_renders_a_go_modelfile_template() -> None:
    template = template_for(
        TEMPLATES["chatml"], SOURCE_MODELFILE, bos_token="<s>", eos_token="</s>", raw=None
    )
    assert template is not None and template.kind == "go"
    assert template.source == TEMPLATES["chatml"]
    prompt = template.render([Message("system", "Be brief."), Message("user", "Hi")])
    assert (
        prompt
        == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_template_for_refuses_a_go_template_it_cannot_render() -> None:
    with pytest.raises(TemplateError, match="define"):
        template_for(
            '{{ define "t" }}{{ end }}{{ .Prompt }}', SOURCE_MODELFILE, bos_token="", eos_token="", raw=None
        )


def test_tool_calls_and_definitions_reach_the_template_as_ollama_passes_them() -> None:
    template = GoTemplate.parse(TEMPLATES["qwen2.5-tools"])
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris <FR>", "days": 2}}}
    prompt = template.render(
        [Message("user", "Weather?"), Message("assistant", "", tool_calls=(call,))], tools=TOOLS[:1]
    )
    assert '{"name": "get_weather", "arguments": {"city":"Paris \\u003cFR\\u003e","days":2}}' in prompt
    # .Function is a plain struct in Ollama's templateTool: Go prints its fields, the properties as JSON
    assert '"function": {get_weather Weather <now> & later {object <nil> <nil> [city] {"city":{' in prompt
    assert prompt.endswith("</tool_call>\n")  # a trailing assistant turn is left open: no <|im_end|>
