"""Settings: theme (previewed live), default model, default parameters, keep-alive, store location.

The parameters and the keep-alive are rows of the app's one parameter editor
(``tui.widgets.param_editor``), as in a chat's settings and Reload: label
and Ollama name, the value in effect and where it comes from (an
``OLLAMA_KEEP_ALIVE`` in the environment wins over what is saved here, and
the row says so).

Edits a ``Config`` in place and saves it atomically on ctrl+s; Esc puts the
theme back and changes nothing. Every value is checked before anything is
written, and a bad one is one line in the dialog naming the setting. The app
passes its own ``Config`` so the next theme switch (``t``) saves these
settings too, not a stale copy.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from engine import visible
from tui.config import DEFAULT_KEEP_ALIVE, Config, SettingError, check_store
from tui.widgets.param_editor import (
    SETTINGS_PARAMS,
    Layer,
    ParamEditor,
    ParamError,
    duration_text,
    server_layers,
)

if TYPE_CHECKING:
    from engine import Engine

log = logging.getLogger("llamadeck.tui")
PARAMETERS_HELP = "New chats inherit these; a model's Modelfile gives what is blank here."
STORE_HELP = "Empty: LLAMADECK_HOME or the default. A change takes effect at the next start."


class SettingsScreen(ModalScreen[bool]):
    """Dismissed with True when the settings were saved."""

    CSS_PATH = "settings.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save", priority=True),
    ]

    def __init__(self, engine: Engine, config: Config, path: Path) -> None:
        super().__init__()
        self.engine = engine
        self.config = config
        self.path = path
        self.original_theme = ""

    def compose(self) -> ComposeResult:
        themes = sorted(self.app.available_themes)
        with Vertical(id="dialog"):
            yield Static("Settings", id="title")
            with VerticalScroll(id="fields"):
                yield Label("Theme (previewed as you choose)", classes="label")
                yield Select(
                    [(Text(visible(name)), name) for name in themes],
                    value=self.app.theme if self.app.theme in themes else Select.NULL,
                    allow_blank=False,
                    id="theme",
                    compact=True,
                )
                yield Label("Default model for new chats", classes="label")
                yield Select([], prompt="(none: ask each time)", id="default_model", compact=True)
                yield Label("Default parameters and keep-alive", classes="label")
                yield Static(PARAMETERS_HELP, classes="help", markup=False)
                values = {**self.config.parameters, "keep_alive": self.config.keep_alive}
                yield ParamEditor(
                    SETTINGS_PARAMS,
                    values,
                    edited="settings",
                    below=server_layers(self.engine.settings),
                    above=self.overriding(),
                    id="parameters",
                )
                yield Label("Store location", classes="label")
                yield Input(self.config.store, id="store", placeholder=str(self.engine.home), compact=True)
                yield Static(STORE_HELP, classes="help", markup=False)
            yield Static("", id="error", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save", compact=True)
                yield Button("Cancel (Esc)", id="cancel", compact=True)

    def overriding(self) -> list[Layer]:
        """``LLAMADECK_KEEP_ALIVE``/``OLLAMA_KEEP_ALIVE`` in the environment: they win over this dialog."""
        settings = self.engine.settings
        origin = settings.origins.get("keep_alive", "")
        if origin.startswith(("LLAMADECK_", "OLLAMA_")):
            return [Layer(origin, {"keep_alive": duration_text(settings.keep_alive)})]
        return []

    def on_mount(self) -> None:
        self.original_theme = self.app.theme
        self.query_one("#error").display = False
        self.query_one("#theme", Select).focus()
        self.list_models()

    @work(thread=True, exclusive=True, exit_on_error=False, group="settings-models")
    def list_models(self) -> None:
        try:
            references = [m.reference for m in self.engine.list_models()]
        except Exception as error:  # noqa: BLE001 - the list stays empty; the app says why
            self.app.call_from_thread(self.app.report, error)  # type: ignore[attr-defined]
            references = []
        self.app.call_from_thread(self.show_models, references)

    def show_models(self, references: list[str]) -> None:
        select: Select[str] = self.query_one("#default_model", Select)
        options = [(Text(visible(r)), r) for r in references]
        wanted = self.config.default_model
        if wanted and wanted not in references:  # kept, and said: it may have been removed
            options.insert(0, (Text(f"{visible(wanted)} (not in the store)"), wanted))
        select.set_options(options)
        if wanted:
            select.value = wanted

    @on(Select.Changed, "#theme")
    def preview_theme(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value in self.app.available_themes:
            self.app.theme = event.value

    # saving ----------------------------------------------------------------

    def read(self) -> dict[str, object]:
        """The values in the dialog, each checked; raises SettingError naming the first bad one."""
        theme = self.query_one("#theme", Select).value
        model = self.query_one("#default_model", Select).value
        values: dict[str, object] = {
            "theme": theme if isinstance(theme, str) else self.config.theme,
            "default_model": model if isinstance(model, str) else "",
        }
        try:
            edited = self.query_one(ParamEditor).values()
        except ParamError as error:
            raise SettingError(str(error)) from None
        kept = {k: v for k, v in self.config.parameters.items() if k not in SETTINGS_PARAMS}  # by hand
        values["keep_alive"] = str(edited.pop("keep_alive", DEFAULT_KEEP_ALIVE))
        values["parameters"] = {**kept, **edited}
        values["store"] = check_store(self.query_one("#store", Input).value)
        return values

    @on(ParamEditor.Submitted)
    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        try:
            values = self.read()
        except SettingError as error:
            self._error(str(error))
            return
        before = self.config.store
        previous = {name: getattr(self.config, name) for name in values}
        for name, value in values.items():
            setattr(self.config, name, value)
        try:
            self.config.save(self.path)
        except OSError as error:
            for name, value in previous.items():  # what was not saved is not in effect either
                setattr(self.config, name, value)
            where = f": {error.filename}" if error.filename else ""
            self._error(f"settings not saved: {error.strerror or error}{where}")
            return
        log.info("settings saved to %s", self.path)
        self.apply_server_settings()
        note = " (the store location takes effect at the next start)" if self.config.store != before else ""
        self.app.notify(f"settings saved{note}", markup=False)
        self.dismiss(True)

    def apply_server_settings(self) -> None:
        """The engine takes the saved keep-alive (unless LLAMADECK_KEEP_ALIVE/OLLAMA_KEEP_ALIVE set one)."""
        from engine import LlamadeckError

        try:
            self.engine.configure(self.config.server_settings())
        except LlamadeckError as error:  # a variable changed under the app: the engine keeps what it had
            log.warning("server settings not applied: %s", error)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if self.original_theme and self.app.theme != self.original_theme:
            self.app.theme = self.original_theme
        self.dismiss(False)

    def _error(self, text: str) -> None:
        error = self.query_one("#error", Static)
        error.update(Text(visible(text)))
        error.display = True
