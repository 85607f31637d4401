"""The key model under Pilot: readline's keys in the message box, a shell's history, the mode in the box's
border, Esc that only leaves, ctrl+c and s that stop, Tab that never turns typing into commands, q that
asks while a reply streams. (Drafts: tests/test_tui_drafts.py.)"""

from __future__ import annotations

from pathlib import Path

from tests.support.chat_app import (
    TINY,
    RecordingEngine,
    last_status,
    make_app,
    pane,
    ready,
    seeded,
    stored,
    sync,
    until,
)


def box(app):
    from tui.widgets.chat_input import ChatInput

    return app.query_one(ChatInput)


async def typed(app, pilot, text: str) -> None:
    """``text`` typed key by key into the focused widget."""
    await pilot.press(*["space" if c == " " else c for c in text])


async def as_terminal(app, pilot, key: str, character: str | None) -> None:
    """A key as a terminal sends it: alt+letter arrives with the letter as its character."""
    from textual import events

    event = events.Key(key, character)
    event.set_sender(app)
    app._driver.send_message(event)
    await pilot.pause()


def long_replies(config: Path, engine: RecordingEngine) -> None:
    """Replies of 193 tokens, paced: one streams while the test presses keys (before the app starts)."""
    config.write_text("[parameters]\nnum_predict = 400\nseed = 6\n", encoding="utf-8")
    engine.delay = 0.05


async def streaming(app, pilot) -> None:
    """Send a message from the box: its reply streams (``long_replies``)."""
    box(app).load_text("Tell me a long story")
    await pilot.press("enter")
    await until(pilot, lambda: pane(app).generation is not None and len(pane(app).generation.text) >= 2)


# --- readline ------------------------------------------------------------------------------------


@sync
async def test_readline_moves_by_line_and_word(engine: RecordingEngine, tmp_path: Path, config: Path) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await typed(app, pilot, "  hello big-world")
        b = box(app)
        await pilot.press("ctrl+a")
        assert b.cursor_location == (0, 0)  # the line's start, not its first non-blank
        await pilot.press("ctrl+e")
        assert b.cursor_location == (0, 17)
        await pilot.press("alt+b")
        assert b.cursor_location == (0, 12)  # "world"
        await pilot.press("alt+b", "alt+b")
        assert b.cursor_location == (0, 2)  # "hello"
        await pilot.press("alt+f")
        assert b.cursor_location == (0, 7)  # after "hello"
        await pilot.press("ctrl+f", "ctrl+f", "ctrl+b")
        assert b.cursor_location == (0, 8)
        await as_terminal(app, pilot, "ctrl+left", None)  # alt+b as a terminal sends it (ESC b)
        assert b.cursor_location == (0, 2)
        await as_terminal(app, pilot, "alt+f", "f")  # a letter with it: moves, types nothing
        assert b.cursor_location == (0, 7) and b.text == "  hello big-world"


@sync
async def test_ctrl_e_is_end_of_line_and_never_brings_back_a_sent_message(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    seeded(tmp_path / "chats.db", ("Earlier", [("user", "the previous message"), ("assistant", "ok")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        await typed(app, pilot, "a draft")
        await pilot.press("ctrl+a", "ctrl+e", "ctrl+e")
        assert box(app).text == "a draft" and box(app).cursor_location == (0, 7)
        assert pane(app).editing is None and "Editing" not in str(box(app).border_title)
        await pilot.press("escape")  # and esc leaves with it: nothing emptied
        assert box(app).text == "a draft" and app.focused is not box(app)


@sync
async def test_kills_join_and_yank_back(engine: RecordingEngine, tmp_path: Path, config: Path) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        b = box(app)
        await typed(app, pilot, "one two three")
        await pilot.press("ctrl+w")
        assert b.text == "one two "
        await pilot.press("ctrl+w")  # a kill in a row joins the one before
        assert b.text == "one "
        await pilot.press("ctrl+y")
        assert b.text == "one two three"
        await pilot.press("ctrl+a", "alt+d")
        assert b.text == " two three"
        await pilot.press("ctrl+k")
        assert b.text == ""
        await pilot.press("ctrl+y")
        assert b.text == "one two three"  # alt+d then ctrl+k: one kill, "one" + " two three"
        await pilot.press("ctrl+u")
        assert b.text == ""
        await pilot.press("ctrl+y", "alt+y")  # alt+y after a yank: the kill before ...
        assert b.text == "one two three"  # (ctrl+u's kill and the one before it are alike)
        await pilot.press("alt+y")
        assert b.text == "two three"  # ... and the one before that
        await pilot.press("ctrl+a", "alt+f", "ctrl+t")
        assert b.text == "tw othree"  # swaps the characters around the cursor
        await as_terminal(app, pilot, "alt+y", "y")  # only right after a yank; and no "y" typed
        assert b.text == "tw othree"


@sync
async def test_kill_line_in_a_box_of_several_lines(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        b = box(app)
        b.load_text("first\nsecond\nthird")
        b.move_cursor((1, 3))
        await pilot.press("ctrl+k")
        assert b.text == "first\nsec\nthird"
        await pilot.press("ctrl+k")  # at the end of a line: the line break goes
        assert b.text == "first\nsecthird"
        await pilot.press("ctrl+u")
        assert b.text == "first\nthird"
        await pilot.press("ctrl+u")  # at the start of a line: the break before it
        assert b.text == "firstthird" and b.cursor_location == (0, 5)
        await pilot.press("ctrl+y")  # the four kills in a row were one, in the order of the text
        assert b.text == "first\nsecond\nthird" and b.cursor_location == (2, 0)
        await pilot.press("ctrl+d", "ctrl+h")
        assert b.text == "first\nsecondhird"


# --- history of sent messages ---------------------------------------------------------------------


@sync
async def test_up_and_down_walk_sent_messages_and_bring_the_draft_back(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    seeded(
        tmp_path / "chats.db",
        ("A", [("user", "oldest"), ("assistant", "r")]),
        ("B", [("user", "middle\nof two lines"), ("assistant", "r"), ("user", "newest")]),
    )
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        b = box(app)
        await typed(app, pilot, "my draft")
        await pilot.press("up")
        assert b.text == "newest" and b.cursor_location == (0, 6)
        await pilot.press("up")
        assert b.text == "middle\nof two lines" and b.cursor_location == (0, 6)  # on its first line
        await pilot.press("up", "up", "up")
        assert b.text == "oldest"  # the oldest: up goes no further
        await pilot.press("ctrl+e", "backspace", "backspace", "backspace")  # changes to it are kept
        await pilot.press("down")
        assert b.text == "middle\nof two lines" and b.cursor_location == (1, 12)  # on its last line
        await pilot.press("up")  # the cursor moves within the message first
        assert b.cursor_location[0] == 0 and b.text == "middle\nof two lines"
        await pilot.press("up")
        assert b.text == "old"
        await pilot.press("down", "down", "down", "down")
        assert b.text == "my draft"  # down past the newest: the draft, as it was
        assert pane(app).generation is None and len(stored(app)) == 3  # nothing was sent


@sync
async def test_a_sent_message_joins_the_history(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await typed(app, pilot, "hello")
        await pilot.press("enter")
        await until(pilot, lambda: pane(app).generation is None and last_status(app) == "complete")
        assert box(app).text == ""
        await pilot.press("up")
        assert box(app).text == "hello"
        await pilot.press("enter")  # sent again from the history, as a shell runs it
        await until(pilot, lambda: len(stored(app)) == 4 and pane(app).generation is None)
        assert [m.content for m in stored(app) if m.role == "user"] == ["hello", "hello"]


# --- modes: typing in the box, commands outside it ------------------------------------------------


@sync
async def test_the_border_says_typing_or_commands(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        b = box(app)
        assert app.focused is b and "typing" in str(b.border_title) and "esc" in str(b.border_subtitle)
        await pilot.press("escape")
        assert app.focused is not b and "commands" in str(b.border_title) and b.has_class("-commands")
        await pilot.press("i")
        assert app.focused is b and "typing" in str(b.border_title) and b.text == ""
        await pilot.press("escape", "enter")  # enter outside the box comes back to it too
        assert app.focused is b and b.text == ""


@sync
async def test_tab_in_the_box_keeps_a_sentence_as_text(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        theme = app.theme
        await typed(app, pilot, "hi")
        await pilot.press("tab")
        await typed(app, pilot, "the quick test: 1 2 3 4 q t")
        await pilot.press("shift+tab")
        await typed(app, pilot, "quit")
        assert box(app).text == "hi  the quick test: 1 2 3 4 q tquit"
        assert app.is_running and app.theme == theme and app.focused is box(app)
        assert app.query_one("#tabs").active == "tab-chat"


@sync
async def test_escape_leaves_the_list_and_the_search_never_into_the_box(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import OptionList

    from tui.widgets.chat_log import ChatLog

    seeded(tmp_path / "chats.db", ("Apples", [("user", "red")]), ("Pears", [("user", "green")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "escape", "slash", *"zzz")
        listing = app.query_one("#chat-list", OptionList)
        assert listing.option_count == 0
        await pilot.press("escape")  # leaves the search: cleared, the list whole again
        assert app.focused is listing and app.query_one("#chat-search").value == ""
        assert listing.option_count == 2
        await pilot.press("escape")
        assert app.focused is app.query_one(ChatLog)  # commands, not typing
        await pilot.press("1")
        assert app.query_one("#tabs").active == "tab-models" and box(app).text == ""


# --- stopping a reply, quitting ------------------------------------------------------------------


@sync
async def test_escape_never_stops_a_reply_ctrl_c_and_s_do(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    long_replies(config, engine)
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        assert app.screen.active_bindings["ctrl+c"].binding.action == "copy"  # nothing streams: it copies
        await streaming(app, pilot)
        stop = app.screen.active_bindings["ctrl+c"]
        assert stop.binding.action == "stop_reply" and stop.binding.show  # in the footer now
        await pilot.press("escape", "2")  # esc, then 2 for Sessions: the reply goes on
        assert app.query_one("#tabs").active == "tab-sessions" and pane(app).generation is not None
        await pilot.press("ctrl+c")  # from another tab too
        await until(pilot, lambda: pane(app).generation is None and pane(app)._saving is None)
        assert stored(app)[-1].status == "stopped"
        assert app.screen.active_bindings["ctrl+c"].binding.action != "stop_reply"
        await pilot.press("3", "ctrl+n")  # a new chat: the same long reply
        await streaming(app, pilot)
        await pilot.press("s")  # in the box: a letter
        assert pane(app).generation is not None and box(app).text == "s"
        await pilot.press("escape", "s")  # outside it: stop
        await until(pilot, lambda: pane(app).generation is None and pane(app)._saving is None)
        assert stored(app)[-1].status == "stopped"
        await pilot.press("s")  # nothing streams: s does nothing, says nothing
        assert app.is_running


@sync
async def test_q_asks_before_quitting_while_a_reply_streams(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from tui.chatstore import ChatStore
    from tui.screens.confirm import ConfirmScreen

    long_replies(config, engine)
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await streaming(app, pilot)
        await pilot.press("escape", "q")
        assert isinstance(app.screen, ConfirmScreen)
        assert "reply is streaming" in str(app.screen.question)
        await pilot.press("q", "ctrl+q")  # asked once; only y answers yes
        assert isinstance(app.screen, ConfirmScreen) and len(app.screen_stack) == 2
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen) and app.is_running
        assert pane(app).generation is not None  # asking stopped nothing
        await pilot.press("ctrl+q", "y")
    assert app.return_code == 0
    with ChatStore.open(tmp_path / "chats.db") as store:
        [chat] = store.conversations()
        assert store.messages(chat.id)[-1].status == "interrupted"  # kept as far as it came
