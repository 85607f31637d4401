"""Thinking, piece by piece: the splitters (``engine.runtime.thinking``) and what decides a model thinks
(``engine.templates.thinking``), with cases taken from Ollama's own tests (``thinking/*_test.go``).

End to end through the API: ``test_api_think.py``.
"""

from __future__ import annotations

import pytest

from engine.errors import InvalidInput
from engine.runtime.thinking import HarmonySplitter, Splitter, TagSplitter
from engine.templates.go.template import GoTemplate
from engine.templates.message import Message
from engine.templates.render import JinjaTemplate
from engine.templates.thinking import (
    HARMONY,
    THINK_TAGS,
    ThinkFormat,
    ThinkSetting,
    infer_tags,
    parse_think,
    think_setting,
    thinking_format,
)
from tests.support.said_gguf import GO_THINK_TEMPLATE, HARMONY_TEMPLATE, R1_TEMPLATE, THINK_TEMPLATE


def run(splitter: Splitter, pieces: list[str]) -> tuple[str, str]:
    thinking, content = zip(*[splitter.feed(p) for p in pieces], splitter.finish(), strict=False)
    return "".join(thinking), "".join(content)


def tags(started: bool = False) -> TagSplitter:
    return TagSplitter("<think>", "</think>", started=started)


# the tag splitter: Ollama's thinking.Parser --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "thinking", "content"),
    [
        ("<think> internal </think> world", "internal ", "world"),
        ("<think>a</think><think>b</think>c", "a", "<think>b</think>c"),
        ("no think", "", "no think"),
        ("  abc <think>def</think> ghi", "", "  abc <think>def</think> ghi"),  # text first: no reasoning
        ("\n<think>\nHmm.\n</think>\n\nParis.", "Hmm.\n", "Paris."),
        ("<think>unfinished", "unfinished", ""),  # cut off (length): what came is reasoning
        ("<thi", "", "<thi"),  # a reply that only looked like a tag
    ],
)
def test_the_tags_split_a_reply_however_it_is_cut(text: str, thinking: str, content: str) -> None:
    assert run(tags(), [text]) == (thinking, content)
    for cut in range(1, len(text)):
        assert run(tags(), [text[:cut], text[cut:]]) == (thinking, content), cut
    assert run(tags(), list(text)) == (thinking, content)


def test_a_closing_tag_is_held_back_until_it_is_one() -> None:
    splitter = tags()
    assert splitter.feed("<think>abc</th") == ("abc", "")
    assert splitter.feed("ing>def") == ("</thing>def", "")  # a fake-out: it was reasoning
    assert splitter.feed("ghi</thi") == ("ghi", "")
    assert splitter.feed("nk>jkl") == ("", "jkl")
    assert splitter.finish() == ("", "")


def test_a_prompt_that_opened_the_reasoning_starts_inside_it() -> None:
    assert run(tags(started=True), ["\nThe user", " asks.</think>\n\nParis."]) == ("The user asks.", "Paris.")
    assert run(tags(started=True), ["Straight", " away"]) == ("Straight away", "")


# the harmony splitter -------------------------------------------------------------------------

HARMONY_REPLY = (
    "<|channel|>analysis<|message|>User asks the capital.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>Paris."
)


def test_harmony_channels_split_however_the_reply_is_cut() -> None:
    want = ("User asks the capital.", "Paris.")
    assert run(HarmonySplitter(), [HARMONY_REPLY]) == want
    for cut in range(1, len(HARMONY_REPLY)):
        assert run(HarmonySplitter(), [HARMONY_REPLY[:cut], HARMONY_REPLY[cut:]]) == want, cut


def test_a_harmony_tool_call_becomes_a_tool_call_the_parser_reads() -> None:
    reply = (
        "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant"
        '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}'
    )
    thinking, content = run(HarmonySplitter(), [reply])
    assert thinking == "Need the weather."
    assert content == '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    from engine.runtime.toolcalls import parse_tool_calls

    text, calls = parse_tool_calls(["get_weather"], content)
    assert text == "" and [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Paris"})]


def test_commentary_to_nobody_is_answer_and_a_header_that_never_ends_is_shown() -> None:
    assert run(HarmonySplitter(), ["<|channel|>commentary<|message|>Working on it."]) == (
        "",
        "Working on it.",
    )
    thinking, content = run(HarmonySplitter(), ["x" * 5000])
    assert thinking == "" and content.endswith("x" * 5000)


# which models think ---------------------------------------------------------------------------

QWEN3_GO = """
{{- if or .System .Tools .Thinking }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Thinking }}
/think
{{- else }}
/no_think
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if and $last .Thinking }}
<think>{{ .Thinking }}</think>
{{ end }}
{{ if .Content }}{{ .Content }}{{ end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
"""


@pytest.mark.parametrize(
    ("template", "want"),
    [
        (QWEN3_GO, ("<think>", "</think>")),
        (GO_THINK_TEMPLATE, ("<think>", "</think>")),
        (  # Ollama's "whitespace is trimmed"
            "{{- range $i, $_ := .Messages }}{{ if .Thinking }}\n  Some text before   {{ .Thinking }}"
            "    Some text after\n{{ end }}{{ end }}",
            ("Some text before", "Some text after"),
        ),
        (  # Ollama's "doubly nested range": the nearest range is not over .Messages
            "{{- range $i, $_ := .Messages }}{{ range $j, $_ := .NotMessages }}{{ if .Thinking }}"
            "<think>{{ .Thinking }}</think>{{ end }}{{ end }}{{ end }}",
            ("", ""),
        ),
        ("{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}", ("", "")),  # outside any range
    ],
)
def test_tags_are_inferred_from_a_go_template_as_ollama_does(template: str, want: tuple[str, str]) -> None:
    assert infer_tags(GoTemplate.parse(template).tree) == want


@pytest.mark.parametrize(
    ("template", "architecture", "want"),
    [
        (THINK_TEMPLATE, "qwen3", THINK_TAGS),
        (R1_TEMPLATE, "qwen2", THINK_TAGS),  # strips earlier reasoning with split('</think>')
        (GO_THINK_TEMPLATE, "llama", ThinkFormat("tags", "<think>", "</think>")),
        (HARMONY_TEMPLATE, "llama", HARMONY),
        ("{{ .Prompt }}<|start|><|end|>", "gpt-oss", HARMONY),
        (
            "{% for m in messages %}{{ m.content.split('</think>')[-1] }}{{ reasoning_content }}{% endfor %}",
            "x",
            None,
        ),
        ("{{ range .Messages }}{{ .Content }}{{ end }}", "llama", None),
        ("{{ range .Messages }", "llama", None),  # a template llamadeck cannot parse thinks nothing
        (None, "qwen3", None),
    ],
)
def test_which_templates_think(template: str | None, architecture: str, want: ThinkFormat | None) -> None:
    assert thinking_format(template, architecture) == want


# think values and what templates are told -----------------------------------------------------


def test_think_values_are_read_as_ollamas_think_value() -> None:
    assert [parse_think(v) for v in (None, True, False, "low", "medium", "high", "max")] == [
        None, True, False, "low", "medium", "high", "max",
    ]  # fmt: skip
    with pytest.raises(InvalidInput, match=r'invalid think value: "huge" \(must be "high", "medium"'):
        parse_think("huge")
    with pytest.raises(InvalidInput, match="think must be a boolean or string"):
        parse_think(1)


@pytest.mark.parametrize(
    ("think", "fmt", "want"),
    [
        (None, THINK_TAGS, ThinkSetting(True, "medium", True)),  # thinking models think unless told not to
        (False, THINK_TAGS, ThinkSetting(False, "", True)),
        ("low", THINK_TAGS, ThinkSetting(True, "low", True)),
        ("max", THINK_TAGS, ThinkSetting(True, "max", True)),
        ("max", HARMONY, ThinkSetting(True, "high", True)),  # harmony knows no max
        (None, None, ThinkSetting(False, "", False)),
        (False, None, ThinkSetting(False, "", True)),
    ],
)
def test_what_a_template_is_told(
    think: bool | str | None, fmt: ThinkFormat | None, want: ThinkSetting
) -> None:
    assert think_setting(think, fmt, "m") == want


@pytest.mark.parametrize("think", [True, "low", "max"])
def test_asking_a_model_that_cannot_think_to_think_is_refused(think: bool | str) -> None:
    with pytest.raises(InvalidInput, match='^"gemma3:270m" does not support thinking$'):
        think_setting(think, None, "gemma3:270m")


def test_templates_see_think_and_the_reasoning_of_earlier_turns() -> None:
    turns = [
        Message("user", "Capital?"),
        Message("assistant", "Paris.", thinking="France's capital."),
        Message("user", "Sure?"),
    ]
    go = GoTemplate.parse(GO_THINK_TEMPLATE)
    assert "<think>France's capital.</think>Paris." in go.render(turns)
    assert go.render(turns, think=ThinkSetting(False, "", True)).endswith("assistant<think></think>\n")
    assert not go.render(turns, think=ThinkSetting(True, "high", True)).endswith("<think></think>\n")
    jinja = JinjaTemplate(THINK_TEMPLATE, "<s>", "</s>")
    assert "<think>France's capital.</think>\n\nParis." in jinja.render(turns)
    assert jinja.render(turns, think=ThinkSetting(False, "", True)).endswith("<think>\n\n</think>\n\n")
    effort = JinjaTemplate(HARMONY_TEMPLATE, "<s>", "</s>")
    assert "Reasoning: low" in effort.render(turns, think=ThinkSetting(True, "low", True))
    assert "Reasoning: medium" in effort.render(turns, think=ThinkSetting(True, "medium", True))
