"""Snapshot tests: each tab at 120x40, 80x24, 60x20 and 40x12 compared with an SVG in tests/snapshots/,
and scenes beyond a tab (the chat list over a narrow chat, a search that matches nothing, dialogs).

Textual's own ``App.export_screenshot()`` (an SVG) is compared with the
reference; no pytest-textual-snapshot: its latest (1.1.0) pins syrupy 4.8.0,
which wants pytest < 9, and this suite runs pytest 9.

The scene is fixed: three tiny models pulled from the fake Hub at fixed times,
one of them loaded, a chat history of two conversations written at fixed times
(one with a code block and a reply's stats), fixed log lines, the default dark
theme. What changes with the clock is held still by the test, not by the app:

- ages ("3 hours ago"): the manifests' and the chats' timestamps are fixed
  (``engine.ingest.pull.now_iso``, ``tui.chatstore._now``) and the panes' ``ago`` is
  given a fixed "now";
- the Sessions tab's keep-alive countdown and tokens/s: ``Engine.loaded`` of
  the scene's engine returns the real rows with those two values fixed;
- the Logs tab: the log's timestamps come from a fixed clock, the engine's
  log (llama.cpp's lines, with timings) is a fixed list, and the startup lines
  (which name the temp store) are cleared before fixed lines are logged;
- cursor blink off on every Input and TextArea, animations off.

On a difference the test fails, writes the new screenshot to
``<tmp_path>/<tab>-<W>x<H>-actual.svg`` and shows a diff of the visible text.
``LLAMADECK_UPDATE_SNAPSHOTS=1 pytest tests/test_tui_snapshots.py`` rewrites the references.
"""

from __future__ import annotations

import difflib
import functools
import html
import importlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import Engine, LoadedModel, Machine
from tests.support.chat_app import sync, until
from tests.support.fake_hub import FakeHub, isolated_hf_env
from tests.support.pilot import settle
from tests.support.tiny_gguf import write_tiny_gguf

SNAPSHOTS = Path(__file__).with_name("snapshots")
UPDATE = os.environ.get("LLAMADECK_UPDATE_SNAPSHOTS") == "1"
CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
NOW = datetime(2026, 3, 14, 12, 0, 0, tzinfo=UTC)  # "now" for every age shown
LOADED = "hf.co/acme/Tiny-GGUF:Q8_0"
MODELS = (  # pulled in this order, each at NOW minus its age
    ("acme/Tiny-GGUF:Q8_0", timedelta(hours=3)),
    ("acme/Tiny-GGUF:Q4_0", timedelta(days=2)),
    ("acme/Story-GGUF:Q8_0", timedelta(minutes=40)),
)
TABS = ("models", "sessions", "chat", "logs")
SIZES = ((80, 24), (120, 40), (60, 20), (40, 12))
SMALL = ((80, 24), (40, 12))
# more than a tab: (name, tab, keys pressed there, sizes); below 100 columns the chat list lies over the chat
SCENES = (
    ("chat-list", "chat", ("escape", "ctrl+b"), SMALL),
    ("chat-no-match", "chat", ("escape", "slash", "z", "z", "z"), ((80, 24),)),
    ("pull", "models", ("p",), SMALL),
    ("help", "models", ("f1",), ((40, 12),)),
)
ENGINE_LOG = [
    "llama_model_loader: loaded meta data with 24 key-value pairs",
    "llama_context: n_ctx = 4096, n_batch = 512",
    "llama_context: CPU compute buffer size = 1.02 MiB",
]
APP_LOG = [
    (logging.INFO, "pulled hf.co/acme/Story-GGUF:Q8_0"),
    (logging.INFO, "loaded hf.co/acme/Tiny-GGUF:Q8_0 in 0.2 s"),
    (logging.WARNING, "1 theme file(s) skipped: see the Logs tab"),
    (logging.INFO, "a long line that is wider than the pane at 80 columns, " + "so it is cut " * 6),
]
CODE_REPLY = (
    "Here is one way:\n\n"
    "```python\n"
    "def fib(n: int) -> int:\n"
    "    a, b = 0, 1\n"
    "    for _ in range(n):\n"
    "        a, b = b, a + b\n"
    "    return a\n"
    "```\n\n"
    "It runs in **O(n)** time."
)
Message = tuple[str, str, dict[str, float] | None]  # role, content, stats
CHATS: tuple[
    tuple[str, str, list[Message]], ...
] = (  # (title, model, [(role, content, stats)]), oldest first; each message a minute after the last
    (
        "Haiku about llamas",
        "hf.co/acme/Story-GGUF:Q8_0",
        [
            ("user", "Write a haiku about llamas.", None),
            (
                "assistant",
                "Soft wool on the hill,\nquiet steps in thin blue air,\nthe llama looks back.",
                None,
            ),
        ],
    ),
    (
        "Fibonacci in Python",
        LOADED,
        [
            ("user", "Write a Fibonacci function in Python.", None),
            (
                "assistant",
                CODE_REPLY,
                {
                    "tokens_per_second": 42.13,
                    "prompt_seconds": 0.31,
                    "completion_tokens": 57,
                    "cached_tokens": 12,
                    "load_seconds": 0.0,
                },
            ),
            ("user", "And a recursive one?", None),
        ],
    ),
)


class SceneEngine(Engine):
    """The real engine; what the Sessions tab counts down and measures, and llama.cpp's log, held still."""

    def loaded(self) -> list[LoadedModel]:
        return [replace(r, expires_in=287.6, tokens_per_second=0.0) for r in super().loaded()]

    def logs(self) -> list[str]:
        return list(ENGINE_LOG)


def stamps(times: list[datetime]) -> Iterator[str]:
    for t in times:
        yield t.isoformat(timespec="microseconds")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Path]]:
    """The engine (three models, one loaded) and a seeded chat history, built once for the module."""
    from tui.chatstore import ChatStore

    root = tmp_path_factory.mktemp("snapshot-scene")
    repos = root / "repos"
    repos.mkdir()
    files = {
        "Tiny-Q8_0.gguf": write_tiny_gguf(repos / "Tiny-Q8_0.gguf", quant="Q8_0")[0],
        "Tiny-Q4_0.gguf": write_tiny_gguf(repos / "Tiny-Q4_0.gguf", quant="Q4_0")[0],
        "Story-Q8_0.gguf": write_tiny_gguf(repos / "Story-Q8_0.gguf", quant="Q8_0", name="Story", seed=5)[0],
    }
    pull_module = importlib.import_module("engine.ingest.pull")
    chatstore = importlib.import_module("tui.chatstore.history")
    with (
        isolated_hf_env(root / "hf-home"),
        FakeHub() as hub,
        hub.patch_endpoint(),
        pytest.MonkeyPatch.context() as mp,
    ):
        hub.add_repo("acme/Tiny-GGUF", {k: v for k, v in files.items() if k.startswith("Tiny")})
        hub.add_repo("acme/Story-GGUF", {"Story-Q8_0.gguf": files["Story-Q8_0.gguf"]})
        mp.setenv("XDG_STATE_HOME", str(root / "state"))
        engine = SceneEngine(root / "store", machine=lambda: CPU_BOX)
        for reference, age in MODELS:
            mp.setattr(pull_module, "now_iso", lambda t=NOW - age: t.isoformat(timespec="seconds"))
            engine.pull(reference)
        list(engine.generate(LOADED, "hi", options={"num_predict": 2}, keep_alive=3600))

        db = root / "chats.db"
        times = stamps([NOW - timedelta(days=1) + timedelta(minutes=i) for i in range(20)])
        times_late = stamps([NOW - timedelta(minutes=30) + timedelta(minutes=i) for i in range(20)])
        with ChatStore.open(db) as store:
            for (title, model, messages), clock in zip(CHATS, (times, times_late), strict=True):
                mp.setattr(chatstore, "_now", lambda clock=clock: next(clock))
                chat = store.create(model, title=title, parameters={"num_predict": 64})
                for role, content, stats in messages:
                    store.add_message(chat.id, role, content, stats=stats)
        try:
            yield engine, db
        finally:
            engine.close()


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The panes' ages computed at NOW."""
    from tui import tables

    at_now = functools.partial(tables.ago, now=NOW)
    monkeypatch.setattr("tui.widgets.models_pane.ago", at_now)
    monkeypatch.setattr("tui.widgets.chat_list.ago", at_now)


# -- SVG handling -----------------------------------------------------------------------------------


def normalise(svg: str) -> str:
    """Nothing run-dependent is left in Textual's SVG but Rich's id, a hash of the content: one name."""
    return re.sub(r"terminal-\d+", "terminal", svg)


TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', re.S)
CELL_WIDTH = 12.2  # Rich's SVG: font size 20 x aspect ratio 0.61 per terminal cell


def visible_text(svg: str) -> list[str]:
    """The screen's text, a line per row, from the SVG's <text> elements (blank cells have none)."""
    from rich.cells import cell_len

    rows: dict[float, list[tuple[int, str]]] = {}
    for x, y, text in TEXT.findall(svg):
        rows.setdefault(float(y), []).append((round(float(x) / CELL_WIDTH), html.unescape(text)))
    lines = []
    for _, row in sorted(rows.items()):
        line = ""
        for column, text in sorted(row):
            line += " " * max(column - cell_len(line), 0) + text.replace("\xa0", " ")
        lines.append(line.rstrip())
    return lines


def text_diff(expected: str, actual: str, limit: int = 40) -> str:
    lines = list(
        difflib.unified_diff(
            visible_text(expected), visible_text(actual), "reference", "actual", n=1, lineterm=""
        )
    )
    if not lines:
        return "(the visible text is the same: colours or layout changed)"
    return "\n".join(lines[:limit] + ([f"... {len(lines) - limit} more lines"] if len(lines) > limit else []))


def compare(name: str, svg: str, tmp_path: Path) -> str | None:
    """None when ``svg`` matches tests/snapshots/<name>.svg, else what differs (the new SVG is written)."""
    reference = SNAPSHOTS / f"{name}.svg"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        reference.write_text(svg, encoding="utf-8")
        return None
    if not reference.exists():
        actual = tmp_path / f"{name}-actual.svg"
        actual.write_text(svg, encoding="utf-8")
        return f"{reference} is missing (new one: {actual}); LLAMADECK_UPDATE_SNAPSHOTS=1 writes it"
    expected = reference.read_text(encoding="utf-8")
    if expected == svg:
        return None
    actual = tmp_path / f"{name}-actual.svg"
    actual.write_text(svg, encoding="utf-8")
    return (
        f"{name} differs from {reference}\nnew screenshot: {actual}\n"
        f"(LLAMADECK_UPDATE_SNAPSHOTS=1 rewrites the references)\n{text_diff(expected, svg)}"
    )


# -- the app ----------------------------------------------------------------------------------------


def hold_cursors_still(app) -> None:
    from textual.widgets import Input, TextArea

    for screen in app.screen_stack:  # a dialog's too
        for widget in screen.query(Input):
            widget.cursor_blink = False
        for widget in screen.query(TextArea):
            widget.cursor_blink = False


async def show_fixed_log(app, pilot) -> None:
    """The Logs tab: startup lines cleared (they name the temp store), fixed lines at a fixed time."""
    from textual.widgets import Log

    from tui.widgets.logs_pane import LogsPane

    pane = app.query_one(LogsPane)
    log = pane.query_one(Log)
    log.clear()
    pane.engine_lines = []
    pane.poll_engine()  # the engine's (fixed) lines
    logger = logging.getLogger("llamadeck.tui")
    for level, line in APP_LOG:
        logger.log(level, "%s", line)
    await until(pilot, lambda: len(log.lines) == len(ENGINE_LOG) + len(APP_LOG))


async def snapshot(
    engine: Engine, db: Path, tmp_path: Path, tab: str, size: tuple[int, int], keys: tuple[str, ...] = ()
) -> str:
    from textual.widgets import DataTable

    from tui.app import LlamadeckApp
    from tui.themes import SHIPPED
    from tui.widgets.chat_log import ChatLog
    from tui.widgets.chat_pane import ChatPane

    chats = tmp_path / "chats.db"
    shutil.copy(db, chats)  # the app may write to its history: each test gets the seeded one
    app = LlamadeckApp(
        engine,
        config_path=tmp_path / "config.toml",  # none: the defaults, the dark theme
        theme_folders=(SHIPPED,),
        refresh_interval=0.25,  # the Sessions and Logs tabs refresh while the screenshot waits
        chat_db=chats,
    )
    app.animation_level = "none"
    formatter = app.log_handler.formatter
    assert formatter is not None
    formatter.converter = lambda *_: NOW.timetuple()  # the log's %H:%M:%S
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await until(pilot, lambda: app.query_one(ChatPane).store is not None)
        await until(pilot, lambda: len(app.query_one(ChatLog).message_views()) == len(CHATS[-1][2]))
        await until(pilot, lambda: app.query_one("#models", DataTable).row_count == len(MODELS))
        await until(pilot, lambda: app.query_one("#sessions", DataTable).row_count == 1)
        await until(pilot, lambda: "  loaded" in str(app.query_one("#chat-header").render()))
        hold_cursors_still(app)
        await pilot.press(str(TABS.index(tab) + 1))
        if tab == "logs":
            await show_fixed_log(app, pilot)
        await settle(app, pilot)
        if keys:  # not settle: a dialog's worker (push_screen_wait) runs until the dialog closes
            await pilot.press(*keys)
            await pilot.pause(0.2)
            hold_cursors_still(app)
        await pilot.pause(0.3)  # a refresh or two of the live panes
        await pilot.pause()
        return normalise(app.export_screenshot(title="llamadeck"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("tab", TABS)
@sync
async def test_tab_matches_its_snapshot(
    scene: tuple[Engine, Path], frozen: None, tmp_path: Path, tab: str, size: tuple[int, int]
) -> None:
    engine, db = scene
    svg = await snapshot(engine, db, tmp_path, tab, size)
    problem = compare(f"{tab}-{size[0]}x{size[1]}", svg, tmp_path)
    if problem is not None:
        pytest.fail(problem, pytrace=False)


@pytest.mark.parametrize(
    ("name", "tab", "keys", "size"),
    [(n, t, k, s) for n, t, k, sizes in SCENES for s in sizes],
    ids=[f"{n}-{s[0]}x{s[1]}" for n, _, _, sizes in SCENES for s in sizes],
)
@sync
async def test_scene_matches_its_snapshot(
    scene: tuple[Engine, Path],
    frozen: None,
    tmp_path: Path,
    name: str,
    tab: str,
    keys: tuple[str, ...],
    size: tuple[int, int],
) -> None:
    """The chat list over the chat, a search that matches nothing, dialogs: small terminals included."""
    engine, db = scene
    svg = await snapshot(engine, db, tmp_path, tab, size, keys)
    problem = compare(f"{name}-{size[0]}x{size[1]}", svg, tmp_path)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
