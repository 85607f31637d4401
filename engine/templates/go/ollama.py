"""The data Ollama's ``Template.Execute`` passes: ``api.Message`` and ``api.Tool`` as template.go's types.

A template sees Ollama's ``templateMessage``, ``templateTool`` and
``api.ToolProperty`` values, not the request's JSON: they print, compare and
serialise as those Go types do. :func:`collate` merges the conversation as
Ollama's does before it is passed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from engine.errors import TemplateError
from engine.templates.go.values import NIL_POINTER, GoMap, GoSlice, GoStruct, OrderedProperties, PropertyType
from engine.templates.message import Message


def _go_any(v: Any, where: str) -> Any:
    """A JSON value as Go decodes it into ``any``: numbers float64, objects map[string]any."""
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, Mapping):
        return {str(k): _go_any(x, where) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_go_any(x, where) for x in v]
    raise TemplateError(f"{where} holds a {type(v).__name__}, which is not JSON")


def _get_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    v = obj.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise TemplateError(f"{where}.{key} must be a string")
    return v


def _get_strs(obj: Mapping[str, Any], key: str, where: str) -> GoSlice:
    v = obj.get(key)
    if v is None:
        return GoSlice(type_name="[]string", nil=True)
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
        raise TemplateError(f"{where}.{key} must be a list of strings")
    return GoSlice(v, type_name="[]string")


def _get_obj(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    v = obj.get(key)
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise TemplateError(f"{where}.{key} must be an object")
    return v


_PROPERTY_TAGS = {
    "AnyOf": ("anyOf", True),
    "Type": ("type", True),
    "Items": ("items", True),
    "Description": ("description", True),
    "Enum": ("enum", True),
    "Properties": ("properties", True),
    "Required": ("required", True),
}


def _zero_property() -> GoStruct:
    return _property({}, "property")


def _property(raw: Any, where: str) -> GoStruct:
    """``api.ToolProperty`` from its JSON shape."""
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where} must be an object")
    any_of = raw.get("anyOf")
    if any_of is not None and not isinstance(any_of, list | tuple):
        raise TemplateError(f"{where}.anyOf must be a list")
    typ = raw.get("type")
    if typ is None:
        ptype = PropertyType(nil=True)
    elif isinstance(typ, str):
        ptype = PropertyType([typ])
    elif isinstance(typ, list | tuple) and all(isinstance(t, str) for t in typ):
        ptype = PropertyType(typ)
    else:
        raise TemplateError(f"{where}.type must be a string or a list of strings")
    enum = raw.get("enum")
    if enum is not None and not isinstance(enum, list | tuple):
        raise TemplateError(f"{where}.enum must be a list")
    nested = raw.get("properties")
    if nested is not None and not isinstance(nested, Mapping):
        raise TemplateError(f"{where}.properties must be an object")
    return GoStruct(
        "api.ToolProperty",
        {
            "AnyOf": GoSlice(
                [_property(p, f"{where}.anyOf[{i}]") for i, p in enumerate(any_of or ())],
                type_name="[]api.ToolProperty",
                nil=any_of is None,
            ),
            "Type": ptype,
            "Items": _go_any(raw.get("items"), f"{where}.items"),
            "Description": _get_str(raw, "description", where),
            "Enum": GoSlice(
                _go_any(list(enum or ()), f"{where}.enum"), type_name="[]interface {}", nil=enum is None
            ),
            "Properties": NIL_POINTER
            if nested is None
            else OrderedProperties(
                {str(k): _property(p, f"{where}.properties.{k}") for k, p in nested.items()}
            ),
            "Required": _get_strs(raw, "required", where),
        },
        _PROPERTY_TAGS,
        methods=frozenset({"ToTypeScriptType"}),
    )


def template_tools(tools: Sequence[Mapping[str, Any]] | None) -> GoSlice:
    """``convertToolsForTemplate``: OpenAI-style function schemas as Ollama's ``templateTools``."""
    if tools is None:
        return GoSlice(type_name="template.templateTools", nil=True, stringer=True)
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise TemplateError(f"{where} must be an object")
        fn = _get_obj(tool, "function", where)
        params = _get_obj(fn, "parameters", f"{where}.function")
        pwhere = f"{where}.function.parameters"
        props = params.get("properties")
        if props is not None and not isinstance(props, Mapping):
            raise TemplateError(f"{pwhere}.properties must be an object")
        parameters = GoStruct(
            "template.templateToolFunctionParameters",
            {
                "Type": _get_str(params, "type", pwhere),
                "Defs": _go_any(params.get("$defs"), pwhere),
                "Items": _go_any(params.get("items"), pwhere),
                "Required": _get_strs(params, "required", pwhere),
                "Properties": GoMap(
                    None
                    if props is None
                    else {str(k): _property(p, f"{pwhere}.properties.{k}") for k, p in props.items()},
                    type_name="template.templateProperties",
                    zero=_zero_property,
                    stringer=True,
                ),
            },
            {
                "Type": ("type", False),
                "Defs": ("$defs", True),
                "Items": ("items", True),
                "Required": ("required", True),
                "Properties": ("properties", False),
            },
        )
        function = GoStruct(
            "template.templateToolFunction",
            {
                "Name": _get_str(fn, "name", f"{where}.function"),
                "Description": _get_str(fn, "description", f"{where}.function"),
                "Parameters": parameters,
            },
            {
                "Name": ("name", False),
                "Description": ("description", False),
                "Parameters": ("parameters", False),
            },
        )
        out.append(
            GoStruct(
                "template.templateTool",
                {
                    "Type": _get_str(tool, "type", where),
                    "Items": _go_any(tool.get("items"), where),
                    "Function": function,
                },
                {"Type": ("type", False), "Items": ("items", True), "Function": ("function", False)},
                stringer=True,
            )
        )
    return GoSlice(out, type_name="template.templateTools", stringer=True)


def _arguments(raw: Any, where: str) -> GoMap:
    if isinstance(raw, str):  # OpenAI clients send the arguments as a JSON string
        try:
            raw = json.loads(raw)
        except ValueError:
            raise TemplateError(f"{where} must be a JSON object") from None
    if raw is not None and not isinstance(raw, Mapping):
        raise TemplateError(f"{where} must be an object")
    items = None if raw is None else {str(k): _go_any(v, where) for k, v in raw.items()}
    return GoMap(items, type_name="template.templateArgs", stringer=True)


def _tool_call(raw: Mapping[str, Any], where: str) -> GoStruct:
    fn = _get_obj(raw, "function", where)
    index = fn.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int):
        raise TemplateError(f"{where}.function.index must be an integer")
    return GoStruct(
        "template.templateToolCall",
        {
            "ID": _get_str(raw, "id", where),
            "Function": GoStruct(
                "template.templateToolCallFunction",
                {
                    "Index": index,
                    "Name": _get_str(fn, "name", f"{where}.function"),
                    "Arguments": _arguments(fn.get("arguments"), f"{where}.function.arguments"),
                },
            ),
        },
    )


def template_message(m: Message, where: str) -> GoStruct:
    """``convertMessagesForTemplate`` for one (collated) message: a ``*templateMessage``."""
    return GoStruct(
        "*template.templateMessage",
        {
            "Role": m.role,
            "Content": m.content,
            "Thinking": m.thinking,
            "Images": GoSlice(m.images, type_name="[]api.ImageData", nil=True),
            "ToolCalls": GoSlice(
                [_tool_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(m.tool_calls)],
                type_name="[]template.templateToolCall",
                nil=True,
            ),
            "ToolName": m.tool_name or "",
            "ToolCallID": "",
        },
        pointer=True,
    )


def collate(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    """Ollama's collate: every system message joined, consecutive turns of one role merged.

    Tool results stay apart; a merged turn keeps its first message's images,
    tool calls and tool name, as Ollama's does.
    """
    system: list[str] = []
    collated: list[Message] = []
    for m in messages:
        if m.role == "system":
            system.append(m.content)
        if collated and collated[-1].role == m.role and m.role != "tool":
            collated[-1] = replace(collated[-1], content=collated[-1].content + "\n\n" + m.content)
        else:
            collated.append(m)
    return "\n\n".join(system), collated
