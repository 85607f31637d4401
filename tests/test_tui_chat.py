"""The Chat tab driven by Pilot over the real engine: sending, streaming, stopping, editing, what is drawn."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Engine
from tests.support.chat_app import (
    TINY,
    RecordingEngine,
    last_status,
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
from tui.chatstore import ChatStore
from tui.tables import printable


@sync
async def test_send_streams_a_reply_saved_complete_with_stats(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "Hello there\nsecond line")
        user, reply = stored(app)
        assert (user.role, user.content, user.status) == ("user", "Hello there\nsecond line", "complete")
        assert reply.role == "assistant" and reply.status == "complete"
        assert (
            reply.stats and 0 < reply.stats["completion_tokens"] <= 6 and reply.stats["tokens_per_second"] > 0
        )
        seen = views(app)
        assert [v.role for v in seen] == ["user", "assistant"]
        assert seen[1].content == printable(reply.content) and "tok/s" in (seen[1].stats or "")
        assert "first token" in (seen[1].stats or "") and "tokens" in (seen[1].stats or "")
        [call] = engine.calls
        chat = pane(app).chat
        assert call["conversation"] == str(chat.id) and call["reference"] == TINY
        assert call["options"]["num_predict"] == 6
        assert [m["role"] for m in call["messages"]] == ["user"]
        assert chat.title == "Hello there"  # from the first message
        await send(app, pilot, "And a follow-up")
        assert [m.role for m in stored(app)] == ["user", "assistant", "user", "assistant"]
        assert [m["role"] for m in engine.calls[1]["messages"]] == ["user", "assistant", "user"]
        assert engine.calls[1]["conversation"] == str(chat.id)


@sync
async def test_shift_enter_and_ctrl_j_write_a_new_line(engine: Engine, tmp_path: Path, config: Path) -> None:
    from tui.widgets.chat_input import ChatInput

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("a", "ctrl+j", "b", "shift+enter", "c")
        assert app.query_one(ChatInput).text == "a\nb\nc"
        assert pane(app).generation is None and pane(app).chat is None  # nothing sent


@sync
async def test_ctrl_c_stops_the_reply_and_keeps_the_part_that_came(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    config.write_text("[parameters]\nnum_predict = 400\nseed = 6\n", encoding="utf-8")  # 193 tokens
    engine.delay = 0.03
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        from tui.widgets.chat_input import ChatInput

        app.query_one(ChatInput).load_text("Tell me a long story")
        await pilot.press("enter")
        await until(pilot, lambda: pane(app).generation is not None and len(pane(app).generation.text) >= 3)
        footer = [key.key for key in app.query("FooterKey")]  # type: ignore[attr-defined]
        assert footer[0] == "ctrl+c"  # the stop key leads the footer while the reply streams
        await pilot.press("ctrl+c")
        await until(pilot, lambda: pane(app).generation is None and pane(app)._saving is None)
        await until(pilot, lambda: last_status(app) == "stopped")
        user, reply = stored(app)
        assert reply.status == "stopped" and reply.content
        assert views(app)[-1].content == printable(reply.content)  # the tiny model emits control characters


@sync
async def test_a_long_reply_is_saved_while_it_streams(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    config.write_text("[parameters]\nnum_predict = 400\nseed = 2\n", encoding="utf-8")  # 167 tokens
    engine.delay = 0.03
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        from tui.widgets.chat_input import ChatInput

        app.query_one(ChatInput).load_text("Go on")
        await pilot.press("enter")
        await until(pilot, lambda: pane(app).generation is not None and pane(app).generation.reply_id > 0)
        reply_id = pane(app).generation.reply_id  # counted and sent: its reply row exists
        await until(pilot, lambda: bool(next(m for m in stored(app) if m.id == reply_id).content))
        assert next(m for m in stored(app) if m.id == reply_id).status == "streaming"
    # the app closed mid-reply: kept as far as it got, marked interrupted
    with ChatStore.open(tmp_path / "chats.db") as store:
        [chat] = store.conversations()
        reply = store.messages(chat.id)[-1]
        assert reply.status == "interrupted" and reply.content


@sync
async def test_regenerate_replaces_the_last_reply(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "Hi")
        first = stored(app)[1]
        await pilot.press("ctrl+r")
        await until(pilot, lambda: len(engine.calls) == 2 and pane(app).generation is None)
        await until(pilot, lambda: last_status(app) == "complete")
        user, reply = stored(app)
        assert user.content == "Hi" and reply.id != first.id and reply.status == "complete"
        assert [v.role for v in views(app)] == ["user", "assistant"]
        assert [m["role"] for m in engine.calls[1]["messages"]] == ["user"]


@sync
async def test_edit_and_resend_the_last_message(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from tui.widgets.chat_input import ChatInput

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "first")
        await send(app, pilot, "secnod")
        await pilot.press("escape", "e")  # e, outside the box
        box = app.query_one(ChatInput)
        assert box.text == "secnod" and pane(app).editing is not None and app.focused is box
        box.load_text("second")
        await pilot.press("enter")
        await until(pilot, lambda: len(engine.calls) == 3 and pane(app).generation is None)
        await until(pilot, lambda: last_status(app) == "complete")
        messages = stored(app)
        assert [(m.role, m.content) for m in messages if m.role == "user"] == [
            ("user", "first"),
            ("user", "second"),
        ]
        assert len(messages) == 4 and pane(app).editing is None
        assert [v.role for v in views(app)] == ["user", "assistant", "user", "assistant"]
        # esc leaves an edit without changing anything
        await pilot.press("escape", "e", "escape")
        assert pane(app).editing is None and box.text == "" and len(stored(app)) == 4
        # an edit left for another chat does not follow: its text is not sent there
        await pilot.press("escape", "e")
        assert box.text == "second"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert pane(app).editing is None and box.text == ""


@sync
async def test_a_chat_deleted_in_another_window_starts_a_new_chat_on_send(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from tui.chatstore import ChatStore

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "first")
        await until(pilot, lambda: pane(app).generation is None and pane(app)._saving is None)
        gone = pane(app).chat
        assert gone is not None
        with ChatStore.open(app.chat_store.path) as other:  # the other window
            other.delete(gone.id)
        await send(app, pilot, "still here?")
        await pilot.pause()
        assert pane(app).chat is None  # a draft with the old chat's settings, the text kept
        assert pane(app).draft.model == gone.model
        assert any("deleted in another window" in n.message for n in app._notifications)
        await send(app, pilot, "still here?")
        await until(pilot, lambda: pane(app).generation is None and pane(app).chat is not None)
        assert [m.content for m in stored(app) if m.role == "user"] == ["still here?"]


@sync
async def test_a_model_error_is_an_error_message_not_a_crash(
    engine: Engine, tmp_path: Path, config: Path
) -> None:
    """A send that fails before it went (no such model) leaves no message behind: the text stays."""
    from tui.widgets.chat_input import ChatInput

    app = make_app(engine, tmp_path, config, chat_model="no-such-model:latest")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "Hello?")
        assert pane(app).chat is None and app.chat_store.conversations() == []  # nothing kept
        assert app.query_one(ChatInput).text == "Hello?" and not app.query_one(ChatInput).read_only
        seen = views(app)
        assert [v.role for v in seen] == ["error"]  # said, not kept
        assert "no-such-model" in seen[-1].content
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors and "no-such-model" in errors[0].message
        assert app.is_running


@sync
async def test_terminal_controls_in_chats_are_shown_as_text(
    engine: Engine, tmp_path: Path, config: Path
) -> None:
    hostile = "see \x1b]0;pwned\x07 and \x1b[31m[bold]red[/bold]"
    [chat_id] = seeded(tmp_path / "chats.db", ("t", [("user", hostile), ("assistant", hostile)]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        await pilot.pause()
        for view in views(app):
            assert "\x1b" not in view.content and "\x07" not in view.content
            assert "\\x1b]0;pwned\\x07" in view.content and "[bold]red[/bold]" in view.content
        assert [m.content for m in app.chat_store.messages(chat_id)] == [hostile, hostile]  # kept verbatim


def test_a_huge_stored_message_is_drawn_cut_with_a_note() -> None:
    from tui.widgets.chat_format import SHOWN_LIMIT, shown_message

    text = "x" * (SHOWN_LIMIT + 5000)
    drawn = shown_message(text)
    assert drawn.startswith("x" * SHOWN_LIMIT) and "5,000 more characters" in drawn
    assert shown_message("short \x1b[2J") == "short \\x1b[2J"


@sync
async def test_the_footer_shows_the_palette_key_only_where_the_keys_leave_room(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from tui.widgets.fitting_footer import key_width

    config.write_text("[parameters]\nnum_predict = 400\nseed = 6\n", encoding="utf-8")
    engine.delay = 0.03
    app = make_app(engine, tmp_path, config, chat_model=TINY)

    def footer() -> tuple[int, bool]:
        keys = list(app.query("FooterKey"))
        return sum(map(key_width, keys)), any(k.has_class("-command-palette") for k in keys)

    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await until(pilot, lambda: footer()[1])  # the box's few keys and the palette's fit in 80
        pane(app).send("Tell me a long story")
        await until(pilot, lambda: pane(app).generation is not None and len(pane(app).generation.text) >= 3)
        await pilot.press("escape")  # outside the box: the chat's keys, and the stop key, fill the row
        await until(pilot, lambda: not footer()[1])
        await pilot.press("ctrl+c")
        await until(pilot, lambda: pane(app).generation is None)
        await until(pilot, lambda: footer()[1])  # no stop key: room for the palette's again


@sync
async def test_every_chat_action_has_a_key_and_a_palette_entry(
    engine: Engine, tmp_path: Path, config: Path
) -> None:
    from tui.app import CHAT_COMMANDS
    from tui.widgets.chat_pane import ChatPane

    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.pause()
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {t for _, t, _ in CHAT_COMMANDS} <= titles and "Show Chat" in titles
        bound = {b.action for b in ChatPane.BINDINGS}  # type: ignore[union-attr]
        assert {a for a, _, _ in CHAT_COMMANDS} - {"stop"} <= bound
        help_text = " ".join(f"{k} {d}" for _, keys in app.help_sections() for k, d in keys)
        for word in ("Send", "New line", "Regen", "Edit", "Copy code", "Export", "Rename", "Delete chat"):
            assert word in help_text


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
@sync
async def test_screenshots_of_the_chat_tab(
    engine: Engine, tmp_path: Path, config: Path, size: tuple[int, int]
) -> None:
    """SVGs to look at: in $LLAMADECK_SCREENSHOTS when set, else in the test's temp dir."""
    import os

    shots = Path(os.environ.get("LLAMADECK_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    reply = (
        "Sure. **Sorting** a dict by value:\n\n```python\n"
        "by_value = sorted(d.items(), key=lambda kv: kv[1])\n"
        "print(by_value)\n```\n\n- `sorted` returns a list\n- use `reverse=True` for descending\n"
    )
    seeded(
        tmp_path / "chats.db",
        ("Rust lifetimes", [("user", "explain lifetimes"), ("assistant", "They are scopes.")]),
        (
            "Sort a dict by value",
            [("user", "How do I sort a dict by value? [bold]x[/bold]"), ("assistant", reply)],
        ),
    )
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        await send(app, pilot, "And in reverse?")
        name = f"{size[0]}x{size[1]}"
        assert Path(app.save_screenshot(f"chat-conversation-{name}.svg", str(shots))).stat().st_size > 1000
        await pilot.press("ctrl+b")
        await pilot.pause()
        app.save_screenshot(f"chat-list-toggled-{name}.svg", str(shots))
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
        app.save_screenshot(f"chat-settings-{name}.svg", str(shots))
        await pilot.press("escape", "escape", "m")
        await pilot.pause(0.3)
        app.save_screenshot(f"chat-model-picker-{name}.svg", str(shots))
