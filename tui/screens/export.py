"""Ask where to export a conversation as Markdown; the pure helpers that name and write the file."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from engine import visible

_UNSAFE = re.compile(r"[^\w.\- ]+")


def export_filename(title: str) -> str:
    """A file name from a chat title: letters, digits, ``.-_`` and spaces only, never hidden, never empty.

    >>> export_filename("What is 2/3? [draft]")
    'What is 2-3- -draft.md'
    """
    name = _UNSAFE.sub("-", title).strip(" .-")[:80].strip(" .-")
    return f"{name or 'chat'}.md"


def default_export_path(title: str) -> Path:
    return Path.home() / export_filename(title)


def write_atomically(path: Path, text: str) -> None:
    """A temp file in the same directory, fsync, ``os.replace``: a reader never sees half a file.

    A symlink is written through (the link stays, its target gets the text);
    a device, FIFO or socket is refused, never replaced by a file; a file
    replaced keeps its permissions, a new one is rw-r--r--, as an editor makes it.
    """
    path = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        existing = path.stat()
    except FileNotFoundError:
        existing = None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise IsADirectoryError(0, "a folder: add a file name", str(path))
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise OSError(0, "not a regular file (a device, FIFO or socket): choose another name", str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(0, "no such folder", str(path.parent))
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, stat.S_IMODE(existing.st_mode) if existing is not None else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class ExportScreen(ModalScreen[Path | None]):
    """The path to write; the caller asks before overwriting and does the writing."""

    CSS_PATH = "export.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, default: Path) -> None:
        super().__init__()
        self.chat_title = title
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text.assemble("Export ", (visible(self.chat_title), "bold"), " as Markdown to"))
            yield Input(value=str(self.default), placeholder="a file path, e.g. ~/chat.md", id="path")
            yield Static("", id="error")
            yield Label("Enter exports · Esc cancels", classes="hint")

    @on(Input.Submitted, "#path")
    def submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        path = Path(text).expanduser()
        if path.is_dir():
            self.query_one("#error", Static).update(Text(f"{path} is a folder: name a file"))
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
