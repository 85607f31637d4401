"""Opening the chat that is already shown while its message is being sent never drops the message.

Found by the suite on a loaded machine: a test opened a chat, pressed Enter, and
the opening (which reads the history on its own thread) finished after the
message had started its count against the context; opening the same chat again
left and re-entered it, which cancels a count in flight, so the message was
never sent. A user re-selecting the open chat in the list just as they press
Enter would have seen the same. Here the reopening is asked for right after
Enter, on a model not loaded yet (the count loads it), so under the old code
the reopening lands inside the count.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.chat_app import RecordingEngine, make_app, pane, ready, seeded, stored, sync, until, views


@sync
async def test_reopening_the_shown_chat_while_its_message_is_counted_keeps_the_message(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from tui.widgets.chat_input import ChatInput

    [chat_id] = seeded(tmp_path / "chats.db", ("kept", [("user", "hello"), ("assistant", "hi")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        pane(app).open_chat(chat_id)
        await until(pilot, lambda: pane(app).chat is not None and len(views(app)) == 2)
        box = app.query_one(ChatInput)
        box.focus()
        box.load_text("And then?")
        await pilot.press("enter")
        pane(app).open_chat(chat_id)  # the same chat, as a click on it in the list would
        await until(pilot, lambda: len(stored(app)) == 4 and pane(app).generation is None)
        await until(pilot, lambda: pane(app)._saving is None)
        user, reply = stored(app)[2:]
        assert (user.role, user.content) == ("user", "And then?")
        assert reply.role == "assistant" and reply.status == "complete"
        assert box.text == ""  # sent, not left in the box
