"""A model's details: metadata, source, parameters, template and license, all as plain text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui.tables import draft_text, format_count, printable

if TYPE_CHECKING:
    from engine import ModelDetails


def details_text(details: ModelDetails) -> Text:
    """Every string a GGUF header or the Hub gave is escaped (control characters) and never markup."""
    from engine import format_size

    m = details.manifest
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        (
            "Model",
            [
                ("name", m.reference),
                ("architecture", m.architecture),
                ("parameters", m.size_label or format_count(m.parameters)),
                ("context length", str(m.context_length)),
                ("quantization", m.quant or "-"),
                ("size", format_size(m.size)),
                ("id", m.id),
                ("created", m.created),
                ("capabilities", ", ".join(details.capabilities) or "-"),
                *([("draft", draft_text(m.config.draft))] if m.config.draft is not None else []),
            ],
        ),
        (
            "Source",
            [("from", m.source)]
            + ([("revision", m.revision)] if m.revision else [])
            + [("files", ", ".join(f.path for f in m.files))]
            + [("path", str(p)) for p in details.paths]
            + _projector_rows(details),
        ),
        ("Parameters", [(k, str(v)) for k, v in sorted(m.config.parameters.items())] or [("", "(none)")]),
        ("System prompt", [("", m.config.system or "(none)")]),
        (
            "Template",
            [
                (
                    "",
                    (m.template or "(none: plain completion)")
                    + (f"\n[{m.template_source}]" if m.template_source else ""),
                )
            ],
        ),
        ("License", [("", m.license or "(none recorded)")]),
    ]
    text = Text()
    for title, pairs in sections:
        text.append(f"{title}\n", style="bold underline")
        for key, value in pairs:
            if key:
                text.append(f"  {key:<16}", style="bold")
            else:
                text.append("  ")
            text.append(printable(str(value)).replace("\n", "\n  "))
            text.append("\n")
        text.append("\n")
    text.rstrip()
    return text


class DetailsScreen(ModalScreen[None]):
    CSS_PATH = "details.tcss"
    BINDINGS = [Binding("escape,q,enter", "close", "Close")]

    def __init__(self, details: ModelDetails) -> None:
        super().__init__()
        self.details = details

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            with VerticalScroll(id="body"):
                yield Static(details_text(self.details), id="details")
            yield Label("↑↓ scroll · Esc closes", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#body").focus()

    def action_close(self) -> None:
        self.dismiss(None)


def _projector_rows(details: ModelDetails) -> list[tuple[str, str]]:
    """The vision projector a model comes with: its file, size and type (none: no rows)."""
    from engine import format_size

    projector = details.manifest.config.projector
    if projector is None:
        return []
    kind = details.projector_info.get("clip.projector_type")
    return [("projector", f"{projector.path} ({format_size(projector.size)}{f', {kind}' if kind else ''})")]
