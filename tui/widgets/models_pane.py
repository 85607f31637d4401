"""The Models tab: local models and store problems in a sortable, filterable table, with actions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Input, Static

from engine import visible
from tui.tables import ago, format_count

if TYPE_CHECKING:
    from engine import Engine

COLUMNS = ("NAME", "QUANT", "SIZE", "PARAMS", "CONTEXT", "MODIFIED")


@dataclass(frozen=True)
class Row:
    key: str  # the reference (what rm, cp, show take)
    problem: str | None  # None for a usable model; else "damaged" or "newer"
    detail: str  # the problem's words
    cells: tuple[str, ...]
    sort: tuple[Any, ...]  # one value per column


@dataclass
class ModelsLoaded(Message):
    rows: list[Row]


def model_rows(engine: Engine) -> list[Row]:
    from engine import format_size

    rows = []
    for m in engine.list_models():
        params = m.size_label or format_count(m.parameters)
        cells: tuple[str, ...] = (
            m.reference,
            m.quant or "-",
            format_size(m.size),
            params,
            str(m.context_length),
            ago(m.created),
        )
        sort: tuple[Any, ...] = (
            m.reference.lower(),
            m.quant or "",
            m.size,
            m.parameters,
            m.context_length,
            m.created,
        )
        if engine.where != "local":  # another machine's server: each row says which
            cells, sort = (*cells, engine.where), (*sort, engine.where)
        rows.append(Row(m.reference, None, "", cells, sort))
    for p in engine.store_problems():
        kind = "newer" if p.newer else "damaged"
        cells = (p.reference, kind, "-", "-", "-", "-")  # a store problem is always this machine's
        rows.append(Row(p.reference, kind, p.problem, cells, (p.reference.lower(), kind, -1, -1, -1, "")))
    return rows


class ModelsPane(Vertical):
    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")
    BINDINGS = [
        Binding("p", "pull", "Pull", id="models.pull"),
        Binding("d,delete", "delete", "Delete", id="models.delete"),
        Binding("c", "copy", "Copy", id="models.copy"),
        Binding("i", "details", "Details", id="models.details"),
        Binding("v", "verify", "Verify", id="models.verify"),
        Binding("n", "chat", "Chat", id="models.chat"),
        Binding("slash", "filter", "Filter", show=False, id="models.filter"),  # the filter box says so
        Binding("s", "sort", "Sort", show=False, id="models.sort"),
        Binding("S", "reverse", "Reverse sort", show=False, id="models.reverse"),
        Binding("r", "reload", "Reload", show=False, id="models.reload"),
    ]

    sort_column: reactive[int] = reactive(0)
    sort_reverse: reactive[bool] = reactive(False)

    def __init__(self, engine: Engine, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.rows: list[Row] = []
        self.columns: tuple[str, ...] = COLUMNS
        self.loaded_references: set[str] = set()  # marked ● (the app passes on the Sessions tab's poll)

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter models by name", id="filter", compact=True)
        yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
        yield Static("", id="empty")

    def on_mount(self) -> None:
        where = ("WHERE",) if self.engine.where != "local" else ()  # the server's name on each row
        self.columns = (*COLUMNS, *where)
        self.query_one(DataTable).add_columns(*self.columns)
        self.reload()

    # data ------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="models")
    def reload(self) -> None:
        try:
            rows = model_rows(self.engine)
        except Exception as error:  # noqa: BLE001 - reported as one line by the app
            self.app.call_from_thread(self.app.report, error)  # type: ignore[attr-defined]
            return
        self.post_message(ModelsLoaded(rows))

    @on(ModelsLoaded)
    def loaded(self, message: ModelsLoaded) -> None:
        self.rows = message.rows
        self.render_rows()

    def render_rows(self) -> None:
        table = self.query_one(DataTable)
        selected = self.selected()
        needle = self.query_one("#filter", Input).value.strip().lower()
        shown = [r for r in self.rows if needle in r.key.lower()]
        shown.sort(key=lambda r: (r.sort[self.sort_column], r.key), reverse=self.sort_reverse)
        table.clear()
        for row in shown:
            style = "red" if row.problem == "damaged" else ("yellow" if row.problem else "")
            cells = [Text(visible(c), style=style) for c in row.cells]
            mark = ("● ", "bold green") if row.key in self.loaded_references else "  "
            cells[0] = Text.assemble(mark, cells[0])
            table.add_row(*cells, key=row.key)
        arrow = " ▼" if self.sort_reverse else " ▲"
        for i, column in enumerate(table.columns.values()):
            column.label = Text(self.columns[i] + (arrow if i == self.sort_column else ""))
        table.refresh()
        keys = [r.key for r in shown]
        if selected in keys:
            table.move_cursor(row=keys.index(selected))
        empty = self.query_one("#empty", Static)
        if not self.rows:
            empty.update("No models yet: press p to pull one (e.g. gemma3:270m or hf.co/ORG/REPO).")
        elif not shown:
            empty.update("No model matches the filter.")
        empty.display = not shown

    def mark_loaded(self, references: set[str]) -> None:
        """These models are in memory now: ● before their names (drawn again only on a change)."""
        if references != self.loaded_references:
            self.loaded_references = references
            if self.is_mounted:
                self.render_rows()

    def selected(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - no valid cursor
            return None
        return key.value

    def selected_row(self) -> Row | None:
        key = self.selected()
        return next((r for r in self.rows if r.key == key), None)

    # filter and sort -------------------------------------------------------

    @on(Input.Changed, "#filter")
    def filter_changed(self) -> None:
        self.render_rows()

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def on_key(self, event: Any) -> None:
        if event.key in ("escape", "down") and self.query_one("#filter", Input).has_focus:
            self.query_one(DataTable).focus()
            event.stop()

    @on(DataTable.HeaderSelected)
    def header(self, event: DataTable.HeaderSelected) -> None:
        if event.column_index == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column = event.column_index

    @on(DataTable.RowSelected, "#models")
    def row_selected(self) -> None:
        self.action_details()

    def watch_sort_column(self) -> None:
        if self.is_mounted:
            self.render_rows()

    def watch_sort_reverse(self) -> None:
        if self.is_mounted:
            self.render_rows()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_sort(self) -> None:
        self.sort_column = (self.sort_column + 1) % len(self.columns)

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse

    def action_reload(self) -> None:
        self.reload()

    # actions ---------------------------------------------------------------

    def _need_model(self) -> Row | None:
        row = self.selected_row()
        if row is None:
            self.app.notify("no model selected", severity="warning")
        return row

    @work(exclusive=True, group="models-action")
    async def action_pull(self) -> None:
        from tui.screens.pull import PullScreen

        reference = await self.app.push_screen_wait(PullScreen(self.engine))
        if reference:
            self.app.notify(f"pulled {visible(reference)}", markup=False)
            self.reload()

    @work(exclusive=True, group="models-action")
    async def action_delete(self) -> None:
        from tui.screens.confirm import ConfirmScreen

        row = self._need_model()
        if row is None:
            return
        question = Text.assemble("Delete ", (visible(row.key), "bold"), "?")
        question.append("\nIts files are deleted unless another name uses them.")
        if not await self.app.push_screen_wait(ConfirmScreen(question)):
            return
        self.remove_model(row.key)

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-io")
    def remove_model(self, reference: str) -> None:
        from engine import format_size

        try:
            removal = self.engine.remove(reference)
        except Exception as error:  # noqa: BLE001 - reported by the app
            self.app.call_from_thread(self.app.report, error)  # type: ignore[attr-defined]
            return
        freed = f" (freed {format_size(removal.freed)})" if removal.freed else ""
        self.app.call_from_thread(
            self.app.notify, f"deleted {visible(removal.reference)}{freed}", markup=False
        )
        if removal.kept_because:
            self.app.call_from_thread(
                self.app.notify, visible(removal.kept_because), severity="warning", markup=False
            )
        self.reload()

    @work(exclusive=True, group="models-action")
    async def action_copy(self) -> None:
        from tui.screens.copy import CopyScreen

        row = self._need_model()
        if row is None or self._problem(row):
            return
        name = await self.app.push_screen_wait(CopyScreen(row.key))
        if name:
            self.copy_model(row.key, name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-io")
    def copy_model(self, source: str, destination: str) -> None:
        try:
            copied = self.engine.copy(source, destination)
        except Exception as error:  # noqa: BLE001 - reported by the app
            self.app.call_from_thread(self.app.report, error)  # type: ignore[attr-defined]
            return
        self.app.call_from_thread(
            self.app.notify, f"copied {visible(source)} to {visible(copied.reference)}", markup=False
        )
        self.reload()

    def _problem(self, row: Row) -> bool:
        if row.problem:
            self.app.notify(f"{visible(row.key)}: {visible(row.detail)}", severity="warning", markup=False)
        return bool(row.problem)

    def action_details(self) -> None:
        row = self._need_model()
        if row is not None and not self._problem(row):
            self.load_details(row.key)

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-io")
    def load_details(self, reference: str) -> None:
        from tui.screens.details import DetailsScreen

        try:
            details = self.engine.show(reference)
        except Exception as error:  # noqa: BLE001 - reported by the app
            self.app.call_from_thread(self.app.report, error)  # type: ignore[attr-defined]
            return
        self.app.call_from_thread(self.app.push_screen, DetailsScreen(details))

    def action_chat(self) -> None:
        """A new chat on the selected model, in the Chat tab."""
        row = self._need_model()
        if row is not None and not self._problem(row):
            self.app.open_chat(row.key)  # type: ignore[attr-defined]

    def action_verify(self) -> None:
        from tui.screens.verify import VerifyScreen

        row = self._need_model()
        if row is not None:
            self.app.push_screen(VerifyScreen(self.engine, [row.key]))
