"""``EngineSurface``: the facade's methods that every engine answers for real, here or over the API.

A front end is given this machine's ``Engine`` or another machine's
``RemoteEngine`` (``engine.connect``) and calls the same methods on either.
This Protocol is the one place their signatures are written: mypy checks
that both classes satisfy it (``engine.remote.backend``), so a keyword added
to the facade's ``chat`` and not to the remote one's fails the type check
instead of a user's call. The facade's other methods (verify, create, import,
embeddings, ...) work on this machine's store only: the remote one refuses
them in one line naming the server.

    def send(engine: EngineSurface) -> None:
        for event in engine.chat("llama3.2", [{"role": "user", "content": "Hi"}]): ...
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.cancel import NEVER, CancelToken
from engine.events import EventSink, Generation, ignore

if TYPE_CHECKING:
    from engine.facade import LoadedModel
    from engine.ingest.hub.search import HubRepo
    from engine.library import ModelDetails, StoreProblem
    from engine.machine.quant import VariantFit
    from engine.runtime.loading import LoadingModel
    from engine.server_settings import ServerSettings
    from engine.store.manifest import Manifest
    from engine.store.removal import Removal
    from engine.templates.message import Message


class EngineSurface(Protocol):
    """What ``Engine`` and ``RemoteEngine`` both answer (see the module's docstring); each method's
    documentation is the facade's."""

    @property
    def where(self) -> str: ...  # "local", or the server's name

    @property
    def manages_models(self) -> bool: ...  # pull, delete, ps and stop work there

    @property
    def home(self) -> Path: ...

    @property
    def settings(self) -> ServerSettings: ...

    def configure(self, settings: ServerSettings) -> None: ...

    def close(self) -> None: ...

    def logs(self) -> list[str]: ...

    def loading(self) -> list[LoadingModel]: ...

    def store_problems(self) -> list[StoreProblem]: ...

    # models

    def list_models(self) -> list[Manifest]: ...

    def show(self, reference: str, *, verbose: bool = False) -> ModelDetails: ...

    def resolve(self, reference: str) -> Manifest: ...

    def modelfile(self, reference: str) -> str: ...

    def ensure(
        self, reference: str, *, on_event: EventSink = ignore, cancel: CancelToken = NEVER
    ) -> Manifest: ...

    def pull(
        self,
        reference: str,
        *,
        quant: str | None = None,
        on_event: EventSink = ignore,
        cancel: CancelToken = NEVER,
    ) -> Manifest: ...

    def variants(
        self, reference: str, *, on_event: EventSink = ignore, cancel: CancelToken = NEVER
    ) -> list[VariantFit]: ...

    def search(self, query: str, *, limit: int = 30, cancel: CancelToken = NEVER) -> list[HubRepo]: ...

    def remove(self, reference: str) -> Removal: ...

    def copy(self, source: str, destination: str) -> Manifest: ...

    # running

    def loaded(self) -> list[LoadedModel]: ...

    def load(
        self,
        reference: str,
        *,
        options: Mapping[str, object] | None = None,
        keep_alive: float | str | None = None,
        cancel: CancelToken = NEVER,
    ) -> float: ...

    def unload(self, reference: str | None = None) -> list[str]: ...

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
    ) -> Iterator[Generation]: ...

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
    ) -> Iterator[Generation]: ...
