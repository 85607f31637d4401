"""The Chat tab's message view: Markdown streamed by finished blocks, literal model text, keys, following."""

from __future__ import annotations

import asyncio

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Static

from tests.support.chat_app import sync
from tui.widgets.block_view import BlockView, _Stack
from tui.widgets.chat_log import ChatLog
from tui.widgets.markdown_blocks import FENCE_PIECE_LINES, BlockSplitter, last_code_block
from tui.widgets.markdown_render import RenderedBlock
from tui.widgets.message_view import STATUS_MARKS, MessageView


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield ChatLog()


def rendered(view: MessageView, width: int = 100) -> str:
    """What a message shows: header, body blocks and stats, as plain text."""
    app = view.app
    parts: list[str] = []
    for child in view.children:
        if isinstance(child, BlockView):
            lines = app.console.render_lines(_Stack(child.blocks), app.console.options.update_width(width))
            parts.append("\n".join("".join(seg.text for seg in line).rstrip() for line in lines))
        elif isinstance(child, Static):
            parts.append(str(child.render()))
    return "\n".join(parts)


async def stream_all(pilot, log: ChatLog, tokens: list[str], **finish: object):  # type: ignore[no-untyped-def]
    stream = log.start_reply()
    await pilot.pause()
    for token in tokens:
        stream.append(token)
    stream.finish(**finish)  # type: ignore[arg-type]
    await asyncio.wait_for(stream.wait_rendered(), 5)
    await pilot.pause()
    return stream


def split_all(text: str, step: int = 0) -> list[str]:
    """Blocks of ``text`` fed whole (step 0) or ``step`` characters at a time, the tail closed last."""
    splitter = BlockSplitter()
    chunks = [text] if not step else [text[i : i + step] for i in range(0, len(text), step)]
    blocks = [b for chunk in chunks for b in splitter.feed(chunk)]
    return blocks + splitter.close()


# --- the block splitter ---------------------------------------------------------------


def test_paragraphs_split_at_blank_lines() -> None:
    assert split_all("one\ntwo\n\nthree\n") == ["one\ntwo\n\n", "three\n"]


def test_a_block_is_finished_only_when_the_next_one_starts() -> None:
    splitter = BlockSplitter()
    assert splitter.feed("para one\n\n") == []
    assert splitter.feed("para") == []  # a partial line decides nothing yet
    assert splitter.feed(" two\n") == ["para one\n\n"]
    assert splitter.tail == "para two\n"


def test_backticks_inside_a_paragraph_are_not_a_fence() -> None:
    text = "use ``` to open a fence\n```python is not one``` either\n\nnext\n"
    assert split_all(text) == ["use ``` to open a fence\n```python is not one``` either\n\n", "next\n"]


def test_a_fence_is_one_block_with_its_blank_lines() -> None:
    text = "intro\n```python\na = 1\n\nb = 2\n```\nafter\n"
    assert split_all(text) == ["intro\n", "```python\na = 1\n\nb = 2\n```\n", "after\n"]


def test_tilde_fences_and_longer_closers() -> None:
    text = "~~~\n```\nnot closed by backticks\n~~~~\n\n````md\n```\ninner\n```\n````\n"
    assert split_all(text) == [
        "~~~\n```\nnot closed by backticks\n~~~~\n",
        "\n````md\n```\ninner\n```\n````\n",
    ]


def test_a_fence_that_never_closes_stays_the_tail_until_the_end() -> None:
    splitter = BlockSplitter()
    assert splitter.feed("text\n\n```js\nlet a = 1;\n\nlet b;\n") == ["text\n\n"]
    assert splitter.in_fence
    assert splitter.tail == "```js\nlet a = 1;\n\nlet b;\n"
    assert splitter.close() == ["```js\nlet a = 1;\n\nlet b;\n"]


def test_loose_list_items_stay_one_block_and_continuations_stay_with_their_item() -> None:
    text = "- a\n\n- b\n\n  more of b\n\n1. one\n\nafter\n"
    assert split_all(text) == ["- a\n\n- b\n\n  more of b\n\n1. one\n\n", "after\n"]


def test_fence_nested_in_a_list_item_stays_in_the_list() -> None:
    text = "- item\n  ```\n  code\n\n  more\n  ```\n- next\n\npara\n"
    assert split_all(text) == ["- item\n  ```\n  code\n\n  more\n  ```\n- next\n\n", "para\n"]


def test_tables_and_headings_are_blocks() -> None:
    text = "# Title\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Next\ntext\n"
    assert split_all(text) == ["# Title\n", "| a | b |\n|---|---|\n| 1 | 2 |\n\n", "## Next\n", "text\n"]


def test_indented_code_stays_with_its_block_until_a_line_at_column_zero() -> None:
    text = "para\n\n    code line\n\n    more code\n\nafter\n"
    assert split_all(text) == ["para\n\n    code line\n\n    more code\n\n", "after\n"]


def test_a_long_fence_is_finished_in_pieces_that_keep_its_code() -> None:
    code = "".join(f"line {i}\n" for i in range(100))
    splitter = BlockSplitter()
    blocks = splitter.feed("```python\n" + code)
    assert len(blocks) == 2 and splitter.continuing
    assert len(splitter.tail.splitlines()) == 1 + 100 - 2 * FENCE_PIECE_LINES  # small, however long the fence
    blocks += splitter.feed("```\nafter\n")
    assert not splitter.continuing
    assert [(b.continues, b.joins_next) for b in blocks] == [(False, True), (True, True), (True, False)]
    assert all(b.startswith("```python\n") and b.endswith("```\n") for b in blocks)
    assert "".join(b.removeprefix("```python\n").removesuffix("```\n") for b in blocks) == code


@pytest.mark.parametrize("step", [1, 3, 7])
def test_feeding_in_pieces_cuts_the_same_blocks_and_loses_nothing(step: int) -> None:
    text = (
        "# H\n\npara `x` and ``` mid\n\n```py\nprint(1)\n\n```\n- a\n\n- b\n\n| a |\n|---|\n| 1 |\n\n"
        "~~~\nt\n~~~\n\n    indented\n\nend without newline"
    )
    assert split_all(text, step) == split_all(text)
    assert "".join(split_all(text, step)) == text


def test_crlf_lines() -> None:
    assert split_all("a\r\n\r\nb\r\n```\r\nc\r\n```\r\n") == ["a\r\n\r\n", "b\r\n", "```\r\nc\r\n```\r\n"]


# --- last_code_block ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("no code here", None),
        ("```py\na\n```\ntext\n~~~\nb\n  c\n~~~\n", "b\n  c\n"),
        ("```\nfirst\n```\n\n```js\nopen to the end\n", "open to the end\n"),
        ("```python is inline``` only", None),
        ("  ```\n  indented\n    more\n  ```\n", "indented\n  more\n"),
        ("````\n```\nnested\n```\n````\n", "```\nnested\n```\n"),
        ("```\n```\n", ""),
    ],
)
def test_last_code_block(markdown: str, expected: str | None) -> None:
    assert last_code_block(markdown) == expected


# --- the widget -----------------------------------------------------------------------


@sync
async def test_messages_of_each_role_show_their_content() -> None:
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.query_one(ChatLog)
        for role in ("system", "user", "assistant", "error"):
            log.add_message(role, f"the {role} says **hi**")
        await pilot.pause()
        views = log.message_views()
        assert [v.role for v in views] == ["system", "user", "assistant", "error"]
        assert all(v.has_class(f"-{v.role}") for v in views)
        assert "the assistant says hi" in rendered(views[2])  # Markdown
        assert "the user says **hi**" in rendered(views[1])  # typed text, as typed
        assert views[3].content == "the error says **hi**"
        log.clear_messages()
        await pilot.pause()
        assert log.message_views() == []


@pytest.mark.parametrize("role", ["user", "assistant", "system", "error"])
@sync
async def test_markup_in_model_text_is_shown_literally(role: str) -> None:
    text = "[bold]not bold[/] and [@click=app.quit]click[/] and [red]x"
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.query_one(ChatLog)
        view = log.add_message(role, text, stats="[b]stats[/b]")
        await pilot.pause()
        shown = rendered(view)
        assert "[bold]not bold[/]" in shown
        assert "[@click=app.quit]click[/]" in shown
        assert "[red]x" in shown
        assert "[b]stats[/b]" in shown
        stream = await stream_all(pilot, log, [text[i : i + 3] for i in range(0, len(text), 3)])
        assert "[@click=app.quit]click[/]" in rendered(stream.view)
        assert app.is_running  # nothing was clicked into an action


@sync
async def test_a_streamed_reply_appears_and_renders_code_and_tables() -> None:
    reply = (
        "Intro with *emphasis*.\n\n```python\ndef f(x):\n    return x + 1\n```\n\n"
        "| name | size |\n|---|---:|\n| Q4_K_M | 4.4 GB |\n\n- one\n- two\n\nThe end."
    )
    app = Host()
    async with app.run_test(size=(100, 40)) as pilot:
        log = app.query_one(ChatLog)
        stream = log.start_reply()
        await pilot.pause()
        assert stream.view.status == "streaming"
        assert STATUS_MARKS["streaming"] in rendered(stream.view)
        for i in range(0, len(reply), 4):
            stream.append(reply[i : i + 4])
        assert stream.text == reply
        await stream.view.flush()
        mid = rendered(stream.view)
        assert "def f(x):" in mid and "Q4_K_M" in mid
        stream.finish(stats="12 tokens")
        await asyncio.wait_for(stream.wait_rendered(), 5)
        view = stream.view
        shown = rendered(view)
        assert view.status == "complete" and view.content == reply
        for piece in (
            "Intro with emphasis.",
            "def f(x):",
            "return x + 1",
            "name",
            "4.4 GB",
            "• one",
            "The end.",
            "12 tokens",
        ):
            assert piece in shown
        assert "```" not in shown
        assert len(view.blocks()) == 4  # the last line has no newline: the list and it close together


@pytest.mark.parametrize("status", ["complete", "stopped", "interrupted", "error"])
@sync
async def test_finish_shows_the_status_mark_and_the_stats_line(status: str) -> None:
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.query_one(ChatLog)
        stream = await stream_all(pilot, log, ["Some ", "text"], status=status, stats="2 tok · 40 tok/s")
        view = stream.view
        header = str(view.query_one(".header", Static).render())
        assert header.startswith("assistant")
        assert STATUS_MARKS[status] in header
        assert STATUS_MARKS["streaming"] not in header
        assert view.has_class("-flagged") == (status != "complete")
        stats = view.query_one(".stats", Static)
        assert stats.display and str(stats.render()) == "2 tok · 40 tok/s"
        stream.append("late")  # after finish: ignored
        assert view.content == "Some text"


@sync
async def test_without_stats_there_is_no_stats_line() -> None:
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        stream = await stream_all(pilot, app.query_one(ChatLog), ["x"])
        assert not stream.view.query_one(".stats").display


@sync
async def test_finish_before_the_first_frame_still_renders() -> None:
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        stream = app.query_one(ChatLog).start_reply()
        stream.append("quick")
        stream.finish(status="stopped")
        await asyncio.wait_for(stream.wait_rendered(), 5)
        await pilot.pause()
        assert "quick" in rendered(stream.view)
        assert STATUS_MARKS["stopped"] in rendered(stream.view)


@sync
async def test_streaming_never_re_renders_a_finished_block() -> None:
    sections = [f"Paragraph {i} with `code`.\n\n```python\nx = {i}\n```\n\n" for i in range(30)]
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.query_one(ChatLog)
        stream = log.start_reply()
        await pilot.pause()
        seen: dict[int, RenderedBlock] = {}
        for section in sections:
            for i in range(0, len(section), 5):
                stream.append(section[i : i + 5])
            await stream.view.flush()
            await pilot.pause()  # laid out and painted: every block rendered at the widget's width
            for block in stream.view.blocks():
                seen.setdefault(id(block), block)
        stream.finish()
        await asyncio.wait_for(stream.wait_rendered(), 5)
        await pilot.pause()
        blocks = stream.view.blocks()
        assert len(blocks) == 60
        assert all(id(b) in seen for b in blocks[:-1])  # the same objects all along, never rebuilt
        assert [b.renders for b in blocks] == [1] * 60
        assert len(stream.view.chunks()) == 60 // BlockView.CHUNK + (60 % BlockView.CHUNK > 0)


@sync
async def test_append_only_buffers_and_the_tail_renders_per_frame() -> None:
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        stream = app.query_one(ChatLog).start_reply()
        await pilot.pause()
        tail = stream.view.query_one(".tail", BlockView)
        shown: list[int] = []
        original = tail.show

        def counting_show(blocks: list[RenderedBlock]) -> None:
            shown.append(1)
            original(blocks)

        tail.show = counting_show  # type: ignore[method-assign]
        for _ in range(2000):
            stream.append("word ")
        assert shown == []  # nothing rendered per token
        await stream.view.flush()
        assert len(shown) == 1
        assert stream.view._splitter.tail == "word " * 2000


@sync
async def test_keys_move_the_selection_and_highlight_it() -> None:
    app = Host()
    async with app.run_test(size=(100, 20)) as pilot:
        log = app.query_one(ChatLog)
        views = [log.add_message("user" if i % 2 else "assistant", f"message {i}\n\n" * 3) for i in range(6)]
        await pilot.pause()
        log.focus()
        assert log.selected() is None
        await pilot.press("up")
        assert log.selected() is views[5] and views[5].has_class("-selected")
        await pilot.press("k", "k")
        assert log.selected() is views[3]
        assert views[3].has_class("-selected") and not views[5].has_class("-selected")
        assert log.scroll_y < log.max_scroll_y  # moved to it
        await pilot.press("j")
        assert log.selected() is views[4]
        await pilot.press("up", "up", "up", "up", "up", "up")
        assert log.selected() is views[0]
        await pilot.press("down", "down", "down", "down", "down")
        assert log.selected() is views[5]
        await pilot.press("down")  # past the last: back to following
        assert log.selected() is None
        assert not any(v.has_class("-selected") for v in views)
        await pilot.press("up", "up", "end")
        assert log.selected() is None
        await pilot.pause()
        assert log.scroll_y == log.max_scroll_y


@sync
async def test_follows_the_bottom_while_streaming_unless_scrolled_up() -> None:
    app = Host()
    async with app.run_test(size=(80, 20)) as pilot:
        log = app.query_one(ChatLog)
        for i in range(10):
            log.add_message("user", f"question {i}")
        await pilot.pause()
        stream = log.start_reply()
        for i in range(40):
            stream.append(f"paragraph {i}\n\n")
            await stream.view.flush()
            await pilot.pause()
        assert log.max_scroll_y > 0
        assert log.scroll_y == log.max_scroll_y  # followed

        log.scroll_up(animate=False)  # the reader scrolls up
        await pilot.pause()
        log.scroll_home(animate=False)
        await pilot.pause()
        assert log.scroll_y == 0
        for i in range(40):
            stream.append(f"more {i}\n\n")
        await stream.view.flush()
        await pilot.pause()
        assert log.scroll_y == 0  # not yanked back

        log.scroll_end(animate=False)  # back at the bottom: following again
        await pilot.pause()
        stream.append("last one\n\n")
        stream.finish()
        await asyncio.wait_for(stream.wait_rendered(), 5)
        await pilot.pause()
        assert log.scroll_y == log.max_scroll_y


@sync
async def test_clearing_while_streaming_releases_the_waiter() -> None:
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.query_one(ChatLog)
        stream = log.start_reply()
        await pilot.pause()
        stream.append("half a reply")
        log.clear_messages()
        await pilot.pause()
        await asyncio.wait_for(stream.wait_rendered(), 5)
        stream.append(" more")  # the Chat pane may still be feeding: harmless
        stream.finish()
        assert log.message_views() == []


@sync
async def test_a_long_code_block_streams_as_one_box() -> None:
    code = "".join(f"value_{i} = {i}\n" for i in range(100))
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.query_one(ChatLog)
        stream = log.start_reply()
        await pilot.pause()
        for line in ("Here:\n\n```python\n" + code).splitlines(keepends=True):
            stream.append(line)
            await stream.view.flush()
        assert len(stream.view._splitter.tail) < 30 * 20  # the open tail stays small
        stream.append("```\nDone.\n")
        stream.finish()
        await asyncio.wait_for(stream.wait_rendered(), 5)
        await pilot.pause()
        lines = [line.strip() for line in rendered(stream.view).splitlines()]
        at = [lines.index(f"value_{i} = {i}") for i in range(100)]
        assert at == list(range(at[0], at[0] + 100))  # no seam where the pieces meet
        assert "```python" not in "\n".join(lines)
        assert last_code_block(stream.view.content) == code


@sync
async def test_theme_change_rerenders_code_for_light_themes() -> None:
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.query_one(ChatLog)
        view = log.add_message("assistant", "```python\nx = 1\n```\n")
        await pilot.pause()
        assert all(b.look.dark and b.look.name == app.theme for b in view.blocks())
        app.theme = "textual-light"
        await pilot.pause()
        assert all(not b.look.dark and b.look.name == "textual-light" for b in view.blocks())
        assert "x = 1" in rendered(view)
