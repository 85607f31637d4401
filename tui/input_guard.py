"""Textual's input, guarded: a paste stays text, and a terminal's late answers are not typed.

Three ways bytes from the terminal became keys or a crash, each found in tmux; the first:

Textual 8's ``XTermParser`` reads a bracketed paste (``ESC[200~`` ... ``ESC[201~``) character by
character, but an ESC inside the paste sends it back to its escape-sequence branch: the characters
after it are reissued as *key presses* (up to 32 of them, or to the next ESC), and an ESC that a
slow read leaves alone for 100 ms becomes the Escape key. So pasting colored terminal output, a
log with ANSI codes, or binary junk left the message box (Escape), then ran its letters as
commands: found by pasting 5 MB with ``\\x1b[31m`` codes into ``llamadeck run`` in tmux, which
switched tabs, quit the app mid-paste, and the rest of the paste ran as commands in the shell.

:class:`GuardedParser` finds the paste's start and end markers in the raw input itself (a marker
may be split across reads), holds the paste until its end, removes escape sequences and control
characters other than tab and line breaks from it (as xterm does unless ``allowPasteControls``),
and only then gives it to Textual's parser, which makes one ``Paste`` event of it. Everything
outside a paste goes to Textual's parser unchanged, as it arrives (the Escape key's timing is
Textual's). A text that holds a literal ``ESC[201~`` still ends the paste there: the terminal
alone can prevent that, and most strip ESC from what they paste.

Second: textual-image asks the terminal which image protocol it speaks before the app starts
(``tui.widgets.image_thumbs.prepare``). A key typed in that moment breaks its reading of the
answer, and the answer (``ESC[?1;2c``, the device attributes) then reached Textual, which typed
``[?1;2c`` into the message box, and the draft kept it for every later start. Answers to queries
(device attributes, window and cell sizes, kitty graphics replies) that arrive outside a paste are
dropped here: no key press looks like them. (One split across two reads is not caught.)

Third: :class:`GuardedDriver` is Textual's ``LinuxDriver`` reading through that parser, and decoding
input that is not UTF-8 as U+FFFD: Textual's own decoder is strict, so one such byte (pasted binary
junk, a terminal set to Latin-1) raised in its input thread and ended the app with a traceback on
the screen (and exit status 0). Use it as
``App(driver_class=guarded_driver())`` (None where another platform's driver is needed).
"""

from __future__ import annotations

import os
import re
import selectors
import sys
from codecs import getincrementaldecoder
from collections.abc import Iterable

from textual._loop import loop_last
from textual._xterm_parser import XTermParser
from textual.driver import Driver
from textual.message import Message

PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"

# CSI (colors, cursor moves), OSC (titles, hyperlinks, clipboard) and DCS/SOS/PM/APC strings, other
# two-character escapes, a lone ESC; then the C0 controls but tab, LF and CR, and DEL and the C1 set
_ESCAPES = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[\x20-\x7e])?"
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)


# a terminal's answers to queries: DA1 and DA2 (ESC[?...c, ESC[>...c), window and cell size in
# pixels and characters (ESC[4;...t, ESC[6;...t, ESC[8;...t; Textual's own in-band resize report,
# ESC[48;...t, stays), kitty graphics replies (ESC_G...ESC\\); Textual has no key that ends so
_ANSWERS = re.compile(r"\x1b\[[?>][0-9;]*c|\x1b\[[468];[0-9;]*t|\x1b_G[^\x1b]*\x1b\\")


def drop_answers(text: str) -> str:
    """``text`` without terminal answers to queries (keys and mouse events stay).

    >>> drop_answers("\x1b[?1;2chi\x1b[A")
    'hi\x1b[A'
    """
    return _ANSWERS.sub("", text)


def clean_paste(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (tab and line breaks stay).

    >>> clean_paste("\\x1b[31mred\\x1b[0m and\\x07 plain\\n")
    'red and plain\\n'
    """
    return _ESCAPES.sub("", text)


class GuardedParser(XTermParser):
    """Textual's parser, given each bracketed paste whole and cleaned (see the module's docstring)."""

    def __init__(self, debug: bool = False) -> None:
        super().__init__(debug)
        self._tail = ""  # outside a paste: the last characters given on, a start marker may span reads
        self._paste: list[str] | None = None  # inside a paste: what came so far
        self._carry = ""  # inside a paste: the last characters, an end marker may span reads

    def feed(self, data: str) -> Iterable[Message]:
        if not data:  # the end of input
            yield from super().feed(data)
            return
        while data:
            if self._paste is None:
                seen = self._tail + data
                at = seen.find(PASTE_START)
                if at < 0:
                    self._tail = seen[-(len(PASTE_START) - 1) :]
                    yield from self._keys(data)
                    return
                cut = at + len(PASTE_START) - len(self._tail)  # the marker ends inside ``data``
                self._tail = ""
                yield from self._keys(data[:cut])  # Textual's parser is in its paste mode now
                data = data[cut:]
                self._paste = []
            else:
                seen = self._carry + data
                at = seen.find(PASTE_END)
                if at < 0:
                    keep = len(seen) - (len(PASTE_END) - 1)
                    if keep > 0:
                        self._paste.append(seen[:keep])
                        seen = seen[keep:]
                    self._carry = seen
                    return
                self._paste.append(seen[:at])
                text = clean_paste("".join(self._paste))
                self._paste, self._carry = None, ""
                yield from super().feed(text + PASTE_END)
                data = seen[at + len(PASTE_END) :]

    def _keys(self, data: str) -> Iterable[Message]:
        """Input outside a paste, to Textual's parser as it came, less answers to queries."""
        data = drop_answers(data)
        if data:  # an empty feed would mean the end of input
            yield from super().feed(data)


def guarded_driver() -> type[Driver] | None:
    """:class:`GuardedDriver` on POSIX terminals; None elsewhere (let Textual pick its driver)."""
    if sys.platform == "win32":
        return None
    return GuardedDriver


if sys.platform != "win32":
    from textual.drivers.linux_driver import LinuxDriver

    class GuardedDriver(LinuxDriver):
        """Textual's LinuxDriver reading its input through :class:`GuardedParser`.

        ``run_input_thread`` is Textual 8.2's own, but for the parser it makes.
        """

        def run_input_thread(self) -> None:
            selector = selectors.SelectSelector()
            selector.register(self.fileno, selectors.EVENT_READ)
            fileno = self.fileno
            event_read = selectors.EVENT_READ
            parser = GuardedParser(self._debug)
            feed = parser.feed
            tick = parser.tick
            # bytes that are not UTF-8 (binary junk pasted, a terminal set to Latin-1, meta-sends-8-bit
            # Alt keys) become U+FFFD: Textual's strict decoder raised in its input thread, which
            # ended the app with a traceback
            decode = getincrementaldecoder("utf-8")(errors="replace").decode

            def process_selector_events(
                selector_events: list[tuple[selectors.SelectorKey, int]], final: bool = False
            ) -> None:
                for last, (_key, mask) in loop_last(selector_events):
                    if mask & event_read:
                        unicode_data = decode(os.read(fileno, 1024 * 4), final=final and last)
                        if not unicode_data:  # stdin is a pipe that ended
                            break
                        for event in feed(unicode_data):
                            self.process_message(event)
                for event in tick():
                    self.process_message(event)

            try:
                while not self.exit_event.is_set():
                    process_selector_events(selector.select(0.1))
                selector.unregister(self.fileno)
                process_selector_events(selector.select(0.1), final=True)
            finally:
                selector.close()
