"""Running the API on uvicorn: where to listen, and the rules that keep it private.

    listener = bind(*address(host_flag, port_flag), api_key=key)   # checks first, then binds
    print(f"llamadeck API on {listener.url}")
    serve(engine, listener, api_key=key)                           # until Ctrl+C; closes the engine

``LLAMADECK_HOST`` reads like Ollama's ``OLLAMA_HOST`` ("host", "host:port",
":port", a bare IPv6 address or a URL), by the rule in ``api.address`` that
the clients share. Listening anywhere but on loopback needs an API key: the
API runs models and writes to the store, so it is never left open to a network.
A key of only spaces is refused everywhere: no client could ever send it.
Each failure to listen is one ``ServeError`` line that says what to do.

At start the server prunes the store (``prune_at_start``), as Ollama does
unless ``OLLAMA_NOPRUNE``: blobs nothing names once a day old, stale locks,
partials a week old. ``LLAMADECK_NOPRUNE`` turns it off.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.address import AddressError, from_environ, parse_host
from api.security import ANY_HOST, check_api_key, is_loopback
from engine import Engine, PruneReport

_GRACEFUL_SECONDS = 5  # open streams get this long to finish on Ctrl+C


NOPRUNE_VARIABLE = "LLAMADECK_NOPRUNE"


def prune_at_start(engine: Engine, environ: Mapping[str, str] | None = None) -> PruneReport | None:
    """Prune the store as a server starts, unless ``LLAMADECK_NOPRUNE`` is set (to anything but 0/false).

    Never a blob younger than a day (a client may be between its upload and
    its create across the restart), nor a partial a pull may resume.
    Raises LlamadeckError when the store cannot be pruned; None when turned off.
    """
    value = (os.environ if environ is None else environ).get(NOPRUNE_VARIABLE, "").strip().lower()
    if value not in ("", "0", "false", "no", "off"):
        return None
    return engine.prune(at_start=True)


class ServeError(Exception):
    """The server cannot start; the message is one line for the user."""


def address(host: str | None, port: int | None, environ: Mapping[str, str] | None = None) -> tuple[str, int]:
    """Where to listen: the flags, else ``LLAMADECK_HOST`` (read by ``api.address``), else 127.0.0.1:11434.

    ``--host`` reads as ``LLAMADECK_HOST`` does; a path in either is for clients and is not used here.
    """
    try:
        env = from_environ(environ)
        chosen = env if host is None else parse_host(host)
    except AddressError as error:
        raise ServeError(str(error)) from None
    chosen_port = chosen.port if port is None else port
    if not 0 <= chosen_port <= 65535:
        raise ServeError(f"port {chosen_port} is not a TCP port (0 to 65535)")
    return chosen.host, chosen_port


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse a blank API key, and to listen beyond loopback without a key."""
    try:
        api_key = check_api_key(api_key)
    except ValueError as error:
        raise ServeError(str(error)) from None
    if not is_loopback(host) and not api_key:
        raise ServeError(
            f"refusing to listen on {host} without an API key: anyone who can reach it could run models "
            "and change the store; set LLAMADECK_API_KEY (or --api-key), or listen on 127.0.0.1"
        )


def allowed_hosts(host: str) -> list[str]:
    """Host headers accepted besides loopback names: the bound host; any, when bound to every interface."""
    try:
        if ipaddress.ip_address(host.strip("[]")).is_unspecified:
            return [ANY_HOST]  # the name clients use is unknown; the API key guards it
    except ValueError:
        pass
    return [host]


@dataclass
class Listener:
    """A bound, listening socket and the address it serves."""

    socket: socket.socket
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self.socket.close()


def bind(host: str, port: int, *, api_key: str | None) -> Listener:
    """Check the rules, then bind and listen; raises ServeError with the reason (port in use, ...)."""
    check_exposure(host, api_key)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ServeError(f"cannot listen on {host}: {error.strerror or error}") from None
    family, kind, proto, _name, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts; never shares a live port
        sock.bind(sockaddr)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise ServeError(_bind_failure(host, port, error)) from None
    return Listener(sock, host, sock.getsockname()[1])


def _bind_failure(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (is llamadeck or Ollama serving already?): "
            "stop it or choose another port with --port"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: it is not an address of this machine"
    if error.errno == errno.EACCES:
        return f"no permission to listen on port {port}: choose a port above 1023"
    return f"cannot listen on {host}:{port}: {error.strerror or error}"


def serve(engine: Engine, listener: Listener, *, api_key: str | None) -> None:
    """Serve until Ctrl+C (or SIGTERM), then finish open requests briefly and close the engine."""
    import uvicorn

    from api.app import create_app

    app = create_app(engine, api_key=api_key, allowed_hosts=allowed_hosts(listener.host))
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        server_header=False,
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
    )
    # uvicorn stops cleanly on SIGINT/SIGTERM, then raises the signal it caught again: make both an
    # exception here, so the engine is closed instead of the process dying on SIGTERM's default action
    previous = _on_sigterm(_interrupt)
    try:
        uvicorn.Server(config).run(sockets=[listener.socket])
    except KeyboardInterrupt:
        pass
    finally:
        _on_sigterm(previous)
        listener.close()
        engine.close()


class BackgroundServer:
    """The API served from a thread of another front end (``llamadeck --serve``: the app's own engine)."""

    def __init__(self, engine: Engine, listener: Listener, *, api_key: str | None) -> None:
        import uvicorn

        from api.app import create_app

        self.url = listener.url
        self._listener = listener
        app = create_app(engine, api_key=api_key, allowed_hosts=allowed_hosts(listener.host))
        config = uvicorn.Config(
            app,
            log_level="critical",  # nothing may reach the terminal behind the app; failures are answers
            access_log=False,
            lifespan="off",
            ws="none",
            server_header=False,
            timeout_graceful_shutdown=_GRACEFUL_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="llamadeck serve", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._server.run(sockets=[self._listener.socket])  # not the main thread: no signal handlers taken

    def stop(self, timeout: float = _GRACEFUL_SECONDS + 1) -> None:
        """Finish open requests briefly and stop; the engine stays open (its owner closes it)."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self._listener.close()


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _on_sigterm(handler: Any) -> Any:
    """Install ``handler`` for SIGTERM (main thread only); returns the one it replaced."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)
