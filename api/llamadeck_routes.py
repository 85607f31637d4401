"""llamadeck's own routes beside Ollama's, for a llamadeck on another machine (``engine.remote``).

What the app shows of its own engine that Ollama's API has no field for:
how far a model's load has got. They live under ``/api/llamadeck/``, where no
Ollama route is or will be, so an Ollama client never meets them and
``/api/ps`` and the rest keep Ollama's shapes exactly.

    GET /api/llamadeck/loading   {"models": [{"name": "tiny:latest", "progress": 0.42, "seconds": 3.1}]}
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.deps import engine_of

router = APIRouter()


@router.get("/api/llamadeck/loading")
async def loading(request: Request) -> dict[str, Any]:
    """The loads in flight (``Engine.loading``: a snapshot under a lock, never a wait)."""
    models = []
    for model in engine_of(request).loading():
        progress = None if model.fraction is None else round(model.fraction, 4)
        models.append({"name": model.reference, "progress": progress, "seconds": round(model.seconds, 3)})
    return {"models": models}
