"""Ollama's model-making routes: ``HEAD``/``POST /api/blobs/:digest`` and ``POST /api/create``.

A client uploads model files as blobs named by their sha256 (verified as they
arrive; a request never names a path on the server), then asks ``/api/create``
for a model made ``from`` a stored model or from those ``files``, in the JSON
form today's ``ollama`` clients send (``files`` and ``adapters`` map file names
to digests; ``template``, ``system``, ``parameters``, ``messages``,
``license``, ``quantize``, and the draft model's ``draft_files`` and
``draft_quantize``). Progress streams as NDJSON, as a pull's does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from api import jobs
from api.deps import engine_of
from api.errors import APIError, bool_field, read_json, string_field
from api.schema import BOOLEAN, MESSAGES, NAME, OPTIONS, STRING, TEXTS, json_body
from engine import CancelToken, CreateSpec, EventSink, InvalidInput, LlamadeckError, Manifest, parse_options

router = APIRouter()
_ROLES = ("system", "user", "assistant", "tool")
_DIGESTS: dict[str, Any] = {  # file name -> "sha256:<hex>" of an uploaded blob
    "type": "object",
    "additionalProperties": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
}


@router.head("/api/blobs/{digest}")
async def has_blob(request: Request, digest: str) -> Response:
    try:
        present = await run_in_threadpool(engine_of(request).has_blob, digest)
    except InvalidInput as error:
        raise APIError(400, str(error)) from error
    if not present:
        raise APIError(404, f'blob "{digest}" not found')
    return Response(status_code=200)


@router.post(
    "/api/blobs/{digest}",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_blob(request: Request, digest: str) -> Response:
    """Store the body as the blob ``digest`` (201), or 200 when it is here already; a wrong digest is 400.

    A body past the blob limit (``LLAMADECK_MAX_BLOB_BYTES``) is 413, one past the free disk 507.
    """
    engine = engine_of(request)
    try:
        if await run_in_threadpool(engine.has_blob, digest):
            return Response(status_code=200)
        upload = await run_in_threadpool(engine.upload_blob, digest)
    except InvalidInput as error:
        raise APIError(400, str(error)) from error
    with upload:  # whatever fails below, the partial file goes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():  # refused before a byte is read
            upload.check_size(int(declared))
            await run_in_threadpool(upload.check_space, int(declared))
        received = 0
        pending = bytearray()
        async for chunk in request.stream():  # batched: one thread hop per MiB, not per network chunk
            received += len(chunk)
            upload.check_size(received)
            pending += chunk
            if len(pending) >= 1 << 20:
                await run_in_threadpool(upload.write, bytes(pending))
                pending.clear()
        if pending:
            await run_in_threadpool(upload.write, bytes(pending))
        try:
            await run_in_threadpool(upload.finish)
        except LlamadeckError as error:
            if "digest mismatch" in str(error):
                raise APIError(400, str(error)) from error
            raise
    return Response(status_code=201)


def _digests(data: dict[str, Any], field: str) -> tuple[tuple[str, str], ...]:
    """``files``/``adapters``: file name -> ``sha256:<hex>``, checked (names are never paths here)."""
    raw = data.get(field)
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise APIError(400, f"{field} must be an object of file name to digest")
    pairs = []
    for name, digest in raw.items():
        if not isinstance(name, str) or not _valid_name(name):
            raise APIError(400, f"{field}: invalid file path {name!r:.80}")
        if not isinstance(digest, str) or not digest:
            raise APIError(400, "invalid digest format")
        pairs.append((name, digest))
    return tuple(pairs)


def _valid_name(name: str) -> bool:
    """Go's ``fs.ValidPath``, as Ollama checks ``files``: relative, no ``.``, ``..`` or empty parts."""
    if name == ".":
        return True
    return (
        bool(name)
        and "\\" not in name
        and "\0" not in name
        and all(part not in ("", ".", "..") for part in name.split("/"))
    )


def _messages(data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = data.get("messages")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise APIError(400, "messages must be a list of {role, content}")
    turns = []
    for i, message in enumerate(raw, 1):
        if not isinstance(message, Mapping):
            raise APIError(400, f"message {i} must be an object with role and content")
        role, content = message.get("role"), message.get("content", "")
        if role not in ("system", "user", "assistant"):
            raise APIError(400, f"message {i}: role must be system, user or assistant")
        if not isinstance(content, str):
            raise APIError(400, f"message {i}: content must be text")
        turns.append((str(role), content))
    return tuple(turns)


def _licenses(data: dict[str, Any]) -> tuple[str, ...]:
    raw = data.get("license")
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    raise APIError(400, "license must be a string or a list of strings")


def _text(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise APIError(400, f"{field} must be a string")
    return value


def _spec(request: Request, data: dict[str, Any]) -> CreateSpec:
    engine = engine_of(request)
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise APIError(400, "parameters must be an object")
    try:
        checked = parse_options(parameters, source="parameters")
    except InvalidInput as error:
        raise APIError(400, str(error)) from error
    base = _text(data, "from")
    files = _digests(data, "files")
    adapters = _digests(data, "adapters")
    draft_files = _digests(data, "draft_files")
    draft_quantize = _text(data, "draft_quantize")
    if draft_quantize and not draft_files:
        raise APIError(400, "--draft-quantize requires a DRAFT model")  # Ollama's words
    if base is None and not files:
        raise APIError(400, "neither 'from' or 'files' was specified")
    try:
        blobs = (
            ()
            if base
            else tuple((name, engine.blob_path(digest).name[len("sha256-") :]) for name, digest in files)
        )
        adapter_paths = tuple(engine.blob_path(digest) for _, digest in adapters)
        draft_blobs = tuple(
            (name, engine.blob_path(digest).name[len("sha256-") :]) for name, digest in draft_files
        )
    except InvalidInput as error:
        raise APIError(400, str(error)) from error
    return CreateSpec(
        base=base,
        base_blobs=blobs,
        adapters=adapter_paths,
        template=_text(data, "template"),
        system=_text(data, "system"),
        parameters=checked,
        messages=_messages(data),
        license=_licenses(data),
        quantize=_text(data, "quantize") or _text(data, "quantization"),
        draft_blobs=draft_blobs,
        draft_quantize=draft_quantize,
    )


@router.post(
    "/api/create",
    openapi_extra=json_body(
        ["model"],
        model=NAME,
        **{"from": NAME},
        files=_DIGESTS,
        adapters=_DIGESTS,
        draft_files=_DIGESTS,
        draft_quantize=STRING,
        template=STRING,
        system=STRING,
        license=TEXTS,
        parameters=OPTIONS,
        messages=MESSAGES,
        quantize=STRING,
        stream=BOOLEAN,
    ),
)
async def create(request: Request) -> Response:
    data = await read_json(request)
    name = string_field(data, "model", "name")
    stream = bool_field(data, "stream", True)
    engine = engine_of(request)
    spec = await run_in_threadpool(_spec, request, data)

    def work(emit: EventSink, cancel: CancelToken) -> Manifest:
        try:
            return engine.create(name, spec, on_event=emit, cancel=cancel)
        except LlamadeckError as error:  # uploads sit in the store's partial/: a client is not told where
            hidden = str(error).replace(str(engine.home), "the store")
            if hidden == str(error):
                raise
            shown = copy.copy(error)  # the same class: the same status and kind
            shown.args = (hidden,)
            raise shown from None

    return await jobs.respond(
        request, f"create {name}", work, stream=stream, first_status="parsing model information"
    )
