"""Images in the Chat tab: attached by key, by a pasted path or a typed one, sent to a model that can see,
kept in the history and drawn as thumbnails on reopening; refused in one line where they cannot go."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual import events

from tests.support.chat_app import (
    RecordingEngine,
    make_app,
    pane,
    ready,
    recording_engine,
    send,
    short_replies,
    stored,
    sync,
    tiny_file,
    until,
    views,
)
from tests.support.images import image_bytes
from tests.support.tiny_mmproj import write_tiny_mmproj

PNG = image_bytes("PNG", (28, 28), (250, 10, 10))


@pytest.fixture
def engine(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RecordingEngine]:
    with recording_engine(tmp_path_factory, tmp_path, monkeypatch) as engine:
        projector = write_tiny_mmproj(tmp_path / "mmproj-Tiny-F16.gguf")
        model = tiny_file(tmp_path_factory)
        engine.create("eyes", f"FROM {model}\nFROM {projector}\n")
        engine.create("blind", f"FROM {model}\n")
        yield engine


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return short_replies(tmp_path)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(PNG)
    return path


def bar_text(app) -> str:
    from tui.widgets.chat_attach import AttachmentsBar

    bar = app.query_one(AttachmentsBar)
    return str(bar.render()) if bar.display else ""


async def attach_by_key(app, pilot, path: Path) -> None:
    from tui.screens.image_path import ImagePathScreen

    await pilot.press("ctrl+g")
    await until(pilot, lambda: isinstance(app.screen, ImagePathScreen))
    await pilot.press(*str(path), "enter")
    await until(pilot, lambda: not isinstance(app.screen, ImagePathScreen))


@sync
async def test_an_image_attached_by_key_goes_to_a_model_that_sees_and_comes_back_as_a_thumbnail(
    engine: RecordingEngine, tmp_path: Path, config: Path, photo: Path
) -> None:
    from tui.widgets.image_thumbs import ImageThumbs

    app = make_app(engine, tmp_path, config, chat_model="eyes")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await attach_by_key(app, pilot, photo)
        await until(pilot, lambda: "photo.png" in bar_text(app))
        assert "alt+g" in bar_text(app)
        await send(app, pilot, "what is in it?")
        asked = engine.calls[-1]["messages"][-1]
        assert asked["content"] == "what is in it?" and asked["images"] == [PNG]
        user, reply = stored(app)
        assert [(i.name, i.data) for i in user.images] == [("photo.png", PNG)]
        assert reply.status == "complete" and reply.content
        assert bar_text(app) == ""  # sent with the message
        assert len(views(app)[0].query(ImageThumbs)) == 1
        await pilot.press("escape", "ctrl+r")  # regenerate: the image goes again
        await until(pilot, lambda: len(engine.calls) == 2)
        await until(pilot, lambda: pane(app).generation is None and pane(app)._saving is None)
        assert engine.calls[-1]["messages"][-1]["images"] == [PNG]
    again = make_app(engine, tmp_path, config)
    async with again.run_test(size=(120, 40)) as pilot:
        await ready(again, pilot)
        await until(pilot, lambda: len(views(again)) >= 2)
        (thumbs,) = views(again)[0].query(ImageThumbs)
        assert [i.name for i in thumbs.images] == ["photo.png"]


@sync
async def test_a_pasted_image_path_is_attached_and_alt_g_takes_it_off(
    engine: RecordingEngine, tmp_path: Path, config: Path, photo: Path
) -> None:
    from tui.widgets.chat_input import ChatInput

    app = make_app(engine, tmp_path, config, chat_model="eyes")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        box = app.query_one(ChatInput)
        box.focus()
        await pilot.press(*"look")
        app.post_message(events.Paste(str(photo)))
        await until(pilot, lambda: "photo.png" in bar_text(app))
        assert box.text == "look"  # the path became an attachment, not text
        await pilot.press("alt+g")
        await until(pilot, lambda: bar_text(app) == "")
        assert box.text == "look" and pane(app).attachments == []
        app.post_message(events.Paste(" and see"))  # any other paste is text, once (as a terminal sends it)
        await until(pilot, lambda: box.text != "look")
        assert box.text == "look and see"


@sync
async def test_a_typed_image_path_leaves_the_message_and_goes_as_its_image(
    engine: RecordingEngine, tmp_path: Path, config: Path, photo: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model="eyes")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        pane(app).sees["eyes"] = True  # known, as after the first attachment
        await send(app, pilot, f"what is in {photo}")
        await until(pilot, lambda: bool(engine.calls))
        await until(pilot, lambda: pane(app).generation is None and pane(app)._saving is None)
        asked = engine.calls[-1]["messages"][-1]
        assert (asked["content"], asked["images"]) == ("what is in", [PNG])


@sync
async def test_a_model_without_vision_refuses_in_one_line_and_nothing_is_lost(
    engine: RecordingEngine, tmp_path: Path, config: Path, photo: Path
) -> None:
    from tui.widgets.chat_input import ChatInput

    app = make_app(engine, tmp_path, config, chat_model="blind")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        box = app.query_one(ChatInput)
        box.focus()
        await pilot.press(*"my draft")
        await attach_by_key(app, pilot, photo)
        await until(pilot, lambda: any("cannot see images" in n.message for n in app._notifications))
        assert bar_text(app) == "" and box.text == "my draft"
        app.post_message(events.Paste(str(photo)))  # a paste on a text-only model is text
        await until(pilot, lambda: str(photo) in box.text)
        assert box.text == f"my draft{photo}" and bar_text(app) == ""


@sync
async def test_what_is_not_an_image_is_said_in_one_line_and_nothing_is_attached(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    app = make_app(engine, tmp_path, config, chat_model="eyes")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await attach_by_key(app, pilot, tmp_path / "fake.png")
        await until(pilot, lambda: any("fake.png" in n.message for n in app._notifications))
        await attach_by_key(app, pilot, tmp_path / "missing.png")
        await until(pilot, lambda: any("cannot read" in n.message for n in app._notifications))
        assert bar_text(app) == "" and all("\n" not in n.message for n in app._notifications)


@sync
async def test_a_message_with_an_image_at_80x24_matches_its_snapshot(
    engine: RecordingEngine, tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half blocks (what a terminal without an image protocol gets, and every test): the same each run."""
    from tests.test_tui_snapshots import compare, hold_cursors_still, normalise
    from tui.chatstore import ChatStore, image
    from tui.widgets.image_thumbs import ImageThumbs

    clock = iter(f"2026-03-14T11:{m:02d}:00.000000+00:00" for m in range(50))
    monkeypatch.setattr("tui.chatstore.history._now", lambda: next(clock))
    picture = image_bytes("PNG", (40, 32), (40, 160, 220))
    with ChatStore.open(tmp_path / "chats.db") as store:
        chat = store.create("eyes", title="What is in this picture?")
        store.add_message(chat.id, "user", "What is in this picture?", images=[image("sky.png", picture)])
        store.add_message(chat.id, "assistant", "A blue square: the sky, maybe.")
    app = make_app(engine, tmp_path, config)
    app.animation_level = "none"
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        await until(pilot, lambda: len(views(app)) == 2 and bool(app.query(ImageThumbs)))
        await until(pilot, lambda: app.query_one(ImageThumbs).fitted)  # laid out for the message's width
        hold_cursors_still(app)
        await pilot.pause(0.3)
        svg = normalise(app.export_screenshot(title="llamadeck"))
    problem = compare("chat-image-80x24", svg, tmp_path)
    if problem is not None:
        pytest.fail(problem, pytrace=False)


@sync
async def test_attachments_are_kept_with_the_draft_across_a_restart(
    engine: RecordingEngine, tmp_path: Path, config: Path, photo: Path
) -> None:
    app = make_app(engine, tmp_path, config, chat_model="eyes")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await attach_by_key(app, pilot, photo)
        await until(pilot, lambda: "photo.png" in bar_text(app))
    again = make_app(engine, tmp_path, config)  # the new chat's draft is shown again, with its image
    async with again.run_test(size=(120, 40)) as pilot:
        await ready(again, pilot)
        await until(pilot, lambda: "photo.png" in bar_text(again))
        assert [a.image.data for a in pane(again).attachments] == [PNG]


@sync
async def test_alt_shift_g_takes_every_attachment_off_and_the_draft_keeps_that_across_a_restart(
    engine: RecordingEngine, tmp_path: Path, config: Path, photo: Path
) -> None:
    from tui.chatstore import ChatStore
    from tui.widgets.chat_attach import DRAFT_IMAGES
    from tui.widgets.chat_input import ChatInput

    second = tmp_path / "second.png"
    second.write_bytes(image_bytes("PNG", (20, 30), (10, 200, 10)))
    app = make_app(engine, tmp_path, config, chat_model="eyes")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        box = app.query_one(ChatInput)
        box.focus()
        await pilot.press(*"two pictures")
        await attach_by_key(app, pilot, photo)
        await attach_by_key(app, pilot, second)
        await until(pilot, lambda: "second.png" in bar_text(app))
        assert "alt+g" in bar_text(app) and "alt+shift+g" in bar_text(app)  # the bar says both keys
        await until(
            pilot, lambda: len(json.loads(app.chat_store.state(DRAFT_IMAGES) or "{}").get("new", [])) == 2
        )
        box.focus()
        await pilot.press("alt+shift+g")
        await until(pilot, lambda: bar_text(app) == "")
        assert pane(app).attachments == [] and box.text == "two pictures"  # the text stays, and no "G"
        assert any("2 images are no longer attached" in n.message for n in app._notifications)
        await attach_by_key(app, pilot, photo)  # outside the box the pane's key does the same
        await until(pilot, lambda: "photo.png" in bar_text(app))
        await pilot.press("escape")
        assert not box.has_focus
        await pilot.press("alt+shift+g")
        await until(pilot, lambda: bar_text(app) == "")
        await until(pilot, lambda: app.chat_store.state(DRAFT_IMAGES) is None)
    with ChatStore.open(tmp_path / "chats.db") as store:  # the removal was kept, as the draft's text
        assert store.state(DRAFT_IMAGES) is None
    again = make_app(engine, tmp_path, config)
    async with again.run_test(size=(120, 40)) as pilot:
        await ready(again, pilot)
        await until(pilot, lambda: again.query_one(ChatInput).text == "two pictures")
        restoring = [w for w in again.workers if w.group == "chat-images"]
        await until(pilot, lambda: all(w.is_finished for w in restoring))
        await pilot.pause()
        assert pane(again).attachments == [] and bar_text(again) == ""


def test_the_attachments_line_breaks_between_images_never_inside_one_nor_inside_the_keys() -> None:
    from tui.widgets.chat_attach import bar_lines

    items = ("▣ holiday-photo.png · 416 B", "▣ tower.png · 892 B")
    hint = "(alt+g takes the last off · alt+shift+g all)"
    assert bar_lines(items, hint, 120) == [f"{items[0]}  {items[1]}   {hint}"]
    assert bar_lines(items, hint, 58) == [f"{items[0]}  {items[1]}", hint]
    assert bar_lines(items, hint, 30) == [items[0], items[1], hint]
    assert bar_lines(("▣ 写真.png · 1 KB",), "(k)", 22) == ["▣ 写真.png · 1 KB", "(k)"]  # wide characters
