"""One parameter editor for the chat settings, the global Settings and Reload (issue 21, finding 7).

The three dialogs used to spell parameters three ways; here each row is the
same everywhere: a friendly label with Ollama's name beside it
(``Slots  num_parallel``), the field, and the value in effect with where it
comes from (``in effect 0.8 · built in``, ``4096 · tiny's Modelfile``,
``0.2 · this chat``). A blank field inherits, and its placeholder says what
it inherits. Values are checked by the engine's own rules
(``engine.parse_options``, ``engine.parse_keep_alive``) and a refusal names
the parameter as the row does: ``Slots (num_parallel) must be ...``.

The keys, the same in every dialog: Enter checks the field and moves to the
next (on the last one it saves); Ctrl+J starts a new line in a field of
several values (Stop sequences, one a line); Ctrl+R empties the field, so it
inherits again; Esc leaves the dialog without saving (the dialog's own key).

``overrides_text`` names a chat's own parameters for the chat header
(``temperature 0.2 · num_ctx 8192``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Static, TextArea

from engine import (
    Engine,
    InvalidInput,
    InvalidOption,
    LlamadeckError,
    ServerSettings,
    describe_options,
    parse_keep_alive,
    parse_options,
    visible,
)

SOURCE = "the parameter editor"  # the engine's "(from ...)", taken off again: the dialog is the place
KEYS_HELP = "enter: next, on the last: save · ctrl+r: inherit · esc: leave"
MULTI_HELP = " · ctrl+j: new line in stop"


@dataclass(frozen=True)
class Param:
    name: str  # Ollama's, as in a request's options and a Modelfile's PARAMETER
    label: str  # the friendly one
    hint: str  # what a value means, shown under an empty field's inherited value
    multi: bool = False  # several values, one a line (stop)


PARAMS: Mapping[str, Param] = {
    p.name: p
    for p in (
        Param("temperature", "Temperature", "0: greedy"),
        Param("top_p", "Top p", "0 to 1"),
        Param("top_k", "Top k", "0: all tokens"),
        Param("min_p", "Min p", "0 to 1; 0: off"),
        Param("repeat_penalty", "Repeat penalty", "1: off"),
        Param("seed", "Seed", "-1: random"),
        Param("num_ctx", "Context", "tokens per chat"),
        Param("num_predict", "Max reply", "tokens; -1: no limit"),
        Param("stop", "Stop sequences", "one a line", multi=True),
        Param("num_gpu", "GPU layers", "-1: all that fit; 0: CPU"),
        Param("num_parallel", "Slots", "chats at once; 0: from memory"),
        Param("keep_alive", "Keep loaded for", "5m, 1h; 0: unload; -1: for ever"),
    )
}
CHAT_PARAMS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "seed",
    "num_ctx",
    "num_predict",
    "stop",
)
SETTINGS_PARAMS = (*CHAT_PARAMS, "keep_alive")
RELOAD_PARAMS = ("num_ctx", "num_parallel", "num_gpu")
BUILT_IN_KEEP_ALIVE = "5m"


class ParamError(ValueError):
    """A value the engine refuses, in one line naming the parameter as the editor shows it."""


def named(name: str) -> str:
    """``Slots (num_parallel)``: how a message names a parameter."""
    param = PARAMS.get(name)
    return f"{param.label} ({name})" if param else name


def check_value(name: str, text: str) -> object | None:
    """The value typed for ``name`` as the engine takes it; None for a blank field (inherit).

    Raises ParamError in the editor's words::

        check_value("num_parallel", "x")
        # ParamError: Slots (num_parallel) must be a whole number from 0 to 256, not 'x'
    """
    param = PARAMS.get(name)
    if param is not None and param.multi:
        items = [line for line in text.splitlines() if line.strip()]
        if not items:
            return None
        raw: object = items
    else:
        raw = text.strip()
        if not raw:
            return None
    if name == "keep_alive":
        try:
            parse_keep_alive(raw, name=named(name))
        except InvalidInput as error:
            raise ParamError(str(error)) from None
        return raw
    try:
        return parse_options({name: raw}, source=SOURCE)[name]
    except InvalidOption as error:
        message = str(error).removesuffix(f" (from {SOURCE})")
        if message.startswith(f"{name} "):
            message = named(name) + message[len(name) :]
        raise ParamError(message) from None


def show_value(value: object) -> str:
    """A value as the editor writes it: ``0.2``, ``8192``, ``"</s>" "User:"`` for stop, ``auto`` for None."""
    if value is None:
        return "auto"
    if isinstance(value, list | tuple) and not value:
        return "none"
    if isinstance(value, list | tuple):
        return " ".join(f'"{visible(str(v))}"' for v in value)
    return visible(str(value))


def duration_text(seconds: float) -> str:
    """Seconds as a keep-alive is written: ``2h``, ``1h30m``, ``90s``, ``0``, ``-1`` (for ever)."""
    if seconds < 0:
        return "-1"
    whole = int(seconds)
    if whole != seconds or whole == 0:
        return f"{seconds:g}" if seconds else "0"
    parts = [(whole // 3600, "h"), (whole % 3600 // 60, "m"), (whole % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def field_text(value: object) -> str:
    """A value as its field holds it (stop: one a line)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "\n".join(str(v) for v in value)
    return str(value)


def overrides_text(parameters: Mapping[str, object]) -> str:
    """A chat's own parameters for its header, by Ollama's names: ``temperature 0.2 · num_ctx 8192``."""
    return " · ".join(f"{visible(str(name))} {show_value(value)}" for name, value in parameters.items())


@dataclass(frozen=True)
class Layer:
    """Values from one place (``source``: "this chat", "settings", "tiny:latest's Modelfile", ...)."""

    source: str
    values: Mapping[str, object]


def built_in() -> Layer:
    """The engine's defaults (None: decided at load time, shown as ``auto``)."""
    values: dict[str, object] = {info.name: info.default for info in describe_options()}
    values["keep_alive"] = BUILT_IN_KEEP_ALIVE
    return Layer("built in", values)


def server_layers(settings: ServerSettings) -> list[Layer]:
    """What the server settings (``OLLAMA_*``, ``config.toml``) give a load, named by where each came from."""
    given = {
        "context_length": ("num_ctx", settings.context_length),
        "num_parallel": ("num_parallel", settings.num_parallel),
    }
    return [
        Layer(settings.origins.get(setting, "server settings"), {name: value})
        for setting, (name, value) in given.items()
        if value
    ]


def model_layer(reference: str, parameters: Mapping[str, object]) -> Layer:
    """A model's own defaults, from its Modelfile's PARAMETER lines."""
    try:
        values = parse_options(parameters, source=reference)
    except InvalidOption:  # a damaged manifest: the load says so; here it only shows nothing
        values = {}
    return Layer(f"{visible(reference)}'s Modelfile", values)


def chat_layers(engine: Engine, settings: Mapping[str, object] | None, model: str) -> list[Layer]:
    """What a chat on ``model`` inherits, lowest first: the server settings, its Modelfile, the Settings'
    (``settings``; None for a load outside a chat, as Reload's).

    Blocking (reads the model's manifest); a model that is gone leaves its layer out.
    """
    layers = server_layers(engine.settings)
    try:
        manifest = engine.resolve(model)
    except LlamadeckError:
        pass
    else:
        layers.append(model_layer(manifest.reference, manifest.config.parameters))
    if settings is not None:
        layers.append(Layer("settings", dict(settings)))
    return layers


def in_effect(
    name: str, typed: object | None, edited: str, below: Sequence[Layer], above: Sequence[Layer]
) -> Layer:
    """The layer whose value holds for ``name``: the highest of ``above``, the value typed, then ``below``."""
    for layer in reversed(above):
        if name in layer.values:
            return layer
    if typed is not None:
        return Layer(edited, {name: typed})
    for layer in reversed([built_in(), *below]):
        if name in layer.values:
            return layer
    return Layer("built in", {name: None})


class MultiValue(TextArea):
    """A field of several values, one a line: Enter moves on as in any field, Ctrl+J starts a new line."""

    @dataclass
    class Next(Message):
        field: MultiValue

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Next(self))
            return
        if event.key in ("ctrl+j", "shift+enter"):
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        await super()._on_key(event)


class ParamEditor(Vertical):
    """The rows for ``names``: label and Ollama name, the field, the value in effect and its source."""

    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")
    BINDINGS = [Binding("ctrl+r", "inherit", "Inherit", id="params.inherit")]

    class Submitted(Message):
        """Enter on the last field: the dialog saves."""

    def __init__(
        self,
        names: Sequence[str],
        values: Mapping[str, object],
        *,
        edited: str,
        below: Sequence[Layer] = (),
        above: Sequence[Layer] = (),
        **kwargs: Any,
    ) -> None:
        """``values``: the layer edited (``edited`` names it: "this chat"); ``below``/``above``: the layers
        under and over it, lowest first (``built_in`` is always the lowest)."""
        super().__init__(**kwargs)
        self.names = tuple(names)
        self.start = dict(values)
        self.edited = edited
        self.below = list(below)
        self.above = list(above)

    def compose(self) -> ComposeResult:
        with Grid(id="rows"):
            for name in self.names:
                param = PARAMS[name]
                label = Text(param.label, style="bold")
                label.append(f"  {name}", style="dim")
                yield Label(label, classes="param-label")
                text = field_text(self.start.get(name))
                if param.multi:
                    yield MultiValue(text, id=f"p-{name}", soft_wrap=False, compact=True)
                else:
                    yield Input(text, id=f"p-{name}", compact=True)
                yield Static("", id=f"e-{name}", classes="effect", markup=False)
        multi = any(PARAMS[name].multi for name in self.names)
        yield Static(KEYS_HELP + (MULTI_HELP if multi else ""), id="keys", markup=False)

    def on_mount(self) -> None:
        for name in self.names:
            self._show_effect(name)

    def set_layers(self, below: Sequence[Layer], above: Sequence[Layer] = ()) -> None:
        """Other inherited values (another model was picked): placeholders and effects follow."""
        self.below, self.above = list(below), list(above)
        for name in self.names:
            self._show_effect(name)

    def field(self, name: str) -> Widget:
        return self.query_one(f"#p-{name}")

    def text(self, name: str) -> str:
        widget = self.field(name)
        return widget.text if isinstance(widget, TextArea) else widget.value  # type: ignore[attr-defined]

    def values(self) -> dict[str, object]:
        """The values typed, checked (blank ones left out); raises ParamError for the first bad one."""
        out: dict[str, object] = {}
        for name in self.names:
            value = check_value(name, self.text(name))
            if value is not None:
                out[name] = value
        return out

    def _show_effect(self, name: str) -> None:
        effect = self.query_one(f"#e-{name}", Static)
        try:
            typed = check_value(name, self.text(name))
        except ParamError:
            effect.update(Text("✗ not valid: enter says why"))
            effect.set_class(True, "-bad")
            return
        effect.set_class(False, "-bad")
        holder = in_effect(name, typed, self.edited, self.below, self.above)
        shown = show_value(holder.values[name])
        effect.update(Text(f"in effect {shown} · {holder.source}"))
        inherited = in_effect(name, None, self.edited, self.below, [])
        widget = self.field(name)
        placeholder = f"{show_value(inherited.values[name])} ({inherited.source}) · {PARAMS[name].hint}"
        if isinstance(widget, Input | TextArea):
            widget.placeholder = placeholder

    @on(Input.Changed)
    @on(TextArea.Changed)
    def _changed(self, event: Input.Changed | TextArea.Changed) -> None:
        widget = event.input if isinstance(event, Input.Changed) else event.text_area
        if widget.id and widget.id.startswith("p-"):
            event.stop()
            self._show_effect(widget.id[2:])

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._next(event.input)

    @on(MultiValue.Next)
    def _next_from_multi(self, event: MultiValue.Next) -> None:
        event.stop()
        self._next(event.field)

    def _next(self, widget: Widget) -> None:
        """Enter: the field checked (a bad value is said where the effect was), then the next, or save."""
        name = (widget.id or "")[2:]
        try:
            check_value(name, self.text(name))
        except ParamError as error:
            effect = self.query_one(f"#e-{name}", Static)
            effect.update(Text(str(error)))
            effect.set_class(True, "-bad")
            return
        index = self.names.index(name)
        if index + 1 < len(self.names):
            self.field(self.names[index + 1]).focus()
        else:
            self.post_message(self.Submitted())

    def action_inherit(self) -> None:
        """Ctrl+R: the focused field emptied, so its value is inherited again."""
        focused = self.screen.focused
        if focused is None or not (focused.id or "").startswith("p-") or focused.parent is None:
            return
        if isinstance(focused, TextArea):
            focused.load_text("")
        elif isinstance(focused, Input):
            focused.value = ""
        self._show_effect(focused.id[2:])  # type: ignore[index]
