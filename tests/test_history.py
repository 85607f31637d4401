"""Fitting a history into the context: which turns go, which stay, and how many renders it takes."""

from __future__ import annotations

import pytest

from engine.errors import PromptTooLong
from engine.runtime.history import fit_history
from engine.templates.message import Message


def counting_render(calls: list[int]):
    """Ten tokens a message: a stand-in for template + tokenizer that counts its calls."""

    def render(messages):
        calls.append(len(messages))
        return [0] * (10 * len(messages))

    return render


def conversation(turns: int, system: bool = True) -> list[Message]:
    messages = [Message("system", "be brief")] if system else []
    for i in range(turns):
        messages += [Message("user", f"q{i}"), Message("assistant", f"a{i}")]
    return [*messages, Message("user", "last")]


def test_a_history_that_fits_is_kept_whole_in_one_render() -> None:
    calls: list[int] = []
    tokens, dropped = fit_history(conversation(3), counting_render(calls), 100, context=128)
    assert (len(tokens), dropped, calls) == (80, 0, [8])


def test_the_oldest_turns_go_the_system_prompt_stays_and_a_kept_part_starts_with_a_question() -> None:
    messages = conversation(10)
    tokens, dropped = fit_history(messages, counting_render([]), 60, context=128)
    kept = messages[:1] + messages[1 + dropped :]
    assert kept[0].role == "system" and kept[1].role == "user" and kept[-1].content == "last"
    assert len(tokens) == 10 * len(kept) <= 60 and len(kept) >= 5  # as many recent turns as fit


def test_ten_thousand_messages_take_a_handful_of_renders() -> None:
    calls: list[int] = []
    _, dropped = fit_history(conversation(5000), counting_render(calls), 200, context=256)
    assert dropped > 9000 and len(calls) < 20


def test_the_last_message_alone_may_use_the_reply_room_but_not_more() -> None:
    calls: list[int] = []
    single = [Message("user", "x")]
    tokens, dropped = fit_history(single, lambda m: [0] * 120, 100, context=128)
    assert len(tokens) == 120 and dropped == 0
    with pytest.raises(PromptTooLong, match="needs 200 tokens, more than the 128-token context holds"):
        fit_history(single, lambda m: [0] * 200, 100, context=128)
    with pytest.raises(PromptTooLong, match="far more tokens"):
        fit_history(single, lambda m: None, 100, context=128)
    assert calls == []
