"""Fitting a conversation into the context: drop the oldest turns, keep the system prompt.

What Ollama's chat handler does when a history outgrows ``num_ctx``: the
leading system messages stay, the latest message stays, and turns are
dropped from the oldest until the rendered prompt fits. A kept history
starts at a user message, so no reply is left without its question. The
cut is found by bisection (a handful of renders, not one per dropped
message: trimming 10,000 messages one at a time took over five minutes).
The caller is told how many messages went, so a front end can say so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.errors import PromptTooLong
from engine.templates.message import Message


def fit_history(
    messages: Sequence[Message],
    render: Callable[[Sequence[Message]], list[int] | int | None],
    limit: int,
    *,
    context: int,
) -> tuple[list[int], int]:
    """Prompt tokens of the longest recent part of ``messages`` that fits ``limit``; how many were dropped.

    ``render`` turns messages into prompt tokens (template and tokenizer),
    their count alone when they are past the context (the list is never
    made), or None when the text is certainly too long to be worth tokenizing.
    ``limit`` leaves room for a reply and is met by dropping turns; the
    system prompt and the last message alone only need to fit ``context``
    (then the reply gets what is left). Raises PromptTooLong when they do not.
    """
    system = 0
    while system < len(messages) and messages[system].role == "system":
        system += 1
    head, turns = list(messages[:system]), list(messages[system:])

    def attempt(cut: int) -> list[int] | None:
        tokens = render(head + turns[cut:])
        return tokens if isinstance(tokens, list) and len(tokens) <= limit else None

    if (whole := attempt(0)) is not None:
        return whole, 0
    last = max(len(turns) - 1, 0)
    # where a kept history may start: at a user message, or at the last message whatever it is
    cuts = [i for i in range(1, last) if turns[i].role == "user"] + [last]
    low, high = 0, len(cuts) - 1  # the answer is the first cut that fits; the last is the fallback
    best: tuple[list[int], int] | None = None
    while low <= high:
        middle = (low + high) // 2
        tokens = attempt(cuts[middle])
        if tokens is not None:
            best, high = (tokens, cuts[middle]), middle - 1
        else:
            low = middle + 1
    if best is not None:
        return best[0], best[1]
    rendered = render(head + turns[last:])
    if isinstance(rendered, list) and len(rendered) < context:
        return rendered, last  # the reply's room is kept by dropping turns, never by refusing the last one
    what = "the last message and the system prompt need" if head else "the prompt needs"
    n = len(rendered) if isinstance(rendered, list) else rendered
    count = f"{n} tokens, more" if n is not None else "far more tokens"
    raise PromptTooLong(f"{what} {count} than the {context}-token context holds: shorten it or raise num_ctx")
