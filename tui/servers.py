"""Which server the app and the command line work against: this machine, or one named.

Chosen once, at start, in this order (the first that says something wins)::

    llamadeck --host gpu-box:11434 ...    # a host as LLAMADECK_HOST reads, or a name from config.toml
    LLAMADECK_HOST=gpu-box                # then OLLAMA_HOST, read the same way (Ollama's envconfig.Host)
    default_server = "gpu"                # config.toml, with [servers.gpu] host = "gpu-box:11434"

``--host local`` (or ``default_server = ""``) is this machine. A host is
read by ``api.address.parse_host`` as Ollama reads ``OLLAMA_HOST``: a bare
host takes port 11434, a URL its scheme's port. A server named this way is
trusted as named (no store proof: it is another machine's store); its API
key is the one config.toml gives it (``api_key`` under its table), else
``LLAMADECK_API_KEY`` (except for a server only ``OLLAMA_HOST`` names: that
variable is set for Ollama, and our key is not sent there), and is never printed.

``llamadeck serve`` and ``--serve`` listen on ``LLAMADECK_HOST`` instead:
they are this machine's server, never a client of one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from api.address import AddressError, parse_host

if TYPE_CHECKING:
    from engine import Engine
    from tui.config import Config

LOCAL = "local"
HOST_VARIABLES = ("LLAMADECK_HOST", "OLLAMA_HOST")


class ServerChoiceError(ValueError):
    """A server that cannot be used as named; the message is one line, fit to show."""


@dataclass(frozen=True)
class ServerChoice:
    """A server to work against: its base URL, what messages call it, and its key (never shown)."""

    url: str
    name: str
    api_key: str | None = field(default=None, repr=False)


def choose_server(
    flag: str | None, config: Config, environ: Mapping[str, str] | None = None
) -> ServerChoice | None:
    """The server the user named (``--host``, the variables, config.toml's default), or None: this machine."""
    env = os.environ if environ is None else environ
    if flag is not None:
        return _named(flag, "--host", config, env)
    for variable in HOST_VARIABLES:
        value = env.get(variable, "").strip().strip("\"'").strip()
        if value:
            return _named(value, variable, config, env)
    if config.default_server:
        return _named(config.default_server, "default_server in config.toml", config, env)
    return None


def _named(value: str, source: str, config: Config, env: Mapping[str, str]) -> ServerChoice | None:
    text = value.strip()
    if text == LOCAL:
        return None
    # OLLAMA_HOST is Ollama's, set for Ollama: our key never goes where only it points
    key = None if source == "OLLAMA_HOST" else env.get("LLAMADECK_API_KEY") or None
    entry = config.servers.get(text)
    if entry is not None:
        host, key = entry.get("host", ""), entry.get("api_key") or key
        label = f"{text} ({host})"
    else:
        host, label = text, ""
    if not host:
        raise ServerChoiceError(f"{source}: name a server, e.g. gpu-box:11434 or http://gpu-box:11434")
    try:
        address = parse_host(host)
    except AddressError as error:
        raise ServerChoiceError(f"{source}: {error}") from None
    url = address.client_url
    return ServerChoice(url, label or url.removeprefix("http://"), key)


def connect_to(choice: ServerChoice) -> Engine:
    """The engine facade over the chosen server (asked once which API it speaks)."""
    from engine import connect

    return connect(choice.url, api_key=choice.api_key, name=choice.name)
