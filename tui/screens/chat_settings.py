"""A chat's own settings: its model, system prompt, sampling/context parameters and reply format.

Parameters use Ollama's option names (what ``Engine.chat`` takes); a blank
field means "the model's own default". Keys this form does not show are kept
as they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from engine import visible
from tui.widgets.chat_format_setting import Format, format_text, parse_format

# name, label, type, hint
FIELDS: tuple[tuple[str, str, type, str], ...] = (
    ("temperature", "Temperature", float, "0 = greedy, 0.8 typical"),
    ("top_p", "Top p", float, "0–1"),
    ("top_k", "Top k", int, "e.g. 40"),
    ("num_ctx", "Context", int, "tokens, e.g. 4096"),
    ("num_predict", "Max reply", int, "tokens, -1 unlimited"),
    ("repeat_penalty", "Repeat penalty", float, "e.g. 1.1"),
    ("seed", "Seed", int, "fixed for repeatable replies"),
)


@dataclass(frozen=True)
class ChatSettings:
    model: str
    system: str | None
    parameters: dict[str, object] = field(default_factory=dict)
    format: Format = None  # the reply's: None free text, "json", or a JSON schema


def parse_parameters(
    texts: Mapping[str, str], keep: Mapping[str, object] | None = None
) -> tuple[dict[str, object], list[str]]:
    """The parameters typed in the form (blank: left out) over ``keep``; and the problems, one per field."""
    parameters = {k: v for k, v in (keep or {}).items() if k not in texts}
    problems = []
    for name, label, kind, _hint in FIELDS:
        text = texts.get(name, "").strip()
        if not text:
            continue
        try:
            parameters[name] = kind(text)
        except ValueError:
            problems.append(f"{label}: {text!r} is not {'a whole number' if kind is int else 'a number'}")
    return parameters, problems


def range_problems(parameters: Mapping[str, object]) -> list[str]:
    """What the engine would refuse (a temperature of -1, an unknown name), checked as settings are."""
    try:
        from tui.config import SettingError, check_parameters
    except ImportError:  # an older config module: the engine checks at the first message
        return []
    try:
        check_parameters(dict(parameters), source="this chat's settings")
    except SettingError as error:
        return [str(error)]
    return []


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
    ) -> None:
        """``check_format(model, format)``: the engine's problem with a reply format (blocking), or None."""
        super().__init__()
        self.current = current
        self.check_format = check_format
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
                with Grid(id="parameters"):
                    for name, label, _kind, hint in FIELDS:
                        value = self.current.parameters.get(name)
                        yield Label(label)
                        yield Input(
                            "" if value is None else str(value),
                            placeholder=hint,
                            id=f"p-{name}",
                            compact=True,
                        )
                yield Label('Reply format (blank: free text; "json": any JSON object; or a JSON schema)')
                yield TextArea(format_text(self.current.format), id="format", soft_wrap=True)
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#system", TextArea).focus()

    @on(Button.Pressed, "#save")
    async def action_save(self) -> None:
        texts = {name: self.query_one(f"#p-{name}", Input).value for name, *_ in FIELDS}
        parameters, problems = parse_parameters(texts, self.current.parameters)
        model = self.query_one("#model", Select).value
        if not problems:
            problems += range_problems(parameters)
        if not isinstance(model, str):
            problems.insert(0, "Pick a model (pull one in the Models tab if there is none)")
        reply_format, format_problem = parse_format(self.query_one("#format", TextArea).text)
        if format_problem is None and not problems and isinstance(model, str) and self.check_format:
            format_problem = await asyncio.to_thread(self.check_format, model, reply_format)
        if format_problem:
            problems.append(format_problem)
        if problems:
            self.query_one("#error", Static).update(Text("\n".join(problems)))
            return
        assert isinstance(model, str)
        system = self.query_one("#system", TextArea).text.strip() or None
        self.dismiss(ChatSettings(model, system, parameters, reply_format))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
