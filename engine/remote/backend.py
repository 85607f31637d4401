"""``RemoteEngine``: the facade's methods answered by a server on another machine.

A front end picks this or the local ``Engine`` once, at start, and calls the
same methods either way: models are listed, shown, pulled (with progress),
loaded, stopped and deleted, and chats stream, through the server's API.
Two kinds of server are spoken to, found by asking (``connect``, in ``engine.remote.probe``):

- Ollama-shaped (an Ollama, or another ``llamadeck serve``): ``/api/...``, all of the above;
- OpenAI-compatible only (vLLM, llama-server, SGLang): ``/v1/models`` and
  ``/v1/chat/completions``: list and chat; anything else is one line naming the server.

A reply's tool calls come back as the model's text of them and its
reasoning as ``Token.thinking`` (``openai_turns``), so a remote stream reads
as a local one to every front end.

What only this machine's store can do (verify, create, import, ...) is
refused in one line naming the server: no call ever falls through to the
local store, which this object never opens. A server named by the user is
trusted as named: it is not asked for the store proof (``api.proof``).

    engine = connect("http://gpu-box:11434", api_key=None, name="gpu-box:11434")
    for event in engine.chat("llama3.2", [{"role": "user", "content": "Hi"}]): ...
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cancel import NEVER, CancelToken
from engine.errors import (
    InvalidInput,
    InvalidReference,
    LlamadeckError,
    ModelNotFound,
)
from engine.events import EventSink, Generation, Status, ignore
from engine.facade import Engine, LoadedModel
from engine.ingest.hub.search import HubRepo
from engine.library import ModelDetails, StoreProblem
from engine.machine.quant import VariantFit
from engine.remote.shapes import (
    PullLines,
    RemoteModel,
    loaded_from_ps,
    loading_model,
    openai_model,
    shown_model,
    tags_model,
    variant_fit,
)
from engine.remote.streams import ReplyStreams, as_base64, as_turn, drop_none
from engine.remote.waits import Waits
from engine.remote.wire import Wire
from engine.runtime.loading import LoadingModel
from engine.server_settings import ServerSettings
from engine.store.manifest import Manifest
from engine.store.removal import Removal
from engine.surface import EngineSurface
from engine.templates.message import Message

OLLAMA = "ollama"  # /api/... (Ollama, llamadeck serve)
SURVEY_TIMEOUT = 120.0  # a server surveying a Hub repository reads its listing and GGUF headers
OPENAI = "openai"  # /v1 only


class RemoteEngine(Engine):
    """The engine's facade over another machine's server (see the module's docstring)."""

    def __init__(self, wire: Wire, kind: str, *, llamadeck: bool = False) -> None:
        # no super().__init__: no local store is opened
        self._wire = wire
        self.kind = kind
        self.llamadeck = llamadeck  # a llamadeck server: /api/llamadeck/... (api.llamadeck_routes) answers
        self._remote_settings = ServerSettings()
        self._waits = Waits()
        self._streams = ReplyStreams(wire, self._waits)

    # where it is ---------------------------------------------------------------

    @property
    def where(self) -> str:
        return self._wire.name

    @property
    def manages_models(self) -> bool:
        return self.kind == OLLAMA

    @property
    def url(self) -> str:
        return self._wire.url

    @property
    def home(self) -> Path:
        """No store here: the server's own. A path that says so, for the app's start line."""
        return Path(f"<{self._wire.name}>")

    @property
    def settings(self) -> ServerSettings:
        return self._remote_settings

    def configure(self, settings: ServerSettings) -> None:
        """The server runs with its own settings; these are kept only for what the app shows."""
        self._remote_settings = settings

    def close(self) -> None:
        """End the requests in flight (the app quits while a poll or a reply waits on the server)."""
        self._wire.close_all()

    def logs(self) -> list[str]:
        return [f"llama.cpp's log is on the server, {self._wire.name}"]

    def loading(self) -> list[LoadingModel]:
        """A llamadeck server's loads in flight, with llama.cpp's progress (a route of ours); an Ollama's:
        this engine's requests still waiting for their first answer, seconds only (its API has no
        progress); a /v1 server's: none (it holds its model loaded). Never raises: a gauge's poll."""
        if self.kind == OPENAI:
            return []
        if not self.llamadeck:
            return self._waits.snapshot()
        try:
            answer = self._wire.json("GET", "/api/llamadeck/loading")
        except LlamadeckError:
            return self._waits.snapshot()
        items = answer.get("models") if isinstance(answer, dict) else None
        return [loading_model(m) for m in items or [] if isinstance(m, dict)]

    def store_problems(self) -> list[StoreProblem]:
        return []

    # models ----------------------------------------------------------------------

    def list_models(self) -> list[Manifest]:
        if self.kind == OPENAI:
            data = self._wire.json("GET", "/v1/models")
            items = data.get("data") if isinstance(data, dict) else None
            return [openai_model(m, self.where) for m in items or [] if isinstance(m, dict)]
        data = self._wire.json("GET", "/api/tags")
        items = data.get("models") if isinstance(data, dict) else None
        models = [tags_model(m, self.where) for m in items or [] if isinstance(m, dict)]
        return sorted(models, key=lambda m: m.created, reverse=True)

    def show(self, reference: str, *, verbose: bool = False) -> ModelDetails:
        model = self._listed(reference)
        if self.kind == OPENAI:
            return ModelDetails(model, ())
        answer = self._wire.json("POST", "/api/show", {"model": model.reference, "verbose": verbose})
        return shown_model(model, answer if isinstance(answer, dict) else {})

    def resolve(self, reference: str) -> Manifest:
        return self._listed(reference)

    def modelfile(self, reference: str) -> str:
        self._needs_ollama("show a Modelfile")
        answer = self._wire.json("POST", "/api/show", {"model": reference})
        return str(answer.get("modelfile") or "") if isinstance(answer, dict) else ""

    def ensure(
        self, reference: str, *, on_event: EventSink = ignore, cancel: CancelToken = NEVER
    ) -> Manifest:
        """The model on the server, pulled there first when missing (as ``ollama run`` does)."""
        try:
            return self._listed(reference)
        except ModelNotFound:
            if self.kind == OPENAI:
                raise
        return self.pull(reference, on_event=on_event, cancel=cancel)

    def pull(
        self,
        reference: str,
        *,
        quant: str | None = None,
        on_event: EventSink = ignore,
        cancel: CancelToken = NEVER,
    ) -> Manifest:
        """The server pulls the model; its status lines arrive here as Progress and Status events."""
        self._needs_ollama("pull models")
        if quant:
            reference = f"{reference.rpartition(':')[0] or reference}:{quant}"
        lines = PullLines()
        body = {"model": reference, "stream": True}
        for line in self._wire.lines("POST", "/api/pull", body, cancel=cancel):
            if isinstance(line, dict) and (event := lines.event(line)) is not None:
                on_event(event)
        return self._pulled(reference)

    def variants(
        self, reference: str, *, on_event: EventSink = ignore, cancel: CancelToken = NEVER
    ) -> list[VariantFit]:
        """A Hub repository's quantizations as a llamadeck server surveys them: sizes, and the fits of
        that server's machine, where the model would run. Another server picks the quantization itself:
        InvalidReference, so the pull dialog pulls the reference as typed (REPO:QUANT names one)."""
        if not self.llamadeck:
            raise InvalidReference(f"{self.where} picks the quantization: name one as REPO:QUANT to choose")
        on_event(Status(f"asking {self.where} for the quantizations of {reference}"))
        path, body = "/api/llamadeck/variants", {"model": reference}
        answer = self._wire.json("POST", path, body, timeout=SURVEY_TIMEOUT, cancel=cancel)
        items = answer.get("variants") if isinstance(answer, dict) else None
        return [variant_fit(v) for v in items or [] if isinstance(v, dict)]

    def search(self, query: str, *, limit: int = 30, cancel: CancelToken = NEVER) -> list[HubRepo]:
        """Hugging Face's GGUF repositories, asked from this machine (the server pulls what is chosen)."""
        from engine.ingest.hub.search import search_models
        from engine.ingest.hub.tokens import clean_token

        return search_models(query, limit=limit, token=clean_token(os.environ.get("HF_TOKEN")), cancel=cancel)

    def remove(self, reference: str) -> Removal:
        self._needs_ollama("delete models")
        self._wire.json("DELETE", "/api/delete", {"model": reference})
        return Removal(reference, 0)

    def copy(self, source: str, destination: str) -> Manifest:
        self._needs_ollama("copy models")
        self._wire.json("POST", "/api/copy", {"source": source, "destination": destination})
        return self._listed(destination)

    # running ---------------------------------------------------------------------

    def loaded(self) -> list[LoadedModel]:
        self._needs_ollama("list the models it has loaded")
        data = self._wire.json("GET", "/api/ps")
        items = data.get("models") if isinstance(data, dict) else None
        return [loaded_from_ps(m) for m in items or [] if isinstance(m, dict)]

    def load(
        self,
        reference: str,
        *,
        options: Mapping[str, object] | None = None,
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
    ) -> float:
        """Load on the server (Ollama's generate without a prompt); the seconds its load took."""
        if self.kind == OPENAI:  # such a server holds its model loaded: there is nothing to load
            self._listed(reference)
            return 0.0
        body = drop_none({"model": reference, "options": dict(options or {}) or None})
        body |= drop_none({"keep_alive": keep_alive})
        with self._waits.waiting(reference):
            answer = self._wire.json("POST", "/api/generate", body, timeout=None)
        return float(answer.get("load_duration") or 0) * 1e-9 if isinstance(answer, dict) else 0.0

    def unload(self, reference: str | None = None) -> list[str]:
        """Unload on the server now (generate with keep_alive 0, as ``ollama stop``); all when None."""
        self._needs_ollama("unload models")
        names = [m.reference for m in self.loaded()] if reference is None else [reference]
        for name in names:
            self._wire.json("POST", "/api/generate", {"model": name, "keep_alive": 0})
        return names

    def chat(
        self,
        reference: str,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        options: Mapping[str, object] | None = None,
        conversation: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        think: bool | str | None = None,
        format: str | Mapping[str, Any] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        logprobs: int | None = None,
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
    ) -> Iterator[Generation]:
        """The reply streamed from the server: Tokens, then one Done ("cancelled" when ``cancel`` cut it).

        A server that goes away mid-reply raises NetworkError after the tokens it sent.
        """
        turns = [as_turn(m) for m in messages]
        if self.kind == OPENAI:
            return self._streams.openai_chat(reference, turns, options, tools, tool_choice, cancel, think)
        body = drop_none(
            {
                "model": reference,
                "messages": turns,
                "stream": True,
                "options": dict(options or {}) or None,
                "keep_alive": keep_alive,
                "think": think,
                "format": format,
                "tools": list(tools) if tools else None,
            }
        )
        return self._streams.ollama("/api/chat", body, cancel)

    def generate(
        self,
        reference: str,
        prompt: str,
        *,
        raw: bool | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        options: Mapping[str, object] | None = None,
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
        system: str | None = None,
        think: bool | str | None = None,
        suffix: str | None = None,
        context: Sequence[int] | None = None,
        keep_context: bool = False,
        format: str | Mapping[str, Any] | None = None,
        logprobs: int | None = None,
        images: Sequence[bytes | str] = (),
    ) -> Iterator[Generation]:
        """One prompt's reply from the server (``/api/generate``; a /v1 server gets it as a chat turn)."""
        merged = {**(options or {})} | drop_none(
            {"num_predict": max_tokens, "temperature": temperature, "seed": seed}
        )
        if self.kind == OPENAI:
            if raw or suffix or context:
                raise InvalidInput(f"{self.where} offers only the OpenAI API (/v1): no raw prompt there")
            user: dict[str, Any] = {"role": "user", "content": prompt}
            if images:
                user["images"] = [as_base64(i) for i in images]
            turns = ([{"role": "system", "content": system}] if system else []) + [user]
            return self._streams.openai_chat(reference, turns, merged, None, None, cancel, think)
        body = drop_none(
            {
                "model": reference,
                "prompt": prompt,
                "stream": True,
                "raw": raw,
                "options": merged or None,
                "keep_alive": keep_alive,
                "system": system,
                "think": think,
                "suffix": suffix,
                "context": list(context) if context else None,
                "format": format,
                "images": [as_base64(i) for i in images] or None,
            }
        )
        return self._streams.ollama("/api/generate", body, cancel)

    # helpers -----------------------------------------------------------------------

    def _listed(self, reference: str) -> RemoteModel:
        """The model the server lists as ``reference`` (a bare name: ``name:latest``, else its newest)."""
        models = [m for m in self.list_models() if isinstance(m, RemoteModel)]
        wanted = reference.strip()
        exact = [m for m in models if m.reference == wanted]
        latest = [m for m in models if m.name == wanted and m.tag == "latest"]
        named = [m for m in models if m.name == wanted]  # newest first, as a local Hub name without a quant
        for found in (exact, latest, named):
            if found:
                return found[0]
        if self.kind == OLLAMA:
            advice = "pull it there"
        else:
            advice = "it lists " + (", ".join(m.reference for m in models[:5]) or "none")
        raise ModelNotFound(f"model {wanted} not found on {self.where}: {advice}")

    def _pulled(self, reference: str) -> Manifest:
        """The model a pull made: the name asked for, or the newest the server lists under its repo name."""
        try:
            return self._listed(reference)
        except ModelNotFound:
            name = reference.removeprefix("hf.co/")
            name = name.rpartition(":")[0] if ":" in name.rpartition("/")[2] else name
            found = [m for m in self.list_models() if m.name.removeprefix("hf.co/") == name]
            if found:
                return found[0]
            raise

    def _needs_ollama(self, what: str) -> None:
        if self.kind == OPENAI:
            raise InvalidInput(f"{self.where} offers only the OpenAI API (/v1): it cannot {what}")


def _local_only(name: str) -> Callable[..., Any]:
    def refuse(self: RemoteEngine, *args: Any, **kwargs: Any) -> Any:
        raise InvalidInput(f"{name} works on this machine's store, not on a server: {self.where}")

    refuse.__name__ = name
    refuse.__doc__ = f"Refused in one line: ``{name}`` needs this machine's store."
    return refuse


if TYPE_CHECKING:

    def _one_surface(local: Engine, remote: RemoteEngine) -> tuple[EngineSurface, EngineSurface]:
        """Never run: mypy checks here that both engines satisfy the one Protocol (``engine.surface``)."""
        return local, remote


# Every other public method of the facade (verify, create, import, blobs, embeddings, ...) is refused
# in one line: none may reach the local store, which this object never opened.
for _name, _member in inspect.getmembers(Engine):
    if not _name.startswith("_") and callable(_member) and _name not in RemoteEngine.__dict__:
        setattr(RemoteEngine, _name, _local_only(_name))
del _name, _member
