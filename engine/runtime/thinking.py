"""A thinking model's reply split as it streams: its reasoning apart from its answer.

Models that think write their reasoning before the answer, in one of two shapes:

    <think>Paris is the capital.</think>It is Paris.         Qwen3, QwQ, DeepSeek-R1, Cogito, OLMo 3 Think
    <|channel|>analysis<|message|>...<|end|><|start|>assistant<|channel|>final<|message|>...  gpt-oss

A splitter is fed the reply's text piece by piece, wherever the pieces split
(a tag may come in several tokens), and returns ``(thinking, content)`` for
each piece: what is certain now. Text that could still be the start of a tag
is held back until it cannot be, and ``finish`` returns what was held.

``TagSplitter`` is Ollama's ``thinking.Parser``: the reasoning is the text
between the opening and closing tags at the start of the reply (whitespace
around them dropped); a reply that does not start with the tag is all answer.
A prompt that already ends with the opening tag (DeepSeek-R1's template, OLMo
3 Think's) starts it inside the reasoning. ``HarmonySplitter`` is Ollama's
harmony message handler: the ``analysis`` channel is reasoning, ``final``
(and ``commentary`` to nobody) the answer, and a message ``to=functions.NAME``
a tool call, which it hands on as ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``
text, the form ``engine.runtime.toolcalls`` reads.

    splitter = TagSplitter("<think>", "</think>")
    splitter.feed("<thi")                   # ("", "")
    splitter.feed("nk>Hmm.</think> Paris")  # ("Hmm.", "Paris")
    splitter.finish()                       # ("", "")
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Protocol

__all__ = ["HARMONY_TOKENS", "HarmonySplitter", "Splitter", "TagSplitter"]

HARMONY_TOKENS = ("<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>")
"""gpt-oss's control tokens the splitter reads: llama.cpp must render them as text (``Request.preserve``)."""

MAX_HEADER = 4096  # characters of a harmony header; a model that never closes one gets its text as answer


class Splitter(Protocol):
    """Feeds a reply's text through; returns ``(thinking, content)`` certain so far."""

    def feed(self, text: str) -> tuple[str, str]: ...

    def finish(self) -> tuple[str, str]: ...


def _overlap(text: str, tag: str) -> int:
    """The length of the longest end of ``text`` that starts ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class _StateMachine(ABC):
    """What both splitters do with a piece of text: hold it after what is held, then step the
    machine over it until it must wait for more; each step appends what became certain."""

    _held: str

    def feed(self, text: str) -> tuple[str, str]:
        self._held += text
        thinking: list[str] = []
        content: list[str] = []
        while self._step(thinking, content):
            pass
        return "".join(thinking), "".join(content)

    @abstractmethod
    def _step(self, thinking: list[str], content: list[str]) -> bool:
        """One move of the state machine; True while it may move again on what is held."""


_LOOKING, _OPENED, _THINKING, _CLOSED, _ANSWER = range(5)


class TagSplitter(_StateMachine):
    """Ollama's ``thinking.Parser``: reasoning between ``opening`` and ``closing`` at the reply's start.

    ``started``: the prompt ended with the opening tag, so the reply starts inside the reasoning.
    """

    def __init__(self, opening: str, closing: str, *, started: bool = False) -> None:
        self.opening = opening
        self.closing = closing
        self._state = _OPENED if started else _LOOKING
        self._held = ""

    def finish(self) -> tuple[str, str]:
        """What was held back: unfinished reasoning stays reasoning, anything else is answer."""
        held, self._held = self._held, ""
        if self._state in (_OPENED, _THINKING):
            return (held if self._state == _THINKING else held.lstrip()), ""
        if self._state == _LOOKING and not held.strip():
            return "", ""
        return "", held if self._state != _CLOSED else held.lstrip()

    def _step(self, thinking: list[str], content: list[str]) -> bool:
        held = self._held
        if self._state == _LOOKING:
            trimmed = held.lstrip()
            if trimmed.startswith(self.opening):
                self._held = trimmed[len(self.opening) :].lstrip()
                self._state = _THINKING if self._held else _OPENED
                return True
            if not trimmed or self.opening.startswith(trimmed):
                return False  # whitespace, or the opening tag cut short: wait
            self._state, self._held = _ANSWER, ""
            content.append(held)  # no reasoning: the reply as it is, its leading whitespace kept
            return False
        if self._state == _OPENED:
            trimmed = held.lstrip()
            self._held = trimmed
            if not trimmed:
                return False
            self._state = _THINKING
            return True
        if self._state == _THINKING:
            at = held.find(self.closing)
            if at >= 0:
                thinking.append(held[:at])
                rest = held[at + len(self.closing) :].lstrip()
                self._held = ""
                self._state = _ANSWER if rest else _CLOSED
                content.append(rest)
                return False
            keep = _overlap(held, self.closing)
            thinking.append(held[: len(held) - keep])
            self._held = held[len(held) - keep :]
            return False
        if self._state == _CLOSED:
            trimmed = held.lstrip()
            self._held = ""
            if trimmed:
                self._state = _ANSWER
                content.append(trimmed)
            return False
        content.append(held)
        self._held = ""
        return False


_START, _END, _MESSAGE, _CHANNEL, _CONSTRAIN = HARMONY_TOKENS
_NORMAL, _REASONING, _CALLING = "content", "thinking", "tool"


class HarmonySplitter(_StateMachine):
    """Ollama's harmony handler for gpt-oss: channels to reasoning, answer and tool calls.

    The reply starts inside an assistant message's header, as the prompt ends with
    ``<|start|>assistant`` (Ollama's implicit start).
    """

    def __init__(self) -> None:
        self._held = _START + "assistant"
        self._in_header = False
        self._kind = _NORMAL
        self._recipient = ""
        self._call = ""  # the arguments of the tool call being written

    def finish(self) -> tuple[str, str]:
        """The end of the reply (``<|return|>`` or ``<|call|>`` ended it): the open message and any call."""
        thinking: list[str] = []
        content: list[str] = []
        if not self._in_header and self._held:
            self._emit(self._held, thinking, content)
        self._held = ""
        self._end_message(content)
        return "".join(thinking), "".join(content)

    def _step(self, thinking: list[str], content: list[str]) -> bool:
        held = self._held
        if self._in_header:
            at = held.find(_MESSAGE)
            if at < 0:
                if len(held) > MAX_HEADER:  # not a header after all: show it
                    self._in_header, self._kind = False, _NORMAL
                    return True
                return False
            self._header(held[:at])
            self._held = held[at + len(_MESSAGE) :]
            self._in_header = False
            return True
        at = held.find(_END)
        start = held.find(_START)
        if start >= 0 and (at < 0 or start < at):  # a new message without an end: close the open one
            self._emit(held[:start], thinking, content)
            self._end_message(content)
            self._held = held[start + len(_START) :]
            self._in_header = True
            return True
        if at >= 0:
            self._emit(held[:at], thinking, content)
            self._end_message(content)
            self._held = held[at + len(_END) :]
            return True
        keep = max(_overlap(held, _END), _overlap(held, _START))
        self._emit(held[: len(held) - keep], thinking, content)
        self._held = held[len(held) - keep :]
        return False

    def _header(self, raw: str) -> None:
        """A message header: ``assistant<|channel|>analysis``, or a call

        ``assistant<|channel|>commentary to=functions.f <|constrain|>json``.
        """
        raw = raw.replace(_CONSTRAIN, " " + _CONSTRAIN, 1).strip()
        channel = ""
        at = raw.find(_CHANNEL)
        if at >= 0:
            after = raw[at + len(_CHANNEL) :]
            name = after.split(maxsplit=1)[0] if after.strip() else ""
            channel = name if after[: len(name)] == name else ""
            raw = (raw[:at] + after[len(channel) :]).strip()
        words = raw.split()
        recipient = ""
        if words and words[0].startswith("to="):
            recipient = words[0][3:]
        elif len(words) > 1 and words[1].startswith("to="):
            recipient = words[1][3:]
        self._recipient = recipient
        if recipient and channel in ("analysis", "commentary"):
            self._kind = _CALLING
        elif channel == "analysis":
            self._kind = _REASONING
        else:
            self._kind = _NORMAL

    def _emit(self, text: str, thinking: list[str], content: list[str]) -> None:
        if not text:
            return
        if self._kind == _REASONING:
            thinking.append(text)
        elif self._kind == _CALLING:
            self._call += text
        else:
            content.append(text)

    def _end_message(self, content: list[str]) -> None:
        """A tool-call message ends: hand the call on as ``<tool_call>`` text."""
        if self._kind == _CALLING:
            name = self._recipient.removeprefix("functions.")
            try:
                arguments = json.loads(self._call) if self._call.strip() else {}
            except ValueError:
                arguments = self._call  # left as the model wrote it: the tool-call parser keeps it text
            call = {"name": name, "arguments": arguments}
            content.append("<tool_call>" + json.dumps(call, ensure_ascii=False) + "</tool_call>")
        self._kind, self._recipient, self._call = _NORMAL, "", ""
