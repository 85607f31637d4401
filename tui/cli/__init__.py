"""The ``llamadeck`` command line: parse, call the engine, print.

Docker- and Ollama-like verbs. Every failure is one line on stderr and a
non-zero exit: 1 for an error, 130 for Ctrl+C, 2 for a bug (``--debug``, given
anywhere on the line, adds the traceback). Long engine calls run through
``tui.cli.interrupt`` so Ctrl+C always works; everything printed goes through
``tui.terminal``. Imports stay lazy so that ``--help``, ``list`` and ``show``
start fast (no llama_cpp, no textual).
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Sequence
from contextlib import suppress
from typing import NoReturn

from engine import visible
from tui.cli.common import CliError, interactive, use_server
from tui.cli.parser import build_parser
from tui.cli.running import open_app
from tui.terminal import (
    error,
    flush_all,
    guard_standard_fds,
    harden_streams,
    silence_stdout,
    warn,
)


def _one_line(failure: BaseException) -> str:
    """Our errors say it all; for the disk and permissions, the OS's words and the path."""
    if isinstance(failure, OSError):
        return f"{failure.strerror or failure}" + (f": {failure.filename}" if failure.filename else "")
    return str(failure)


def _leave(status: int) -> NoReturn:
    """End now, without waiting for a worker thread stuck in llama.cpp (it cannot be cancelled)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a further Ctrl+C must not interrupt the way out
    with suppress(OSError, ValueError, KeyboardInterrupt):
        flush_all()
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    from tui.cli.interrupt import worker_running

    try:
        try:
            status = _main(argv)
        except KeyboardInterrupt:  # before or after a command: during one, _main says it
            warn("interrupted")
            status = 130
    except KeyboardInterrupt:  # a second Ctrl+C while the first was being reported
        status = 130
    if status == 130 or worker_running():
        # Interrupted: llama.cpp may still be inside a decode on the engine's compute thread, and
        # tearing the interpreter down under it crashes; nothing is left to save, so leave now.
        _leave(status)
    return status


def _main(argv: Sequence[str] | None) -> int:
    guard_standard_fds()
    harden_streams()
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras[:1] == ["--"] and args.command == "run" and args.prompt is None and len(extras) > 1:
        args.prompt, extras = extras[1], extras[2:]  # run MODEL -n 2 -- "-a prompt that starts with a dash"
    if extras[:1] and args.command == "run" and args.prompt is None and not extras[0].startswith("-"):
        # argparse gives an optional positional up once an option comes between (run MODEL --raw "PROMPT")
        args.prompt, extras = extras[0], extras[1:]
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if args.remote is not None and (args.serve or args.command == "serve"):
        parser.error("--host names a server to work against; serve listens where serve --host says")
    use_server(args.remote)
    if getattr(args, "handler", None) is None:
        if not interactive():
            if args.serve:
                error("--serve opens the app, which needs a terminal: use llamadeck serve here")
                return 1
            parser.print_help()  # not a terminal: the app cannot run, the help is what helps
            return 0
        args.handler = lambda args: open_app(serve=args.serve)  # errors reported as any command's
    if sys.stdout is None:
        error("standard output is closed, so nothing could be shown: nothing was done")
        return 1
    from engine import Cancelled, LlamadeckError
    from tui.cli.interrupt import Interrupted

    try:
        status = args.handler(args)
        flush_all()  # a broken pipe shows up here, inside the try, not in Python's exit-time flush
        return int(status)
    except (Interrupted, KeyboardInterrupt, Cancelled) as stop:
        warn("interrupted" + getattr(stop, "note", ""))
        return 130
    except BrokenPipeError:  # the reader of stdout went away (llamadeck ls | head -1): leave quietly
        silence_stdout()
        return 1
    except (LlamadeckError, OSError, CliError) as failure:
        if args.debug:
            warn(visible(traceback.format_exc().rstrip(), keep="\n"))
        error(_one_line(failure))
        return 1
    except Exception as failure:  # a bug: still one line, unless asked for more
        if args.debug:
            warn(visible(traceback.format_exc().rstrip(), keep="\n"))
        error(f"internal error: {type(failure).__name__}: {failure} (rerun with --debug)")
        return 2
