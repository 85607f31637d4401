"""The Chat tab, driven by Textual's Pilot over the real engine on the tiny fixtures.

The tiny model's weights are random: replies are gibberish, so these tests
assert on structure (messages, statuses, stats, what reached the engine), never
on what the model said.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, Machine, Token
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf
from tui.chatstore import ChatStore
from tui.widgets.chat_pane import shown

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
TINY = "hf.co/acme/Tiny-GGUF:Q8_0"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("chat-repos") / "Tiny-Q8_0.gguf", quant="Q8_0")[0]


@pytest.fixture
def hub(tiny: Path):
    with FakeHub() as fake, fake.patch_endpoint():
        fake.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": tiny})
        yield fake


class RecordingEngine(Engine):
    """The real engine, remembering how chat was called and slowing each token by ``delay`` seconds."""

    delay = 0.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[dict[str, Any]] = []

    def chat(self, reference, messages, **kwargs):  # type: ignore[no-untyped-def, override]
        self.calls.append({"reference": reference, "messages": list(messages), **kwargs})
        events = super().chat(reference, messages, **kwargs)
        return self._paced(events) if self.delay else events

    def _paced(self, events: Iterator[Any]) -> Iterator[Any]:
        for event in events:
            if isinstance(event, Token):
                time.sleep(self.delay)
            yield event


@pytest.fixture
def engine(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    import pyperclip

    def no_clipboard(text: str) -> None:  # as over SSH: pyperclip finds no clipboard
        raise pyperclip.PyperclipException("no clipboard")

    monkeypatch.setattr(pyperclip, "copy", no_clipboard)
    engine = RecordingEngine(machine=lambda: CPU_BOX)
    engine.pull(TINY)
    yield engine
    engine.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Short replies, so each test is quick."""
    path = tmp_path / "config" / "llamadeck" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[parameters]\nnum_predict = 6\nseed = 1\n", encoding="utf-8")
    return path


def sync(test):
    """Run an async Pilot test on its own event loop (the project has no pytest-asyncio)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 120))

    run.__signature__ = inspect.signature(test)
    return run


def make_app(engine: Engine, tmp_path: Path, config: Path, **kwargs: Any):
    from tui.app import LlamadeckApp

    class App(LlamadeckApp):
        """Records what went to the clipboard (OSC 52) instead of writing it to a terminal."""

        CSS_PATH = str(Path(inspect.getfile(LlamadeckApp)).with_name("app.tcss"))
        copied: list[str] = []

        def copy_to_clipboard(self, text: str) -> None:
            self.copied.append(text)

    kwargs.setdefault("chat_db", tmp_path / "chats.db")
    app = App(engine, config_path=config, **kwargs)
    app.copied = []
    return app


async def until(pilot, condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


def pane(app):
    from tui.widgets.chat_pane import ChatPane

    return app.query_one(ChatPane)


async def ready(app, pilot) -> None:
    """The chat history is open (the app opens it in a thread)."""
    await until(pilot, lambda: pane(app).store is not None)
    await pilot.pause()


async def send(app, pilot, text: str) -> None:
    """Type ``text`` in the input, press Enter, wait for the reply to end and render."""
    from tui.widgets.chat_pane import ChatInput

    box = app.query_one(ChatInput)
    box.focus()
    box.load_text(text)
    await pilot.press("enter")
    await until(pilot, lambda: pane(app).generation is not None or last_status(app) != "streaming")
    await until(pilot, lambda: pane(app).generation is None)
    await until(pilot, lambda: last_status(app) != "streaming")
    await pilot.pause()


def views(app):
    from tui.widgets.chat_log import ChatLog

    return app.query_one(ChatLog).message_views()


def last_status(app) -> str | None:
    seen = views(app)
    return seen[-1].status if seen else None


def stored(app) -> list:
    chat = pane(app).chat
    assert chat is not None
    return app.chat_store.messages(chat.id)


def seeded(path: Path, *chats: tuple[str, list[tuple[str, str]]]) -> list[int]:
    """Chats written to the history before the app starts: (title, [(role, content), ...])."""
    ids = []
    with ChatStore.open(path) as store:
        for title, messages in chats:
            chat = store.create(TINY, title=title, parameters={"num_predict": 4})
            for role, content in messages:
                store.add_message(chat.id, role, content)
            ids.append(chat.id)
    return ids


# -- sending and streaming ---------------------------------------------------------------------------


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
        assert seen[1].content == shown(reply.content) and "tok/s" in (seen[1].stats or "")
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
    from tui.widgets.chat_pane import ChatInput

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("a", "ctrl+j", "b", "shift+enter", "c")
        assert app.query_one(ChatInput).text == "a\nb\nc"
        assert pane(app).generation is None and pane(app).chat is None  # nothing sent


@sync
async def test_escape_stops_the_reply_and_keeps_the_part_that_came(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    config.write_text("[parameters]\nnum_predict = 400\nseed = 6\n", encoding="utf-8")  # 193 tokens
    engine.delay = 0.03
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        from tui.widgets.chat_pane import ChatInput

        app.query_one(ChatInput).load_text("Tell me a long story")
        await pilot.press("enter")
        await until(
            pilot, lambda: pane(app).generation is not None and len(pane(app).generation.text) >= 3, 5
        )
        await pilot.press("escape")
        await until(pilot, lambda: pane(app).generation is None)
        await until(pilot, lambda: last_status(app) == "stopped")
        user, reply = stored(app)
        assert reply.status == "stopped" and reply.content
        assert views(app)[-1].content == shown(reply.content)  # the tiny model emits control characters


@sync
async def test_a_long_reply_is_saved_while_it_streams(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    config.write_text("[parameters]\nnum_predict = 400\nseed = 2\n", encoding="utf-8")  # 167 tokens
    engine.delay = 0.03
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        from tui.widgets.chat_pane import ChatInput

        app.query_one(ChatInput).load_text("Go on")
        await pilot.press("enter")
        await until(pilot, lambda: pane(app).generation is not None)
        reply_id = pane(app).generation.reply_id
        await until(pilot, lambda: bool(next(m for m in stored(app) if m.id == reply_id).content), 10)
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
    from tui.widgets.chat_pane import ChatInput

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "first")
        await send(app, pilot, "secnod")
        await pilot.press("ctrl+e")
        box = app.query_one(ChatInput)
        assert box.text == "secnod" and pane(app).editing is not None
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
        await pilot.press("ctrl+e", "escape")
        assert pane(app).editing is None and box.text == "" and len(stored(app)) == 4
        # an edit left for another chat does not follow: its text is not sent there
        await pilot.press("ctrl+e")
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
        await until(pilot, lambda: pane(app).generation is None)
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
    app = make_app(engine, tmp_path, config, chat_model="no-such-model:latest")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "Hello?")
        user, reply = stored(app)
        assert reply.status == "error"
        seen = views(app)
        assert [v.role for v in seen] == ["user", "assistant", "error"]
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


# -- conversations -------------------------------------------------------------------------------


@sync
async def test_switching_chats_reloads_messages_and_passes_their_key(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import OptionList

    older, newer = seeded(
        tmp_path / "chats.db",
        ("Older chat", [("user", "one"), ("assistant", "uno")]),
        ("Newer chat", [("user", "two"), ("assistant", "dos"), ("user", "three"), ("assistant", "tres")]),
    )
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        await pilot.pause()
        assert app.query_one("#tabs").active == "tab-chat"
        assert pane(app).chat.id == newer  # the latest chat opens
        assert [v.content for v in views(app)] == ["two", "dos", "three", "tres"]
        listing = app.query_one("#chat-list", OptionList)
        assert [listing.get_option_at_index(i).id for i in range(listing.option_count)] == [
            str(newer),
            str(older),
        ]
        listing.focus()
        listing.highlighted = 1
        await pilot.press("enter")
        await pilot.pause()
        assert pane(app).chat.id == older
        assert [v.content for v in views(app)] == ["one", "uno"]
        await send(app, pilot, "again")
        assert engine.calls[-1]["conversation"] == str(older)
        assert [m["content"] for m in engine.calls[-1]["messages"]] == ["one", "uno", "again"]


@sync
async def test_search_filters_the_list(engine: Engine, tmp_path: Path, config: Path) -> None:
    from textual.widgets import OptionList

    seeded(
        tmp_path / "chats.db",
        ("Apples", [("user", "red fruit")]),
        ("Bananas", [("user", "yellow fruit")]),
        ("Cherries", [("user", "small and red")]),
    )
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "escape", "slash")
        await pilot.pause()
        assert app.focused is app.query_one("#chat-search")
        listing = app.query_one("#chat-list", OptionList)
        assert listing.option_count == 3
        await pilot.press(*"banan")
        await pilot.pause()
        assert listing.option_count == 1 and "Bananas" in str(listing.get_option_at_index(0).prompt)
        app.query_one("#chat-search").value = "RED"  # titles and messages, any case
        await pilot.pause()
        assert listing.option_count == 2
        await pilot.press("enter")
        assert app.focused is listing


@sync
async def test_rename_a_chat(engine: Engine, tmp_path: Path, config: Path) -> None:
    from tui.screens.rename import RenameScreen

    [chat_id] = seeded(tmp_path / "chats.db", ("Old title", [("user", "hi")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "f2")
        await pilot.pause()
        assert isinstance(app.screen, RenameScreen)
        app.screen.query_one("#title").value = "  Brand   new [b]title[/b] "
        await pilot.press("enter")
        await pilot.pause()
        assert app.chat_store.get(chat_id).title == "Brand new [b]title[/b]"
        assert pane(app).chat.title == "Brand new [b]title[/b]"


@sync
async def test_delete_asks_first(engine: Engine, tmp_path: Path, config: Path) -> None:
    from tui.screens.confirm import ConfirmScreen

    keep, gone = seeded(tmp_path / "chats.db", ("Keep", [("user", "a")]), ("Gone", [("user", "b")]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "ctrl+d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert [c.id for c in app.chat_store.conversations()] == [gone, keep]
        await pilot.press("ctrl+d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert [c.id for c in app.chat_store.conversations()] == [keep]
        assert pane(app).chat is None and views(app) == []  # a new chat in its place


# -- copy and export -----------------------------------------------------------------------------


@sync
async def test_copy_a_message_and_the_last_code_block(engine: Engine, tmp_path: Path, config: Path) -> None:
    reply = "Here:\n\n```python\nprint('hi')\n```\n\nand more text"
    seeded(tmp_path / "chats.db", ("Code", [("user", "show me code"), ("assistant", reply)]))
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "escape")  # from the input to the messages
        await pilot.press("y")
        await pilot.pause()
        assert app.copied == [reply]  # no selection: the last reply
        await pilot.press("Y")
        await pilot.pause()
        assert app.copied[-1] == "print('hi')\n"
        await pilot.press("up", "up", "y")  # select the user's message
        await pilot.pause()
        assert app.copied[-1] == "show me code"
        await pilot.press("escape", "i", "ctrl+y")  # unselect; then from the input too
        await pilot.pause()
        assert app.copied[-1] == "print('hi')\n" and len(app.copied) == 4
        assert not [n for n in app._notifications if n.severity == "error"]  # no local clipboard: quiet


@sync
async def test_export_writes_markdown_and_asks_before_overwriting(
    engine: Engine, tmp_path: Path, config: Path
) -> None:
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.export import ExportScreen

    seeded(tmp_path / "chats.db", ("Exported: a/b", [("user", "question"), ("assistant", "answer")]))
    target = tmp_path / "out" / "chat.md"
    target.parent.mkdir()
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        assert app.screen.query_one("#path").value == str(Path.home() / "Exported- a-b.md")
        app.screen.query_one("#path").value = str(target)
        await pilot.press("enter")
        await until(pilot, lambda: target.exists())
        text = target.read_text(encoding="utf-8")
        assert text.startswith("# Exported: a/b") and "question" in text and "answer" in text
        target.write_text("mine", encoding="utf-8")
        await pilot.press("ctrl+o")
        await pilot.pause()
        app.screen.query_one("#path").value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert target.read_text(encoding="utf-8") == "mine"
        assert [p.name for p in target.parent.iterdir()] == ["chat.md"]  # no temp file left


# -- settings and models ---------------------------------------------------------------------------


@sync
async def test_chat_settings_set_the_system_prompt_and_parameters(
    engine: RecordingEngine, tmp_path: Path, config: Path
) -> None:
    from textual.widgets import TextArea

    from tui.screens.chat_settings import ChatSettingsScreen

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "hi")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ChatSettingsScreen))
        app.screen.query_one("#system", TextArea).load_text("You are terse.")
        app.screen.query_one("#p-temperature").value = "warm"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ChatSettingsScreen)  # not a number: stays open, says why
        assert "Temperature" in str(app.screen.query_one("#error").render())
        app.screen.query_one("#p-temperature").value = "-1"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "temperature" in str(app.screen.query_one("#error").render())  # out of range: says so
        app.screen.query_one("#p-temperature").value = "0.2"
        await pilot.press("ctrl+s")
        await pilot.pause()
        chat = app.chat_store.get(pane(app).chat.id)
        assert chat.system == "You are terse." and chat.parameters["temperature"] == 0.2
        await send(app, pilot, "again")
        call = engine.calls[-1]
        assert call["messages"][0] == {"role": "system", "content": "You are terse."}
        assert call["options"]["temperature"] == 0.2 and call["options"]["num_predict"] == 6


@sync
async def test_model_picker_lists_local_models(engine: Engine, tmp_path: Path, config: Path) -> None:
    from textual.widgets import OptionList

    from tui.screens.model_picker import ModelPickerScreen

    app = make_app(engine, tmp_path, config, chat_model="other:latest")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("escape", "m")
        await until(pilot, lambda: isinstance(app.screen, ModelPickerScreen))
        options = app.screen.query_one("#models", OptionList)
        assert options.option_count == 1 and options.get_option_at_index(0).id == TINY
        await pilot.press("enter")
        await pilot.pause()
        assert pane(app).model == TINY


@sync
async def test_model_picker_says_to_pull_when_there_is_none(
    tmp_path: Path, config: Path, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    empty = Engine(machine=lambda: CPU_BOX)
    app = make_app(empty, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "escape", "m")
        await until(pilot, lambda: app.screen.query("#none"))
        assert "Models tab" in str(app.screen.query_one("#none").render())
        await pilot.press("escape")


@sync
async def test_chat_model_opens_on_the_chat_tab(engine: Engine, tmp_path: Path, config: Path) -> None:
    from tui.widgets.chat_pane import ChatInput

    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.pause()
        assert app.query_one("#tabs").active == "tab-chat"
        assert isinstance(app.focused, ChatInput)
        assert pane(app).model == TINY and pane(app).chat is None
        assert TINY in str(app.query_one("#chat-header").render())


@sync
async def test_the_models_tab_starts_a_chat_on_the_selected_model(
    engine: Engine, tmp_path: Path, config: Path
) -> None:
    app = make_app(engine, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await until(pilot, lambda: app.query_one("#models").row_count == 1)
        await pilot.press("n")
        await pilot.pause()
        assert app.query_one("#tabs").active == "tab-chat"
        assert pane(app).model == TINY and pane(app).chat is None


# -- a damaged history, the palette, help ------------------------------------------------------------


@sync
async def test_a_damaged_history_starts_with_a_warning(engine: Engine, tmp_path: Path, config: Path) -> None:
    db = tmp_path / "chats.db"
    db.write_bytes(b"this is not a database" * 100)
    app = make_app(engine, tmp_path, config, chat_model=TINY)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.pause()
        warnings = [n for n in app._notifications if n.severity == "warning"]
        assert warnings and "damaged" in warnings[0].message
        assert list(tmp_path.glob("chats.db.damaged-*"))
        await send(app, pilot, "still works")
        assert [m.status for m in stored(app)] == ["complete", "complete"]


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


# -- screenshots ---------------------------------------------------------------------------------


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


def test_export_writes_through_symlinks_keeps_modes_and_refuses_devices(tmp_path: Path) -> None:
    import os
    import stat

    from tui.screens.export import write_atomically

    target = tmp_path / "notes.md"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.md"
    link.symlink_to(target.name)
    write_atomically(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    for bad in (fifo, Path("/dev/null"), tmp_path):
        with pytest.raises(OSError):
            write_atomically(bad, "x")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISCHR(Path("/dev/null").stat().st_mode)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_huge_stored_message_is_drawn_cut_with_a_note() -> None:
    from tui.widgets.chat_pane import SHOWN_LIMIT, shown_message

    text = "x" * (SHOWN_LIMIT + 5000)
    drawn = shown_message(text)
    assert drawn.startswith("x" * SHOWN_LIMIT) and "5,000 more characters" in drawn
    assert shown_message("short \x1b[2J") == "short \\x1b[2J"
