"""Tool calls parsed out of a model's streamed text, as Ollama returns them.

A model asked with ``tools`` answers a call as text; this parser, fed the
engine's text stream, turns that text into calls, which a front end shows:
the API as ``message.tool_calls`` (Ollama) or ``choices[0].message.tool_calls``
(OpenAI). It depends on nothing but its input, so every front end can use it.

The formats real models write, each a JSON object (or a list of them) with
``name`` and ``arguments`` (or ``parameters``, or wrapped as
``{"function": {...}}``):

    {"name": "get_weather", "parameters": {"city": "Paris"}}          Llama 3.1/3.2, bare
    <|python_tag|>{"name": "get_weather", "parameters": {...}}        Llama
    <tool_call>{"name": "get_weather", "arguments": {...}}</tool_call>  Qwen, Hermes
    [TOOL_CALLS] [{"name": "get_weather", "arguments": {...}}]         Mistral
    [TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}                    Mistral, newer
    ```json {"name": "get_weather", "arguments": {...}} ```           in a fence

As Ollama does, a call counts only when its name is one of the request's
tools; anything else (an unknown name, JSON that does not parse, a fence of
Python) stays text, exactly as the model wrote it. A call may stand anywhere
in the reply, bare JSON too (models preface calls with a sentence); text
around calls stays text; whitespace alone before, between or after calls is
dropped.

The parser is fed the stream piece by piece and is indifferent to where the
pieces split: while the text so far could still be the start of a call (a tag
cut short, ``{"name": "get_`` while a tool is called ``get_weather``) it is
held back, and released as text the moment it cannot be; JSON that opens like
a call is held until it closes, up to ``LIMIT`` characters. Trailing
whitespace also waits for the next piece::

    parser = ToolCallParser(["get_weather"])
    parser.feed('Let me check. <tool_')       # ["Let me check."]
    parser.feed('call>{"name": "get_weather", "arguments": {}}</tool_call>')   # [ToolCall(...)]
    parser.finish()                           # []
"""

from __future__ import annotations

import contextlib
import json
import secrets
import string
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.events import Done, Generation, Token

# opening tag -> closing tag ("" when the call simply ends)
MISTRAL, ARGS = "[TOOL_CALLS]", "[ARGS]"
TAGS = {"<tool_call>": "</tool_call>", MISTRAL: "", "<|python_tag|>": "", "```": "```"}
KEYS = ("name", "arguments", "parameters", "function", "type", "id")  # a call object's first key
LIMIT = 64 * 1024  # a would-be call longer than this is text: never hold back a whole reply
_ALPHABET = string.ascii_lowercase + string.digits


def call_id() -> str:
    """An id as Ollama makes them: ``call_`` and eight random letters or digits."""
    return "call_" + "".join(secrets.choice(_ALPHABET) for _ in range(8))


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: ``index`` counts the calls of a reply from 0."""

    name: str
    arguments: dict[str, Any]
    index: int
    id: str = field(default_factory=call_id)

    def ollama(self) -> dict[str, Any]:
        """Ollama's ``api.ToolCall``: arguments as an object."""
        function = {"index": self.index, "name": self.name, "arguments": self.arguments}
        return {"id": self.id, "function": function}

    def openai(self, *, streamed: bool = False) -> dict[str, Any]:
        """OpenAI's tool call: arguments as a JSON string; a streamed delta also carries ``index``."""
        function = {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)}
        call = {"id": self.id, "type": "function", "function": function}
        return {"index": self.index} | call if streamed else call


ReplyPiece = str | ToolCall  # a piece of a reply: text, or a call it held


def tool_names(tools: Iterable[object] | None) -> frozenset[str]:
    """The names of a request's tools (``{"type": "function", "function": {"name": ...}}``)."""
    names = set()
    for tool in tools or ():
        if isinstance(tool, Mapping):
            function = tool.get("function")
            name = (function if isinstance(function, Mapping) else tool).get("name")
            if isinstance(name, str) and name:
                names.add(name)
    return frozenset(names)


def as_template_call(call: object) -> object:
    """A tool call from a request's history in the shape templates take: arguments an object.

    OpenAI's shape (arguments a JSON string) and Ollama's (an object) are both
    accepted; a string that is not JSON is left as the model wrote it.
    """
    if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
        return call
    function = dict(call["function"])
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # left as the model wrote it
            function["arguments"] = json.loads(arguments) if arguments.strip() else {}
    return {**call, "function": function}


_Scan = tuple[int, int, bool, bool]  # where a JSON scan stopped: index, depth, in a string, after a backslash


def _json_end(text: str, start: int, resume: _Scan | None = None) -> tuple[int | None, _Scan]:
    """The index just past the JSON object or array at ``start`` (None while it is unfinished).

    Also where the scan stopped, so that the next call with more text goes
    on from there: a long call held back is read once, not once per token.
    """
    begin, depth, in_string, escaped = resume or (start, 0, False, False)
    for i in range(begin, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1, (i + 1, depth, in_string, escaped)
    return None, (len(text), depth, in_string, escaped)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _string_at(text: str, i: int, allowed: Iterable[str]) -> tuple[bool | None, int]:
    """Whether the JSON string at ``i`` is one of ``allowed`` (None: it may still become one), and its end."""
    if i == len(text):
        return None, i
    if text[i] != '"':
        return False, i
    close = text.find('"', i + 1)
    if close == -1:
        partial = text[i + 1 :]
        return (None if any(a.startswith(partial) for a in allowed) else False), len(text)
    return text[i + 1 : close] in allowed, close + 1


def _could_be_call(text: str, start: int, names: frozenset[str]) -> bool | None:
    """Whether the JSON at ``start`` opens like a call: None while it is too short to tell.

    A call's first key is one of ``KEYS``; when it is ``name``, its value must
    be one of the tools' ``names``. Other JSON is text at once, not held back.
    """
    i = _skip_space(text, start + 1)
    if i == len(text):
        return None
    if text[start] == "[":
        return _could_be_call(text, i, names) if text[i] == "{" else False
    is_key, i = _string_at(text, i, KEYS)
    if not is_key or text[i - 6 : i] != '"name"':
        return is_key
    i = _skip_space(text, i)
    if i == len(text):
        return None
    if text[i] != ":":
        return False
    return _string_at(text, _skip_space(text, i + 1), names)[0]


class ToolCallParser:
    """Splits a reply's text into text and the tool calls it holds; see the module's docstring."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)
        self._pending = ""
        self._count = 0
        self._fresh = True  # no text since the start or the last call
        self._scan: tuple[str, _Scan] | None = None  # the unfinished JSON held back, and how far it was read

    def feed(self, text: str) -> list[ReplyPiece]:
        """The text and calls that are certain now; what could still start a call is held back."""
        self._pending += text
        return self._drain(final=False)

    def finish(self) -> list[ReplyPiece]:
        """The end of the reply: what was held back, as calls if complete, else as text."""
        return self._drain(final=True)

    # the scan -----------------------------------------------------------------------

    def _drain(self, *, final: bool) -> list[ReplyPiece]:
        out: list[ReplyPiece] = []
        while self._pending:
            pending = self._pending
            i = self._opening(pending, final=final)
            if i is None:
                if final and self._count and self._fresh and not pending.strip():
                    self._pending = ""  # whitespace after the last call
                    break
                # trailing whitespace waits: if a call follows, whitespace between calls is dropped
                kept = pending if final else pending.rstrip()
                self._emit(out, kept)
                self._pending = pending[len(kept) :]
                break
            before, rest = pending[:i], pending[i:]
            outcome = self._call_at(rest, final=final)
            if outcome is None:  # could still be a call: hold it back
                kept = before.rstrip()
                self._emit(out, kept)
                self._pending = pending[len(kept) :]
                break
            length, calls = outcome
            if calls:
                if before.strip() or not self._fresh:
                    self._emit(out, before)
                out.extend(calls)
                self._fresh = True
            else:
                self._emit(out, before + rest[:length])
            self._pending = rest[length:]
        return out

    def _emit(self, out: list[ReplyPiece], text: str) -> None:
        if not text:
            return
        self._fresh = False
        if out and isinstance(out[-1], str):
            out[-1] += text
        else:
            out.append(text)

    @staticmethod
    def _opening(text: str, *, final: bool) -> int | None:
        """Where the first possible call starts: an opening tag, a ``{`` or ``[``, or a tag cut short."""
        found = [i for i in (text.find("{"), text.find("[")) if i >= 0]
        for tag in TAGS:
            i = text.find(tag)
            if i >= 0:
                found.append(i)
            elif not final:
                for k in range(min(len(tag) - 1, len(text)), 0, -1):
                    if text.endswith(tag[:k]):
                        found.append(len(text) - k)
                        break
        return min(found) if found else None

    def _call_at(self, text: str, *, final: bool) -> tuple[int, list[ToolCall]] | None:
        """For text that starts where a call may: None to wait, or how much to take and the calls in it.

        No calls means the first ``length`` characters are text.
        """
        tag = next((t for t in TAGS if text.startswith(t)), "")
        if not tag and not final and any(t.startswith(text) for t in TAGS):
            return None
        if not tag and text[0] not in "{[":
            return 1, []
        start = len(tag)
        if tag == "```":
            language = text[start : start + 4]
            if not final and len(language) < 4 and "json".startswith(language):
                return None
            if language == "json":
                start += 4
        start = _skip_space(text, start)
        if start == len(text):
            return (len(text), []) if final else None
        if text[start] not in "{[":
            if tag == MISTRAL:
                return self._named_call(text, start, final=final)
            return max(len(tag), 1), []
        opens = _could_be_call(text, start, self.names)
        if opens is None and not final and len(text) - start < LIMIT:
            return None
        if not opens:
            return max(len(tag), 1), []
        end = self._json_end(text, start, final=final)
        if end is None:
            return None
        if end < 0:
            return max(len(tag), 1), []
        calls = self._calls(text[start:end])
        if calls is None:  # all of it is text: no call hides inside what is not one
            return end, []
        closing = TAGS.get(tag, "")
        if closing:
            after = _skip_space(text, end)
            if text.startswith(closing, after):
                end = after + len(closing)
            elif not final and closing.startswith(text[after:]):
                return None  # the closing tag may be on its way
        self._count += len(calls)
        return end, calls

    def _named_call(self, text: str, start: int, *, final: bool) -> tuple[int, list[ToolCall]] | None:
        """Mistral's newer form, after its tag: ``get_weather[ARGS]{"city": "Paris"}``."""
        rest = text[start:]
        name = next((n for n in self.names if rest.startswith(n + ARGS)), None)
        if name is None:
            if not final and any((n + ARGS).startswith(rest) for n in self.names):
                return None
            return len(MISTRAL), []
        begin = _skip_space(text, start + len(name) + len(ARGS))
        if begin == len(text) and not final:
            return None
        if begin == len(text) or text[begin] != "{":
            return len(MISTRAL), []
        end = self._json_end(text, begin, final=final)
        if end is None:
            return None
        if end < 0:
            return len(MISTRAL), []
        try:
            arguments = json.loads(text[begin:end])
        except ValueError:
            return end, []
        if not isinstance(arguments, dict):
            return end, []
        self._count += 1
        return end, [ToolCall(name, arguments, self._count - 1)]

    def _json_end(self, text: str, start: int, *, final: bool) -> int | None:
        """Where the JSON at ``start`` ends; None to wait for more, -1 if it never will (it is text)."""
        resume = self._scan[1] if self._scan and text.startswith(self._scan[0]) else None
        end, scan = _json_end(text, start, resume)
        if end is not None:
            return end
        if not final and len(text) - start < LIMIT:
            self._scan = (text, scan)
            return None
        return -1

    def _calls(self, source: str) -> list[ToolCall] | None:
        """The calls a JSON text holds, or None unless every one names a known tool."""
        try:
            value = json.loads(source)
        except ValueError:
            return None
        items = value if isinstance(value, list) else [value]
        calls: list[ToolCall] = []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("function"), dict):
                item = item["function"]
            if not isinstance(item, dict) or item.get("name") not in self.names:
                return None
            arguments = item.get("arguments", item.get("parameters", {}))
            if isinstance(arguments, str):  # some models write arguments as a JSON string
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    return None
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                return None
            calls.append(ToolCall(item["name"], arguments, self._count + len(calls)))
        return calls or None


def parse_tool_calls(names: Iterable[str], text: str) -> tuple[str, list[ToolCall]]:
    """A whole reply's text without its calls, and the calls (for answers that are not streamed)."""
    parser = ToolCallParser(names)
    pieces = parser.feed(text) + parser.finish()
    content = "".join(p for p in pieces if isinstance(p, str))
    return content, [p for p in pieces if isinstance(p, ToolCall)]


async def tool_call_pieces(
    stream: AsyncIterable[Generation], names: Iterable[str]
) -> AsyncIterator[ReplyPiece | Token | Done]:
    """A generation's stream as text and tool calls, in order, then its Done.

    A thinking model's reasoning passes through as Tokens with empty ``text``:
    calls are looked for in the answer only.
    """
    parser = ToolCallParser(names)
    async for event in stream:
        if isinstance(event, Done):
            for piece in parser.finish():
                yield piece
            yield event
        else:
            if event.thinking:
                yield Token("", event.thinking)
            for piece in parser.feed(event.text):
                yield piece
