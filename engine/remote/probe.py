"""Which API a server speaks, asked once when a front end connects: Ollama's, a llamadeck's, or OpenAI's only.

The probe is the one place that tells the kinds of server apart
(``/api/version``, then ``/api/llamadeck/loading``, else ``/v1/models``);
``RemoteEngine`` is then told the answer and never asks again.
"""

from __future__ import annotations

from engine.errors import AccessDenied, LlamadeckError, NotFound
from engine.remote.backend import OLLAMA, OPENAI, RemoteEngine
from engine.remote.wire import Wire


def connect(url: str, *, api_key: str | None = None, name: str | None = None) -> RemoteEngine:
    """A RemoteEngine on the server at ``url``, after asking which API it speaks.

    Raises NetworkError (nothing answers), AccessDenied (a key is needed or
    was refused), NotFound (neither Ollama's API nor OpenAI's is there).
    """
    wire = Wire(url, api_key=api_key, name=name or url)
    try:
        answer = wire.json("GET", "/api/version")
    except NotFound:
        answer = None
    if isinstance(answer, dict) and "version" in answer:
        try:  # a llamadeck: its own routes (load progress, quantizations) are there too
            wire.json("GET", "/api/llamadeck/loading")
        except AccessDenied:
            raise
        except LlamadeckError:  # not there, or a proxy that fails on routes it does not know
            return RemoteEngine(wire, OLLAMA)
        return RemoteEngine(wire, OLLAMA, llamadeck=True)
    try:
        wire.json("GET", "/v1/models")
    except NotFound:
        raise NotFound(f"{wire.name} offers neither Ollama's API nor OpenAI's (/v1)") from None
    return RemoteEngine(wire, OPENAI)


__all__ = ["connect"]
