"""What every command shares: the engine on the chosen store, a progress view, the terminal check.

``CliError`` is a mistake on the command line or its streams, found before
the engine is asked anything; ``main`` prints it as one line and exits 1.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine import Engine
    from tui.cli.progress import ProgressView
    from tui.config import Config
    from tui.servers import ServerChoice


class CliError(Exception):
    """A mistake on the command line or its streams, found before the engine is asked anything."""


_server_flag: list[str] = []  # --host as given before the command: read once, at start (use_server)


def use_server(flag: str | None) -> None:
    """Remember ``llamadeck --host X`` for every engine this run opens."""
    _server_flag[:] = [flag] if flag is not None else []


def chosen_server(config: Config | None = None) -> ServerChoice | None:
    """The server this run works against (``tui.servers``), or None: this machine.

    ``config``: the settings already read (each read logs its bad values once more)."""
    from tui.config import Config
    from tui.servers import ServerChoiceError, choose_server

    try:
        return choose_server(_server_flag[0] if _server_flag else None, config or Config.load())
    except ServerChoiceError as error:
        raise CliError(str(error)) from None


def open_engine(*, serving: bool = False, local: bool = False) -> Engine:  # lazy import keeps --help fast
    """The engine this run works against: another machine's server when one is named
    (``--host``, ``LLAMADECK_HOST``, ``OLLAMA_HOST``, config.toml; see ``tui.servers``), else this
    machine's store chosen in the app's settings (if any). ``local``: this machine's, whatever is named
    (``serve``, ``--serve``, the store proof).

    ``serving``: it will run models, so it takes the server settings
    (``LLAMADECK_*``, ``OLLAMA_*``, ``config.toml``): a bad one raises
    ``InvalidSetting`` here, before anything starts. Store commands leave them be.
    """
    from engine import Engine
    from tui.config import Config

    config = Config.load()  # once: a bad value in it is one warning, not one per read
    if not local and (choice := chosen_server(config)) is not None:
        from tui.servers import connect_to

        return connect_to(choice)
    settings = config.server_settings() if serving else None
    return Engine(home=config.store_home(), settings=settings)


def progress_view(transient: bool = False) -> ProgressView:
    from tui.cli.progress import ProgressView

    return ProgressView(sys.stderr, transient=transient)


def interactive() -> bool:
    """Both ends are a terminal that can draw the app: ``run MODEL`` without a prompt opens its Chat tab.

    ``TERM=dumb`` (an editor's shell buffer, a plain serial console) cannot draw it: there the
    command line answers as it does when piped.
    """
    if os.environ.get("TERM", "") == "dumb":
        return False
    return sys.stdin is not None and sys.stdout is not None and sys.stdin.isatty() and sys.stdout.isatty()
