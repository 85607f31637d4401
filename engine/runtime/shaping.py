"""A reply on its way to the caller: reasoning split from the answer, the conversation's tokens at its end.

The scheduler streams a reply's raw text; a ``ReplyShape`` (one per reply,
applied by ``session.Reply`` as the events are read, outside the scheduler)
turns it into what the caller asked for:

* a thinking model's reasoning goes to ``Token.thinking``, the answer to
  ``Token.text`` (``engine.runtime.thinking``); the control tokens its parser
  reads are streamed as text (``Request.preserve``, from ``preserved_tokens``);
* with ``keep_context`` the Done carries the conversation as tokens, prompt
  and reply (Ollama's deprecated ``context``: the reply is tokenized again at
  the end, as Ollama does, so a client can send it back).

    shape, preserve = reply_shape(model, fmt, setting, raw=False, tail=text[-64:], prompt=None)
    for event in handle: ...        # shape.token(event), then shape.end(done)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from engine.events import Done, Token, TokenLogprob
from engine.runtime.thinking import HARMONY_TOKENS, HarmonySplitter, Splitter, TagSplitter
from engine.templates.thinking import ThinkFormat, ThinkSetting

__all__ = ["ReplyShape", "reply_shape"]


class _Tokenizer(Protocol):
    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]: ...


@dataclass
class ReplyShape:
    """How one reply's events are reshaped; the default changes nothing."""

    splitter: Splitter | None = None
    prompt: Sequence[int] | None = None  # the prompt's tokens, when the Done is to carry the conversation
    tokenize: Callable[[str], list[int]] | None = None
    _said: list[str] = field(default_factory=list)
    _held: list[TokenLogprob] = field(default_factory=list)  # log probabilities of text the splitter holds

    @property
    def idle(self) -> bool:
        return self.splitter is None and self.prompt is None

    def token(self, event: Token) -> Token | None:
        """The event as the caller sees it; None while the splitter holds all of it back."""
        if self.prompt is not None:
            self._said.append(event.text)
        if self.splitter is None:
            return event
        thinking, text = self.splitter.feed(event.text)
        self._held.extend(event.logprobs)
        if not (text or thinking):
            return None
        logprobs, self._held = tuple(self._held), []
        return Token(text, thinking, logprobs)

    def end(self, done: Done) -> tuple[Token | None, Done]:
        """What the splitter still held, and the Done with the conversation's tokens if asked."""
        last = None
        if self.splitter is not None:
            thinking, text = self.splitter.finish()
            if text or thinking or self._held:
                last = Token(text, thinking, tuple(self._held))
        if self.prompt is not None and self.tokenize is not None:
            reply = self.tokenize("".join(self._said)) if self._said else []
            done = replace(done, context=(*self.prompt, *reply))
        return last, done


def preserved_tokens(model: _Tokenizer, names: Sequence[str]) -> frozenset[int]:
    """The tokens that spell ``names``, where one is a single token in this vocabulary."""
    found = set()
    for name in names:
        ids = model.tokenize(name, add_special=False, parse_special=True)
        if len(ids) == 1:
            found.add(ids[0])
    return frozenset(found)


def reply_shape(
    model: _Tokenizer,
    fmt: ThinkFormat | None,
    setting: ThinkSetting,
    *,
    raw: bool,
    tail: str,
    prompt: Sequence[int] | None,
) -> tuple[ReplyShape, frozenset[int]]:
    """The shape of a reply and the control tokens to stream as text for it.

    Tags are split only while thinking is on (as Ollama: with ``think`` false
    the text stays as the model wrote it); harmony always, except on a raw
    prompt. ``tail`` is the end of the rendered prompt: one that ends with the
    opening tag starts the reply inside the reasoning. ``prompt`` (the prompt's
    tokens) makes the Done carry the conversation.
    """
    splitter: Splitter | None = None
    names: tuple[str, ...] = ()
    if fmt is not None and fmt.kind == "harmony" and not raw:
        splitter, names = HarmonySplitter(), HARMONY_TOKENS
    elif fmt is not None and fmt.kind == "tags" and setting.think:
        started = tail.rstrip().endswith(fmt.opening)
        splitter, names = TagSplitter(fmt.opening, fmt.closing, started=started), (fmt.opening, fmt.closing)

    def tokenize(text: str) -> list[int]:
        return model.tokenize(text, add_special=False, parse_special=True)

    shape = ReplyShape(splitter, None if prompt is None else tuple(prompt), tokenize)
    return shape, preserved_tokens(model, names)
