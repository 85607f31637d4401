"""The Chat tab's message box: readline's keys, a shell's history, its mode in its border, nothing lost.

- Enter sends, Shift+Enter or Ctrl+J starts a new line; Tab indents (it never
  moves focus: a sentence typed after it must stay text, never run commands).
- Readline's keys do what readline does (``readline_edit``): ctrl+a/e, ctrl+b/f,
  alt+b/f, ctrl+k/u/w, alt+d, alt+backspace, ctrl+y, alt+y, ctrl+t, ctrl+d.
- Up on the first line and Down on the last walk the messages sent before,
  as a shell does: what was typed waits, Down past the newest brings it back,
  and changes to a recalled message are kept until something is sent.
- Editing the last message puts the draft aside and brings it back when the
  edit is sent or cancelled.
- The border says which mode the keys are in: typing here, or commands
  (focus elsewhere: letters are commands there), and whether an edit is on.

The pane owns which chat the box belongs to; the box gives it ``draft`` (the
text to keep for this chat, whatever the box shows) and takes one back with
``show_draft``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

from tui.widgets import readline_edit as rl

TITLE_TYPING = "Message · typing"
TITLE_COMMANDS = "Message · commands: i or enter to type here"
TITLE_EDITING = "Editing your last message"
HINT_TYPING = "enter sends · ctrl+j new line · esc leaves"
HINT_EDITING = "enter resends · esc cancels"


class ChatInput(TextArea):
    """The message box (see the module's docstring)."""

    DEFAULT_CSS = """
    ChatInput.-commands { border-title-color: $text-warning; border-title-style: bold; }
    ChatInput.-editing { border-title-style: bold; }
    """
    BINDINGS = [
        Binding("ctrl+a", "line_start", "Start of line", show=False, id="chat_input.line_start"),
        Binding("ctrl+e", "line_end", "End of line", show=False, id="chat_input.line_end"),
        Binding("ctrl+b", "cursor_left", "Back a character", show=False, id="chat_input.back"),
        Binding("ctrl+f", "cursor_right", "Forward a character", show=False, id="chat_input.forward"),
        # a terminal sends alt+b/f as ctrl+left/right (Textual reads ESC b as ctrl+left)
        Binding("alt+b,ctrl+left", "word_back", "Back a word", show=False, id="chat_input.word_back"),
        Binding("alt+f,ctrl+right", "word_forward", "Forward a word", show=False, id="chat_input.word_fwd"),
        Binding("ctrl+k", "kill_line_end", "Kill to end of line", show=False, id="chat_input.kill_end"),
        Binding("ctrl+u", "kill_line_start", "Kill to start of line", show=False, id="chat_input.kill_start"),
        # a terminal sends alt+backspace as ctrl+w (ESC DEL)
        Binding("ctrl+w", "rubout_word", "Kill the word before", show=False, id="chat_input.rubout"),
        Binding("alt+backspace", "kill_word_back", "Kill a word back", show=False, id="chat_input.kill_back"),
        Binding("alt+d", "kill_word", "Kill a word forward", show=False, id="chat_input.kill_word"),
        Binding("ctrl+y", "yank", "Yank the last kill", show=False, id="chat_input.yank"),
        Binding("alt+y", "yank_pop", "Yank the kill before", show=False, id="chat_input.yank_pop"),
        Binding("ctrl+t", "transpose", "Swap two characters", show=False, id="chat_input.transpose"),
        Binding("ctrl+h", "delete_left", "Delete back", show=False, id="chat_input.delete_left"),
        # readline's undo; ctrl+z suspends the app where the platform can (else it undoes too)
        Binding("ctrl+underscore", "undo", "Undo", show=False, id="chat_input.undo"),
        Binding(
            "alt+g", "drop_image", "Take the last attached image off", show=False, id="chat_input.unattach"
        ),
        # a terminal sends alt+shift+g as ESC G: Textual reads it as alt+shift+g (kitty's protocol too)
        Binding(
            "alt+shift+g",
            "drop_images",
            "Take all attached images off",
            show=False,
            id="chat_input.unattach_all",
        ),
    ]

    @dataclass
    class Submitted(Message):
        text: str

    @dataclass
    class PathPasted(Message):
        """A paste that is the path of an image file: the pane attaches it, or puts it back as text."""

        text: str

    @dataclass
    class DropImage(Message):
        """alt+g in the box: the pane takes the last attached image off (alt+shift+g: ``every`` one)."""

        every: bool = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(tab_behavior="indent", **kwargs)
        self.kills = rl.KillRing()
        self.sent_history: list[str] = []  # messages sent before, oldest first
        self.editing = False
        self._before_edit = ""  # the draft put aside while the last message is edited
        self._walk: int | None = None  # the history entry shown; None: the draft
        self._stash = ""  # the draft while history is shown
        self._changed: dict[int, str] = {}  # recalled entries changed in this walk
        self._last = ""  # the last kill or yank key, so kills in a row join and alt+y follows ctrl+y
        self._prior = ""
        self._yanked: tuple[rl.Location, rl.Location] | None = None

    def on_mount(self) -> None:
        self.show_mode()

    async def _on_paste(self, event: events.Paste) -> None:
        from tui.cli.image_paths import is_image_path

        if not self.read_only and is_image_path(event.text):
            event.stop()  # once: a paste that bubbles reaches the box again through the screen
            event.prevent_default()
            self.post_message(self.PathPasted(event.text))
        # else TextArea's own _on_paste inserts it (Textual calls each class's handler in turn)

    def action_drop_image(self) -> None:
        self.post_message(self.DropImage())

    def action_drop_images(self) -> None:
        self.post_message(self.DropImage(every=True))

    # --- keys --------------------------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        self._prior, self._last = self._last, ""
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            if self.text.strip():
                self.post_message(self.Submitted(self.text))
            return
        if event.key in ("shift+enter", "ctrl+j"):
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        if event.key == "shift+tab":  # focus stays: only esc leaves the box
            event.stop()
            event.prevent_default()
            return
        # A key bound here runs now, not once the event has bubbled up to the app: the key typed next
        # (a fast typist, tmux) must find the cursor where this one left it. Alt+letter comes from a
        # terminal with its letter, which must not be typed.
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if await self.app.run_action(binding.action, self):
                event.stop()
                event.prevent_default()
                return
        await super()._on_key(event)

    def action_line_start(self) -> None:
        self.move_cursor((self.cursor_location[0], 0))

    def action_line_end(self) -> None:
        row = self.cursor_location[0]
        self.move_cursor((row, len(self.document[row])))

    def action_word_back(self) -> None:
        self.move_cursor(rl.word_back(self.document.lines, self.cursor_location))

    def action_word_forward(self) -> None:
        self.move_cursor(rl.word_forward(self.document.lines, self.cursor_location))

    def _kill(self, target: rl.Location, *, backward: bool) -> None:
        here = self.cursor_location
        start, end = (target, here) if backward else (here, target)
        if start != end and not self.read_only:
            self.kills.kill(self.get_text_range(start, end), backward=backward, join=self._prior == "kill")
            self.delete(start, end, maintain_selection_offset=False)
        self._last = "kill"

    def action_kill_line_end(self) -> None:
        self._kill(rl.line_end_kill(self.document.lines, self.cursor_location), backward=False)

    def action_kill_line_start(self) -> None:
        self._kill(rl.line_start_kill(self.document.lines, self.cursor_location), backward=True)

    def action_rubout_word(self) -> None:
        self._kill(rl.rubout_back(self.document.lines, self.cursor_location), backward=True)

    def action_kill_word_back(self) -> None:
        self._kill(rl.word_back(self.document.lines, self.cursor_location), backward=True)

    def action_kill_word(self) -> None:
        self._kill(rl.word_forward(self.document.lines, self.cursor_location), backward=False)

    def _put(self, text: str, start: rl.Location, end: rl.Location) -> None:
        result = self.replace(text, start, end, maintain_selection_offset=False)
        self._yanked = (start, result.end_location)
        self._last = "yank"

    def action_yank(self) -> None:
        text = self.kills.yank()
        if text is not None and not self.read_only:
            start, end = self.selection
            self._put(text, min(start, end), max(start, end))

    def action_yank_pop(self) -> None:
        if self._prior != "yank" or self._yanked is None or self.read_only:
            return  # readline: alt+y only right after a yank
        text = self.kills.rotate()
        if text is not None:
            self._put(text, *self._yanked)

    def action_transpose(self) -> None:
        swap = rl.transpose(self.document.lines, self.cursor_location)
        if swap is not None and not self.read_only:
            start, end, text, cursor = swap
            self.replace(text, start, end, maintain_selection_offset=False)
            self.move_cursor(cursor)

    # --- history -----------------------------------------------------------------------------

    def action_cursor_up(self, select: bool = False) -> None:
        first = self.navigator.is_first_wrapped_line(self.cursor_location)
        if select or not first or not self._recall(-1):
            super().action_cursor_up(select)

    def action_cursor_down(self, select: bool = False) -> None:
        last = self.navigator.is_last_wrapped_line(self.cursor_location)
        if select or not last or not self._recall(+1):
            super().action_cursor_down(select)

    def _recall(self, step: int) -> bool:
        """Show the history entry ``step`` away (past the newest: the draft); False when there is none."""
        if self.editing:
            return False
        newest = len(self.sent_history)
        here = newest if self._walk is None else self._walk
        there = here + step
        if not 0 <= there <= newest:
            return False
        if self._walk is None:
            self._stash = self.text
        elif self.text != self.sent_history[here]:
            self._changed[here] = self.text
        else:
            self._changed.pop(here, None)
        self._walk = None if there == newest else there
        self.load_text(
            self._stash if self._walk is None else self._changed.get(there, self.sent_history[there])
        )
        lines = self.document.lines
        self.move_cursor((0, len(lines[0])) if step < 0 else (len(lines) - 1, len(lines[-1])))
        return True

    def _end_walk(self) -> None:
        self._walk = None
        self._stash = ""
        self._changed.clear()

    # --- drafts, sending, editing ------------------------------------------------------------

    @property
    def draft(self) -> str:
        """What to keep for this chat: the draft, whatever the box shows now (an edit, a recalled message).

        A recalled message changed in this walk is kept too, after the draft.
        """
        if self.editing:
            return self._before_edit
        if self._walk is None:
            return self.text
        recalled = self.sent_history[self._walk]
        if self.text == recalled or not self.text.strip():
            return self._stash
        return "\n".join(t for t in (self._stash, self.text) if t.strip())

    def show_draft(self, text: str) -> None:
        """Another chat's draft in the box: any edit or walk through history of the one before ends."""
        self.editing = False
        self._before_edit = ""
        self._end_walk()
        self.load_text(text)
        self.move_cursor(self.document.end)
        self.show_mode()

    def sent(self, text: str) -> None:
        """``text`` went: it joins the history; the box holds the draft from before an edit, else what
        was typed after Enter before the message left (nothing, but for a very fast typist)."""
        if not self.sent_history or self.sent_history[-1] != text:
            self.sent_history.append(text)
        typed_after = self.text[len(text) :] if self.text.startswith(text) else ""
        self._end_walk()
        if self.editing:
            self.stop_editing()
        else:
            self.load_text(typed_after)
            self.move_cursor(self.document.end)

    def start_editing(self, text: str) -> None:
        """A sent message back in the box to change; the draft waits and the border says how to resend."""
        self._before_edit = self.draft
        self._end_walk()
        self.editing = True
        self.load_text(text)
        self.move_cursor(self.document.end)
        self.show_mode()
        self.focus()

    def stop_editing(self) -> None:
        """The edit was sent or cancelled: the draft from before it comes back."""
        text, self._before_edit = self._before_edit, ""
        self.editing = False
        self.load_text(text)
        self.move_cursor(self.document.end)
        self.show_mode()

    # --- the mode in the border --------------------------------------------------------------

    def watch_has_focus(self, has_focus: bool) -> None:
        super().watch_has_focus(has_focus)
        self.show_mode()

    def show_mode(self) -> None:
        """typing (focus here) or commands (focus elsewhere), and whether the last message is being edited."""
        typing = self.has_focus
        if self.editing:
            self.border_title = TITLE_EDITING + (" · typing" if typing else " · commands: i to type")
            self.border_subtitle = HINT_EDITING
        else:
            self.border_title = TITLE_TYPING if typing else TITLE_COMMANDS
            self.border_subtitle = HINT_TYPING if typing else ""
        self.set_class(not typing, "-commands")
        self.set_class(self.editing, "-editing")


def box_keys() -> list[tuple[str, str]]:
    """The box's keys for the help screen, readline's from the bindings above."""
    keys = [
        ("enter", "Send"),
        ("shift+enter, ctrl+j", "New line"),
        ("tab", "Indent (focus stays in the box: esc leaves it)"),
        ("up, down", "On the first or last line: messages sent before, as in a shell; then your draft"),
    ]
    for binding in ChatInput.BINDINGS:
        assert isinstance(binding, Binding)
        keys.append((binding.key.replace(",", ", "), binding.description))
    keys += [
        ("ctrl+d", "Delete forward"),
        ("ctrl+z", "Suspend the app (fg resumes); undo where it cannot suspend"),
        ("ctrl+c, ctrl+x, ctrl+v", "Copy (while no reply streams), cut, paste"),
    ]
    return keys
