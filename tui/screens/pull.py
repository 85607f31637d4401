"""Pull a model: a reference, then its variants (size, memory need, fit), then the download."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static

from tui.screens.progress import EventProgress, Throttle
from tui.terminal import escape

if TYPE_CHECKING:
    from engine import Engine, Event, VariantFit


@dataclass
class EngineEvent(Message):
    event: Event


@dataclass
class VariantsFound(Message):
    reference: str
    variants: list[VariantFit]


@dataclass
class Failed(Message):
    error: BaseException


@dataclass
class Pulled(Message):
    reference: str


class PullScreen(ModalScreen[str | None]):
    """Dismissed with the reference pulled, or None (cancelled: a partial download is kept)."""

    CSS_PATH = "pull.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, engine: Engine, reference: str = "") -> None:
        super().__init__()
        self.engine = engine
        self.reference = reference
        self.stage = "reference"  # then "variants", "surveying", "pulling"
        from engine import CancelToken

        self.token = CancelToken()

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Pull a model", id="title")
            yield Input(
                value=self.reference, placeholder="hf.co/ORG/REPO[:QUANT] or gemma3:270m", id="reference"
            )
            yield DataTable(id="variants", cursor_type="row", zebra_stripes=True)
            yield EventProgress(id="progress")
            yield Label("Enter: next · Esc: cancel", id="hint")

    def on_mount(self) -> None:
        table = self.query_one("#variants", DataTable)
        table.add_columns("QUANT", "SIZE", "NEEDS", "FITS IN", "")
        table.display = False
        self.query_one("#progress").display = False
        self.query_one("#reference", Input).focus()

    # the steps -------------------------------------------------------------

    @on(Input.Submitted, "#reference")
    def survey(self, event: Input.Submitted) -> None:
        reference = event.value.strip()
        if not reference or self.stage != "reference":
            return
        self.reference = reference
        self.stage = "surveying"
        self._hint("looking up the variants… · Esc: cancel")
        self.query_one("#progress").display = True
        self.find_variants(reference)

    @work(thread=True, exclusive=True, exit_on_error=False, group="pull")
    def find_variants(self, reference: str) -> None:
        from engine import Cancelled, InvalidReference, LlamadeckError

        throttle = Throttle(lambda e: self.post_message(EngineEvent(e)))
        try:
            found = self.engine.variants(
                reference,
                on_event=throttle,
                cancel=self.token,
            )
        except InvalidReference:  # a local name (gemma3:270m): nothing to choose, pull as it is
            self.post_message(VariantsFound(reference, []))
        except Cancelled:
            self.post_message(Failed(Cancelled("cancelled")))
        except LlamadeckError as error:
            self.post_message(Failed(error))
        except Exception as error:  # noqa: BLE001 - reported by the app as one line, logged in full
            self.post_message(Failed(error))
        else:
            self.post_message(VariantsFound(reference, found))

    @on(VariantsFound)
    def show_variants(self, message: VariantsFound) -> None:
        from engine import format_gib, format_size

        if not message.variants:
            self.start_pull(None)
            return
        self.stage = "variants"
        self.query_one("#progress").display = False
        table = self.query_one("#variants", DataTable)
        table.clear()
        recommended = 0
        for i, fit in enumerate(message.variants):
            fits = fit.fits_in.value or "does not fit"
            style = "" if fit.fits_in.value else "red"
            table.add_row(
                Text(escape(fit.quant)),
                format_size(fit.size),
                format_gib(fit.need),
                Text(fits, style=style),
                Text("recommended", style="green") if fit.recommended else "",
                key=fit.quant,
            )
            if fit.recommended:
                recommended = i
        table.display = True
        table.move_cursor(row=recommended)
        table.focus()
        self._hint("↑↓ choose · Enter: pull · Esc: cancel")

    @on(DataTable.RowSelected, "#variants")
    def chosen(self, event: DataTable.RowSelected) -> None:
        if self.stage == "variants" and event.row_key.value is not None:
            self.start_pull(event.row_key.value)

    def start_pull(self, quant: str | None) -> None:
        self.stage = "pulling"
        self.query_one("#variants").display = False
        self.query_one("#progress").display = True
        self.query_one("#reference", Input).disabled = True
        self._hint("downloading… · Esc: cancel (the partial download is kept)")
        self.pull(self.reference, quant)

    @work(thread=True, exclusive=True, exit_on_error=False, group="pull")
    def pull(self, reference: str, quant: str | None) -> None:
        throttle = Throttle(lambda e: self.post_message(EngineEvent(e)))
        try:
            manifest = self.engine.pull(
                reference,
                quant=quant,
                on_event=throttle,
                cancel=self.token,
            )
        except Exception as error:  # noqa: BLE001 - Cancelled and engine errors included: the app reports
            self.post_message(Failed(error))
        else:
            self.post_message(Pulled(manifest.reference))

    # events ----------------------------------------------------------------

    @on(EngineEvent)
    def progress(self, message: EngineEvent) -> None:
        self.query_one(EventProgress).show(message.event)

    @on(Pulled)
    def pulled(self, message: Pulled) -> None:
        self.dismiss(message.reference)

    @on(Failed)
    def failed(self, message: Failed) -> None:
        from engine import Cancelled

        if isinstance(message.error, Cancelled):
            self.app.notify("pull cancelled: the partial download is kept; pull again to resume")
            self.dismiss(None)
            return
        report = getattr(self.app, "report", None)
        if report is not None:
            report(message.error)
        if self.stage == "surveying":  # let the user fix the reference
            self.stage = "reference"
            self.query_one("#progress").display = False
            self.query_one("#reference", Input).focus()
            self._hint("Enter: next · Esc: cancel")
        else:
            self.dismiss(None)

    def on_unmount(self) -> None:
        self.token.cancel()  # the app is quitting, or the dialog closed: no download goes on unseen

    def action_cancel(self) -> None:
        if self.stage in ("surveying", "pulling"):
            self.token.cancel()
            self._hint("cancelling…")
        else:
            self.dismiss(None)

    def _hint(self, text: str) -> None:
        self.query_one("#hint", Label).update(text)
