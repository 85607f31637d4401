"""Ollama's model-management routes: version, tags, ps, show, pull, delete, copy.

Shapes follow Ollama's ``api/types.go`` so its clients parse them unchanged.
Blocking engine calls run in worker threads; a pull streams its events as
NDJSON and is cancelled (partials kept for resume) when the client goes away.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from api import jobs
from api.deps import engine_of
from api.errors import APIError, bool_field, model_errors, read_json, string_field
from api.schema import BOOLEAN, NAME, STRING, json_body
from engine import (
    CancelToken,
    EventSink,
    LoadedModel,
    Manifest,
    ModelNotFound,
)

try:
    VERSION = metadata.version("llamadeck")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    VERSION = "0.0.0"

router = APIRouter()
_FOREVER = datetime(2318, 1, 1, tzinfo=UTC)  # what ``expires_at`` says of a model kept loaded for ever


def _human_count(n: int) -> str:
    """Ollama's parameter_size: 270M, 1.2B, 8.0B."""
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= limit:
            value = n / limit
            return f"{value:.0f}{suffix}" if value >= 100 or suffix in "MK" else f"{value:.1f}{suffix}"
    return str(n)


def details(manifest: Manifest) -> dict[str, Any]:
    family = manifest.architecture
    return {
        "parent_model": manifest.config.parent or "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": manifest.size_label or _human_count(manifest.parameters),
        "quantization_level": manifest.quant or "",
    }


def draft_details(manifest: Manifest | None) -> dict[str, Any]:
    """llamadeck's own ``draft`` field (Ollama names the draft only in the Modelfile): empty without one."""
    draft = manifest.config.draft if manifest is not None else None
    if draft is None:
        return {}
    return {
        "draft": {
            "model": draft.source,
            "digest": draft.files[0].sha256,
            "size": draft.size,
            "family": draft.architecture,
            "parameter_size": _human_count(draft.parameters),
            "quantization_level": draft.quant or "",
        }
    }


def _digest(manifest: Manifest) -> str:
    return manifest.files[0].sha256


def model_entry(manifest: Manifest) -> dict[str, Any]:
    """One model of ``/api/tags``."""
    return {
        "name": manifest.reference,
        "model": manifest.reference,
        "modified_at": manifest.created,
        "size": manifest.size,
        "digest": _digest(manifest),
        "details": details(manifest),
    }


@router.get("/", response_class=PlainTextResponse)
@router.head("/", response_class=PlainTextResponse)
async def root() -> str:
    return "Ollama is running"  # what Ollama's clients probe for


@router.get("/api/version")
@router.head("/api/version")
async def version() -> dict[str, str]:
    return {"version": VERSION}


@router.get("/api/tags")
@router.head("/api/tags")
async def tags(request: Request) -> dict[str, Any]:
    manifests = await run_in_threadpool(engine_of(request).list_models)
    return {"models": [model_entry(m) for m in manifests]}


def _running(loaded: LoadedModel, manifest: Manifest | None, now: datetime) -> dict[str, Any]:
    # a keep-alive past 2318 reads as for ever: any larger would overflow a datetime
    left = loaded.expires_in
    expires = (
        _FOREVER
        if left is None or not left < (_FOREVER - now).total_seconds()
        else now + timedelta(seconds=left)
    )
    return {
        "name": loaded.reference,
        "model": loaded.reference,
        "size": loaded.memory,
        "digest": _digest(manifest) if manifest is not None else loaded.id,
        "details": details(manifest) if manifest is not None else {"format": "gguf"},
        "expires_at": expires.isoformat(),
        "size_vram": loaded.vram,
        "context_length": loaded.context,
        # llamadeck's own, beside Ollama's fields: the sequences decoded together (OLLAMA_NUM_PARALLEL),
        # those running, the requests waiting (refused past OLLAMA_MAX_QUEUE) or parked for lack of KV
        # cells, and the KV pool they share
        "num_parallel": loaded.slots,
        "sequences_busy": loaded.slots_busy,
        "queued": loaded.queued,
        "paused": loaded.paused,
        "kv_cells": loaded.kv_cells,
        "kv_used": loaded.kv_used,
        "drafted": loaded.drafted,  # speculative decoding: draft tokens verified, and those accepted
        "accepted": loaded.accepted,
        **draft_details(manifest),  # the draft model it speculates with (Modelfile DRAFT)
    }


def _ps(request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    now = datetime.now(UTC)
    rows = []
    for loaded in engine.loaded():  # described by what was loaded, not by what the name holds now
        rows.append(_running(loaded, loaded.manifest, now))
    return {"models": rows}


@router.get("/api/ps")
async def ps(request: Request) -> dict[str, Any]:
    return await run_in_threadpool(_ps, request)


def _parameters_text(parameters: dict[str, Any]) -> str:
    """Ollama's ``parameters``: one ``name value`` line per value (lists give one line per item)."""
    lines = []
    for name, value in sorted(parameters.items()):
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{name:<30} {json.dumps(item)}")  # strings quoted, as Ollama
    return "\n".join(lines)


def _show(request: Request, name: str, verbose: bool) -> dict[str, Any]:
    with model_errors(name):
        engine = engine_of(request)
        shown = engine.show(name, verbose=verbose)
        modelfile = engine.modelfile(name)
    manifest = shown.manifest
    return {
        "license": manifest.license or "",
        "modelfile": modelfile,
        "parameters": _parameters_text(manifest.config.parameters),
        "template": manifest.config.template or "",
        "system": manifest.config.system or "",
        "details": details(manifest),
        "model_info": shown.model_info,
        **({"projector_info": shown.projector_info} if shown.projector_info else {}),
        "capabilities": list(shown.capabilities),
        "modified_at": manifest.created,
        **draft_details(manifest),
    }


@router.post("/api/show", openapi_extra=json_body(["model"], model=NAME, verbose=BOOLEAN))
async def show(request: Request) -> dict[str, Any]:
    data = await read_json(request)
    name = string_field(data, "model", "name")
    verbose = bool_field(data, "verbose", False)  # arrays (vocabulary, merges, scores) too, as Ollama's
    return await run_in_threadpool(_show, request, name, verbose)


def _delete(request: Request, name: str) -> None:
    with model_errors(name):
        engine_of(request).remove(name)


@router.delete("/api/delete", openapi_extra=json_body(["model"], model=NAME))
async def delete(request: Request) -> Response:
    data = await read_json(request)
    await run_in_threadpool(_delete, request, string_field(data, "model", "name"))
    return Response(status_code=200)


def _copy(request: Request, source: str, destination: str) -> None:
    with model_errors(source):
        engine_of(request).copy(source, destination)


@router.post("/api/copy", openapi_extra=json_body(["source", "destination"], source=NAME, destination=STRING))
async def copy(request: Request) -> Response:
    data = await read_json(request)
    source = string_field(data, "source")
    destination = string_field(data, "destination")
    await run_in_threadpool(_copy, request, source, destination)
    return Response(status_code=200)


# pulling ---------------------------------------------------------------------


@router.post("/api/pull", openapi_extra=json_body(["model"], model=NAME, insecure=BOOLEAN, stream=BOOLEAN))
async def pull(request: Request) -> Response:
    data = await read_json(request)
    name = string_field(data, "model", "name")
    engine = engine_of(request)

    def work(emit: EventSink, cancel: CancelToken) -> Manifest:
        try:
            return engine.pull(name, on_event=emit, cancel=cancel)
        except ModelNotFound as error:
            raise APIError(404, f"pull model manifest: {error}") from error

    # the engine hashed every byte as it arrived; Ollama's clients expect these steps all the same
    return await jobs.respond(
        request,
        f"pull {name}",
        work,
        stream=bool_field(data, "stream", True),
        first_status="pulling manifest",
        closing=("verifying sha256 digest", "writing manifest"),
    )
