"""HTTP to another machine's server: one JSON request, or a stream of NDJSON or SSE objects.

Standard library only (``http.client``): the command line starts fast, and
no dependency is added for what a dozen lines of ``http.client`` do. Every
failure becomes a ``LlamadeckError`` whose one line names the server; the
API key goes in the Authorization header and never into a message or a log.

    wire = Wire("http://gpu-box:11434", api_key=None, name="gpu-box:11434")
    wire.json("GET", "/api/tags")
    for item in wire.lines("POST", "/api/pull", {"model": "..."}, cancel=token): ...

A stream is cut from another thread by its ``CancelToken`` (the socket is
shut down, so a blocked read ends at once and the server sees its client go);
the caller then ends the stream as cancelled.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from engine.cancel import NEVER, CancelToken
from engine.errors import (
    AccessDenied,
    Busy,
    Cancelled,
    InvalidInput,
    LlamadeckError,
    ModelNotFound,
    NetworkError,
    NotFound,
    QueueFull,
)
from engine.text import one_line

CONNECT_TIMEOUT = 10.0  # a server on another machine, over SSH or Wi-Fi, may answer slowly
READ_TIMEOUT = 30.0  # one JSON answer: a list, a show, an unload (a load and the streams wait for ever)
MAX_JSON = 64 << 20  # a model list or a show answer is kilobytes; more is not a server of ours
MAX_LINE = 16 << 20  # one NDJSON or SSE line (a token, a status) is far smaller


class Wire:
    """Requests to one server; a new connection each (a stream holds its own until it ends)."""

    def __init__(self, url: str, *, api_key: str | None, name: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.name = name  # what messages call the server: "gpu-box:11434" or a config name
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._key = api_key or None
        self._open: set[http.client.HTTPConnection] = set()  # what close_all ends
        self._lock = threading.Lock()

    def close_all(self) -> None:
        """End every request in flight now, from any thread (the app quits): each raises in its own."""
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            _shut(connection)

    def json(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float | None = READ_TIMEOUT,
        cancel: CancelToken = NEVER,
    ) -> Any:
        """One request; the answer's JSON (None for an empty body). Raises what ``_refusal`` maps to,
        or Cancelled once ``cancel`` ends the wait for the answer (the connection is shut)."""
        try:
            connection, response = self._send(method, path, body, timeout, cancel)
            try:
                raw = _read(response, MAX_JSON, self.name)
            finally:
                self._forget(connection)
        except NetworkError:
            cancel.check()  # the wait was cut on purpose
            raise
        cancel.check()
        if response.status >= 400:
            raise self._refusal(response.status, raw, path)
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            raise NetworkError(f"{self.name} answered {path} with something that is not JSON") from None

    def lines(self, method: str, path: str, body: Any, *, cancel: CancelToken = NEVER) -> Iterator[Any]:
        """POST and yield each NDJSON object of the answer; an ``{"error": ...}`` line raises it."""
        for raw in self._stream(method, path, body, cancel):
            if not raw.strip():
                continue
            item = self._decode(raw, path)
            if isinstance(item, dict) and item.get("error"):
                raise _error_line(self._hide(str(item["error"])), self.name)
            yield item

    def events(self, path: str, body: Any, *, cancel: CancelToken = NEVER) -> Iterator[Any]:
        """POST and yield each server-sent event's JSON data (OpenAI's streams) until ``[DONE]``."""
        for raw in self._stream("POST", path, body, cancel):
            text = raw.strip()
            if not text.startswith(b"data:"):
                continue  # comments, event names and blank separators
            data = text[5:].strip()
            if data == b"[DONE]":
                return
            item = self._decode(data, path)
            if isinstance(item, dict) and item.get("error"):
                error = item["error"]
                message = error.get("message") if isinstance(error, dict) else error
                raise _error_line(self._hide(str(message)), self.name)
            yield item

    # the parts ---------------------------------------------------------------

    def _stream(self, method: str, path: str, body: Any, cancel: CancelToken) -> Iterator[bytes]:
        connection, response = self._send(method, path, body, None, cancel)
        remove = cancel.on_cancel(lambda: _shut(connection))
        try:
            if response.status >= 400:
                raise self._refusal(response.status, _read(response, MAX_JSON, self.name), path)
            while True:
                try:
                    line = response.readline(MAX_LINE + 1)
                except (OSError, ValueError, AttributeError, http.client.HTTPException) as error:
                    if cancel.cancelled:
                        raise Cancelled(cancel.reason) from None
                    raise self._gone(error) from None
                if cancel.cancelled:
                    raise Cancelled(cancel.reason)
                if not line:
                    return
                if len(line) > MAX_LINE:
                    raise NetworkError(f"{self.name} sent a line longer than {MAX_LINE >> 20} MiB")
                yield line
        finally:
            remove()
            _shut(connection)
            self._forget(connection)

    def _send(
        self, method: str, path: str, body: Any, timeout: float | None, cancel: CancelToken = NEVER
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Connect, send, and wait for the answer's head; ``cancel`` shuts the connection while it waits."""
        cancel.check()
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=CONNECT_TIMEOUT)
        headers = {"Accept": "application/json, application/x-ndjson, text/event-stream"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        with self._lock:
            self._open.add(connection)
        remove = lambda: None  # noqa: E731 - until connected there is no socket to shut
        try:
            connection.connect()
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            remove = cancel.on_cancel(lambda: _shut(connection))
            connection.request(method, self._prefix + path, body=data, headers=headers)
            return connection, connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            self._forget(connection)
            if cancel.cancelled:
                raise Cancelled(cancel.reason) from None
            if isinstance(error, ConnectionRefusedError | socket.gaierror | TimeoutError):
                raise NetworkError(f"no server answers at {self.name} ({_why(error)})") from None
            raise self._gone(error) from None
        finally:
            remove()  # a stream then watches its token itself, for as long as it reads

    def _forget(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._open.discard(connection)
        connection.close()

    def _gone(self, error: BaseException) -> NetworkError:
        return NetworkError(f"the connection to {self.name} broke (did the server stop?): {_why(error)}")

    def _decode(self, raw: bytes, path: str) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise NetworkError(f"{self.name} sent a line of {path} that is not JSON") from None

    def _hide(self, text: str) -> str:
        """``text`` without the API key: a server may echo the header it was sent into its error."""
        return text.replace(self._key, "***") if self._key else text

    def _refusal(self, status: int, raw: bytes, path: str) -> LlamadeckError:
        """The server's own words when it gave some, in the class its status means."""
        said = _said(raw, self._hide)
        if status == 401:
            hint = "set LLAMADECK_API_KEY or the server's api_key in config.toml"
            if self._key:
                hint = "the API key given was refused"
            return AccessDenied(f"{self.name} needs an API key: {hint}")
        if status == 403:
            return AccessDenied(f"{self.name} refused: {said or 'forbidden'}")
        if status == 404:
            if said and "model" in said.lower():
                return ModelNotFound(f"{said} (on {self.name})")
            return NotFound(f"{self.name} does not offer {path}" + (f": {said}" if said else ""))
        if status == 409:
            return Busy(f"{said or 'busy'} (on {self.name})")
        if status in (429, 503):
            return QueueFull(f"{said or 'busy'} (on {self.name})")
        if 400 <= status < 500:
            return InvalidInput(f"{said or f'HTTP {status}'} (on {self.name})")
        return NetworkError(f"{self.name} failed: {said or f'HTTP {status}'}")


def _said(raw: bytes, hide: Callable[[str], str]) -> str:
    """The error message of an Ollama (``{"error": "..."}``) or OpenAI (``{"error": {"message"}}``) answer."""
    try:
        data = json.loads(raw)
    except ValueError:
        return one_line(hide(raw.decode("utf-8", "replace")), 200) if raw.strip() else ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    if error is None and isinstance(data, dict):
        error = data.get("detail")
    return one_line(hide(str(error)), 300) if error else ""


def _error_line(message: str, name: str) -> LlamadeckError:
    text = f"{one_line(message, 300)} (on {name})"
    return ModelNotFound(text) if "not found" in message.lower() else LlamadeckError(text)


def _read(response: http.client.HTTPResponse, limit: int, name: str) -> bytes:
    try:
        raw = response.read(limit + 1)
    except (OSError, http.client.HTTPException) as error:
        raise NetworkError(f"the connection to {name} broke: {_why(error)}") from None
    if len(raw) > limit:
        raise NetworkError(f"{name} answered with more than {limit >> 20} MiB")
    return raw


def _why(error: BaseException) -> str:
    return one_line(str(error) or type(error).__name__, 120)


def _shut(connection: http.client.HTTPConnection) -> None:
    """End the connection now, from any thread: a blocked read returns, the server sees its client go."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
