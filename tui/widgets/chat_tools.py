"""Tool calls in the Chat tab: a chat's tools, the calls a reply makes, their results, the turns they make.

A chat may offer the model tools (Ollama's ``tools`` list, set in the chat's
settings). The engine streams the reply as text; ``ReplyPieces`` runs it
through the engine's own parser (``engine.ToolCallParser``, as the API does),
so a call is taken out of the text and kept as Ollama's
``message.tool_calls`` entry. The chat shows each call as a call
(``ToolCallView``: its name, the arguments as pretty JSON, foldable) and a
``"tool"`` message as the result it is (``ToolResultView``); both are saved
in the chat history and go back to the model in the next turn
(``chat_turn``), so a conversation with tools reads as Ollama's does.

    pieces = ReplyPieces(chat.tools)
    text, calls = pieces.feed(token.text)   # calls: [{"id": ..., "function": {"name", "arguments"}}]
    text, calls = pieces.finish()
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.content import Content
from textual.widgets import Collapsible, Static

from tui.chatstore import StoredMessage
from tui.chatstore.export import call_parts
from tui.widgets.chat_thinking import ThinkingView

if TYPE_CHECKING:
    from engine import ToolCall

FOLD_LINES = 12  # arguments or a result longer than this start folded
MAX_TOOLS_CHARS = 256 * 1024  # a chat's tools list, as typed: a schema or a few, not a file


class ReplyPieces:
    """A streamed reply split into text and tool calls; without tools, all of it is text."""

    def __init__(self, tools: Sequence[Mapping[str, Any]] | None) -> None:
        from engine import ToolCallParser, tool_names  # here: the chat view starts without the engine

        names = tool_names(tools)
        self._parser = ToolCallParser(names) if names else None
        self.calls: list[dict[str, Any]] = []

    def feed(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        if self._parser is None:
            return text, []
        return self._split(self._parser.feed(text))

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        if self._parser is None:
            return "", []
        return self._split(self._parser.finish())

    def _split(self, pieces: Sequence[str | ToolCall]) -> tuple[str, list[dict[str, Any]]]:
        from engine import ToolCall

        calls = [piece.ollama() for piece in pieces if isinstance(piece, ToolCall)]
        self.calls += calls
        return "".join(piece for piece in pieces if isinstance(piece, str)), calls


def kept(message: StoredMessage) -> dict[str, Any]:
    """What a message view shows of a stored message besides its text (``ChatLog.add_message``)."""
    return {"thinking": message.thinking, "tool_calls": message.tool_calls, "tool_name": message.tool_name}


def chat_turn(message: StoredMessage) -> dict[str, Any] | None:
    """A stored message as the engine takes it (Ollama's chat message), or None for one to leave out."""
    if message.role == "tool":
        turn: dict[str, Any] = {"role": "tool", "content": message.content}
        if message.tool_name:
            turn["tool_name"] = message.tool_name
        return turn
    if message.role not in ("user", "assistant", "system"):
        return None
    if message.role == "assistant" and message.tool_calls:
        return {"role": "assistant", "content": message.content, "tool_calls": list(message.tool_calls)}
    return {"role": message.role, "content": message.content} if message.content else None


def pretty(value: object) -> str:
    """JSON as people read it: indented, Unicode as is."""
    return json.dumps(value, ensure_ascii=False, indent=2)


def result_text(content: str) -> str:
    """A tool's result: pretty JSON when it is JSON, else the text as it came."""
    try:
        return pretty(json.loads(content))
    except (ValueError, RecursionError):
        return content


CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")


class ToolCallView(Collapsible):
    """One call of a reply: ``tool call · get_weather`` over its arguments (folded when long)."""

    DEFAULT_CSS = CSS

    def __init__(self, call: Mapping[str, Any]) -> None:
        name, arguments = call_parts(dict(call))
        text = pretty(arguments)
        self.call_name = name
        self.arguments = arguments
        super().__init__(
            Static(Content(text), classes="tool-json"),
            title=f"tool call · {name}",
            collapsed=text.count("\n") >= FOLD_LINES,
            classes="tool-call",
        )


class ToolResultView(Collapsible):
    """A ``"tool"`` message: ``result · get_weather`` over what the tool gave (folded when long)."""

    DEFAULT_CSS = CSS

    def __init__(self, content: str, tool_name: str | None) -> None:
        text = result_text(content)
        super().__init__(
            Static(Content(text), classes="tool-json"),
            title=f"result · {tool_name}" if tool_name else "tool result",
            collapsed=text.count("\n") >= FOLD_LINES,
            classes="tool-result",
        )


class KeptThinking(ThinkingView):
    """A reply's reasoning as the history kept it: folded, unfolded with Enter or a click."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.add(text)
        self.folded_after = 0.0
        self.title = "Thinking"
        self.collapsed = True


def parse_tools(text: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    """A chat's tools as typed in its settings: a JSON list of Ollama tools; blank: none.

    Returns (tools, problem): the problem is one line for the dialog.

    >>> parse_tools('[{"type": "function", "function": {"name": "get_weather"}}]')[0][0]["function"]["name"]
    'get_weather'
    """
    text = text.strip()
    if not text:
        return None, None
    if len(text) > MAX_TOOLS_CHARS:
        return None, f"Tools: at most {MAX_TOOLS_CHARS // 1024} KiB of JSON"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        return None, f"Tools: not JSON ({error})"
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(tool, dict) for tool in value):
        return (
            None,
            'Tools: a list of tools, e.g. [{"type": "function", "function": {"name": "get_weather"}}]',
        )
    from engine import tool_names

    if len(tool_names(value)) != len(value):
        return None, "Tools: each tool needs a function with a name, and the names must differ"
    return value, None


def tools_text(tools: Sequence[Mapping[str, Any]] | None) -> str:
    """A chat's tools as its settings field shows them."""
    return pretty(list(tools)) if tools else ""
