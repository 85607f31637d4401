"""The Chat pane's fourth layer: images attached to the next message, by path.

Three ways in: ctrl+g asks for a path (``ImagePathScreen``, with completion);
a paste that is, whole, the path of an image file; and paths typed in the
message (Ollama's ``extractFileData``, ``tui.cli.image_paths``), taken out of
the text on Enter. Each is read and checked in a thread (the engine's bounds:
``engine.check_image``, ``MAX_IMAGE_BYTES``) on a model that can see
(``vision`` in ``Engine.show``). What cannot be attached says so in one line
and loses nothing: a refused paste goes into the box as text, typed paths stay.

Attachments wait above the box (name, size; alt+g takes the last one off,
alt+shift+g all of them),
kept per chat as part of its draft (across chat switches; to a restart as
their paths, ``app_state`` ``draft.images``), and go with the message as its
``images`` (kept in the history, sent again on regenerate and edit-resend).
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from textual import on, work
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from tui.chatstore import StoredImage, StoredMessage, image
from tui.cli.image_paths import find_image_paths
from tui.widgets.chat_editing import EditingPane
from tui.widgets.chat_input import ChatInput
from tui.widgets.image_thumbs import caption

if TYPE_CHECKING:
    from tui.chatstore import ChatStore
    from tui.widgets.chat_drafts import Key

DRAFT_IMAGES = "draft.images"  # app_state key: each draft's attachments, as paths (JSON)
DROP_KEYS = "alt+g takes the last off · alt+shift+g all"  # the bar's hint (the keys: chat_input, chat_pane)


@dataclass(frozen=True)
class Attachment:
    path: str  # as the user gave it (kept with the draft)
    image: StoredImage


@dataclass
class ImagesRead(Message):
    """A thread read images for ``key``'s next message (``error``: one line, nothing attached)."""

    key: Key
    model: str
    attachments: list[Attachment]
    error: str | None = None
    sees: bool = True
    pasted: str | None = None  # a pasted path: back into the box as text when it is not attached
    then_send: str | None = None  # typed paths: the message without them, sent once they are read


class AttachmentsBar(Static):
    """The attachments waiting for the next message, above the box, with the keys that take them off."""

    DEFAULT_CSS = """
    AttachmentsBar { height: auto; padding: 0 1; color: $text-muted; display: none; }
    """

    items: tuple[str, ...] = ()

    def show(self, attachments: list[Attachment]) -> None:
        self.display = bool(attachments)
        self.items = tuple(f"▣ {caption(a.image.name, a.image.size)}" for a in attachments)
        self._lay_out()

    def on_resize(self) -> None:
        self._lay_out()

    def _lay_out(self) -> None:
        width = self.content_size.width or self.app.size.width
        self.update(Content("\n".join(bar_lines(self.items, f"({DROP_KEYS})", width)) if self.items else ""))


def bar_lines(items: tuple[str, ...], hint: str, width: int) -> list[str]:
    """``items`` in lines of ``width`` broken between items, never inside one (unless it is wider than a
    line) nor inside ``hint``, which ends the last line where it fits, else has a line of its own."""
    lines: list[str] = []
    for text, gap in [(item, "  ") for item in items] + [(hint, "   ")]:
        if lines and cell_len(lines[-1] + gap + text) <= width:
            lines[-1] += gap + text
        else:
            lines.append(text)
    return lines


class AttachingPane(EditingPane):
    """Attachments for the Chat pane (see the module's docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.attached: dict[Key, list[Attachment]] = {}
        self.sees: dict[str, bool] = {}  # model -> whether it takes images (asked once per model)
        self._before_edit: list[Attachment] | None = None  # the draft's, while an edit shows its own

    @property
    def attachments(self) -> list[Attachment]:
        return self.attached.get(self.chat_key, [])

    def show_attachments(self) -> None:
        self.query_one(AttachmentsBar).show(self.attachments)

    def images_to_send(self) -> list[StoredImage]:
        return [a.image for a in self.attachments]

    def images_sent(self, key: Key) -> None:
        """The message went with its images: the box's attachments are gone (``key``: where it was typed),
        or, after an edit, the draft's from before it are back."""
        self.attached.pop(key, None)
        self.attached.pop(self.chat_key, None)
        before, self._before_edit = self._before_edit, None
        if before:
            self.attached[self.chat_key] = before
        self.show_attachments()
        self.save_attachments()

    def _enter_chat(self) -> None:
        super()._enter_chat()
        self.show_attachments()

    def _leave_chat(self) -> str:
        if self._before_edit is not None:  # an edit ends with the switch: the draft's attachments back
            self.edit_left()
        return super()._leave_chat()

    def edit_images(self, message: StoredMessage) -> None:
        self._before_edit = list(self.attachments)
        self.attached[self.chat_key] = [Attachment(i.name, i) for i in message.images]
        self.show_attachments()

    def edit_left(self) -> None:
        before, self._before_edit = self._before_edit, None
        if before is not None:
            self.attached[self.chat_key] = before
            self.show_attachments()

    # --- the ways in ---------------------------------------------------------------------------

    @work(exclusive=True, group="chat-dialog")
    async def action_attach_image(self) -> None:
        from tui.screens.image_path import ImagePathScreen

        path = await self.app.push_screen_wait(ImagePathScreen())
        self.box.focus()
        if path:
            self.read_images(self.chat_key, self.model, [path])

    def action_drop_image(self) -> None:
        attachments = self.attachments
        if not attachments:
            self.app.notify("no image is attached", timeout=2)
            return
        dropped = attachments.pop()
        self.show_attachments()
        self.save_attachments()
        self.app.notify(f"{dropped.image.name} is no longer attached", timeout=2)

    def action_drop_images(self) -> None:
        attachments = self.attachments
        if not attachments:
            self.app.notify("no image is attached", timeout=2)
            return
        gone = (
            f"{attachments[0].image.name} is" if len(attachments) == 1 else f"{len(attachments)} images are"
        )
        attachments.clear()
        self.show_attachments()
        self.save_attachments()
        self.app.notify(f"{gone} no longer attached", timeout=2)

    @on(ChatInput.DropImage)
    def _drop_from_box(self, message: ChatInput.DropImage) -> None:
        if message.every:
            self.action_drop_images()
        else:
            self.action_drop_image()

    @on(ChatInput.PathPasted)
    def _path_pasted(self, message: ChatInput.PathPasted) -> None:
        self.read_images(self.chat_key, self.model, [message.text.strip()], pasted=message.text)

    def typed_images(self, text: str) -> bool:
        """Enter: image paths in ``text`` on a model known to see are read first, then it is sent without
        them (True); else False (sent as typed)."""
        if not self.sees.get(self.model):
            return False
        rest, paths = find_image_paths(text)
        if not paths:
            return False
        self.read_images(self.chat_key, self.model, [str(p) for p in paths], then_send=rest)
        return True

    @work(thread=True, exit_on_error=False, group="chat-images")
    def read_images(
        self,
        key: Key,
        model: str,
        paths: list[str],
        *,
        pasted: str | None = None,
        then_send: str | None = None,
    ) -> None:
        """In a thread: whether the model sees, then each file read and checked within the engine's bounds."""
        post = self.post_message
        sees = self._model_sees(model)
        if not sees:
            error = None if pasted else f"{model or 'this model'} cannot see images: pick one that can (m)"
            post(ImagesRead(key, model, [], error, sees=False, pasted=pasted))
            return
        read: list[Attachment] = []
        for path in paths:
            attachment, error = read_image(self.engine, path)
            if attachment is None:
                post(ImagesRead(key, model, [], error, pasted=pasted))
                return
            read.append(attachment)
        post(ImagesRead(key, model, read, then_send=then_send))

    def _model_sees(self, model: str) -> bool:
        if model not in self.sees:
            try:
                self.sees[model] = "vision" in self.engine.show(model).capabilities
            except Exception:  # noqa: BLE001 - a model not here: sending says so
                return False
        return self.sees[model]

    @on(ImagesRead)
    def _images_read(self, message: ImagesRead) -> None:
        if message.pasted is not None and not message.attachments:
            self.box.insert(message.pasted)  # not attached: the paste is text, as typed
        if message.error is not None:
            self.app.notify(message.error, severity="warning", markup=False)
            return
        self.attached.setdefault(message.key, []).extend(message.attachments)
        self.show_attachments()
        self.save_attachments()
        if message.then_send is not None and message.key == self.chat_key:
            self.send(message.then_send)

    # --- kept with the draft -------------------------------------------------------------------

    def attach(self, store: ChatStore) -> None:
        super().attach(store)
        self.restore_attachments(store)

    @work(thread=True, exit_on_error=False, group="chat-images")
    def restore_attachments(self, store: ChatStore) -> None:
        """At start: the drafts' attachments, read again from their paths (a file gone is said once)."""
        from tui.chatstore import ChatStoreError

        try:
            saved = json.loads(store.state(DRAFT_IMAGES) or "{}")
        except (ChatStoreError, ValueError):
            return
        for name, paths in saved.items() if isinstance(saved, dict) else ():
            key = None if name == "new" else int(name) if str(name).isdigit() else -1
            if key == -1 or not isinstance(paths, list):
                continue
            read = [read_image(self.engine, str(p)) for p in paths]
            missing = [str(p) for p, (a, _) in zip(paths, read, strict=True) if a is None]
            error = f"attached images no longer readable: {', '.join(missing)}" if missing else None
            attachments = [a for a, _ in read if a is not None]
            self.post_message(ImagesRead(key, "", attachments))
            if error:
                self.post_message(ImagesRead(key, "", [], error))

    def attachments_state(self) -> str | None:
        paths = {"new" if k is None else str(k): [a.path for a in v] for k, v in self.attached.items() if v}
        return json.dumps(paths) if paths else None

    def save_attachments(self) -> None:
        """Kept with the drafts, on the history's thread (closing the app waits for it)."""
        if self.store is not None:
            done = self.queue.submit(self.store.set_state, DRAFT_IMAGES, self.attachments_state())
            done.add_done_callback(self._attachments_saved)

    def _attachments_saved(self, done: Future[None]) -> None:
        error = done.exception()
        if error is not None:
            with suppress(RuntimeError):  # the app closed meanwhile
                self.app.call_from_thread(self.report, error)


def read_image(engine: object, path: str) -> tuple[Attachment | None, str | None]:
    """``path`` read and checked as the engine will check it; or None and one line saying why not."""
    from engine import MAX_IMAGE_BYTES, LlamadeckError, check_image

    file = Path(path).expanduser()
    try:
        size = file.stat().st_size
        if not file.is_file():
            return None, f"{path} is not a file"
        if size > MAX_IMAGE_BYTES:
            return None, f"{path} is {size:,} bytes: at most {MAX_IMAGE_BYTES >> 20} MiB per image"
        data = file.read_bytes()
        check_image(data, file.name)
    except OSError as error:
        return None, f"cannot read {path}: {error.strerror or error}"
    except LlamadeckError as error:
        return None, str(error)
    return Attachment(path, image(file.name, data)), None
