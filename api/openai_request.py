"""OpenAI request bodies read into the engine's terms: messages, tools, sampling options, prompts, inputs.

Every field a route reads is checked here with a 400 that names it, and what
the engine cannot do yet (``n`` > 1, ``best_of``, token-array inputs) is
refused with a 400 that says so; ``api.responses_input`` reuses the pieces.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from api.errors import APIError
from api.images import openai_image_part
from api.openai_reasoning import reasoning_of
from api.structured import tool_choice


def refuse(what: str) -> APIError:
    return APIError(400, f"{what} is not supported yet by llamadeck")


def sampling_options(data: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's sampling fields as the engine's options (validated there: a bad value is a 400)."""
    options: dict[str, Any] = {}
    for name in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
        if data.get(name) is not None:
            options[name] = data[name]
    limit = data.get("max_completion_tokens")
    limit = data.get("max_tokens") if limit is None else limit
    if limit is not None:
        options["num_predict"] = limit
    stop = data.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif stop is not None:
        options["stop"] = stop
    n = data.get("n")
    if n is not None and n != 1:
        raise refuse("n other than 1 (several choices)")
    if data.get("best_of") not in (None, 1):
        raise refuse("best_of")
    return options


def model_field(data: dict[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise APIError(400, "model is required")
    return model


def text_of(content: object, where: str) -> str:
    """A message's content: a string, or a list of text parts (image parts are read by ``images_of``)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                continue
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise refuse(f"{where}: content of type {kind!s:.40}")
            texts.append(str(part.get("text") or ""))
        return "\n".join(texts)
    raise APIError(400, f"{where}.content must be a string or a list of parts")


def images_of(content: object, where: str) -> list[bytes]:
    """The images of a message's ``image_url`` parts: data URLs only (``api.images``)."""
    if not isinstance(content, list):
        return []
    return [
        openai_image_part(part, f"{where}.content[{k}]")
        for k, part in enumerate(content)
        if isinstance(part, dict) and part.get("type") == "image_url"
    ]


def tool_call(call: object) -> dict[str, Any]:
    """An OpenAI tool call (``arguments`` a JSON string) as a chat template takes it (an object)."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise APIError(400, "tool_calls must be a list of {type: function, function: {name, arguments}}")
    function = call["function"]
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # left as the model wrote it
            arguments = json.loads(arguments) if arguments.strip() else {}
    return {"function": {"name": function.get("name"), "arguments": arguments}}


def chat_messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    raw = data.get("messages")
    if not isinstance(raw, list) or not raw:
        raise APIError(400, "messages must be a non-empty list")
    messages = []
    called: dict[str, str] = {}  # tool call id -> the tool's name, for results that give only the id
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise APIError(400, f"{where} must be an object with a role and a content")
        role = message.get("role")
        converted: dict[str, Any] = {
            "role": "system" if role == "developer" else role,
            "content": text_of(message.get("content"), where),
        }
        if images := images_of(message.get("content"), where):
            converted["images"] = images
        if message.get("tool_calls"):
            calls = message["tool_calls"]
            if not isinstance(calls, list):
                raise APIError(400, f"{where}.tool_calls must be a list")
            converted["tool_calls"] = [tool_call(c) for c in calls]
            for call in calls:
                name = call["function"].get("name")
                if isinstance(call.get("id"), str) and isinstance(name, str):
                    called[call["id"]] = name
        if reasoning := reasoning_of(message, where):
            converted["thinking"] = reasoning
        if role == "tool" and isinstance(message.get("name"), str):
            converted["tool_name"] = message["name"]
        elif role == "tool" and message.get("tool_call_id") in called:
            converted["tool_name"] = called[message["tool_call_id"]]
        messages.append(converted)
    return messages


def chat_tools(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = data.get("tools") or None
    choice = tool_choice(data)
    if tools is None or choice == "none":
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise APIError(400, "tools must be a list of objects")
    return tools


def include_usage(data: dict[str, Any]) -> bool:
    stream_options = data.get("stream_options")
    return isinstance(stream_options, dict) and stream_options.get("include_usage") is True


def completion_prompt(data: dict[str, Any]) -> str:
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list):
        raise refuse("a prompt that is a list of several prompts or of token ids")
    if not isinstance(prompt, str) or not prompt:
        raise APIError(400, "prompt must be a non-empty string")
    return prompt


def embedding_inputs(data: dict[str, Any]) -> list[str]:
    value = data.get("input")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise APIError(400, "input must be a string or a non-empty list of strings")
    if not all(isinstance(t, str) for t in value):
        raise refuse("input as token ids")
    return value


__all__ = [
    "chat_messages",
    "chat_tools",
    "completion_prompt",
    "embedding_inputs",
    "include_usage",
    "model_field",
    "refuse",
    "sampling_options",
]
