"""Layouts that adapt: the chat list beside the chat when there is room, over it when there is not.

At 120 columns the list is 32 wide, at 100-119 it narrows to 26, below 100 it
is hidden and ctrl+b (outside the message box) lays it over the conversation,
which keeps the whole width. Titles and list entries are cut with an ellipsis,
one line each. The pictures themselves are in tests/test_tui_snapshots.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chat_app import (
    RecordingEngine,
    make_app,
    pane,
    ready,
    seeded,
    sync,
)

LONG = "A very long chat title about llamas, alpacas and vicuñas in the high Andes"


def regions(app):
    sidebar = app.query_one("#chat-sidebar")
    main = app.query_one("#chat-main")
    return sidebar, main


@pytest.mark.parametrize(("size", "width"), [((120, 40), 32), ((110, 30), 26)])
@sync
async def test_wide_the_list_sits_beside_the_chat_and_narrows_with_the_width(
    engine: RecordingEngine, tmp_path: Path, config: Path, size: tuple[int, int], width: int
) -> None:
    seeded(tmp_path / "chats.db", ("Apples", [("user", "red")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        await pilot.pause()
        sidebar, main = regions(app)
        assert sidebar.display and sidebar.region.width == width
        assert main.region.x == sidebar.region.right and main.region.right == size[0]


@pytest.mark.parametrize("size", [(80, 24), (60, 20), (40, 12)])
@sync
async def test_narrow_the_chat_gets_the_room_and_ctrl_b_lays_the_list_over_it(
    engine: RecordingEngine, tmp_path: Path, config: Path, size: tuple[int, int]
) -> None:
    from textual.widgets import OptionList

    from tui.widgets.chat_input import ChatInput

    older, newer = seeded(tmp_path / "chats.db", ("Older", [("user", "one")]), ("Newer", [("user", "two")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        await pilot.pause()
        sidebar, main = regions(app)
        assert not sidebar.display and main.region.x == 0 and main.region.width == size[0]
        await pilot.press("escape", "ctrl+b")  # outside the box: in it, ctrl+b is readline's back
        await pilot.pause()
        assert sidebar.display and app.focused is app.query_one("#chat-list", OptionList)
        assert sidebar.region.x == 0 and sidebar.region.width <= min(34, size[0] * 0.9)
        assert main.region.x == 0 and main.region.width == size[0]  # under the list, not squeezed
        await pilot.press("down", "enter")  # a chat chosen: the list makes way again
        await pilot.pause()
        assert pane(app).chat.id == older
        assert not sidebar.display and app.focused is app.query_one(ChatInput)


@sync
async def test_the_chat_header_is_one_line_cut_with_an_ellipsis(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from tui.widgets.chat_header import ChatHeader

    seeded(tmp_path / "chats.db", (LONG, [("user", "hi")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(60, 20)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        pane(app).open_chat(pane(app).store.conversations()[0].id)
        await pilot.pause()
        header = app.query_one(ChatHeader)
        line = "".join(segment.text for segment in header.render_line(0)).rstrip()
        # one line that fits: the long title is cut with an ellipsis or left out (chat_header.fit_line)
        assert header.region.height == 1 and len(line) <= 60 - 2
        assert line.endswith("…") or LONG[:8] not in line


@sync
async def test_list_entries_are_cut_with_an_ellipsis_one_line_each_at_80_columns(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import OptionList

    seeded(tmp_path / "chats.db", (LONG, [("user", "hi")]), ("Short", [("user", "yo")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "escape", "ctrl+b")
        await pilot.pause()
        listing = app.query_one("#chat-list", OptionList)
        assert listing.option_count == 2
        assert listing.virtual_size.height == 4  # two entries of two lines: nothing wrapped
        lines = ["".join(s.text for s in listing.render_line(y)).rstrip() for y in range(4)]
        assert lines[0].startswith("Short")
        assert lines[2].startswith("A very long") and lines[2].endswith("…")
        assert "Tiny-GGUF" in lines[1] and "·" in lines[3]
