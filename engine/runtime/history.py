"""Fitting a conversation into the context: drop the oldest turns, keep the system prompt.

What Ollama's chat handler does when a history outgrows ``num_ctx``: the
leading system messages stay, the latest message stays, and turns are
dropped from the oldest until the rendered prompt fits. The caller is told
how many messages went, so a front end can say so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.errors import PromptTooLong
from engine.runtime.templates import Message


def fit_history(
    messages: Sequence[Message],
    render: Callable[[Sequence[Message]], list[int] | None],
    limit: int,
    *,
    context: int,
) -> tuple[list[int], int]:
    """Prompt tokens of the longest recent part of ``messages`` that fits ``limit``; how many were dropped.

    ``render`` turns messages into prompt tokens (template and tokenizer),
    or None when the text is certainly too long to be worth tokenizing.
    ``limit`` leaves room for a reply and is met by dropping turns; the
    system prompt and the last message alone only need to fit ``context``
    (then the reply gets what is left). Raises PromptTooLong when they do not.
    """
    system = 0
    while system < len(messages) and messages[system].role == "system":
        system += 1
    head, turns = list(messages[:system]), list(messages[system:])
    dropped = 0
    while True:
        tokens = render(head + turns)
        if tokens is not None and (len(tokens) <= limit or (len(turns) <= 1 and len(tokens) < context)):
            return (
                tokens,
                dropped,
            )  # the reply's room is kept by dropping turns, never by refusing the last one
        if len(turns) <= 1:
            what = "the last message and the system prompt need" if head else "the prompt needs"
            count = f"{len(tokens)} tokens, more" if tokens is not None else "far more tokens"
            raise PromptTooLong(
                f"{what} {count} than the {context}-token context holds: shorten it or raise num_ctx"
            )
        turns.pop(0)
        dropped += 1
        while len(turns) > 1 and turns[0].role != "user":
            turns.pop(0)  # a history starts with the user: an orphaned assistant reply goes with its question
            dropped += 1
