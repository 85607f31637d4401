"""Talking to a running ``llamadeck serve``, for ``ps`` and ``stop`` (stdlib only: the CLI starts fast).

A server is found where ``serve`` would listen: ``LLAMADECK_HOST`` (``host``,
``host:port`` or a URL), else 127.0.0.1:11434. It must answer with the
``x-llamadeck-version`` header: an Ollama on the same port is told apart and
named, not driven.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

DEFAULT_PORT = 11434
_TIMEOUT = 5.0


class ServerError(Exception):
    """No llamadeck server answered, or it refused; the message is one line for the user."""


def server_url(environ: dict[str, str] | None = None) -> str:
    """The base URL ``serve`` listens on by default (a wildcard host is reached on loopback)."""
    raw = (environ if environ is not None else os.environ).get("LLAMADECK_HOST", "").strip()
    if not raw:
        return f"http://127.0.0.1:{DEFAULT_PORT}"
    parts = urlsplit(raw if "://" in raw else f"http://{raw}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as error:
        raise ServerError(f"LLAMADECK_HOST is not host:port: {raw!r:.80}") from error
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme or 'http'}://{shown}:{port}"


def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One JSON request to the running server; raises ServerError with what went wrong."""
    base = server_url()
    headers = {"Content-Type": "application/json"}
    if key := os.environ.get("LLAMADECK_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            identified = response.headers.get("x-llamadeck-version")
            payload = response.read()
    except urllib.error.HTTPError as error:
        identified = error.headers.get("x-llamadeck-version")
        if not identified:
            raise ServerError(f"the server at {base} is not llamadeck's (HTTP {error.code})") from error
        raise ServerError(_error_text(error.read()) or f"the server answered HTTP {error.code}") from error
    except (urllib.error.URLError, OSError) as error:
        raise ServerError(
            f"no llamadeck server is running at {base}: start one with llamadeck serve"
        ) from error
    if not identified:
        raise ServerError(f"the server at {base} is not llamadeck's (an Ollama?): set LLAMADECK_HOST")
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
