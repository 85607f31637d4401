"""Whether a model thinks, how its reasoning is marked, and what its template is told of ``think``.

Decided from the manifest alone (no load), as Ollama decides its ``thinking``
capability:

* a Go template that prints ``.Thinking`` inside ``range .Messages``: the text
  around it is the pair of tags (Ollama's ``thinking.InferTags``);
* a Jinja template (a GGUF's own) that writes ``<think>`` and ``</think>``, or
  strips earlier reasoning with ``content.split('</think>')``: Qwen3, QwQ,
  DeepSeek-R1 and its distills, Cogito, OLMo 3 Think;
* gpt-oss (architecture ``gpt-oss``, or a template that writes ``<|channel|>``,
  and one with ``<|start|>`` and ``<|end|>``): harmony channels.

``think`` is Ollama's ``ThinkValue``: true/false or "low"/"medium"/"high"/"max".
On a model that thinks, leaving it out means true (Ollama's default); asking a
model that does not think to think is Ollama's 400 (``"NAME" does not support
thinking``). What a template sees (``ThinkSetting``): Go templates ``.Think``,
``.ThinkLevel``, ``.IsThinkSet``; Jinja ones ``enable_thinking`` and
``reasoning_effort``, the names llama.cpp's server and Hugging Face use.

    thinks(manifest)                                   # True for Qwen3
    think_setting(parse_think("high"), thinking_format(manifest), "qwen3")
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidInput, TemplateError
from engine.store.manifest import Manifest
from engine.templates.go.nodes import (
    ActionNode,
    BranchNode,
    CommandNode,
    FieldNode,
    ListNode,
    PipeNode,
    TextNode,
)

__all__ = [
    "LEVELS",
    "Think",
    "ThinkFormat",
    "ThinkSetting",
    "infer_tags",
    "parse_think",
    "think_setting",
    "thinking_format",
    "thinks",
]

LEVELS = ("high", "medium", "low", "max")
Think = bool | str  # True/False or one of LEVELS
HARMONY_ARCHITECTURES = frozenset({"gpt-oss", "gptoss"})


def parse_think(value: object) -> Think | None:
    """A request's ``think`` checked as Ollama's ``ThinkValue`` decodes it (None: not set).

    Raises InvalidInput with Ollama's words::

        parse_think("high")   # "high"
        parse_think("huge")   # InvalidInput: invalid think value: "huge" (must be ...)
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value not in LEVELS:
            shown = value if len(value) <= 40 else value[:40] + "…"
            raise InvalidInput(
                f'invalid think value: "{shown}" (must be "high", "medium", "low", "max", true, or false)'
            )
        return value
    raise InvalidInput('think must be a boolean or string ("high", "medium", "low", "max", true, or false)')


@dataclass(frozen=True)
class ThinkFormat:
    """How a model marks its reasoning: ``kind`` "tags" (between ``opening`` and ``closing``) or "harmony"."""

    kind: str
    opening: str = ""
    closing: str = ""


THINK_TAGS = ThinkFormat("tags", "<think>", "</think>")
HARMONY = ThinkFormat("harmony")


@dataclass(frozen=True)
class ThinkSetting:
    """What a template is told: Ollama's ``Think``, ``ThinkLevel`` and ``IsThinkSet`` values."""

    think: bool = False
    level: str = ""  # "" unless thinking; "medium" for a plain true (Ollama's ThinkValue.String)
    is_set: bool = False

    def go_values(self) -> dict[str, Any]:
        return {"Think": self.think, "ThinkLevel": self.level, "IsThinkSet": self.is_set}

    def jinja_values(self) -> dict[str, Any]:
        """``enable_thinking`` once ``think`` is set; ``reasoning_effort`` when a level was asked for."""
        values: dict[str, Any] = {}
        if self.is_set:
            values["enable_thinking"] = self.think
        if self.think and self.level:
            values["reasoning_effort"] = self.level
        return values


def think_setting(think: Think | None, fmt: ThinkFormat | None, model: str) -> ThinkSetting:
    """``think`` as the template sees it, resolved as Ollama's handlers do.

    On a model that thinks, None means true; on one that does not, any true
    value is InvalidInput (``"MODEL" does not support thinking``). Harmony
    knows no "max": it becomes "high".
    """
    if fmt is None:
        if think:
            raise InvalidInput(f'"{model}" does not support thinking')
        return ThinkSetting(False, "", think is not None)
    if think is None:
        think = True
    if fmt.kind == "harmony" and think == "max":
        think = "high"
    level = think if isinstance(think, str) else ("medium" if think else "")
    return ThinkSetting(bool(think), level, True)


# -- Ollama's InferTags over a Go template's tree --------------------------------------------------


def _uses_field(node: Any, name: str) -> bool:
    """Whether a range's pipeline reads the field ``name`` (``.Messages``)."""
    if isinstance(node, FieldNode):
        return bool(node.idents) and node.idents[0] == name
    if isinstance(node, PipeNode):
        return any(_uses_field(c, name) for c in node.cmds)
    if isinstance(node, CommandNode):
        return any(_uses_field(a, name) for a in node.args)
    return False


def infer_tags(root: ListNode) -> tuple[str, str]:
    """Ollama's ``thinking.InferTags``: the texts around ``.Thinking`` where a template prints it.

    For each ``.Thinking`` inside a ``range`` over ``.Messages``, the nearest
    enclosing list's first and last text nodes, trimmed; the last such place
    wins, as in Ollama. ``("", "")`` when there is none.
    """
    opening, closing = "", ""

    def visit(node: Any, ancestors: list[Any]) -> None:
        nonlocal opening, closing
        ancestors = [*ancestors, node]
        if isinstance(node, FieldNode) and node.idents and node.idents[0] == "Thinking":
            ranges = [a for a in ancestors if isinstance(a, BranchNode) and a.kind == "range"]
            if ranges and _uses_field(ranges[-1].pipe, "Messages"):
                lists = [a for a in ancestors if isinstance(a, ListNode)]
                if lists and lists[-1].nodes:
                    first, last = lists[-1].nodes[0], lists[-1].nodes[-1]
                    if isinstance(first, TextNode):
                        opening = first.text.strip()
                    if isinstance(last, TextNode):
                        closing = last.text.strip()
        if isinstance(node, ListNode):
            children: tuple[Any, ...] = node.nodes
        elif isinstance(node, BranchNode):
            children = (node.pipe, node.list) + ((node.else_list,) if node.else_list is not None else ())
        elif isinstance(node, ActionNode):
            children = (node.pipe,)
        elif isinstance(node, PipeNode):
            children = node.cmds
        elif isinstance(node, CommandNode):
            children = node.args
        else:
            children = ()
        for child in children:
            visit(child, ancestors)

    visit(root, [])
    return opening, closing


# -- the format of a model ------------------------------------------------------------------------


def _jinja_thinks(template: str) -> bool:
    """Ollama's ``chatTemplateHasThinkingSupport`` for a GGUF's Jinja template."""
    if "<think>" in template and "</think>" in template:
        return True
    splits = "content.split('</think>')" in template or 'content.split("</think>")' in template
    return splits and "reasoning_content" not in template and "<SPECIAL_12>" not in template


@functools.lru_cache(maxsize=64)
def thinking_format(template: str | None, architecture: str) -> ThinkFormat | None:
    """How a model with this template and architecture marks its reasoning; None if it does not think."""
    if not template:
        return None
    harmony = architecture in HARMONY_ARCHITECTURES or "<|channel|>" in template  # renamed fine-tunes too
    if harmony and "<|start|>" in template and "<|end|>" in template:
        return HARMONY
    from engine.templates.render import is_go_template

    if is_go_template(template):
        from engine.templates.go.template import GoTemplate

        try:
            tree = GoTemplate.parse(template).tree
        except TemplateError:  # a template llamadeck cannot render thinks nothing here
            return None
        opening, closing = infer_tags(tree)
        return ThinkFormat("tags", opening, closing) if opening and closing else None
    return THINK_TAGS if _jinja_thinks(template) else None


def format_of(manifest: Manifest) -> ThinkFormat | None:
    """``thinking_format`` of a manifest's template and architecture."""
    return thinking_format(manifest.config.template, manifest.architecture)


def thinks(manifest: Manifest) -> bool:
    """Whether the model can think (Ollama's ``thinking`` capability), from its template and architecture::

    thinks(engine.resolve("qwen3:8b"))   # True
    """
    return format_of(manifest) is not None
