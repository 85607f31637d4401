"""A forced tool call: a grammar that makes the reply one call of a request's tools, with valid arguments.

OpenAI's ``tool_choice: "required"`` (some tool) or a named function (that
one) is kept by constraining the reply, where Ollama only ignores it. The
call is written in the model's own format where its template shows one, so
the model writes what it was trained to write, and always in a form that
``engine.runtime.toolcalls`` parses back into a call:

    <tool_call>{"name": ..., "arguments": {...}}</tool_call>     templates that use <tool_call> (Qwen, Hermes)
    [TOOL_CALLS][{"name": ..., "arguments": {...}}]             templates that use [TOOL_CALLS] (Mistral)
    {"name": ..., "parameters": {...}}                          Llama 3.1 and later
    {"name": ..., "arguments": {...}}                           any other template

The arguments follow the tool's ``parameters`` schema (``schema.py``: what
cannot be enforced is an UnsupportedSchema naming the tool); a tool without
parameters takes an object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import InvalidInput, UnsupportedSchema
from engine.structured.gbnf import alt, literal, seq
from engine.structured.keywords import json_text
from engine.structured.overlap import value_kinds
from engine.structured.schema import SchemaGrammar, new_rules

MODES = ("auto", "none", "required")


def call_style(template: str | None) -> str:
    """How the model's template writes a call: "qwen", "mistral", "llama" or "json"."""
    text = template or ""
    if "[TOOL_CALLS]" in text:
        return "mistral"
    if "<tool_call>" in text:
        return "qwen"
    if "<|python_tag|>" in text or ('"parameters"' in text and "<|start_header_id|>" in text):
        return "llama"
    return "json"


def _tool_name(tool: Mapping[str, Any]) -> str | None:
    function = tool.get("function")
    name = (function if isinstance(function, Mapping) else tool).get("name")
    return name if isinstance(name, str) and name else None


def _parameters(tool: Mapping[str, Any]) -> Any:
    function = tool.get("function")
    source = function if isinstance(function, Mapping) else tool
    schema = source.get("parameters", source.get("input_schema"))
    return {"type": "object"} if schema is None or schema == {} else schema


def forced_names(tools: Sequence[Mapping[str, Any]] | None, choice: object) -> list[str] | None:
    """The tools a ``tool_choice`` forces a call of (None: nothing is forced), checked against ``tools``.

    ``choice`` is "auto", "none", "required", or a named tool: OpenAI's
    ``{"type": "function", "function": {"name": ...}}``, or ``{"name": ...}``
    (the Responses and Anthropic APIs' forms).
    """
    if choice is None or choice in ("auto", "none"):
        return None
    names = [n for n in (_tool_name(t) for t in tools or ()) if n is not None]
    if choice == "required":
        if not names:
            raise InvalidInput('tool_choice "required" needs tools to call')
        return list(dict.fromkeys(names))
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = (function if isinstance(function, Mapping) else choice).get("name")
        if isinstance(name, str) and name:
            if name not in names:
                raise InvalidInput(
                    f"tool_choice names {name[:80]!r}, which is not one of the request's tools"
                )
            return [name]
    raise InvalidInput(
        'tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}'
    )


def tool_call_grammar(tools: Sequence[Mapping[str, Any]], names: Sequence[str], template: str | None) -> str:
    """The GBNF of one call of one of ``names`` (tools of ``tools``), in the template's call format."""
    rules = new_rules()
    style = call_style(template)
    key = "parameters" if style == "llama" else "arguments"
    by_name = {_tool_name(t): t for t in tools}
    ws = "ws"
    options = []
    for name in names:
        tool = by_name[name]
        converter = SchemaGrammar(_parameters(tool), rules)
        converter.any_value()  # ws and the generic rules
        if value_kinds(converter.root, converter.resolve) != {"object"}:
            raise UnsupportedSchema(f"tool {name[:80]!r}: its parameters must be an object schema")
        try:
            arguments = converter.expression()
        except UnsupportedSchema as error:
            raise UnsupportedSchema(f"tool {name[:80]!r}'s parameters: {error}") from None
        options.append(
            seq(literal(json_text(name)), ws, '","', ws, literal(f'"{key}"'), ws, '":"', ws, arguments)
        )
    call = seq('"{"', ws, '"\\"name\\""', ws, '":"', ws, alt(*options), ws, '"}"')
    if style == "qwen":
        root = seq('"<tool_call>"', ws, call, ws, '"</tool_call>"')
    elif style == "mistral":
        root = seq('"[TOOL_CALLS]"', '" "?', '"["', ws, call, ws, '"]"')
    else:
        root = call
    return rules.text(root)
