"""Copying text for the user: through the terminal (OSC 52, which reaches their own machine over SSH),
and into this machine's clipboard as well where it has one."""

from __future__ import annotations

from textual.widget import Widget


def copy_text(widget: Widget, text: str) -> None:
    """Send ``text`` to the user's clipboard; the local copy runs in a thread and may find no clipboard."""
    widget.app.copy_to_clipboard(text)  # OSC 52: reaches the user's own terminal, also over SSH
    widget.run_worker(
        lambda: _local_clipboard(text), thread=True, exit_on_error=False, group="chat-clipboard"
    )


def _local_clipboard(text: str) -> None:
    """pyperclip as well where this machine has a clipboard; none (SSH, headless): OSC 52 was sent."""
    try:
        import pyperclip

        pyperclip.copy(text)
    except Exception:  # noqa: BLE001, S110 - no local clipboard is the normal case over SSH
        pass
