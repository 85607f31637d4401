"""The Chat tab's gauge under Pilot, on the real engine and the tiny model: a load's progress where the reply
waits, the context a chat uses, and a message that will not fit caught before it is kept (issue 21).

A load is held by making llama.cpp's log file a FIFO nobody reads (``held_log``): the worker blocks at its
first log line, mid-load, until the test drains the FIFO or the load is stopped. Nothing races a clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chat_app import (
    TINY,
    RecordingEngine,
    make_app,
    pane,
    ready,
    seeded,
    send,
    stored,
    sync,
    until,
    views,
)
from tests.support.held_load import held_log, release
from tui.screens.fit import fitting_context
from tui.widgets.chat_gauge import compact, context_text
from tui.widgets.chat_header import fit_line, right_aligned


def small_context(config: Path) -> None:
    """A 256-token context for every chat: a few hundred characters do not fit."""
    config.write_text("[parameters]\nnum_predict = 6\nseed = 1\nnum_ctx = 256\n", encoding="utf-8")


def box(app):
    from tui.widgets.chat_input import ChatInput

    return app.query_one(ChatInput)


def header(app) -> str:
    return str(app.query_one("#chat-header").render())


def note(app) -> str:
    """What the last message's header line says (role, then its status or what it waits for)."""
    from textual.widgets import Static

    return str(views(app)[-1].query_one(".header", Static).render())


async def enter(app, pilot, text: str) -> None:
    box(app).focus()
    box(app).load_text(text)
    await pilot.press("enter")


@sync
async def test_a_held_load_shows_its_progress_where_the_reply_waits_then_the_reply_streams(
    engine: RecordingEngine, tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = held_log(tmp_path, monkeypatch)
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(160, 30)) as pilot:  # wide: the header has room for every figure
        await ready(app, pilot)
        await enter(app, pilot, "Hello there")
        await until(pilot, lambda: "loading Tiny-GGUF:Q8_0" in note(app))
        assert "%" in note(app) and " s" in note(app) and "streaming" not in note(app)
        await until(pilot, lambda: "loading" in header(app) and "%" in header(app))
        assert [v.role for v in views(app)] == ["user", "assistant"]
        assert pane(app).chat is None and app.chat_store.conversations() == []  # nothing kept yet
        assert box(app).text == "Hello there" and box(app).read_only  # the text waits in the box
        release(fifo)
        await until(pilot, lambda: pane(app).generation is None and pane(app)._saving is None)
        await until(pilot, lambda: views(app)[-1].status == "complete")
        user, reply = stored(app)
        assert user.content == "Hello there" and reply.status == "complete"
        assert box(app).text == "" and not box(app).read_only
        assert reply.stats and reply.stats["context"] == 2048 and reply.stats["load_seconds"] == 0
        used = int(reply.stats["prompt_tokens"] + reply.stats["completion_tokens"])
        assert f"ctx {used} / 2.0k" in (views(app)[-1].stats or "")  # the line under the reply
        await until(pilot, lambda: f"ctx {used} / 2.0k" in header(app) and "tok/s" in header(app))
        assert "loading" not in header(app) and " MB" in header(app)


@sync
async def test_stopping_a_held_load_leaves_the_message_in_the_box_and_nothing_in_the_chat(
    engine: RecordingEngine, tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = held_log(tmp_path, monkeypatch)
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await enter(app, pilot, "Never mind")
        await until(pilot, lambda: "loading" in note(app))
        await pilot.press("ctrl+c")  # stops the load: the worker is killed
        await until(pilot, lambda: pane(app).generation is None and pane(app)._saving is None)
        assert views(app) == [] and app.chat_store.conversations() == []
        assert box(app).text == "Never mind" and not box(app).read_only
        assert any("still in the box" in n.message for n in app._notifications)
        release(fifo)
        await send(app, pilot, box(app).text)  # as it was: sent now
        assert [m.role for m in stored(app)] == ["user", "assistant"]


@sync
async def test_a_message_that_does_not_fit_asks_first_cancel_keeps_it_raise_sends_it(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from tui.screens.fit import FitScreen

    small_context(config)
    paste = "\n".join(f"line {i}: the quick brown fox jumps over the lazy dog" for i in range(12))
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await enter(app, pilot, paste)
        await until(pilot, lambda: isinstance(app.screen, FitScreen))
        misfit = app.screen.misfit
        assert misfit.context == 256 and misfit.needed is not None and misfit.needed > 256
        assert misfit.drop == 0 and misfit.raise_to == fitting_context(misfit.needed, 2048)
        await until(pilot, lambda: views(app) == [])  # the message went back: nothing shown
        assert app.chat_store.conversations() == []  # nor kept
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, FitScreen))
        assert box(app).text == paste and not box(app).read_only and pane(app).generation is None
        await pilot.press("enter")  # again: the same question
        await until(pilot, lambda: isinstance(app.screen, FitScreen))
        await pilot.press("r")  # raise: the chat's num_ctx, the model loaded again with it
        await until(pilot, lambda: pane(app).chat is not None and pane(app).generation is None)
        await until(pilot, lambda: views(app)[-1].status == "complete")
        assert pane(app).chat.parameters["num_ctx"] == misfit.raise_to
        user, reply = stored(app)
        assert user.content == paste and reply.status == "complete" and box(app).text == ""
        assert reply.stats and reply.stats["context"] == misfit.raise_to


@sync
async def test_old_turns_left_out_are_asked_about_once_and_trimming_says_how_many(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from tui.screens.fit import FitScreen

    small_context(config)
    turns = [
        (role, f"turn {i}: " + "words and more words " * 4)
        for i in range(6)
        for role in ("user", "assistant")
    ]
    [chat_id] = seeded(tmp_path / "chats.db", ("Long", turns))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        pane(app).open_chat(chat_id)
        await enter(app, pilot, "and now?")
        await until(pilot, lambda: isinstance(app.screen, FitScreen))
        misfit = app.screen.misfit
        assert misfit.drop > 0 and misfit.raise_to is not None
        await pilot.press("t")
        await until(pilot, lambda: pane(app).generation is None and views(app)[-1].status == "complete")
        assert any(f"without the {misfit.drop} oldest messages" in n.message for n in app._notifications)
        reply = stored(app)[-1]
        assert reply.stats and reply.stats["dropped_messages"] == misfit.drop
        assert f"{misfit.drop} oldest messages left out" in (views(app)[-1].stats or "")
        await send(app, pilot, "and then?")  # trimming already: sent without asking again
        assert not isinstance(app.screen, FitScreen) and stored(app)[-1].status == "complete"
        assert [m.content for m in stored(app) if m.role == "user"][-2:] == ["and now?", "and then?"]


def test_a_raised_context_holds_the_chat_and_a_reply_within_the_trained_size() -> None:
    assert fitting_context(300, 2048) == 1024  # 300 + 256 for the reply, rounded up to 512s
    assert fitting_context(1700, 2048) == 2048
    assert fitting_context(1500, 1800) == 1800  # the trained size, not past it, still holds it
    assert fitting_context(1800, 2048) is None  # not with room for a reply
    assert fitting_context(40_000, 0) == 40_448  # trained size not known: not capped
    assert fitting_context(None, 2048) is None  # far past anything: no offer


def test_the_gauge_figures_read_at_a_glance() -> None:
    from rich.text import Text

    assert [compact(n) for n in (86, 999, 4096, 32_901, 131_072)] == ["86", "999", "4.1k", "32.9k", "131k"]
    assert context_text(86, 4096) == "ctx 86 / 4.1k" and context_text(86, None) == "ctx 86"
    line = right_aligned(Text("a long title that will not fit"), Text("ctx 86 / 4.1k"), 30)
    assert line.cell_len == 30 and str(line).endswith("ctx 86 / 4.1k") and "…" in str(line)


def test_a_short_header_cuts_the_title_then_the_figures_never_the_model_or_the_context() -> None:
    from rich.text import Text

    left = Text("model  loaded  · system prompt  · a long chat title")
    at = (len("model  loaded"), len("model  loaded  · system prompt"))
    gauge = [Text("ctx 86 / 4.1k"), Text("12 MB"), Text("3.1 tok/s")]
    wide = str(fit_line(left, at, gauge, 90))
    assert wide.startswith(str(left)) and wide.endswith("ctx 86 / 4.1k · 12 MB · 3.1 tok/s")
    assert str(fit_line(left, at, gauge, 60)).endswith("a long cha…  ctx 86 / 4.1k")  # the title is cut
    assert str(fit_line(left, at, gauge, 50)).endswith("system prompt" + " " * 7 + "ctx 86 / 4.1k")
    assert str(fit_line(left, at, gauge, 40)) == "model  loaded" + " " * 14 + "ctx 86 / 4.1k"
    assert str(fit_line(left, at, gauge, 20)) == "model  loaded"  # the gauge goes last
    assert all(fit_line(left, at, gauge, w).cell_len == w for w in (90, 60, 50, 40))
