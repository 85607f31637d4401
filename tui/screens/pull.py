"""Pull a model: a reference (or a Hub search), then its variants (size, memory need, fit), then the download.

What is typed is a reference when it names one (``hf.co/ORG/REPO``,
``ORG/REPO``, ``NAME:TAG``); anything else, or any text with ctrl+s, is a
search of Hugging Face's GGUF repositories, most downloaded first. Enter on
a result goes on to its variants. Everything the Hub sends is shown as text.
Every problem (a search's, a reference's, a download's) shows in one place,
the dialog's error line, and the dialog stays open to fix it or try again.
"""

from __future__ import annotations

import logging
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

from engine import visible
from tui.screens.progress import EventProgress, Throttle

log = logging.getLogger("llamadeck.tui")
READY = "Enter: next (words: search the Hub) · ctrl+s: search · Esc: cancel"

if TYPE_CHECKING:
    from engine import CancelToken, Engine, Event, HubRepo, VariantFit

SEARCH_LIMIT = 30


def is_reference(text: str) -> bool:
    """Whether ``text`` names a model (``ORG/REPO``, ``hf.co/...``, ``NAME:TAG``) rather than a search."""
    return "/" in text or ":" in text


def count_text(count: int) -> str:
    """A download count as the Hub shows it: 950, 12.3k, 4.1M."""
    for size, unit in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def problem_text(error: BaseException) -> str:
    """One line for the dialog: the engine's words, an OS error's, or (a bug) the type, logged in full."""
    from engine import LlamadeckError

    if isinstance(error, LlamadeckError):
        return str(error)
    if isinstance(error, OSError):
        return f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
    log.error("pull dialog: internal error", exc_info=error)
    return f"internal error: {type(error).__name__}: {error} (details in the Logs tab)"


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
class SearchFound(Message):
    query: str
    results: list[HubRepo]


@dataclass
class SearchFailed(Message):
    query: str
    error: BaseException


@dataclass
class Pulled(Message):
    reference: str


class PullScreen(ModalScreen[str | None]):
    """Dismissed with the reference pulled, or None (cancelled: a partial download is kept)."""

    CSS_PATH = "pull.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "search", "Search the Hub", id="pull.search"),
    ]

    def __init__(self, engine: Engine, reference: str = "") -> None:
        super().__init__()
        self.engine = engine
        self.reference = reference
        self.stage = "reference"  # or "searching", "results"; then "surveying", "variants", "pulling"
        from engine import CancelToken

        self.token = CancelToken()
        self.search_token: CancelToken = CancelToken()
        self.results: list[HubRepo] = []

    @property
    def busy(self) -> str | None:
        """What quitting now would stop (the app asks first), or None."""
        return "a model is downloading" if self.stage == "pulling" else None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Pull a model", id="title")
            yield Input(
                value=self.reference,
                placeholder="hf.co/ORG/REPO[:QUANT], gemma3:270m, or words to search",
                id="reference",
            )
            yield Static("", id="error", markup=False)
            yield DataTable(id="results", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="variants", cursor_type="row", zebra_stripes=True)
            yield EventProgress(id="progress")
            yield Label(READY, id="hint")

    def on_mount(self) -> None:
        table = self.query_one("#variants", DataTable)
        table.add_columns("QUANT", "SIZE", "NEEDS", "FITS IN", "")
        table.display = False
        results = self.query_one("#results", DataTable)
        results.add_columns("REPOSITORY", "DOWNLOADS", "LIKES", "UPDATED", "")
        results.display = False
        self.query_one("#error").display = False
        self.query_one("#progress").display = False
        self.query_one("#reference", Input).focus()

    # the steps -------------------------------------------------------------

    @on(Input.Submitted, "#reference")
    def survey(self, event: Input.Submitted) -> None:
        reference = event.value.strip()
        if not reference or self.stage not in ("reference", "results"):
            return
        if not is_reference(reference):
            self.start_search(reference)
            return
        self.survey_reference(reference)

    def survey_reference(self, reference: str) -> None:
        self.reference = reference
        self.stage = "surveying"
        self._error(None)
        self.query_one("#results").display = False
        self._hint("looking up the variants… · Esc: cancel")
        self.query_one("#progress").display = True
        self.find_variants(reference)

    # searching the Hub -----------------------------------------------------

    def action_search(self) -> None:
        query = self.query_one("#reference", Input).value.strip()
        if self.stage not in ("reference", "results"):
            return
        if not query:
            self._error("type part of a model's name, then ctrl+s (or Enter) to search Hugging Face")
            return
        self.start_search(query)

    def start_search(self, query: str) -> None:
        from engine import CancelToken

        self.search_token.cancel()  # a search still under way is forgotten
        self.search_token = CancelToken()
        self.stage = "searching"
        self._error(None)
        self.query_one("#results").display = False
        self._hint(f"searching Hugging Face for {visible(query)}… · Esc: stop")
        self.search(query, self.search_token)

    @work(thread=True, exclusive=True, exit_on_error=False, group="pull-search")
    def search(self, query: str, token: CancelToken) -> None:
        try:
            found = self.engine.search(query, limit=SEARCH_LIMIT, cancel=token)
        except Exception as error:  # noqa: BLE001 - shown in the dialog: engine errors as they are
            if not token.cancelled:
                self.post_message(SearchFailed(query, error))
            return
        if not token.cancelled:
            self.post_message(SearchFound(query, found))

    @on(SearchFound)
    def show_results(self, message: SearchFound) -> None:
        if self.stage != "searching":
            return
        self.results = sorted(message.results, key=lambda r: -r.downloads)
        if not self.results:
            self.stage = "reference"
            self._error(f"no GGUF repository on Hugging Face matches {message.query}")
            self._hint(READY)
            self.query_one("#reference", Input).focus()
            return
        self.stage = "results"
        table = self.query_one("#results", DataTable)
        table.clear()
        for repo in self.results:
            table.add_row(
                Text(visible(repo.repo)),
                Text(count_text(repo.downloads), justify="right"),
                Text(count_text(repo.likes), justify="right"),
                Text(visible((repo.updated or "")[:10])),
                Text("gated", style="yellow") if repo.gated else "",
                key=repo.repo,
            )
        table.display = True
        table.move_cursor(row=0)
        table.focus()
        self._hint("↑↓ choose · Enter: its variants · Esc: back to the search")

    @on(SearchFailed)
    def search_failed(self, message: SearchFailed) -> None:
        if self.stage != "searching":
            return
        self.stage = "reference"
        text = problem_text(message.error)
        log.info("search %r: %s", message.query, text)
        self._error(f"search failed: {text}")
        self._hint(READY)
        self.query_one("#reference", Input).focus()

    @on(DataTable.RowSelected, "#results")
    def result_chosen(self, event: DataTable.RowSelected) -> None:
        if self.stage == "results" and event.row_key.value is not None:
            self.survey_reference(f"hf.co/{event.row_key.value}")

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

        if self.stage != "surveying":
            return
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
                Text(visible(fit.quant)),
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
        # shown where the search's errors are, in the dialog, which stays open: fix the reference, or
        # press Enter to try again (a download that broke off resumes from its partial file)
        text = problem_text(message.error)
        log.info("pull %s: %s", self.reference, text)
        self._error(f"pull failed: {text}" if self.stage == "pulling" else text)
        self.stage = "reference"
        self.query_one("#progress").display = False
        self.query_one("#variants").display = False
        reference = self.query_one("#reference", Input)
        reference.disabled = False
        reference.focus()
        self._hint(READY)

    def on_unmount(self) -> None:
        self.token.cancel()  # the app is quitting, or the dialog closed: no download goes on unseen
        self.search_token.cancel()

    def action_cancel(self) -> None:
        if self.stage in ("searching", "results"):  # back to what was typed
            self.search_token.cancel()
            self.stage = "reference"
            self.query_one("#results").display = False
            self.query_one("#reference", Input).focus()
            self._hint(READY)
        elif self.stage in ("surveying", "pulling"):
            self.token.cancel()
            self._hint("cancelling…")
        else:
            self.dismiss(None)

    def _hint(self, text: str) -> None:
        self.query_one("#hint", Label).update(Text(text))

    def _error(self, text: str | None) -> None:
        """A one-line problem shown in the dialog (as text, never markup); None hides it."""
        error = self.query_one("#error", Static)
        error.update(Text(visible(text or "")))
        error.display = text is not None
