"""A ``/v1/responses`` request as the engine's chat: messages, tools, options (OpenAI's Responses API).

Ollama's ``openai/responses.go`` (``FromResponsesRequest``) is the reference:
``instructions`` becomes a system message first; ``input`` is a string (one
user message) or a list of items: messages (``input_text``/``output_text``
parts or a string; ``developer`` is ``system``), ``function_call`` items
(merged into the assistant message before them, as the chat templates want
one assistant turn with its calls), ``function_call_output`` items (tool
results, named after the call they answer) and ``reasoning`` items (their text
kept as the next assistant message's ``thinking``). Function tools are flat
(``{"type": "function", "name", "parameters"}``); a ``namespace`` tool expands
to its members named ``namespace.member``, as Ollama does.

Like Ollama, nothing is stored: ``store`` is accepted and answered ``false``.
Unlike Ollama, what would be silently wrong is a 400 that says why:
``previous_response_id`` and ``conversation`` (a reply without the earlier
turns), ``background``, built-in tools (``web_search``, ``file_search``, ...),
file inputs, and, until the engine has them, structured output
(``text.format`` json_schema/json_object) and a forced ``tool_choice``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.errors import APIError
from api.images import openai_image_part
from api.limits import MAX_TOOLS
from api.openai_reasoning import EFFORTS  # reasoning.effort -> think, as Ollama maps it
from api.openai_request import chat_tools, refuse
from engine import as_template_call

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TEXT_PARTS = {
    "input_text": "text",
    "output_text": "text",
    "refusal": "refusal",
}  # part type -> its text's key


@dataclass(frozen=True)
class Chat:
    """What a Responses request asks of ``Engine.start_chat``, and what its answer echoes back."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None  # in the chat shape, None when no tool may be called
    options: dict[str, Any]
    think: bool | str | None  # reasoning.effort as Ollama's think, None for the model's default
    format: str | dict[str, Any] | None = None  # text.format as the engine's format (a schema or "json")
    tool_choice: str | dict[str, Any] | None = (
        None  # in the chat shape: "required" or a named function forces a call
    )


def chat_of(data: dict[str, Any]) -> Chat:
    """The request ``data`` as a chat; raises APIError 400 for what is wrong or not supported."""
    unsupported(data)
    choice = tool_choice(data.get("tool_choice"))
    forced = choice if choice == "required" or isinstance(choice, dict) else None
    return Chat(
        conversation(data), tools_of(data), options_of(data), think_of(data), engine_format(data), forced
    )


def unsupported(data: dict[str, Any]) -> None:
    """Refuse what llamadeck cannot honour, where Ollama would ignore it and answer wrongly."""
    for name in ("previous_response_id", "conversation"):
        if data.get(name) is not None:
            raise APIError(
                400,
                f"{name} is not supported: llamadeck does not store responses (nor does Ollama); "
                "send the whole conversation in input",
            )
    if data.get("background") not in (None, False):
        raise refuse("background responses")
    for name in ("store", "stream", "parallel_tool_calls"):
        if data.get(name) is not None and not isinstance(data[name], bool):
            raise APIError(400, f"{name} must be true or false")
    if data.get("truncation") not in (None, "auto", "disabled"):
        raise APIError(400, "truncation must be auto or disabled")
    if data.get("top_logprobs") not in (None, 0):
        raise refuse("top_logprobs")
    text_format(data)


def engine_format(data: dict[str, Any]) -> str | dict[str, Any] | None:
    """``text.format`` as the engine's ``format``: ``json_schema``'s schema, ``"json"``, or None (text)."""
    form = text_format(data)
    if form["type"] == "json_object":
        return "json"
    if form["type"] == "json_schema":
        schema = form.get("schema")
        if schema is None:
            return "json"  # no schema: any JSON object, as Ollama does
        if not isinstance(schema, dict):
            raise APIError(400, "text.format.schema must be a JSON schema object")
        return schema
    return None


def text_format(data: dict[str, Any]) -> dict[str, Any]:
    """``text.format`` as given (echoed in the response): text, ``json_schema`` or ``json_object``."""
    text = data.get("text")
    if text is None:
        return {"type": "text"}
    if not isinstance(text, dict):
        raise APIError(400, "text must be an object such as {format: {type: text}}")
    form = text.get("format")
    if form is None:
        return {"type": "text"}
    if not isinstance(form, dict) or not isinstance(form.get("type"), str):
        raise APIError(400, "text.format must be an object with a type")
    if form["type"] in ("json_schema", "json_object"):
        return dict(form)
    if form["type"] != "text":
        raise APIError(
            400, f"text.format.type must be text, json_schema or json_object, not {form['type']!r:.40}"
        )
    return {"type": "text"}


def think_of(data: dict[str, Any]) -> bool | str | None:
    """``reasoning.effort`` as Ollama's ``think``; None when absent (the model's default)."""
    reasoning = data.get("reasoning")
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise APIError(400, "reasoning must be an object such as {effort: medium}")
    for name in ("summary", "generate_summary"):
        if reasoning.get(name) is not None and not isinstance(reasoning[name], str):
            raise APIError(400, f"reasoning.{name} must be a string")
    effort = reasoning.get("effort")
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in EFFORTS:
        raise APIError(400, f"reasoning.effort must be one of {', '.join(EFFORTS)}")
    return EFFORTS[effort]


def options_of(data: dict[str, Any]) -> dict[str, Any]:
    """``temperature``, ``top_p`` and ``max_output_tokens`` as engine options (which checks the values)."""
    options = {name: data[name] for name in ("temperature", "top_p") if data.get(name) is not None}
    limit = data.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise APIError(400, "max_output_tokens must be a whole number ≥ 1")
        options["num_predict"] = limit
    return options


# input -----------------------------------------------------------------------------


def conversation(data: dict[str, Any]) -> list[dict[str, Any]]:
    """``instructions`` and ``input`` as chat messages."""
    messages: list[dict[str, Any]] = []
    instructions = data.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise APIError(400, "instructions must be a string")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    raw = data.get("input")
    if isinstance(raw, str):
        if raw:
            messages.append({"role": "user", "content": raw})
    elif isinstance(raw, list):
        messages += input_items(raw)
    else:
        raise APIError(400, "input must be a string or a list of items")
    if not any(m["role"] != "system" for m in messages):
        raise APIError(400, "input must hold at least one message")
    return messages


def input_items(items: list[Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    called: dict[str, str] = {}  # call_id -> the function's name, for the outputs that answer it
    last_calls: set[str] = set()  # the call ids of the last message, when it is an assistant's with calls
    thinking = ""
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise APIError(400, f"{where} must be an object")
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"  # the shorthand {role, content}
        if kind == "message":
            message = input_message(item, where)
            if message["role"] == "assistant" and thinking:
                message["thinking"], thinking = thinking, ""
            following = items[i + 1] if i + 1 < len(items) else None
            if message["role"] == "assistant" and answers(following, last_calls):
                # a message replayed between a call and its output joins the call's turn
                joined = messages[-1]
                joined["content"] = "\n".join(t for t in (joined["content"], message["content"]) if t)
                if message.get("thinking"):
                    joined["thinking"] = message["thinking"]
                continue
            messages.append(message)
            last_calls = set()
        elif kind == "function_call":
            call_id, call = function_call(item, where)
            if not messages or messages[-1]["role"] != "assistant":
                messages.append({"role": "assistant", "content": ""})
                last_calls = set()
            messages[-1].setdefault("tool_calls", []).append(call)
            if thinking:
                messages[-1]["thinking"], thinking = thinking, ""
            called[call_id] = call["function"]["name"]
            last_calls.add(call_id)
        elif kind == "function_call_output":
            call_id = string(item, "call_id", where)
            result = {"role": "tool", "content": content_text(item.get("output"), f"{where}.output")}
            if call_id in called:
                result["tool_name"] = called[call_id]
            messages.append(result)
            last_calls = set()
        elif kind == "reasoning":
            thinking = reasoning_text(item, where)
        elif isinstance(kind, str):
            raise APIError(400, f"{where}: input items of type {kind!r:.60} are not supported by llamadeck")
        else:
            raise APIError(400, f"{where} must have a type (message, function_call, function_call_output)")
    return messages  # reasoning with no turn after it is dropped: an empty assistant turn would be continued


def answers(item: object, calls: set[str]) -> bool:
    """Whether ``item`` is the output of one of ``calls``."""
    return (
        isinstance(item, dict) and item.get("type") == "function_call_output" and item.get("call_id") in calls
    )


def input_message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise APIError(400, f"{where}.role must be one of {', '.join(ROLES)}")
    message: dict[str, Any] = {
        "role": ROLES[role],
        "content": content_text(item.get("content"), f"{where}.content"),
    }
    content = item.get("content")
    if isinstance(content, list):
        images = [
            openai_image_part(part, f"{where}.content[{k}]")
            for k, part in enumerate(content)
            if isinstance(part, dict) and part.get("type") == "input_image"
        ]
        if images:
            message["images"] = images
    return message


def content_text(content: object, where: str) -> str:
    """A message's content or a call's output: a string, or a list of text parts (joined, as Ollama does)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise APIError(400, f"{where} must be a string or a list of content parts")
    texts = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "input_image":
            continue  # read by input_message
        if kind == "input_file":
            raise refuse(f"{where}[{k}]: file inputs")
        if not isinstance(part, dict) or kind not in TEXT_PARTS:
            raise APIError(400, f"{where}[{k}] must be a part of type input_text or output_text")
        text = part.get(TEXT_PARTS[kind])
        if not isinstance(text, str):
            raise APIError(400, f"{where}[{k}].{TEXT_PARTS[kind]} must be a string")
        texts.append(text)
    return "".join(texts)


def function_call(item: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """A ``function_call`` item's id and the call in the shape templates take (arguments an object)."""
    call_id = string(item, "call_id", where)
    name = string(item, "name", where)
    arguments = item.get("arguments")
    if arguments is not None and not isinstance(arguments, str | dict):
        raise APIError(400, f"{where}.arguments must be a JSON string")
    call = as_template_call({"function": {"name": name, "arguments": arguments or {}}})
    assert isinstance(call, dict)
    return call_id, call


def reasoning_text(item: dict[str, Any], where: str) -> str:
    """A reasoning item's text: its ``encrypted_content`` (Ollama's is plain text), else its summary."""
    content = item.get("encrypted_content")
    if isinstance(content, str) and content:
        return content
    summary = item.get("summary") or []
    if not isinstance(summary, list):
        raise APIError(400, f"{where}.summary must be a list of summary_text parts")
    texts = [part.get("text") for part in summary if isinstance(part, dict)]
    return "\n".join(t for t in texts if isinstance(t, str))


def string(item: Mapping[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise APIError(400, f"{where}.{name} must be a non-empty string")
    return value


# tools -----------------------------------------------------------------------------


def tools_of(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The request's function tools in the chat shape, or None (none given, or ``tool_choice: none``)."""
    raw = data.get("tools")
    if raw is not None and not isinstance(raw, list):
        raise APIError(400, "tools must be a list of tools")
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(raw or []):
        tools += function_tools(tool, f"tools[{i}]", "")
        if len(tools) > MAX_TOOLS:
            raise APIError(
                400, f"tools hold more than {MAX_TOOLS} functions: at most {MAX_TOOLS} in one request"
            )
    return chat_tools({"tools": tools, "tool_choice": tool_choice(data.get("tool_choice"))})


def function_tools(tool: object, where: str, prefix: str) -> list[dict[str, Any]]:
    """A Responses tool as chat tools: a function is one, a namespace its members (names prefixed)."""
    if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
        raise APIError(400, f"{where} must be an object with a type")
    kind = tool["type"]
    if kind == "namespace":
        name = tool.get("name")
        members = tool.get("tools")
        if not isinstance(name, str) or not isinstance(members, list):
            raise APIError(400, f"{where}: a namespace needs a name and a list of tools")
        return [
            t
            for k, m in enumerate(members)
            for t in function_tools(m, f"{where}.tools[{k}]", f"{prefix}{name}.")
        ]
    if kind != "function":
        raise APIError(
            400, f"{where}: tools of type {kind!r:.40} are not supported by llamadeck (function tools are)"
        )
    name = string(tool, "name", where)
    description = tool.get("description")
    parameters = tool.get("parameters")
    if description is not None and not isinstance(description, str):
        raise APIError(400, f"{where}.description must be a string")
    if parameters is not None and not isinstance(parameters, dict):
        raise APIError(400, f"{where}.parameters must be a JSON schema object")
    function: dict[str, Any] = {"name": prefix + name, "parameters": parameters or {"type": "object"}}
    if description:
        function["description"] = description
    return [{"type": "function", "function": function}]


def tool_choice(choice: object) -> object:
    """A Responses ``tool_choice`` in the chat shape (``{type: function, name}`` nests its name)."""
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice
