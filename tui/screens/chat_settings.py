"""A chat's own settings: its model, system prompt, sampling/context parameters and reply format.

Parameters are edited in the app's one parameter editor
(``tui.widgets.param_editor``): label and Ollama name, the value in effect
and where it comes from (built in, the server settings, the model's
Modelfile, the global Settings, this chat); a blank field inherits. Keys this
form does not show are kept as they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Select, Static, TextArea

from engine import visible
from tui.widgets.chat_format_setting import Format, format_text, parse_format
from tui.widgets.chat_tools import parse_tools, tools_text
from tui.widgets.param_editor import CHAT_PARAMS, Layer, ParamEditor, ParamError


@dataclass(frozen=True)
class ChatSettings:
    model: str
    system: str | None
    parameters: dict[str, object] = field(default_factory=dict)
    format: Format = None  # the reply's: None free text, "json", or a JSON schema
    tools: list[dict[str, object]] | None = None  # Ollama's tools the model may call; None: none


LayersFor = Callable[[str], list[Layer]]  # a model's inherited layers (blocking: reads its manifest)


class ChatSettingsScreen(ModalScreen[ChatSettings | None]):
    CSS_PATH = "chat_settings.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save", priority=True),
    ]

    def __init__(
        self,
        current: ChatSettings,
        models: list[str],
        check_format: Callable[[str, Format], str | None] | None = None,
        layers_for: LayersFor | None = None,
    ) -> None:
        """``check_format(model, format)``: the engine's problem with a reply format (blocking), or None;
        ``layers_for(model)``: what a chat on that model inherits, lowest first (blocking)."""
        super().__init__()
        self.current = current
        self.check_format = check_format
        self.layers_for = layers_for
        self.models = list(dict.fromkeys([*models, current.model] if current.model else models))

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Chat settings", id="title")
            with VerticalScroll(id="form"):
                yield Label("Model")
                yield Select(
                    [(Text(visible(m)), m) for m in self.models],
                    value=self.current.model if self.current.model else Select.BLANK,
                    prompt="no local model: pull one in the Models tab",
                    id="model",
                    compact=True,
                )
                yield Label("System prompt (blank: the model's own)")
                yield TextArea(self.current.system or "", id="system", soft_wrap=True)
                yield Label("Parameters (blank: inherited, as shown)")
                yield ParamEditor(CHAT_PARAMS, self.current.parameters, edited="this chat", id="parameters")
                yield Label('Reply format (blank: free text; "json": any JSON object; or a JSON schema)')
                yield TextArea(format_text(self.current.format), id="format", soft_wrap=True)
                yield Label("Tools the model may call (blank: none; JSON: Ollama's tools list)")
                yield TextArea(tools_text(self.current.tools), id="tools", soft_wrap=True)
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#system", TextArea).focus()
        if self.current.model:
            self.inherit_from(self.current.model)

    @on(Select.Changed, "#model")
    def model_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.inherit_from(event.value)

    @work(exclusive=True, group="chat-settings-layers")
    async def inherit_from(self, model: str) -> None:
        """The editor shows what a chat on ``model`` inherits (its Modelfile's defaults, the Settings')."""
        if self.layers_for is not None:
            layers = await asyncio.to_thread(self.layers_for, model)
            self.query_one(ParamEditor).set_layers(layers)

    @on(ParamEditor.Submitted)
    async def submitted(self) -> None:
        await self.action_save()

    @on(Button.Pressed, "#save")
    async def action_save(self) -> None:
        problems: list[str] = []
        parameters = {k: v for k, v in self.current.parameters.items() if k not in CHAT_PARAMS}
        try:
            parameters.update(self.query_one(ParamEditor).values())
        except ParamError as error:
            problems.append(str(error))
        model = self.query_one("#model", Select).value
        if not isinstance(model, str):
            problems.insert(0, "Pick a model (pull one in the Models tab if there is none)")
        reply_format, format_problem = parse_format(self.query_one("#format", TextArea).text)
        if format_problem is None and not problems and isinstance(model, str) and self.check_format:
            format_problem = await asyncio.to_thread(self.check_format, model, reply_format)
        if format_problem:
            problems.append(format_problem)
        tools, tools_problem = parse_tools(self.query_one("#tools", TextArea).text)
        if tools_problem:
            problems.append(tools_problem)
        if problems:
            self.query_one("#error", Static).update(Text("\n".join(problems)))
            return
        assert isinstance(model, str)
        system = self.query_one("#system", TextArea).text.strip() or None
        self.dismiss(ChatSettings(model, system, parameters, reply_format, tools))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
