"""Finding GGUF models other tools already downloaded: Ollama, the Hugging Face cache, LM Studio.

    for found in discover(**default_locations()):
        if found.importable:
            import_gguf(store, found.files, ref=parse_local_name(found.suggested),
                        config=found.config, origin=found.origin, license=found.license)

Discovery only reads: directory listings, Ollama's manifest JSON and its small
text layers, and the first four bytes of each candidate file (the GGUF magic);
nothing is hashed. Everything in those folders is treated as hostile: a bad
manifest, a digest that tries to climb out (``sha256-../../x``), a name
llamadeck cannot use, a symlink out of the folder, a manifest of gigabytes.
Each becomes a ``note`` on its entry (or the entry is skipped), never an
exception. Symlinks are followed only where they stay inside the scanned
folder, and in the Hugging Face cache only from ``snapshots/`` into the
repository's own ``blobs/``.

Where each part lives: ``ollama_store`` (Ollama's manifests and blobs),
``gguf_folders`` (the Hugging Face cache, LM Studio), ``foreign_files`` (the
hostile-folder reading both share), ``found`` (``FoundModel`` and name
suggestions). This module finds the folders and gathers the results.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from engine.ingest.foreign_files import real_dir
from engine.ingest.found import HUGGINGFACE, LMSTUDIO, OLLAMA, FoundModel
from engine.ingest.gguf_folders import scan_huggingface, scan_lmstudio
from engine.ingest.ollama_store import scan_ollama


def default_locations() -> dict[str, Path]:
    """Where each tool keeps its models on this machine, by the tools' own rules (folders may not exist).

    Ollama: ``OLLAMA_MODELS`` or ``~/.ollama/models``. Hugging Face:
    ``HF_HUB_CACHE`` (or the older ``HUGGINGFACE_HUB_CACHE``), else
    ``HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub`` (``~/.cache``).
    LM Studio: ``~/.lmstudio/models``, or ``~/.cache/lm-studio/models`` (older
    versions) when only that one exists.
    """
    home = Path.home()
    env = os.environ
    ollama = (
        Path(env["OLLAMA_MODELS"]).expanduser() if env.get("OLLAMA_MODELS") else home / ".ollama" / "models"
    )
    if hub := env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE"):
        hf = Path(hub).expanduser()
    elif hf_home := env.get("HF_HOME"):
        hf = Path(hf_home).expanduser() / "hub"
    else:
        cache = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else home / ".cache"
        hf = cache / "huggingface" / "hub"
    lmstudio = home / ".lmstudio" / "models"
    legacy = home / ".cache" / "lm-studio" / "models"
    if not lmstudio.is_dir() and legacy.is_dir():
        lmstudio = legacy
    return {OLLAMA: ollama, HUGGINGFACE: hf, LMSTUDIO: lmstudio}


def discover(
    *,
    ollama: Path | None = None,
    huggingface: Path | None = None,
    lmstudio: Path | None = None,
    taken: Mapping[str, str] | None = None,
) -> list[FoundModel]:
    """Every model found in the folders given (a folder left out, or missing, is not scanned).

    Never raises for what is in the folders: a problem is a ``note`` on its
    entry. Suggested names are made unique across the whole list and never
    name a model ``taken`` (name:tag -> source) holds from elsewhere.
    """
    found: list[FoundModel] = []
    for root, scan in ((ollama, scan_ollama), (huggingface, scan_huggingface), (lmstudio, scan_lmstudio)):
        if root is None:
            continue
        real = real_dir(Path(root))
        if real is None:
            continue
        found.extend(sorted(scan(real), key=lambda f: f.name))
    return _unique_suggestions(found, taken)


def _unique_suggestions(
    found: list[FoundModel], taken_already: Mapping[str, str] | None = None
) -> list[FoundModel]:
    """Suggestions unique in the list and free in the store (``taken_already``: name:tag -> its source).

    A name the store holds from this very origin is kept: importing again repairs it.
    """
    store = dict(taken_already or {})
    taken: set[str] = set()
    result = []
    for model in found:
        suggested, n = model.suggested, 1
        name, _, tag = suggested.partition(":")
        while suggested in taken or store.get(suggested, model.origin) != model.origin:
            n += 1
            suffix = f"-{n}"
            suggested = f"{name}:{tag[: 80 - len(suffix)]}{suffix}"
        taken.add(suggested)
        result.append(replace(model, suggested=suggested) if suggested != model.suggested else model)
    return result


__all__ = ["default_locations", "discover"]
