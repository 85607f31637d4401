"""The full-screen app: Models, Sessions, Chat and Logs tabs over one ``engine.Engine``.

``llamadeck`` with no arguments (on a terminal) opens it. Engine calls run in
thread workers and post messages back; engine errors are one notification
with the engine's words, anything unexpected is logged (Logs tab) and shown
as one line. Text from models and files is shown as text, never as markup.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import TabbedContent, TabPane

from engine import visible
from tui.config import DEFAULT_THEME, Config, config_dir, user_themes_dir
from tui.frames import INPUT_EVENTS, KeysFirstScreen
from tui.input_guard import guarded_driver
from tui.themes import SHIPPED, load_themes
from tui.ui_slice import ask_for_longer_slice
from tui.widgets.chat_input import box_keys
from tui.widgets.chat_pane import ChatPane
from tui.widgets.fitting_footer import FittingFooter
from tui.widgets.logs_pane import LogsPane, PaneHandler
from tui.widgets.models_pane import ModelsPane
from tui.widgets.serve_address import ServeAddress
from tui.widgets.sessions_pane import SessionsLoaded, SessionsPane

if TYPE_CHECKING:
    from engine import Engine
    from tui.chatstore import ChatStore

log = logging.getLogger("llamadeck.tui")
TABS = (("models", "Models"), ("sessions", "Sessions"), ("chat", "Chat"), ("logs", "Logs"))
ERROR_SECONDS = 8
PALETTE_IN_FOOTER = 80  # columns from which the footer also shows ^p palette
FOCUS = {"models": "#models", "sessions": "#sessions", "chat": "#chat-input", "logs": "#log"}


CHAT_COMMANDS = (
    ("new_chat", "New chat", "Start a new chat"),
    ("stop", "Stop reply", "Stop the reply that is streaming"),
    ("regenerate", "Regenerate reply", "Ask again for the last reply"),
    ("edit_last", "Edit last message", "Put your last message back in the input; sending replaces it"),
    ("copy_message", "Copy message", "Copy the selected (or last) message"),
    ("copy_code", "Copy code block", "Copy the last code block"),
    ("attach_image", "Attach image", "Attach an image to the next message, by path"),
    ("drop_image", "Take last image off", "Take the last attached image off"),
    ("drop_images", "Take all images off", "Take every attached image off"),
    ("settings", "Chat settings", "Model, system prompt and parameters of this chat"),
    ("pick_model", "Pick chat model", "The model this chat talks to"),
    ("rename", "Rename chat", "Give this chat a title"),
    ("delete", "Delete chat", "Delete this chat and its messages"),
    ("export", "Export chat", "Write this chat to a Markdown file"),
    ("search", "Search chats", "Search titles and messages"),
    ("toggle_list", "Toggle chat list", "Show or hide the list of chats"),
)


class LlamadeckApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "llamadeck"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),  # asks first while a reply streams or a pull runs
        # ctrl+c stops a streaming reply from anywhere (shown then); else it copies as Textual's does
        Binding("ctrl+c", "stop_reply", "Stop reply", priority=True, id="app.stop"),
        Binding("ctrl+c", "help_quit", show=False, system=True),
        Binding("f1,question_mark", "help", "Help", id="app.help"),
        Binding("t", "next_theme", "Theme", show=False, id="app.theme"),
        Binding("1", "tab('models')", "Models", show=False, id="app.tab.models"),
        Binding("2", "tab('sessions')", "Sessions", show=False, id="app.tab.sessions"),
        Binding("3", "tab('chat')", "Chat", show=False, id="app.tab.chat"),
        Binding("4", "tab('logs')", "Logs", show=False, id="app.tab.logs"),
        Binding("comma", "settings", "Settings", show=False, id="app.settings"),  # in help and palette
        # as in any full-screen terminal program (fg brings it back); where the platform cannot, the
        # binding is off and ctrl+z reaches the widget (undo in a text box)
        Binding(
            "ctrl+z", "suspend_process", "Suspend (fg resumes)", show=False, priority=True, id="app.suspend"
        ),
    ]

    def __init__(
        self,
        engine: Engine,
        *,
        config_path: Path | None = None,
        theme_folders: tuple[Path, ...] | None = None,
        refresh_interval: float = 1.0,
        chat_model: str | None = None,
        chat_db: Path | None = None,
        serve_url: str | None = None,
    ) -> None:
        """``chat_model``: open on the Chat tab with a new chat on that model (``llamadeck run MODEL``).
        ``chat_db``: the chat history file (default: ``tui.chatstore.default_chat_db()``).
        ``serve_url``: where ``llamadeck --serve`` serves this app's engine, shown in the title bar."""
        self.engine = engine
        self.chat_model = chat_model
        self.chat_db = chat_db
        self.serve_url = serve_url
        self.chat_store: ChatStore | None = None
        self._chat_pane: ChatPane | None = None  # set at mount
        self.config_path = config_path or config_dir() / "config.toml"
        self.theme_folders = theme_folders if theme_folders is not None else (SHIPPED, user_themes_dir())
        self.refresh_interval = refresh_interval
        self.log_handler = PaneHandler()
        logging.getLogger("llamadeck").addHandler(self.log_handler)
        logging.getLogger("llamadeck").setLevel(logging.INFO)
        self.config = Config.load(self.config_path)
        self.our_themes: list[str] = []
        self._signals: list[int] = []
        self._asking_to_quit = False
        self._errors_shown: dict[str, float] = {}  # message: when (report)
        self.exit_notes: list[str] = []  # what closing could not do, said on stderr once the screen is gone
        super().__init__(driver_class=guarded_driver())  # pastes stay text, odd bytes never crash

    # layout ----------------------------------------------------------------

    def get_default_screen(self) -> Screen:
        return KeysFirstScreen(id="_default")  # a key's frame drawn at once (tui/frames.py)

    async def on_event(self, event: events.Event) -> None:
        screen = self.screen if self.screen_stack else None
        if isinstance(event, INPUT_EVENTS) and not event.is_forwarded and isinstance(screen, KeysFirstScreen):
            screen.note_input()
        await super().on_event(event)

    def compose(self) -> ComposeResult:
        initial = "tab-chat" if self.chat_model else "tab-models"
        with TabbedContent(initial=initial, id="tabs"):
            with TabPane("1 Models", id="tab-models"):
                yield ModelsPane(self.engine, id="models-pane")
            with TabPane("2 Sessions", id="tab-sessions"):
                yield SessionsPane(self.engine, interval=self.refresh_interval, id="sessions-pane")
            with TabPane("3 Chat", id="tab-chat"):
                yield ChatPane(self.engine, model=self.chat_model, id="chat-pane")
            with TabPane("4 Logs", id="tab-logs"):
                yield LogsPane(self.engine, self.log_handler, interval=self.refresh_interval, id="logs-pane")
        yield FittingFooter(compact=True)
        if self.serve_url:
            yield ServeAddress(self.serve_url, id="serve-address")

    def on_resize(self, event: events.Resize) -> None:
        for badge in self.query(ServeAddress):
            badge.place(event.size.width)
        # narrow: the footer's keys run under its docked "^p palette" (ctrl+p still works; help lists it)
        footer = self.query_one(FittingFooter)
        footer.show_command_palette = event.size.width >= PALETTE_IN_FOOTER
        footer.refresh(recompose=True)  # it leaves the palette's key out where the keys fill the row

    def _place_toasts(self, _screen: object = None) -> None:
        """Notifications stack up from just above the message box (and the footer), never over it:
        the box is where the user types. Called on each layout of the main screen (the box grows, a
        streaming reply grows): no query over the whole DOM here, which cost 11 ms a call with a long
        chat open (bench/tui_keys.py), but the box kept at mount and the screen's own rack."""
        from textual.css.query import NoMatches
        from textual.widgets._toast import ToastRack

        if not self.screen_stack:
            return
        box = getattr(self._chat_pane, "box", None)
        above = 1 + (box.outer_size.height if box is not None and box.region.height else 0)
        try:
            rack = self.screen_stack[0].get_child_by_type(ToastRack)
        except NoMatches:
            return
        if rack.styles.margin.bottom != above:
            rack.styles.margin = (0, 0, above, 0)

    @on(SessionsLoaded)
    def mark_loaded(self, message: SessionsLoaded) -> None:
        """The Sessions tab's poll also marks the loaded models in the Models tab."""
        self.query_one(ModelsPane).mark_loaded({row.reference for row in message.rows})

    def _on_terminate(self, signum: int) -> None:
        """SIGTERM or SIGHUP (the terminal closed): leave as quitting does — the streaming reply is
        saved and marked, the terminal's modes restored — instead of dying mid-screen."""
        log.info("signal %d: closing", signum)
        self.exit(128 + signum)

    def _catch_termination(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            with suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, no loop
                loop.add_signal_handler(signum, self._on_terminate, signum)
                self._signals.append(signum)

    def on_mount(self) -> None:
        self._catch_termination()
        ask_for_longer_slice()  # frames not cut by the tick while llama.cpp holds the cores (tui/ui_slice.py)
        themes, failures = load_themes(*self.theme_folders)
        for theme in themes:
            self.register_theme(theme)
        self.our_themes = [t.name for t in themes]
        for failure in failures:
            log.warning("%s", failure)
        if failures:
            self.notify(f"{len(failures)} theme file(s) skipped: see the Logs tab", severity="warning")
        wanted = self.config.theme
        if wanted in self.available_themes:
            self.theme = wanted
        elif DEFAULT_THEME in self.available_themes:
            if wanted:
                log.warning("theme %r in config.toml is not installed: using %s", wanted, DEFAULT_THEME)
            self.theme = DEFAULT_THEME
        self.watch(self, "theme", self.save_theme, init=False)
        log.info("llamadeck started: store %s, config %s", self.engine.home, self.config_path)
        if self.engine.where != "local":  # another machine's server (llamadeck --host)
            self.sub_title = f"on {self.engine.where}"
            log.info("working against the server %s", self.engine.where)
            self.notify(
                f"Models and chats are on {self.engine.where}", title="llamadeck --host", markup=False
            )
        if self.serve_url:  # and in sight while it runs (ServeAddress)
            self.sub_title = f"API on {self.serve_url}"
            log.info("serving the API on %s", self.serve_url)
            self.notify(f"Serving the API on {self.serve_url}", title="llamadeck --serve", markup=False)
        self._chat_pane = self.query_one(ChatPane)  # for _place_toasts, on every layout
        self.screen.screen_layout_refresh_signal.subscribe(self, self._place_toasts)
        # back from ctrl+z (fg): the terminal shows the shell's screen until something repaints; draw all
        self.app_resume_signal.subscribe(self, lambda _app: self.screen.refresh(repaint=True, layout=True))
        self.open_chats()
        if self.chat_model:
            self.query_one("#chat-input").focus()
        else:
            self.query_one(ModelsPane).query_one("#models").focus()

    @work(thread=True, exit_on_error=False, group="chat-store")
    def open_chats(self) -> None:
        """The chat history, in a thread (a big file takes a moment to check).

        A damaged file is set aside and an unusable one replaced by memory: the
        app starts either way, with a warning that says which.
        """
        from tui.chatstore import ChatStore, default_chat_db

        try:
            store, warning = ChatStore.open_or_fresh(self.chat_db or default_chat_db())
        except Exception as error:  # noqa: BLE001 - open_or_fresh only raises on a bug: shown, app goes on
            self.call_from_thread(self.report, error)
            return
        try:
            self.call_from_thread(self._chats_opened, store, warning)
        except RuntimeError:  # the app closed meanwhile
            store.close()

    def _chats_opened(self, store: ChatStore, warning: str | None) -> None:
        if not self.is_running:
            store.close()
            return
        self.chat_store = store
        if warning:
            log.warning("%s", warning)
            self.notify(visible(warning), severity="warning", markup=False, timeout=12)
        self.query_one(ChatPane).attach(store)

    def open_chat(self, model: str) -> None:
        """The Chat tab with a new chat on ``model`` (the Models tab's chat action)."""
        self.action_tab("chat")
        self.query_one(ChatPane).new_chat(model)

    def on_unmount(self) -> None:
        logging.getLogger("llamadeck").removeHandler(self.log_handler)
        with suppress(RuntimeError, ValueError):
            loop = asyncio.get_running_loop()
            for signum in self._signals:
                loop.remove_signal_handler(signum)
        if self.chat_store is not None:  # the Chat pane, gone by now, kept a streaming reply at its unmount
            self.chat_store.close()

    # errors ----------------------------------------------------------------

    def notify(
        self, message: str, *, title: str = "", severity="information", timeout=None, markup=True
    ) -> None:
        """Every notification also goes to the Logs tab, so what flashed by can be read again."""
        if severity != "error":  # errors are logged by report, with their details
            log.info("%s", message)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def report(self, error: BaseException) -> None:
        """An engine error: its message. Anything else: logged in full, shown as one line."""
        from engine import LlamadeckError
        from tui.chatstore import ChatStoreError

        if isinstance(error, LlamadeckError | ChatStoreError):  # both speak to the user already
            log.info("error: %s", error)
            self._error_line(visible(str(error)))
            return
        if isinstance(error, OSError):
            where = f": {error.filename}" if error.filename else ""
            message = f"{error.strerror or error}{where}"
            log.warning("%s", message)
            self._error_line(visible(message))
            return
        log.error("internal error", exc_info=error)
        line = f"internal error: {type(error).__name__}: {error} (details in the Logs tab)"
        first = line.splitlines()[0] if line else line
        self._error_line(visible(first))

    def _error_line(self, message: str) -> None:
        """One notification per message while it shows: a send whose two writes both fail on a locked
        history said the same line twice."""
        now = time.monotonic()
        if now - self._errors_shown.get(message, -ERROR_SECONDS) < ERROR_SECONDS:
            return
        self._errors_shown = {m: t for m, t in self._errors_shown.items() if now - t < ERROR_SECONDS}
        self._errors_shown[message] = now
        self.notify(message, severity="error", markup=False, timeout=ERROR_SECONDS)

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """The palette's "Screenshot": into the downloads folder (made when missing); one line says where."""
        from datetime import datetime

        from platformdirs import user_downloads_path

        from tui.screenshot import save_svg

        name = filename or f"{self.title}_{datetime.now().strftime(time_format or '%Y-%m-%dT%H_%M_%S')}.svg"
        saved = save_svg(self.export_screenshot(), name, Path(path) if path else user_downloads_path())
        self.notify(
            saved.message, title="Screenshot", severity="information" if saved.path else "error", markup=False
        )
        return str(saved.path) if saved.path else None

    # themes ----------------------------------------------------------------

    def save_theme(self, theme: str) -> None:
        self.config.theme = theme
        try:
            self.config.save(self.config_path)
        except OSError as error:
            self.report(error)

    def action_next_theme(self) -> None:
        names = self.our_themes or [self.theme]
        index = names.index(self.theme) + 1 if self.theme in names else 0
        self.theme = names[index % len(names)]
        self.notify(f"theme: {self.theme}", markup=False, timeout=2)

    # quitting and stopping ---------------------------------------------------

    def busy_with(self) -> list[str]:
        """What quitting now would stop: a streaming reply, a download (a screen's ``busy``)."""
        work = [] if self._streaming() is None else ["a reply is streaming"]
        return work + [str(busy) for s in self.screen_stack if (busy := getattr(s, "busy", None))]

    def _streaming(self) -> ChatPane | None:
        try:
            pane = self.query_one(ChatPane)
        except Exception:  # noqa: BLE001 - not composed yet, or closing
            return None
        return pane if pane.generation is not None else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop_reply":  # only while a reply streams: else ctrl+c copies
            return self._streaming() is not None
        if action == "suspend_process":  # Textual's own test, made before the key is taken
            driver = getattr(self, "_driver", None)
            return sys.platform != "win32" and driver is not None and driver.can_suspend
        return True

    def action_stop_reply(self) -> None:
        pane = self._streaming()
        if pane is not None:
            pane.action_stop()

    async def action_quit(self) -> None:
        """``q`` and ctrl+q: quit, after asking while a reply streams or a model downloads."""
        from tui.screens.confirm import ConfirmScreen

        work = self.busy_with()
        if not work:
            self.exit()
        elif not self._asking_to_quit:
            self._asking_to_quit = True
            question = f"{' and '.join(work).capitalize()}. Quit anyway? What came so far is kept."

            def answered(yes: bool | None) -> None:
                self._asking_to_quit = False
                if yes:
                    self.exit()

            self.push_screen(ConfirmScreen(question, yes="Quit"), callback=answered)

    # navigation ------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = f"tab-{tab}"
        self.query_one(f"#{tab}-pane").query_one(FOCUS[tab]).focus()

    def help_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        def keys(bindings: Iterable[object]) -> list[tuple[str, str]]:
            rows = []
            for binding in bindings:
                if isinstance(binding, Binding) and binding.description:
                    shown = ", ".join(self.get_key_display(Binding(k, "")) for k in binding.key.split(","))
                    rows.append((shown, binding.description))
            return rows

        general = keys(self.BINDINGS) + [("ctrl+p", "Command palette"), ("ctrl+q", "Quit (asks first too)")]
        general += [
            ("esc", "Leave: the message box, an edit, a search, a dialog (never stops a reply)"),
            ("tab, shift+tab", "Move between the filter, the table and the tabs (not out of the box)"),
        ]
        return [
            ("Everywhere", general),
            (
                "Models",
                keys(ModelsPane.BINDINGS)
                + [
                    ("enter", "Details"),
                    ("esc", "Leave the filter"),
                    ("●", "Loaded (Sessions)"),
                ],
            ),
            ("Sessions", keys(SessionsPane.BINDINGS)),
            (
                "Chat: outside the box",
                [("", "Letters are commands here; the box's border says which mode")]
                + keys(ChatPane.BINDINGS)
                + [("up, down, k, j", "Select a message (y copies it)")],
            ),
            ("Message box: typing", box_keys()),
            ("Logs", keys(LogsPane.BINDINGS)),
            (
                "Dialogs",
                [
                    ("esc", "Cancel (a pull keeps its partial download)"),
                    ("enter", "Confirm"),
                    ("ctrl+s", "Pull: search Hugging Face · Settings: save"),
                ],
            ),
        ]

    def action_settings(self) -> None:
        from tui.screens.settings import SettingsScreen

        if not isinstance(self.screen, SettingsScreen):
            self.push_screen(SettingsScreen(self.engine, self.config, self.config_path))

    def _reload(self) -> None:
        self.action_tab("sessions")
        self.query_one(SessionsPane).action_reload()

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_sections()))

    def _models(self, action: str) -> None:
        self.action_tab("models")
        getattr(self.query_one(ModelsPane), f"action_{action}")()

    def _chat(self, action: str) -> None:
        self.action_tab("chat")
        getattr(self.query_one(ChatPane), f"action_{action}")()

    def _unload(self) -> None:
        self.action_tab("sessions")
        self.query_one(SessionsPane).action_unload()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Pull model", "Download a GGUF model from Hugging Face", lambda: self._models("pull")
        )
        yield SystemCommand("Delete model", "Delete the selected model", lambda: self._models("delete"))
        yield SystemCommand(
            "Copy model", "Give the selected model a second name", lambda: self._models("copy")
        )
        yield SystemCommand("Model details", "Metadata, template, license", lambda: self._models("details"))
        yield SystemCommand(
            "Verify model", "Re-hash the selected model's files", lambda: self._models("verify")
        )
        yield SystemCommand("Filter models", "Filter the models by name", lambda: self._models("filter"))
        yield SystemCommand("Sort models", "Sort by the next column", lambda: self._models("sort"))
        yield SystemCommand("Reload models", "Read the store again", lambda: self._models("reload"))
        yield SystemCommand("Unload model", "Unload the selected loaded model", self._unload)
        yield SystemCommand(
            "Chat with model", "A new chat on the selected model", lambda: self._models("chat")
        )
        for action, title, help_text in CHAT_COMMANDS:
            yield SystemCommand(title, help_text, lambda a=action: self._chat(a))
        for tab, title in TABS:
            yield SystemCommand(
                f"Show {title}", f"Switch to the {title} tab", lambda t=tab: self.action_tab(t)
            )
        yield SystemCommand("Help", "The keys", self.action_help)
        yield SystemCommand(
            "Settings", "Theme, default model and parameters, keep-alive, store", self.action_settings
        )
        yield SystemCommand(
            "Reload model with…",
            "Reload the selected loaded model with other GPU layers, context or slots",
            self._reload,
        )
        yield SystemCommand("Search Hugging Face", "Find GGUF models to pull", lambda: self._models("pull"))
        for name in self.our_themes:
            yield SystemCommand(
                f"Theme: {name}", "Switch theme (saved)", lambda n=name: setattr(self, "theme", n)
            )


def run_app(engine: Engine, *, chat_model: str | None = None, serve_url: str | None = None) -> int:
    """Run the app on this terminal (on the Chat tab with a new chat when ``chat_model``); the exit status."""
    from tui.widgets.image_thumbs import prepare

    prepare()  # which image protocol the terminal speaks: asked before Textual takes the screen
    app = LlamadeckApp(engine, chat_model=chat_model, serve_url=serve_url)
    try:
        status = app.run()
    finally:
        engine.close()
        for note in app.exit_notes:
            print(f"llamadeck: {visible(note)}", file=sys.stderr)
    return status or app.return_code or 0  # return_code 1: the app died (Textual printed why)
