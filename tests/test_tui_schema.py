"""A chat's reply format in the Chat tab: set in the settings dialog, checked there, sent, kept."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.support.chat_app import (
    TINY,
    RecordingEngine,
    make_app,
    pane,
    ready,
    send,
    stored,
    sync,
    until,
)
from tui.widgets.chat_format_setting import format_text, header_label, parse_format

SCHEMA = {
    "title": "verdict",
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "mood": {"enum": ["calm", "busy"]}},
    "required": ["ok", "mood"],
    "additionalProperties": False,
}


async def open_settings(app, pilot):  # type: ignore[no-untyped-def]
    from tui.screens.chat_settings import ChatSettingsScreen

    await pilot.press("escape", "ctrl+s")
    await until(pilot, lambda: isinstance(app.screen, ChatSettingsScreen))
    return app.screen


async def save(app, pilot) -> str:  # type: ignore[no-untyped-def]
    """Press save; the dialog's error line ("" when it closed)."""
    from tui.screens.chat_settings import ChatSettingsScreen

    screen = app.screen
    error = screen.query_one("#error")
    error.update("")
    await pilot.press("ctrl+s")  # the engine checks a schema in a thread: wait for its verdict
    await until(pilot, lambda: app.screen is not screen or str(error.render()).strip())
    await pilot.pause()
    return str(error.render()) if isinstance(app.screen, ChatSettingsScreen) else ""


def test_the_field_reads_free_text_json_and_schemas() -> None:
    assert parse_format("  ") == (None, None)
    assert parse_format("JSON") == ("json", None)
    assert parse_format(json.dumps(SCHEMA)) == (SCHEMA, None)
    assert "not JSON" in str(parse_format("{oops")[1])
    assert "is an object" in str(parse_format("[1, 2]")[1])
    assert parse_format(format_text(SCHEMA)) == (SCHEMA, None)
    assert (header_label(None), header_label("json"), header_label(SCHEMA)) == (
        "",
        "reply: JSON",
        "reply: schema verdict",
    )


@sync
async def test_a_schema_set_in_the_dialog_shapes_the_reply_and_survives_reopening(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import TextArea

    from tui.widgets.chat_header import ChatHeader

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(160, 30)) as pilot:  # the header has room for the format beside the gauge
        await ready(app, pilot)
        screen = await open_settings(app, pilot)
        screen.query_one("#format", TextArea).load_text(json.dumps(SCHEMA))
        screen.query_one("#p-num_predict").value = "1500"  # the grammar ends the reply, not the limit
        assert await save(app, pilot) == ""
        assert "reply: schema verdict" in str(app.query_one(ChatHeader).render())
        await send(app, pilot, "How is it going?")
        assert engine.calls[-1]["format"] == SCHEMA
        reply = stored(app)[-1]
        assert reply.status == "complete"
        jsonschema.validate(json.loads(reply.content), SCHEMA)
        chat_id = pane(app).chat.id
        assert app.chat_store.get(chat_id).format == SCHEMA

    again = make_app(engine, tmp_path, config, chat_model=TINY)
    async with again.run_test(size=(160, 30)) as pilot:
        await ready(again, pilot)
        pane(again).open_chat(chat_id)
        await pilot.pause()
        assert pane(again).reply_format == SCHEMA
        screen = await open_settings(again, pilot)
        assert parse_format(screen.query_one("#format", TextArea).text) == (SCHEMA, None)
        screen.query_one("#format", TextArea).load_text("json")
        assert await save(again, pilot) == ""
        assert again.chat_store.get(chat_id).format == "json"
        assert "reply: JSON" in str(again.query_one(ChatHeader).render())


@sync
async def test_a_bad_schema_is_refused_in_the_dialog_with_a_clear_message(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import TextArea

    from tui.screens.chat_settings import ChatSettingsScreen

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        screen = await open_settings(app, pilot)
        field = screen.query_one("#format", TextArea)
        field.load_text('{"type": "object",')
        assert "Reply format: not JSON" in await save(app, pilot)
        field.load_text('{"type": "string", "pattern": "^a+$"}')
        error = await save(app, pilot)
        assert "Reply format: pattern (regular expressions) at" in error and "cannot be enforced" in error
        assert isinstance(app.screen, ChatSettingsScreen) and "\n" not in error.strip()
        field.load_text("")
        assert await save(app, pilot) == ""
        assert pane(app).reply_format is None
