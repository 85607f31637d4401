"""Talking to this machine's running ``llamadeck serve`` for ``ps``, ``stop`` and ``run`` (stdlib only).

Used when no server is named (``tui.servers``): a server named by ``--host``,
``LLAMADECK_HOST``, ``OLLAMA_HOST`` or config.toml is the engine itself
(``engine.connect``), and every command works against it through the facade.

A server is found where ``serve`` would listen: ``LLAMADECK_HOST`` (``host``,
``host:port`` or a URL, read by ``api.address`` as the server reads it), else
127.0.0.1:11434. It must answer with the ``x-llamadeck-version`` header: an
Ollama on the same port is told apart and named, not driven. ``run`` hands
its prompt, and every command its API key, only to a server the user named or
one that proves it serves the same store (``server_for_store``, ``call``).
"""

from __future__ import annotations

import contextlib
import hmac
import http.client
import json
import os
import secrets
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from api import proof
from api.address import ENV, AddressError, from_environ

_TIMEOUT = 5.0  # a busy machine's server may take its time (a probe once gave up after 0.5 s)
VERSION = "x-llamadeck-version"  # every answer of llamadeck's has it (anyone can send it: it proves nothing)


class ServerError(Exception):
    """No llamadeck server answered, or it refused; the message is one line for the user."""


def server_url(environ: Mapping[str, str] | None = None) -> str:
    """The base URL ``serve`` listens on by default (a wildcard host is reached on loopback)."""
    try:
        return from_environ(environ).client_url
    except AddressError as error:
        raise ServerError(f"LLAMADECK_HOST: {error}") from None


def call(
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    prove: Callable[[str], str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """One JSON request to the running server; raises ServerError with what went wrong.

    With an API key to send to a server found at the default address (not
    named by ``LLAMADECK_HOST``), the server must first prove that it serves
    this same store (``prove`` = ``Engine.store_proof``, as for ``run``): the
    key and the request go only on the connection that proved it, and a
    server that does not prove it gets nothing but a random challenge. With
    no key, or a named server, the request goes as it is.
    """
    env = os.environ if environ is None else environ
    base = server_url(env)
    if _key(env) and not _named(env):
        return _call_proven(base, method, path, body, prove, env)
    headers = {"Content-Type": "application/json", **_auth(env)}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            identified = response.headers.get(VERSION)
            payload = response.read()
    except urllib.error.HTTPError as error:
        identified = error.headers.get(VERSION)
        if not identified:
            raise ServerError(f"the server at {base} is not llamadeck's (HTTP {error.code})") from error
        raise ServerError(_error_text(error.read()) or f"the server answered HTTP {error.code}") from error
    except (urllib.error.URLError, OSError) as error:
        raise ServerError(_not_running(base)) from error
    if not identified:
        raise ServerError(_not_llamadeck(base))
    return _json(payload, base)


def _call_proven(
    base: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    prove: Callable[[str], str] | None,
    env: Mapping[str, str],
) -> Any:
    """``call`` with the key, on a connection to an unnamed server that has just proved the store."""

    def proving(text: str) -> str:
        if prove is None:  # a caller with no store to prove against: no server can be trusted unnamed
            raise _Unprovable(f"the server at {base} was not asked to prove this store: set LLAMADECK_HOST")
        try:
            return prove(text)
        except Exception as error:  # noqa: BLE001 - our own store's key unreadable: nothing is sent
            raise _Unprovable(f"could not check the server at {base} against this store: {error}") from error

    server = _open(base)
    try:
        try:
            checked = _proves_the_store(server, proving)
        except _Unprovable as error:
            raise ServerError(str(error)) from error
        except _NotLlamadeck:
            raise ServerError(_not_llamadeck(base)) from None
        except (OSError, http.client.HTTPException) as error:
            raise ServerError(_not_running(base)) from error
        if not checked:
            raise ServerError(
                f"the server at {base} did not prove it serves this store, so it was not sent the API key:"
                f" if you trust it, name it with LLAMADECK_HOST={urlsplit(base).netloc}"
            )
        headers = {"Content-Type": "application/json", **_auth(env)}
        data = json.dumps(body).encode() if body is not None else None
        try:
            server.connection.request(method, server.prefix + path, body=data, headers=headers)
            response = server.connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise ServerError(f"the llamadeck server at {base} went away: {error!r}") from error
    finally:
        server.close()
    if response.status >= 400:
        raise ServerError(_error_text(payload) or f"the server answered HTTP {response.status}")
    return _json(payload, base)


def _not_running(base: str) -> str:
    return f"no llamadeck server is running at {base}: start one with llamadeck serve"


def _not_llamadeck(base: str) -> str:
    return f"the server at {base} is not llamadeck's (an Ollama?): set LLAMADECK_HOST"


def _json(payload: bytes, base: str) -> Any:
    try:
        return json.loads(payload) if payload else None
    except ValueError as error:
        raise ServerError(f"the server at {base} answered something that is not JSON") from error


def _error_text(raw: bytes) -> str:
    try:
        message = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return ""
    return message if isinstance(message, str) else ""


@dataclass
class Server:
    """A llamadeck server ``run`` may hand its prompt to, and the one connection it was checked on.

    For a server found at the default address, requests go on the connection
    its proof was given on, which never reconnects by itself: what proved the
    store is what gets the key and the prompt. A named server is trusted as
    named, and may be reconnected to.
    """

    url: str
    connection: http.client.HTTPConnection
    prefix: str = ""  # a proxy's path before /api/...

    def interrupt(self) -> None:
        """Break the connection now, from any thread (Ctrl+C): a blocked read ends, the server sees it."""
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.interrupt()
        self.connection.close()


def server_for_store(prove: Callable[[str], str], environ: Mapping[str, str] | None = None) -> Server | None:
    """A running llamadeck server for ``run``, on a checked connection; None: ``run`` works in-process.

    A server the user named (``LLAMADECK_HOST``) is trusted as named: it only
    has to answer as llamadeck. One found at the default address must first
    prove that it serves this same store (``api.proof``, with ``prove`` =
    ``Engine.store_proof``): the probe carries a random challenge and nothing
    else (no key, no prompt), and the answer must sign the address this
    connection reached, so a stranger on the port, even one relaying to the
    real server, learns nothing and is not used. Any doubt (no answer, not
    llamadeck, another store, an error) gives None.
    """
    env = os.environ if environ is None else environ
    try:
        url = server_url(env)
    except ServerError:
        return None
    named = _named(env)
    server = _open(url)
    connection = server.connection
    try:
        checked = _answers_as_llamadeck(server, env) if named else _proves_the_store(server, prove)
    except Exception:  # noqa: BLE001 - no answer, a garbled one, our own store's key unreadable: in-process
        checked = False
    if not checked:
        server.close()
        return None
    connection.timeout = None  # a reply may take its time
    if connection.sock is not None:
        connection.sock.settimeout(None)
    return server


def _open(url: str) -> Server:
    """A Server for ``url``, not yet connected (the first request connects, with a short timeout)."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=_TIMEOUT)  # none: refused at once
    return Server(url, connection, parts.path.rstrip("/"))


class _Unprovable(Exception):
    """This side could not compute the proof (the store's key unreadable): the message says so."""


class _NotLlamadeck(Exception):
    """The proof request was answered without llamadeck's version header (an Ollama, a stranger)."""


def _proves_the_store(server: Server, prove: Callable[[str], str]) -> bool:
    """Whether the server proves, on this connection, that it serves this store; it is sent no key.

    Once proved, the connection never reconnects by itself: the proof holds for
    the connection it was given on, and a closed one stays closed, never replaced.
    """
    challenge = secrets.token_hex(16)
    server.connection.request("GET", server.prefix + proof.PATH, headers={proof.CHALLENGE: challenge})
    response = server.connection.getresponse()
    response.read()
    if not response.getheader(VERSION):
        raise _NotLlamadeck
    given = response.getheader(proof.PROOF) or ""
    if response.status != 204 or response.will_close or server.connection.sock is None:
        return False
    host, port = server.connection.sock.getpeername()[:2]  # the address this connection reached
    expected = prove(proof.signed_text(challenge, host, port))
    if not hmac.compare_digest(given.encode("latin-1", "replace"), expected.encode()):
        return False
    server.connection.auto_open = 0
    return True


def _answers_as_llamadeck(server: Server, env: Mapping[str, str]) -> bool:
    server.connection.request("GET", server.prefix + "/api/version", headers=_auth(env))
    response = server.connection.getresponse()
    response.read()
    return response.status == 200 and bool(response.getheader(VERSION))


def _named(env: Mapping[str, str]) -> bool:
    """Whether the user named the server (``LLAMADECK_HOST``): then it is trusted as named."""
    return bool(env.get(ENV, "").strip().strip("\"'").strip())


def _key(env: Mapping[str, str]) -> str:
    return env.get("LLAMADECK_API_KEY") or ""


def _auth(env: Mapping[str, str] | None = None) -> dict[str, str]:
    key = _key(os.environ if env is None else env)
    return {"Authorization": f"Bearer {key}"} if key else {}


def stream(server: Server, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """POST ``body`` on the server's checked connection and yield each NDJSON object of the answer.

    The API key goes with it (only now: the server was checked first). Raises
    ServerError on a refusal or a broken connection; ``server.interrupt()``
    from another thread (Ctrl+C) ends it, and the server then cancels.
    """
    headers = {"Content-Type": "application/json", **_auth()}
    try:
        server.connection.request(
            "POST", server.prefix + path, body=json.dumps(body).encode(), headers=headers
        )
        response = server.connection.getresponse()
    except (OSError, http.client.HTTPException) as error:
        raise ServerError(f"the llamadeck server at {server.url} went away: {error!r}") from error
    with response:
        if response.status >= 400:
            raise ServerError(_error_text(response.read()) or f"the server answered HTTP {response.status}")
        while line := _read_line(response, server.url):
            if line.strip():
                try:
                    item = json.loads(line)
                except ValueError:
                    raise ServerError(f"the server at {server.url} sent a line that is not JSON") from None
                yield item


def _read_line(response: http.client.HTTPResponse, url: str) -> bytes:
    try:
        return response.readline()
    except (OSError, ValueError, AttributeError, http.client.HTTPException) as error:  # Ctrl+C, or broken
        raise ServerError(f"the connection to {url} was closed") from error
