"""Models put straight into a test's store: a blob copied in and a manifest saved, without pull or create,
for tests of what runs them (the runtime, the API, the app), not of how they arrive."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from engine.store.manifest import Manifest, ModelConfig, ModelFile
from engine.store.model_store import Store


def add_blob(store: Store, path: Path) -> ModelFile:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    shutil.copyfile(path, store.blob_path(sha))
    return ModelFile(path.name, sha, path.stat().st_size)


def save(
    store: Store,
    name: str,
    weights: ModelFile,
    adapters: tuple[ModelFile, ...] = (),
    *,
    parameters: dict[str, Any] | None = None,
    context_length: int = 2048,
) -> Manifest:
    manifest = Manifest(
        name=name,
        tag="latest",
        source="test",
        revision=None,
        files=(weights,),
        quant="F32",
        architecture="llama",
        parameters=1,
        context_length=context_length,
        created="2026-01-01T00:00:00+00:00",
        config=ModelConfig(adapters=adapters, parameters=dict(parameters or {})),
    )
    store.save(manifest)
    return manifest
