"""Talking to a running ``llamadeck serve``, for ``ps`` and ``stop`` (stdlib only: the CLI starts fast).

A server is found where ``serve`` would listen: ``LLAMADECK_HOST`` (``host``,
``host:port`` or a URL, read by ``api.address`` as the server reads it), else
127.0.0.1:11434. It must answer with the ``x-llamadeck-version`` header: an
Ollama on the same port is told apart and named, not driven.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from api.address import AddressError, from_environ

_TIMEOUT = 5.0


class ServerError(Exception):
    """No llamadeck server answered, or it refused; the message is one line for the user."""


def server_url(environ: Mapping[str, str] | None = None) -> str:
    """The base URL ``serve`` listens on by default (a wildcard host is reached on loopback)."""
    try:
        return from_environ(environ).client_url
    except AddressError as error:
        raise ServerError(f"LLAMADECK_HOST: {error}") from None


def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One JSON request to the running server; raises ServerError with what went wrong."""
    base = server_url()
    headers = {"Content-Type": "application/json", **_auth()}
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


_PROBE_TIMEOUT = 0.5  # a server on loopback answers in milliseconds; none there is refused at once


def server_for_store(prove: Callable[[str], str]) -> str | None:
    """The base URL of a running llamadeck server on this same store, or None.

    ``run`` then asks it instead of loading a second copy of the model. The
    server must answer a random challenge with the store's proof
    (``Engine.store_proof``), which only a process that can read this store's
    key can compute, so a stranger on the port never sees the prompt. Any
    doubt (no answer, not llamadeck, another store, an error) gives None and
    ``run`` works in-process, as it always can.
    """
    try:
        base = server_url()
    except ServerError:
        return None
    challenge = secrets.token_hex(16)
    headers = {**_auth(), "x-llamadeck-challenge": challenge}
    request = urllib.request.Request(base + "/api/version", headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=_PROBE_TIMEOUT) as response:
            proof = response.headers.get("x-llamadeck-proof") or ""
        expected = prove(challenge)
    except (urllib.error.URLError, OSError, ValueError, LookupError):
        return None
    except Exception:  # noqa: BLE001 - our own store's key unreadable: work in-process, as without a server
        return None
    return base if hmac.compare_digest(proof, expected) else None


def _auth() -> dict[str, str]:
    key = os.environ.get("LLAMADECK_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def stream(base: str, path: str, body: dict[str, Any], on_open: Any = None) -> Iterator[dict[str, Any]]:
    """POST ``body`` and yield each NDJSON object of the answer; raises ServerError on a refusal.

    ``on_open(response)`` is called once the answer has started, so a caller
    can close it from another thread (Ctrl+C): the server then cancels.
    """
    headers = {"Content-Type": "application/json", **_auth()}
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        response = urllib.request.urlopen(request, timeout=None)
    except urllib.error.HTTPError as error:
        raise ServerError(_error_text(error.read()) or f"the server answered HTTP {error.code}") from error
    except (urllib.error.URLError, OSError) as error:
        raise ServerError(f"the llamadeck server at {base} went away: {error}") from error
    if on_open is not None:
        on_open(response)
    with response:
        try:
            for line in response:
                if line.strip():
                    yield json.loads(line)
        except ValueError as error:
            raise ServerError(f"the server at {base} sent a line that is not JSON") from error
        except (OSError, AttributeError) as error:  # closed under us (Ctrl+C) or the connection broke
            raise ServerError(f"the connection to {base} was closed") from error
