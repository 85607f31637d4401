"""Tiny GGUFs whose header values make llama.cpp abort the process, and a way to smuggle one into a store.

Each passed ``create``, ``pull`` and ``verify`` before ``engine.store.gguf_values``
(issue 18, finding 2); loading or running one ended the process with
``GGML_ASSERT`` (exit 134). ``HOSTILE_HEADERS`` maps a case to the
``write_tiny_gguf`` arguments that make it and the key its refusal must name.

    path = write_hostile(tmp_path, "nan-eps")
    smuggle(Store(home), "bad", path)   # as a store written before the checks holds it
"""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path
from typing import Any

from engine.store.manifest import Manifest, ModelFile
from engine.store.model_store import Store
from tests.support.tiny_gguf import write_tiny_gguf

HOSTILE_HEADERS: dict[str, tuple[dict[str, Any], str]] = {
    "nan-eps": ({"rms_eps": math.nan}, "layer_norm_rms_epsilon"),
    "inf-eps": ({"rms_eps": math.inf}, "layer_norm_rms_epsilon"),
    "negative-eps": ({"rms_eps": -1.0}, "layer_norm_rms_epsilon"),
    "more-used-than-experts": (
        {"extra": {"llama.expert_count": 2, "llama.expert_used_count": 3}},
        "expert_used_count",
    ),
    "used-without-experts": ({"extra": {"llama.expert_used_count": 2}}, "expert_used_count"),
    "experts-but-none-used": ({"extra": {"llama.expert_count": 2}}, "expert_used_count"),
    "too-many-experts": (
        {"extra": {"llama.expert_count": 2000, "llama.expert_used_count": 2}},
        "expert_count",
    ),
    "expert-groups": (
        {"extra": {"llama.expert_count": 4, "llama.expert_used_count": 2, "llama.expert_group_count": 3}},
        "expert_group_count",
    ),
    "more-nextn-than-layers": ({"extra": {"llama.nextn_predict_layers": 3}}, "nextn_predict_layers"),
    "too-many-layers": ({"extra": {"llama.block_count": 600}}, "block_count"),
    "tokenizer-none": ({"tokenizer_model": "none"}, "tokenizer.ggml.model"),
    "tokenizer-no-vocab": ({"tokenizer_model": "no_vocab"}, "tokenizer.ggml.model"),
    "wordpiece-with-byte-tokens": ({"tokenizer_model": "bert"}, "tokenizer.ggml.model"),
}
# the four the outside pass found, for the slower end-to-end tests
FOUND = ("nan-eps", "more-used-than-experts", "more-nextn-than-layers", "tokenizer-none")


def write_hostile(directory: Path, case: str) -> Path:
    """The tiny llama GGUF of ``case`` in ``directory`` (written once)."""
    path = Path(directory) / f"{case}.gguf"
    if not path.exists():
        kwargs, _ = HOSTILE_HEADERS[case]
        write_tiny_gguf(path, **kwargs)
    return path


def smuggle(store: Store, name: str, path: Path) -> Manifest:
    """Register ``path`` as the model ``name:latest`` past every check, as an older llamadeck may have."""
    store.ensure()
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    shutil.copyfile(path, store.blob_path(sha))
    manifest = Manifest(
        name=name,
        tag="latest",
        source="modelfile",
        revision=None,
        files=(ModelFile(path.name, sha, len(data)),),
        quant="Q8_0",
        architecture="llama",
        parameters=1,
        context_length=2048,
        created="2026-01-01T00:00:00+00:00",
    )
    store.save(manifest)
    return manifest
