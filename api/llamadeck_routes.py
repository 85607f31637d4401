"""llamadeck's own routes beside Ollama's, for a llamadeck on another machine (``engine.remote``).

What the app shows of its own engine that Ollama's API has no field for:
how far a model's load has got, and which quantizations a Hugging Face
repository offers and which fit this server's machine. They live under ``/api/llamadeck/``, where no
Ollama route is or will be, so an Ollama client never meets them and
``/api/ps`` and the rest keep Ollama's shapes exactly.

    GET  /api/llamadeck/loading    {"models": [{"name": "tiny:latest", "progress": 0.42, "seconds": 3.1}]}
    POST /api/llamadeck/variants   {"model": "hf.co/org/repo"} ->
         {"variants": [{"quant": "Q4_K_M", "size": ..., "need": ..., "fits_in": "VRAM", "recommended": true}]}
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import engine_of
from api.errors import read_json, string_field
from api.schema import NAME, json_body

router = APIRouter()


@router.get("/api/llamadeck/loading")
async def loading(request: Request) -> dict[str, Any]:
    """The loads in flight (``Engine.loading``: a snapshot under a lock, never a wait)."""
    models = []
    for model in engine_of(request).loading():
        progress = None if model.fraction is None else round(model.fraction, 4)
        models.append({"name": model.reference, "progress": progress, "seconds": round(model.seconds, 3)})
    return {"models": models}


@router.post("/api/llamadeck/variants", openapi_extra=json_body(["model"], model=NAME))
async def variants(request: Request) -> dict[str, Any]:
    """``Engine.variants`` of a Hub reference: the fits are this machine's, where a pull would run it.
    A name that is not a Hub reference is a 400 (InvalidReference), as the engine says it."""
    reference = string_field(await read_json(request), "model")
    found = await run_in_threadpool(engine_of(request).variants, reference)
    return {
        "variants": [
            {
                "quant": v.quant,
                "size": v.size,
                "need": v.need,
                "fits_in": v.fits_in.value,
                "recommended": v.recommended,
            }
            for v in found
        ]
    }
