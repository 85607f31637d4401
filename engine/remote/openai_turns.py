"""Chat turns and tool calls between Ollama's shape and OpenAI's, for a server that speaks only ``/v1``.

The facade's turns are Ollama's (``images`` as base64, ``tool_calls`` with
arguments as an object, a tool's result named by ``tool_name``); a vLLM or a
llama-server takes OpenAI's: images as ``image_url`` data URLs, calls with
arguments as a JSON string and an ``id``, a result answering that id.

A remote reply's calls come back as text the model could have written
(``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``), so a remote
stream reads as a local one: every front end finds them with the parser it
already runs on the local engine's text (``engine.runtime.toolcalls``),
the app's tool-call view and the API alike. The parser gives each call an
id of its own; the server's ids are not needed again, since ``openai_messages``
pairs a result with its call by the tool's name.

    StreamedCalls().feed(delta["tool_calls"])   # OpenAI's deltas, pieces of arguments by index
    openai_messages([{"role": "user", "content": "Hi", "images": ["iVBOR..."]}])
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import NetworkError
from engine.remote.shapes import table
from engine.runtime.toolcalls import call_id

MAX_CALLS_CHARS = 1 << 20  # one reply's calls, arguments together: a call is kilobytes

_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"GIF8", "image/gif"))


def call_text(name: str, arguments: object) -> str:
    """A call as a model writes it, in the format every front end's parser reads (Qwen's, Hermes')."""
    call = {"name": name, "arguments": arguments}
    return f"<tool_call>{json.dumps(call, ensure_ascii=False)}</tool_call>"


def ollama_calls_text(calls: object) -> str:
    """Ollama's ``message.tool_calls`` as the calls' text (``call_text``); odd entries are left out."""
    text = ""
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str) and function["name"]:
            text += call_text(function["name"], _arguments(function.get("arguments")))
    return text


class StreamedCalls:
    """An OpenAI stream's ``tool_calls`` deltas, assembled: the first piece of a call names it (and its
    id), the next ones, by ``index``, add to its arguments' JSON text."""

    def __init__(self, server: str) -> None:
        self._server = server
        self._calls: dict[int, list[str]] = {}  # index -> [name, arguments so far]
        self._size = 0

    def feed(self, deltas: object) -> None:
        for delta in deltas if isinstance(deltas, list) else ():
            if not isinstance(delta, dict):
                continue
            index = delta.get("index")
            index = index if isinstance(index, int) and not isinstance(index, bool) else len(self._calls)
            call = self._calls.setdefault(index, ["", ""])
            function = delta.get("function")
            if not isinstance(function, dict):
                continue
            name, arguments = function.get("name"), function.get("arguments")
            if isinstance(arguments, dict):  # a server that sends the object, not its text
                arguments = json.dumps(arguments, ensure_ascii=False)
            name = name if isinstance(name, str) else ""
            arguments = arguments if isinstance(arguments, str) else ""
            call[0] += name
            call[1] += arguments
            self._size += len(name) + len(arguments)
            if self._size > MAX_CALLS_CHARS:
                raise NetworkError(f"{self._server} sent tool calls longer than {MAX_CALLS_CHARS >> 20} MiB")

    def text(self) -> str:
        """The calls so far as text (``call_text``), in index order; then forgotten."""
        calls, self._calls, self._size = self._calls, {}, 0
        return "".join(call_text(name, _arguments(args)) for _, (name, args) in sorted(calls.items()) if name)


def _arguments(value: object) -> object:
    """A call's arguments as an object: OpenAI's JSON text parsed; text that is not JSON stays text."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else {}
        except ValueError:
            return value
    return value if value is not None else {}


def openai_messages(turns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Ollama-shaped turns as OpenAI's ``messages``: images as data URLs, calls and results paired by id."""
    messages: list[dict[str, Any]] = []
    waiting: list[tuple[str, str]] = []  # (tool name, call id) of calls not answered yet, in order
    for turn in turns:
        role = str(turn.get("role") or "user")
        content = turn.get("content")
        text = content if isinstance(content, str) else ""
        images = turn.get("images")
        message: dict[str, Any] = {"role": role, "content": _content(text, images)}
        calls = turn.get("tool_calls")
        if role == "assistant" and isinstance(calls, list) and calls:
            message["tool_calls"] = [_openai_call(c, waiting) for c in calls if isinstance(c, dict)]
            message["content"] = text or None
        if role == "tool":
            message["tool_call_id"] = _answered(turn, waiting)
        messages.append(message)
    return messages


def _content(text: str, images: object) -> str | list[dict[str, Any]]:
    if not isinstance(images, list) or not images:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for image in images:
        data = image if isinstance(image, str) else base64.b64encode(bytes(image)).decode()
        parts.append({"type": "image_url", "image_url": {"url": f"data:{_mime(data)};base64,{data}"}})
    return parts


def _mime(data: str) -> str:
    """The image type its first bytes say (PNG, JPEG, GIF, WebP); JPEG when unreadable."""
    try:
        head = base64.b64decode(data[:24], validate=False)
    except (binascii.Error, ValueError):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if head.startswith(magic)), "image/jpeg")


def _openai_call(call: dict[str, Any], waiting: list[tuple[str, str]]) -> dict[str, Any]:
    function = table(call.get("function"))
    name = str(function.get("name") or "")
    given = call.get("id")
    ident = given if isinstance(given, str) and given else call_id()
    arguments = function.get("arguments")
    text = arguments if isinstance(arguments, str) else json.dumps(arguments or {}, ensure_ascii=False)
    waiting.append((name, ident))
    return {"id": ident, "type": "function", "function": {"name": name, "arguments": text}}


def _answered(turn: Mapping[str, Any], waiting: list[tuple[str, str]]) -> str:
    """The id of the call a tool's result answers: its own, else the first waiting call of that tool."""
    given = turn.get("tool_call_id")
    name = turn.get("tool_name") or turn.get("name")
    for k, (called, ident) in enumerate(waiting):
        if ident == given or (not given and (called == name or not name)):
            del waiting[k]
            return ident
    return given if isinstance(given, str) and given else call_id()
