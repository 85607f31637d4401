"""``llamadeck chat MODEL``: a quick conversation under the shell prompt, kept like any chat of the app.

Not the full-screen app (elia's ``-i``, ``ollama run MODEL`` on a terminal):
a ``>>>`` prompt with line editing and history (Python's ``readline``), the
reply streamed below it with its Markdown rendered (``tui.cli.inline_render``),
then the prompt again. As in ``ollama run``: ``/bye`` (or Ctrl+D) leaves,
``/clear`` starts a new conversation, ``/?`` lists the commands, ``\"\"\"``
opens and closes a message of several lines, and Ctrl+C stops a reply
without leaving (at the prompt it clears the line). Each conversation is
saved in the app's chat history as it goes (``tui.cli.chat_turn``), so it is
in the Chat tab afterwards, titled by its first message.

With stdin not a terminal each line read is a message (no prompt is shown):
``printf 'hi\\nand then?\\n' | llamadeck chat MODEL`` has a two-turn chat.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from contextlib import suppress
from typing import TYPE_CHECKING

from engine import visible
from tui.cli.common import CliError, open_engine, progress_view
from tui.cli.stdin import MAX_STDIN_BYTES
from tui.terminal import out, warn

if TYPE_CHECKING:
    from tui.cli.chat_turn import Conversation

PROMPT, MORE = ">>> ", "... "
FENCE = '"""'
HELP = """Available Commands:
  /clear          Start a new conversation (the one before stays in the history)
  /bye            Exit (also /exit, or Ctrl+D)
  /?, /help       Help for a command

Use \"\"\" to begin a multi-line message.
Ctrl+C stops a reply; the chat goes on."""
LEAVE_HINT = "Use Ctrl + d or /bye to exit."


def cmd_chat(args: argparse.Namespace) -> int:
    from tui.chatstore import ChatStore, default_chat_db
    from tui.cli.chat_turn import Conversation
    from tui.cli.interrupt import run_cancellable
    from tui.cli.running import think_flag
    from tui.config import Config

    think = think_flag(args)
    config = Config.load()
    options = dict(config.parameters)
    given = {"temperature": args.temperature, "seed": args.seed, "num_predict": args.max_tokens}
    chat_options = {name: value for name, value in given.items() if value is not None}
    options.update(chat_options)
    # None: the engine's server settings decide (LLAMADECK_KEEP_ALIVE > OLLAMA_KEEP_ALIVE > config.toml),
    # as for serve, run and the app; config.keep_alive passed here would beat the variables
    keep_alive = None
    engine = open_engine(serving=True)
    view = progress_view()
    try:  # as run: a missing model is pulled first, then loaded before the first prompt (errors now)
        manifest = run_cancellable(
            lambda cancel, emit: engine.ensure(args.model, on_event=emit, cancel=cancel), view
        )
    finally:
        view.close()
    run_cancellable(
        lambda cancel, emit: engine.load(
            manifest.reference, options=options, keep_alive=keep_alive, cancel=cancel
        ),
        view,
    )
    store, warning = ChatStore.open_or_fresh(default_chat_db())
    if warning:
        warn(warning)
    chat = Conversation(
        engine,
        store,
        manifest.reference,
        options,
        think,
        keep_alive,
        verbose=args.verbose,
        hide_thinking=args.hidethinking,
        key=uuid.uuid4().hex,
        chat_options=chat_options,
    )
    try:
        converse(chat)
    finally:
        store.close()
    return 0


def converse(chat: Conversation) -> None:
    """Read messages and answer them until ``/bye`` or the end of input."""
    reader = LineReader()
    if reader.terminal:
        _note(f"Chatting with {visible(chat.model)}: /? for help, /bye or Ctrl+D to leave.")
    try:
        _answer(chat, reader)
    finally:
        if reader.terminal and chat.saved_title:
            _note(f"Saved in the chat history as “{visible(chat.saved_title)}” (llamadeck, Chat tab).")


def _note(text: str) -> None:
    """A line about the chat, not of it: faint where colour is wanted."""
    from tui.cli.inline_render import renders_markdown
    from tui.cli.progress import FAINT, PLAIN

    out(f"{FAINT}{text}{PLAIN}" if renders_markdown() else text)
    sys.stdout.flush()


def _answer(chat: Conversation, reader: LineReader) -> None:
    while (text := reader.message()) is not None:
        command = text.strip()
        if not command:
            continue
        if command.startswith("/") and "\n" not in command:
            word = command.split()[0]
            if word in ("/bye", "/exit"):
                return
            if word in ("/?", "/help"):
                out(HELP)
            elif word == "/clear":
                chat.restart()
                out("Cleared session context")
            else:
                out(f"Unknown command '{word}'. Type /? for help")
            sys.stdout.flush()
            continue
        chat.ask(text)


class LineReader:
    """Messages from the terminal (readline, a prompt) or from a pipe (a line each, no prompt)."""

    def __init__(self) -> None:
        stdin = sys.stdin
        self.terminal = stdin is not None and stdin.isatty() and sys.stdout.isatty()
        if self.terminal:
            _readline()

    def message(self) -> str | None:
        """The next message, or None at the end (Ctrl+D, end of the pipe)."""
        first = self._line(PROMPT)
        if first is None or not first.lstrip().startswith(FENCE):
            return first
        lines = [first.lstrip()[len(FENCE) :]]
        while not lines[-1].rstrip().endswith(FENCE):
            line = self._line(MORE)
            if line is None:
                return None
            lines.append(line)
        lines[-1] = lines[-1].rstrip()[: -len(FENCE)]
        return "\n".join(lines).strip("\n")

    def _line(self, prompt: str) -> str | None:
        if not self.terminal:
            return _piped_line()
        try:
            return input(prompt)
        except EOFError:
            out()  # Ctrl+D: the shell's prompt starts on a line of its own
            return None
        except KeyboardInterrupt:
            out()
            out(LEAVE_HINT)
            return ""


def _piped_line() -> str | None:
    if sys.stdin is None:
        return None
    line = sys.stdin.buffer.readline(MAX_STDIN_BYTES + 1)
    if not line:
        return None
    if len(line) > MAX_STDIN_BYTES:
        raise CliError(f"a line on stdin is longer than {MAX_STDIN_BYTES >> 20} MiB")
    try:
        return line.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as bad:
        raise CliError(f"stdin is not valid UTF-8 text (a bad byte in a line, at {bad.start})") from None


def _readline() -> None:
    """Line editing and history for ``input()``, where Python has a readline; Tab types a tab."""
    with suppress(ImportError):
        import readline

        if "libedit" in (readline.__doc__ or ""):
            readline.parse_and_bind("bind ^I ed-insert")
        else:
            readline.parse_and_bind("tab: self-insert")
