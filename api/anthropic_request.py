"""An Anthropic Messages request (``POST /v1/messages``) read into what ``Engine.start_chat`` takes.

As Ollama's ``anthropic.FromMessagesRequest`` converts it: ``system`` (a
string or a list of text blocks) becomes the first message; each message's
content (a string or a list of blocks) becomes one chat message, its
``tool_use`` blocks the assistant's ``tool_calls``, and its ``tool_result``
blocks ``"tool"`` messages, placed before the user's text as Ollama places
them; ``tools`` (``name``, ``description``, ``input_schema``) become the
function tools chat templates render; ``max_tokens`` (required, as Anthropic
has it), ``temperature``, ``top_p``, ``top_k`` and ``stop_sequences`` become
the engine's options. ``metadata`` is ignored, as Ollama ignores it; so is
``tool_choice`` but ``"none"`` (which offers no tools).

Thinking as Ollama reads it (``think_of``): ``thinking`` ``{"type":
"disabled"}`` is ``think=False``, ``"enabled"`` is ``think=True``, and
``"adaptive"`` (or none) leaves it to the model, which thinks if it can;
``output_config.effort`` (``xhigh`` is ``high``, as Ollama has it) is the
level, also with ``"enabled"`` (where Ollama drops it). ``budget_tokens`` is
checked and not enforced, as in Ollama. An assistant message's ``thinking``
blocks are its ``thinking`` (several joined by newlines; Ollama keeps the
last); ``redacted_thinking`` holds nothing a template could show and is
dropped. Whether the model can think at all is the route's to settle
(``api.anthropic``: it relaxes, as Ollama does).

Stricter than Ollama where it would guess: a field of the wrong type, a
block type llamadeck does not read (documents, images inside tool results,
server tools such as web search; image blocks are read, base64 only) or an unknown ``thinking.type`` or effort
is a 400 that names it, never silently dropped. Text blocks of one message
are joined with a newline (Ollama glues them together).

    chat = read_messages_request(data)   # APIError 400 for what cannot be served
    engine.start_chat(chat.model, chat.messages, options=chat.options, tools=chat.tools, think=chat.think)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.errors import APIError
from api.images import anthropic_image

ROLES = ("user", "assistant")
TOOL_CHOICES = ("auto", "any", "tool", "none")
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "max"}  # Ollama's map
THINKING_TYPES = ("enabled", "adaptive", "disabled", "between_tools")
DISPLAYS = ("summarized", "omitted")
_IMAGES = ("image", "document")  # image blocks are read from messages; documents and tool-result images not


@dataclass(frozen=True)
class MessagesRequest:
    """What one ``/v1/messages`` request asks, in the engine's terms."""

    model: str
    messages: list[dict[str, Any]]  # Ollama's message shape: role, content, tool_calls, tool_name
    options: dict[str, Any]  # Ollama's option names, validated by the engine
    tools: list[dict[str, Any]] | None  # function tools, None when none are offered
    stream: bool
    think: bool | str | None = None  # Ollama's think: None leaves it to the model
    omit_thinking: bool = False  # thinking.display "omitted": thinking blocks come back empty
    format: str | dict[str, Any] | None = None  # output_config.format's schema: the reply follows it
    tool_choice: str | dict[str, Any] | None = None  # "any" or a named tool as the engine's forced choice


def refuse(what: str) -> APIError:
    return APIError(400, f"{what} is not supported yet by llamadeck")


def read_messages_request(data: dict[str, Any]) -> MessagesRequest:
    """The request ``data`` (parsed JSON) in the engine's terms; APIError 400 for anything it cannot serve."""
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise APIError(400, "model is required: a model's name")
    kind, omit = thinking_config(data.get("thinking"))
    think = think_of(kind, effort_of(data.get("output_config")))
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise APIError(400, "stream must be true or false")
    messages = system_messages(data.get("system"))
    messages += chat_messages(data.get("messages"))
    tools = chat_tools(data)
    return MessagesRequest(
        model,
        messages,
        options(data),
        tools,
        bool(stream),
        think,
        omit,
        format_of(data.get("output_config")),
        forced_choice(data.get("tool_choice")) if tools else None,
    )


def format_of(config: object) -> str | dict[str, Any] | None:
    """``output_config.format`` (``{"type": "json_schema", "schema": ...}``) as the engine's format."""
    if not isinstance(config, dict) or config.get("format") is None:
        return None
    form = config["format"]
    if not isinstance(form, dict) or form.get("type") != "json_schema":
        raise APIError(400, 'output_config.format must be {"type": "json_schema", "schema": {...}}')
    schema = form.get("schema")
    if schema is None:
        return "json"
    if not isinstance(schema, dict):
        raise APIError(400, "output_config.format.schema must be a JSON schema object")
    return schema


def forced_choice(choice: object) -> str | dict[str, Any] | None:
    """``tool_choice`` ``any`` or ``{"type": "tool", "name"}`` as the engine's forced choice (checked
    by ``chat_tools``): the reply is then a call, as Anthropic's API promises; ``auto`` is None."""
    if isinstance(choice, dict) and choice.get("type") == "any":
        return "required"
    if isinstance(choice, dict) and choice.get("type") == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return None


def thinking_config(thinking: object) -> tuple[str | None, bool]:
    """``thinking``'s type (None when absent) and whether its ``display`` is ``"omitted"``."""
    if thinking is None:
        return None, False
    if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
        raise APIError(400, 'thinking must be an object such as {"type": "enabled", "budget_tokens": 2048}')
    kind = thinking["type"]
    if kind not in THINKING_TYPES:
        raise APIError(400, f"thinking.type must be one of {', '.join(THINKING_TYPES)}, not {kind!r:.40}")
    budget = thinking.get("budget_tokens")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 0):
        raise APIError(400, "thinking.budget_tokens must be a whole number of tokens")
    display = thinking.get("display")
    if display is not None and display not in DISPLAYS:
        raise APIError(400, f"thinking.display must be {' or '.join(DISPLAYS)}")
    return kind, display == "omitted"


def effort_of(config: object) -> str | None:
    """``output_config.effort`` as Ollama's think level (None when absent)."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise APIError(400, "output_config must be an object")
    effort = config.get("effort")
    if effort is None:
        return None
    if not isinstance(effort, str):
        raise APIError(400, "output_config.effort must be a string")
    normal = effort.strip().lower()
    if not normal:
        return None
    if normal not in EFFORTS:
        raise APIError(400, f"output_config.effort must be one of {', '.join(EFFORTS)}, not {effort!r:.40}")
    return EFFORTS[normal]


def think_of(kind: str | None, effort: str | None) -> bool | str | None:
    """Ollama's ``think`` from ``thinking.type`` and the effort; None leaves it to the model.

    ``disabled`` (and ``between_tools``, thinking off between tool calls) is
    False whatever the effort; ``enabled`` is the effort, or True; ``adaptive``
    or no ``thinking`` is the effort, or None.
    """
    if kind in ("disabled", "between_tools"):
        return False
    if kind == "enabled":
        return effort or True
    return effort


# messages ---------------------------------------------------------------------------


def system_messages(system: object) -> list[dict[str, Any]]:
    """``system`` as the first message: a string, or a list of text blocks (joined by newlines)."""
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise APIError(400, "system must be a string or a list of text blocks")
    texts = []
    for i, block in enumerate(system):
        where = f"system[{i}]"
        if block_type(block, where) != "text":
            raise APIError(400, f"{where} must be a text block, not {block['type']!r:.40}")
        texts.append(text_field(block, where))
    return [{"role": "system", "content": "\n".join(texts)}] if texts else []


def chat_messages(raw: object) -> list[dict[str, Any]]:
    """Anthropic's messages in Ollama's shape; tool results name their tool from the call that asked."""
    if not isinstance(raw, list) or not raw:
        raise APIError(400, "messages must be a non-empty list of {role, content}")
    converted: list[dict[str, Any]] = []
    called: dict[str, str] = {}  # tool_use id -> the tool's name
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise APIError(400, f"{where} must be an object with a role and a content")
        role = message.get("role")
        if role not in ROLES:
            if role == "system":
                raise APIError(400, f"{where}.role: a system prompt goes in the top-level system field")
            raise APIError(400, f'{where}.role must be "user" or "assistant", not {role!r:.40}')
        content = message.get("content")
        if isinstance(content, str):
            converted.append({"role": role, "content": content})
        elif isinstance(content, list):
            converted += message_blocks(role, content, where, called)
        else:
            raise APIError(400, f"{where}.content must be a string or a list of content blocks")
    if not converted:
        raise APIError(400, "messages hold no text, tool call or tool result")
    return converted


def message_blocks(role: str, blocks: list[Any], where: str, called: dict[str, str]) -> list[dict[str, Any]]:
    """A message's blocks: its tool results as ``"tool"`` messages first (as Ollama), then text and calls."""
    texts: list[str] = []
    images: list[bytes] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        here = f"{where}.content[{j}]"
        kind = block_type(block, here)
        if kind == "text":
            texts.append(text_field(block, here))
        elif kind == "tool_use":
            if role != "assistant":
                raise APIError(400, f"{here}: tool_use blocks belong to assistant messages")
            call = tool_use(block, here)
            called[call["id"]] = call["function"]["name"]
            calls.append(call)
        elif kind == "tool_result":
            if role != "user":
                raise APIError(400, f"{here}: tool_result blocks belong to user messages")
            results.append(tool_result(block, here, called))
        elif kind == "thinking":
            if role != "assistant":
                raise APIError(400, f"{here}: thinking blocks belong to assistant messages")
            thinking = block.get("thinking", "")
            if not isinstance(thinking, str):
                raise APIError(400, f"{here}.thinking must be a string")
            if thinking:
                thoughts.append(thinking)
        elif kind == "image":
            images.append(anthropic_image(block, here))
        elif kind in _IMAGES:
            raise refuse(f"{here}: {kind} content")
        elif kind != "redacted_thinking":  # encrypted by Anthropic: nothing a template could show
            raise refuse(f"{here}: content blocks of type {kind!r:.40}")
    messages = results
    if texts or calls or thoughts or images:
        message: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
        if images:
            message["images"] = images
        if thoughts:
            message["thinking"] = "\n".join(thoughts)
        if calls:
            message["tool_calls"] = calls
        messages.append(message)
    return messages


def block_type(block: object, where: str) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise APIError(400, f"{where} must be a content block: an object with a type")
    kind: str = block["type"]
    return kind


def text_field(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise APIError(400, f"{where}.text must be a string")
    return text


def tool_use(block: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``tool_use`` block of the history as the call chat templates render."""
    ident, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(ident, str) or not ident:
        raise APIError(400, f"{where}: a tool_use block needs its id")
    if not isinstance(name, str) or not name:
        raise APIError(400, f"{where}: a tool_use block needs the tool's name")
    if not isinstance(arguments, dict):
        raise APIError(400, f"{where}.input must be an object")
    return {"id": ident, "function": {"name": name, "arguments": arguments}}


def tool_result(block: dict[str, Any], where: str, called: dict[str, str]) -> dict[str, Any]:
    """A ``tool_result`` block as a ``"tool"`` message: its text, and the name of the tool that gave it."""
    ident = block.get("tool_use_id")
    if not isinstance(ident, str) or not ident:
        raise APIError(400, f"{where}: a tool_result block needs the tool_use_id it answers")
    content = block.get("content")
    if content is None or isinstance(content, str):
        text = content or ""
    elif isinstance(content, list):
        parts = []
        for k, part in enumerate(content):
            here = f"{where}.content[{k}]"
            kind = block_type(part, here)
            if kind in _IMAGES:
                raise refuse(f"{here}: {kind} content in a tool result")
            if kind != "text":
                raise refuse(f"{here}: tool results of type {kind!r:.40}")
            parts.append(text_field(part, here))
        text = "\n".join(parts)
    else:
        raise APIError(400, f"{where}.content must be a string or a list of text blocks")
    if not isinstance(block.get("is_error", False), bool):
        raise APIError(400, f"{where}.is_error must be true or false")
    message: dict[str, Any] = {"role": "tool", "content": text}
    if ident in called:
        message["tool_name"] = called[ident]
    return message


# tools and options ------------------------------------------------------------------


def chat_tools(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """``tools`` as function tools; ``tool_choice`` checked, and ``"none"`` offers none.

    ``"any"`` and ``{"type": "tool", "name": ...}`` force a call (``forced_choice``),
    where Ollama only accepts them: the model may still answer in text there.
    """
    raw = data.get("tools")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise APIError(400, "tools must be a list of {name, description, input_schema}")
    tools = [function_tool(tool, f"tools[{i}]") for i, tool in enumerate(raw)]
    names = {t["function"]["name"] for t in tools}
    choice = data.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICES:
            raise APIError(
                400, 'tool_choice must be {"type": "auto"}, "any", "tool" (with its name) or "none"'
            )
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise APIError(400, f"tool_choice names no tool of this request: {choice.get('name')!r:.60}")
        if choice["type"] == "none":
            return None
    return tools or None


def function_tool(tool: object, where: str) -> dict[str, Any]:
    """An Anthropic tool as the function tool chat templates render (``input_schema`` as ``parameters``)."""
    if not isinstance(tool, dict):
        raise APIError(400, f"{where} must be an object with a name and an input_schema")
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise refuse(f"{where}: server tools ({kind!s:.40})")
    name, description = tool.get("name"), tool.get("description")
    schema = tool.get("input_schema", {"type": "object", "properties": {}})
    if not isinstance(name, str) or not name:
        raise APIError(400, f"{where}.name must be a non-empty string")
    if description is not None and not isinstance(description, str):
        raise APIError(400, f"{where}.description must be a string")
    if not isinstance(schema, dict):
        raise APIError(400, f"{where}.input_schema must be a JSON schema object")
    function = {"name": name, "description": description or "", "parameters": schema}
    return {"type": "function", "function": function}


def options(data: dict[str, Any]) -> dict[str, Any]:
    """``max_tokens`` (required) and the sampling fields as the engine's options, which it validates."""
    limit = data.get("max_tokens")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise APIError(400, "max_tokens is required: a whole number ≥ 1")
    chosen: dict[str, Any] = {"num_predict": limit}
    for name in ("temperature", "top_p", "top_k"):
        if data.get(name) is not None:
            chosen[name] = data[name]
    stops = data.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise APIError(400, "stop_sequences must be a list of non-empty strings")
        if stops:
            chosen["stop"] = stops
    return chosen
