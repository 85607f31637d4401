"""Thumbnails in the conversation are sized from their images: a wide image wide and short, a tall one
narrow, a square one twice as wide as tall in cells; never wider than the message, at most ``MAX_ROWS``
rows (fewer on a short terminal); side by side, wrapping where the message is narrow; fitted again when
the terminal is resized. Under Pilot (half blocks: one cell shows 1 x 2 pixels)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chat_app import make_app, ready, recording_engine, short_replies, sync, until, views
from tests.support.images import image_bytes
from tui.widgets.image_thumbs import MAX_ROWS, MIN_ROWS, Thumb, arrange, decode, fit, height_cap

WIDE = image_bytes("PNG", (400, 100), (230, 120, 30))  # 4:1
TALL = image_bytes("PNG", (100, 400), (40, 160, 220))  # 1:4
SQUARE = image_bytes("PNG", (200, 200), (60, 200, 90))


def test_a_wide_image_is_wide_and_short_a_tall_one_narrow_a_square_one_twice_as_wide_as_tall() -> None:
    assert fit((400, 100), 200, 10) == (80, 10)  # 10 rows of 2 pixels: 20 tall, 80 wide
    assert fit((100, 400), 200, 10) == (5, 10)
    assert fit((200, 200), 200, 10) == (20, 10)
    assert fit((400, 100), 50, 10) == (50, 6)  # narrowed to the message, its aspect kept
    assert fit((200, 200), 200, 10, cell=(9, 18)) == (20, 10)  # a picture on a 9 x 18 pixel cell
    assert fit((1920, 1080), 200, 10, cell=(8, 16)) == (36, 10)
    assert fit((16, 16), 200, 10, cell=(8, 16)) == (6, MIN_ROWS)  # a tiny icon: not blown up past 3 rows
    assert fit((5000, 10), 40, 10) == (40, 1)  # a strip: at least one row


def test_the_height_cap_is_a_third_of_the_terminal_within_bounds() -> None:
    assert [height_cap(rows) for rows in (12, 20, 24, 40, 60)] == [MIN_ROWS + 1, 6, 8, MAX_ROWS, MAX_ROWS]


def test_images_side_by_side_wrap_where_the_message_is_narrow() -> None:
    sizes = [(400, 100), (100, 400), (200, 200)]
    captions = ["wide.png · 1 KB", "tall.png · 1 KB", "square.png · 1 KB"]
    wide, tall, square = Thumb(0, 80, 10, 80), Thumb(1, 5, 10, 15), Thumb(2, 20, 10, 20)
    assert arrange(sizes, captions, 120, 10) == ((wide, tall, square),)
    assert arrange(sizes, captions, 100, 10) == ((wide, tall), (square,))
    assert arrange(sizes, captions, 40, 10) == ((Thumb(0, 40, 5, 40),), (tall, square))
    assert arrange([None], ["gone.png · 1 KB"], 10, 10) == ((Thumb(0, 10, 1, 10),),)


def test_a_photo_stored_on_its_side_is_shown_upright() -> None:
    from PIL import Image

    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: turn 90 degrees clockwise to show (a phone held upright)
    Image.new("RGB", (400, 100), (200, 30, 90)).save(out, format="JPEG", exif=exif)
    upright = decode(out.getvalue())
    assert upright is not None and upright.size == (100, 400)
    assert decode(b"\x89PNG\r\n\x1a\n not really") is None


@pytest.fixture
def engine(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator:
    with recording_engine(tmp_path_factory, tmp_path, monkeypatch) as engine:
        yield engine


def seed_pictures(path: Path, *pictures: tuple[str, bytes]) -> None:
    from tui.chatstore import ChatStore, image

    with ChatStore.open(path) as store:
        chat = store.create("tiny", title="Pictures")
        store.add_message(chat.id, "user", "What do these show?", images=[image(n, d) for n, d in pictures])
        store.add_message(chat.id, "assistant", "A sunset, a tower and a field.")


def drawn(app) -> list[tuple[int, int]]:
    """Each picture's (columns, rows) as laid out on the screen."""
    from tui.widgets.image_thumbs import ImageThumbs

    (thumbs,) = views(app)[0].query(ImageThumbs)
    return [(w.size.width, w.size.height) for w in thumbs.query(".thumb")]


def lines(app) -> list[list[int]]:
    """Which images share a line, by index."""
    from tui.widgets.image_thumbs import ImageThumbs

    (thumbs,) = views(app)[0].query(ImageThumbs)
    return [[t.index for t in line] for line in thumbs.lines]


def inside_the_message(app) -> bool:
    from tui.widgets.image_thumbs import ImageThumbs

    view = views(app)[0]
    right = view.content_region.right
    return all(w.region.right <= right for w in view.query(ImageThumbs).first().query(".thumb, .caption"))


async def open_pictures(app, pilot) -> None:
    from tui.widgets.image_thumbs import ImageThumbs

    await ready(app, pilot)
    await pilot.press("3")
    await until(pilot, lambda: len(views(app)) == 2 and bool(app.query(ImageThumbs)))
    await until(
        pilot, lambda: all(t.fitted for t in app.query(ImageThumbs)) and all(w for w, _ in drawn(app))
    )
    await pilot.pause()


def fitted(app, expected: list[tuple[int, int]]):
    return lambda: drawn(app) == expected


@sync
async def test_thumbnails_take_their_images_shape_and_fit_again_when_the_terminal_is_resized(
    engine, tmp_path: Path
) -> None:
    seed_pictures(tmp_path / "chats.db", ("wide.png", WIDE), ("tall.png", TALL), ("square.png", SQUARE))
    app = make_app(engine, tmp_path, short_replies(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_pictures(app, pilot)
        # 120 x 40: 10 rows at most; the wide one 80 x 10 fills most of the message: the others wrap
        assert drawn(app) == [(80, 10), (5, 10), (20, 10)]
        assert lines(app) == [[0], [1, 2]] and inside_the_message(app)
        before = list(app.query(".thumb"))
        await pilot.resize_terminal(60, 20)  # 6 rows at most; the message is narrower than 48 columns
        await until(pilot, lambda: drawn(app)[1:] == [(3, 6), (12, 6)])
        (wide_cols, wide_rows), width = drawn(app)[0], views(app)[0].content_region.width
        assert wide_cols == min(48, width) and wide_rows == round(wide_cols / 8) and inside_the_message(app)
        assert all(w.image is None for w in before)  # the pictures drawn before were freed (kitty keeps them)
        await pilot.resize_terminal(120, 20)  # only the height: the cap is the terminal's
        await until(pilot, fitted(app, [(48, 6), (3, 6), (12, 6)]))
        await pilot.resize_terminal(120, 40)
        await until(pilot, fitted(app, [(80, 10), (5, 10), (20, 10)]))
        assert lines(app) == [[0], [1, 2]]
        shown = list(app.query(".thumb"))
        await pilot.press("escape", "ctrl+n")  # a new chat: the pictures leave the screen, freed
        await until(pilot, lambda: not views(app))
        assert shown and all(w.image is None for w in shown)
    again = make_app(engine, tmp_path, short_replies(tmp_path))
    async with again.run_test(size=(60, 20)) as pilot:  # opened narrow: the same as resized to it
        await open_pictures(again, pilot)
        assert drawn(again)[1:] == [(3, 6), (12, 6)] and inside_the_message(again)
        assert lines(again) == [[0], [1, 2]]
