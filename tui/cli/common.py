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


class CliError(Exception):
    """A mistake on the command line or its streams, found before the engine is asked anything."""


def open_engine(*, serving: bool = False) -> Engine:  # lazy import keeps --help fast
    """The engine on the store chosen in the app's settings (if any).

    ``serving``: it will run models, so it takes the server settings
    (``LLAMADECK_*``, ``OLLAMA_*``, ``config.toml``): a bad one raises
    ``InvalidSetting`` here, before anything starts. Store commands leave them be.
    """
    from engine import Engine
    from tui.config import Config

    config = Config.load()
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
