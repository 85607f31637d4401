"""Who may drive the API: Host and Origin checks (as Ollama's) and the optional API key.

A web page the user visits can reach 127.0.0.1 too: by a simple POST (no CORS
preflight) or by DNS rebinding (a hostile name that resolves to 127.0.0.1).
So every request is checked before any route runs:

* ``Host`` must be a loopback name or address, or a host the server was bound
  to: a rebound ``evil.example`` is refused (403).
* ``Origin``, when a browser sends one, must be a local page or an app scheme
  (``LLAMADECK_ORIGINS`` adds patterns, as ``OLLAMA_ORIGINS`` does); any other
  is refused (403) on every method, so a page cannot even fire a simple POST.
* The store proof (``api.proof``) is answered here, after the Host and Origin
  checks and before the key: ``run`` asks it before it sends its key, and a
  request refused above never carries a proof.
* With an API key, every request needs ``Authorization: Bearer <key>`` or,
  as Anthropic's clients send it, ``x-api-key: <key>`` (compared in constant
  time), else 401. CORS preflights are answered without it, as browsers never
  send credentials on them. A key of only spaces is no key
  (``check_api_key``): it could never be sent in a header.

Refusals take the shape of the path's API (``api.error_shapes``), so an
OpenAI or Anthropic client shows their message.
"""

from __future__ import annotations

import fnmatch
import hmac
import ipaddress
import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import proof
from api.error_shapes import error_body

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "0.0.0.0", "::1"})
_APP_SCHEMES = frozenset({"app", "file", "tauri", "vscode-webview", "vscode-file"})
ANY_HOST = "*"


def is_loopback(host: str) -> bool:
    """``localhost`` (and ``*.localhost``) or a loopback address; brackets of IPv6 allowed."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_local_origin(origin: str) -> bool:
    """Ollama's default origins: http(s) on localhost, 127.0.0.1, 0.0.0.0 or [::1] (any port), app schemes.

    Parsed, not pattern-matched, so ``http://localhost:1@evil.example`` is not local.
    """
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError:
        return False
    if parts.scheme in _APP_SCHEMES:
        return True
    if parts.scheme not in ("http", "https") or parts.username is not None or parts.path or parts.query:
        return False
    return (parts.hostname or "") in _LOCAL_HOSTS


def split_host_header(value: str) -> str:
    """The host name of a ``Host`` header, without port or IPv6 brackets, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value.rstrip(".")


def origins_from_env(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Extra allowed origins from ``LLAMADECK_ORIGINS`` (comma-separated, ``*`` wildcards)."""
    raw = (environ if environ is not None else os.environ).get("LLAMADECK_ORIGINS", "")
    return tuple(o.strip() for o in raw.split(",") if o.strip())


def check_api_key(key: str | None) -> str | None:
    """The API key to require: None for none (unset or empty); ValueError for one of only spaces.

    HTTP drops the spaces around a header's value, so such a key could never
    be sent: it would lock every client out on loopback, and it must not count
    as the key that lets a server listen beyond loopback.
    """
    if not key:
        return None
    if not key.strip():
        raise ValueError(
            "the API key is blank (only spaces): set LLAMADECK_API_KEY or --api-key to a real key"
        )
    return key


def bearer_matches(header: str | None, key: str) -> bool:
    """Whether ``Authorization`` carries ``Bearer <key>``; compared in constant time."""
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), key.encode())


def key_matches(headers: dict[str, str], key: str) -> bool:
    """Whether ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (Anthropic's) carries the key."""
    given = headers.get("x-api-key")
    if given is not None and hmac.compare_digest(given.strip().encode(), key.encode()):
        return True
    return bearer_matches(headers.get("authorization"), key)


class Guard:
    """Pure ASGI middleware: Host, Origin, CORS for allowed origins, the store proof, then the API key.

    ``prove``: ``Engine.store_proof``, to answer ``GET /api/proof`` (none: not answered).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None = None,
        allowed_hosts: Iterable[str] | None = None,
        allowed_origins: Iterable[str] | None = None,
        prove: Callable[[str], str] | None = None,
    ) -> None:
        self.app = app
        self.api_key = check_api_key(api_key)
        self.prove = prove
        hosts = [h.strip().strip("[]").lower() for h in (allowed_hosts or ()) if h.strip()]
        self.any_host = ANY_HOST in hosts
        self.hosts = frozenset(h for h in hosts if h != ANY_HOST)
        self.origins = tuple(allowed_origins if allowed_origins is not None else origins_from_env())

    def host_allowed(self, host: str | None) -> bool:
        if self.any_host or not host:  # HTTP/1.0 without Host cannot be a browser's rebinding
            return True
        name = split_host_header(host)
        return is_loopback(name) or name in self.hosts

    def origin_allowed(self, origin: str) -> bool:
        """A local page (http/https on a loopback name, any port), an app scheme, or a configured pattern."""
        origin = origin.strip().rstrip("/").lower()
        return is_local_origin(origin) or any(fnmatch.fnmatchcase(origin, p.lower()) for p in self.origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        if not self.host_allowed(headers.get("host")):
            await _refuse(send, path, 403, "this host name is not allowed (DNS rebinding protection)")
            return
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin):
            await _refuse(send, path, 403, "requests from this origin are not allowed: set LLAMADECK_ORIGINS")
            return
        cors = _cors_headers(origin) if origin is not None else []
        if scope["method"] == "OPTIONS" and origin is not None and "access-control-request-method" in headers:
            await _respond(send, 204, b"", cors + _PREFLIGHT)
            return
        if self.prove is not None and scope["path"] == proof.PATH and scope["method"] == "GET":
            status, body, extra = proof.answer(headers.get(proof.CHALLENGE), scope.get("server"), self.prove)
            await _respond(send, status, body, cors + extra)
            return
        if self.api_key is not None and not key_matches(headers, self.api_key):
            await _refuse(
                send,
                path,
                401,
                "unauthorized: send Authorization: Bearer <API key> (or x-api-key: <API key>)",
                cors,
            )
            return
        if not cors:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


_PREFLIGHT = [
    (b"access-control-allow-methods", b"GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
    (
        b"access-control-allow-headers",
        b"Authorization, Content-Type, User-Agent, Accept, X-Requested-With, X-Api-Key, Anthropic-Version",
    ),
    (b"access-control-max-age", b"600"),
]


def _cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]


async def _refuse(
    send: Send, path: str, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json")] + (extra or [])
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await _respond(send, status, json.dumps(error_body(path, status, message)).encode(), headers)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
