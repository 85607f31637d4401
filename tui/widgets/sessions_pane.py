"""The Sessions tab: the models in memory, refreshed every second; unload the selected one, or reload
it with other GPU layers, context or slots."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from engine import visible

if TYPE_CHECKING:
    from engine import Engine, LoadedModel

# SEQS: sequences running / decoded together at most; KV: cells held / the pool; UNTIL: as ollama ps
COLUMNS = ("MODEL", "MEM", "GPU", "CTX", "SEQS", "KV", "CHATS", "STATUS", "TOK/S", "UNTIL")


def countdown(seconds: float | None, status: str) -> str:
    if seconds is None:
        return "in use" if status != "idle" else "never"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def format_count(n: int) -> str:
    """1234 -> 1.2k, 16384 -> 16k: a token count that fits a narrow column."""
    if n < 1000:
        return str(n)
    k = n / 1000
    return f"{k:.1f}k" if k < 10 else f"{k:.0f}k"


def status_text(row: LoadedModel) -> str:
    """The status, with the requests waiting for a sequence and those parked for KV cells."""
    queued = f" ({row.queued})" if row.queued else ""
    drafts = f", drafts {100 * row.accepted // row.drafted}% taken" if row.drafted else ""
    return row.status + queued + (f", {row.paused} parked" if row.paused else "") + drafts


def session_cells(row: LoadedModel) -> tuple[str, ...]:
    from engine import format_size

    draft = row.manifest.config.draft if row.manifest is not None else None
    return (
        row.reference + (f" (draft {draft.source})" if draft is not None else ""),  # Modelfile DRAFT
        format_size(row.memory),
        f"{row.gpu_layers}/{row.layers}",
        str(row.context),
        f"{row.slots_busy}/{row.slots}",
        f"{format_count(row.kv_used)}/{format_count(row.kv_cells)}" if row.kv_cells else "-",
        str(len(row.conversations)),
        status_text(row),
        f"{row.tokens_per_second:.1f}" if row.tokens_per_second else "-",
        countdown(row.expires_in, row.status),
    )


@dataclass
class SessionsLoaded(Message):
    rows: list[LoadedModel]


class SessionsPane(Vertical):
    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")
    BINDINGS = [
        Binding("u", "unload", "Unload", id="sessions.unload"),
        Binding("r", "reload", "Reload with…", id="sessions.reload"),
    ]

    def __init__(self, engine: Engine, interval: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.interval = interval
        self.rows: list[LoadedModel] = []

    def compose(self) -> ComposeResult:
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Static("", id="empty")

    def on_mount(self) -> None:
        where = ("WHERE",) if self.engine.where != "local" else ()  # the server's name on each row
        self.query_one(DataTable).add_columns(*COLUMNS, *where)
        if not self.engine.manages_models:  # a /v1-only server: it does not say what it has loaded
            empty = self.query_one("#empty", Static)
            empty.update(f"{self.engine.where} offers only the OpenAI API (/v1): it does not list sessions.")
            return
        self.poll()
        self.set_interval(self.interval, self.poll)

    def poll(self) -> None:
        self.fetch()

    @work(thread=True, exclusive=True, exit_on_error=False, group="sessions")
    def fetch(self) -> None:
        try:
            rows = self.engine.loaded()
        except Exception as error:  # noqa: BLE001 - reported by the app
            self.app.call_from_thread(self.app.report, error)  # type: ignore[attr-defined]
            return
        self.post_message(SessionsLoaded(rows))

    @on(SessionsLoaded)
    def show(self, message: SessionsLoaded) -> None:
        self.rows = message.rows
        table = self.query_one(DataTable)
        where = (self.engine.where,) if self.engine.where != "local" else ()
        cells = [tuple(visible(c) for c in (*session_cells(row), *where)) for row in self.rows]
        keys = [r.reference for r in self.rows]
        if keys == [key.value for key in table.rows] and cells:
            self._update_cells(table, cells)  # the same models: no layout pass (this runs every second)
        else:
            selected = self.selected()
            table.clear()
            for key, row_cells in zip(keys, cells, strict=True):
                table.add_row(*(Text(c) for c in row_cells), key=key)
            if selected in keys:
                table.move_cursor(row=keys.index(selected))
        self._shown_cells = cells
        empty = self.query_one("#empty", Static)
        empty.update("No model is loaded. Models load when a chat or the API uses them.")
        empty.display = not self.rows

    _shown_cells: list[tuple[str, ...]] = []

    def _update_cells(self, table: DataTable[Any], cells: list[tuple[str, ...]]) -> None:
        """Only the cells that changed, in place: rebuilding the table laid out the whole screen every
        second, which a key pressed meanwhile waited for (bench/tui_keys.py)."""
        from textual.coordinate import Coordinate

        for row, (new, old) in enumerate(zip(cells, self._shown_cells, strict=False)):
            for column, value in enumerate(new):
                before = old[column] if column < len(old) else ""
                if value != before:  # widths grow with a longer value (a column never shrinks under you)
                    wider = len(value) > len(before)
                    table.update_cell_at(Coordinate(row, column), Text(value), update_width=wider)

    def selected(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - no valid cursor
            return None

    def action_unload(self) -> None:
        reference = self.selected()
        if reference is None:
            self.app.notify("no model loaded", severity="warning")
            return
        self.unload(reference)

    @work
    async def action_reload(self) -> None:
        """Ask for GPU layers, context and slots (prefilled from what is loaded), then reload."""
        from tui.screens.reload import ReloadScreen
        from tui.widgets.param_editor import chat_layers

        reference = self.selected()
        row = next((r for r in self.rows if r.reference == reference), None)
        if row is None:
            self.app.notify("no model loaded", severity="warning")
            return
        inherited = await asyncio.to_thread(chat_layers, self.engine, None, row.reference)
        options = await self.app.push_screen_wait(ReloadScreen(row, inherited))
        if options is not None:
            self.reload(row.reference, options)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sessions-unload")
    def reload(self, reference: str, options: dict[str, object]) -> None:
        """Unload, then load again with ``options``; the configured keep-alive (the engine's) starts again."""
        self.app.call_from_thread(self.app.notify, f"reloading {visible(reference)}…", markup=False)
        try:
            self.engine.unload(reference)
            self.fetch()
            seconds = self.engine.load(reference, options=options)
        except Exception as error:  # noqa: BLE001 - Busy, LoadError and others: reported by the app
            self.app.call_from_thread(self.app.report, error)  # type: ignore[attr-defined]
        else:
            shown = ", ".join(f"{k} {v}" for k, v in options.items())
            self.app.call_from_thread(
                self.app.notify, f"reloaded {visible(reference)} ({shown}) in {seconds:.1f}s", markup=False
            )
        self.fetch()

    @work(thread=True, exclusive=True, exit_on_error=False, group="sessions-unload")
    def unload(self, reference: str) -> None:
        try:
            unloaded = self.engine.unload(reference)
        except Exception as error:  # noqa: BLE001 - Busy and others: reported by the app
            self.app.call_from_thread(self.app.report, error)  # type: ignore[attr-defined]
            return
        if unloaded:
            self.app.call_from_thread(
                self.app.notify, f"unloaded {visible(', '.join(unloaded))}", markup=False
            )
        self.fetch()
