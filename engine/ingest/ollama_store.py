"""Finding the GGUF models in an Ollama store, with the template, system, parameters and license they carry.

Layout, as Ollama's ``server``/``manifest`` packages write it:
``manifests/<host>/<namespace>/<model>/<tag>`` (Docker distribution manifest
v2 JSON; layers with ``mediaType``
``application/vnd.ollama.image.{model,template,system,params,license,messages,adapter,projector}``
and ``digest`` ``sha256:<hex>``), blobs at ``blobs/sha256-<hex>``. A manifest
is hostile input: a bad one, a digest that tries to climb out
(``sha256-../../x``) or one of gigabytes becomes a note on its entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from engine.errors import InvalidOption
from engine.ingest.foreign_files import gguf_problem, inside, is_dir, listing, read_small, total_size
from engine.ingest.found import OLLAMA, FoundModel, suggest
from engine.option_parsing import parse_one
from engine.store.manifest import MAX_TEXT, ModelConfig
from engine.text import one_line

_MEDIA = "application/vnd.ollama.image."
_MAX_MANIFEST = 1 << 20  # an Ollama manifest is about 1 KiB
_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
_OLLAMA_HOST = "registry.ollama.ai"
_OLLAMA_NAMESPACE = "library"
_ROLES = ("system", "user", "assistant")  # what a manifest's preset messages may be


def scan_ollama(root: Path) -> Iterator[FoundModel]:
    manifests = root / "manifests"
    for host in listing(manifests):
        if not is_dir(host):
            continue
        for namespace in listing(Path(host.path)):
            if not is_dir(namespace):
                continue
            for model in listing(Path(namespace.path)):
                if not is_dir(model):
                    continue
                for tag in listing(Path(model.path)):
                    if tag.name.startswith(".") or is_dir(tag):
                        continue
                    yield _ollama_model(root, Path(tag.path), host.name, namespace.name, model.name, tag.name)


def _ollama_name(host: str, namespace: str, model: str, tag: str) -> str:
    """Ollama's shortest display name (``DisplayShortest``): ``llama3.2:3b``, ``hf.co/org/repo:Q4_K_M``."""
    if host.lower() != _OLLAMA_HOST:
        return one_line(f"{host}/{namespace}/{model}:{tag}", None)
    if namespace.lower() != _OLLAMA_NAMESPACE:
        return one_line(f"{namespace}/{model}:{tag}", None)
    return one_line(f"{model}:{tag}", None)


def _ollama_model(root: Path, path: Path, host: str, namespace: str, model: str, tag: str) -> FoundModel:
    name = _ollama_name(host, namespace, model, tag)
    suggested = suggest(model, tag)

    def refused(note: str, files: tuple[Path, ...] = ()) -> FoundModel:
        return FoundModel(OLLAMA, name, suggested, files, total_size(files), None, note, importable=False)

    try:
        data = json.loads(read_small(path, _MAX_MANIFEST))
    except (OSError, ValueError, RecursionError) as error:
        return refused(f"the manifest cannot be read ({one_line(str(error), 120)})")
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        return refused("the manifest has no list of layers")
    models: list[Path] = []
    projectors: list[Path] = []
    notes: list[str] = []
    texts: dict[str, list[str]] = {}
    params: dict[str, object] = {}
    messages: list[tuple[str, str]] = []
    for layer in layers:
        media = layer.get("mediaType")
        kind = media.removeprefix(_MEDIA) if isinstance(media, str) and media.startswith(_MEDIA) else None
        if kind is None or kind == "embed":
            continue  # the config blob and anything else Ollama itself ignores
        blob = _ollama_blob(root, layer.get("digest"))
        if isinstance(blob, str):
            if kind == "model":
                return refused(f"its model layer's {blob}")
            notes.append(f"{kind} layer skipped: {blob}")
            continue
        if kind == "model":
            models.append(blob)
        elif kind in ("template", "prompt", "system", "license"):
            try:
                texts.setdefault(kind, []).append(read_small(blob, MAX_TEXT).decode())
            except (OSError, ValueError) as error:
                notes.append(f"{kind} layer skipped ({one_line(str(error), 80)})")
        elif kind == "params":
            params, dropped = _ollama_params(blob, name)
            notes.extend(dropped)
        elif kind == "messages":
            messages, dropped = _ollama_messages(blob)
            notes.extend(dropped)
        elif kind == "adapter":
            notes.append("Ollama LoRA adapter not carried: imported as the base model alone")
        elif kind == "projector":
            projectors.append(blob)
        elif kind == "draft":
            notes.append("Ollama draft model not carried")
        else:
            notes.append(f"Ollama {one_line(kind, 40)} layer not carried")
    if not models:
        kinds = {str(layer.get("mediaType"))[:60] for layer in layers}
        what = "tensor layers (Ollama's own format)" if f"{_MEDIA}tensor" in kinds else "no model layer"
        return refused(f"not a GGUF model: {what}")
    if len(models) > 1:
        return refused(f"{len(models)} model layers: llamadeck imports Ollama models of one GGUF")
    if problem := gguf_problem(models[0]):
        return refused(problem, tuple(models))
    templates = texts.get("template") or texts.get("prompt") or []
    template = templates[-1] if templates else None
    system = texts["system"][-1] if texts.get("system") else None
    config = ModelConfig(
        template=template,
        template_source="modelfile" if template else None,
        system=system,
        parameters=params,
        messages=tuple(messages),
    )
    license = "\n\n".join(texts["license"]) if texts.get("license") else None
    files = (models[0],)
    projector = projectors[0] if len(projectors) == 1 and not gguf_problem(projectors[0]) else None
    if projectors and projector is None:
        notes.append("its vision projector layers are not one GGUF: imported for text only")
    note = _notes(*notes)
    return FoundModel(
        OLLAMA, name, suggested, files, total_size(files), config, note, True, license, projector
    )


def _ollama_blob(root: Path, digest: object) -> Path | str:
    """The blob a layer's digest names, checked as Ollama's ``BlobsPath`` does; else a note."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        return f"digest {one_line(str(digest), 80)} is not a sha256 digest"
    path = root / "blobs" / f"sha256-{_DIGEST.fullmatch(digest)[1]}"  # type: ignore[index]
    found = inside(path, root)
    return f"blob {found}" if isinstance(found, str) else found


def _ollama_params(blob: Path, name: str) -> tuple[dict[str, object], list[str]]:
    """Ollama's options JSON, each checked as llamadeck's own; unknown or bad ones dropped with a note."""
    try:
        raw = json.loads(read_small(blob, _MAX_MANIFEST))
    except (OSError, ValueError, RecursionError) as error:
        return {}, [f"params layer skipped ({one_line(str(error), 80)})"]
    if not isinstance(raw, dict):
        return {}, ["params layer skipped: not a JSON object"]
    kept: dict[str, object] = {}
    dropped: list[str] = []
    for key, value in raw.items():
        if value is None:
            continue
        try:
            kept[key] = parse_one(key, value, source=f"Ollama's parameters of {name}")
        except InvalidOption:
            dropped.append(one_line(str(key), 40))
    notes = (
        [f"parameter{'s' if len(dropped) > 1 else ''} dropped: {', '.join(dropped[:8])}"] if dropped else []
    )
    return kept, notes


def _ollama_messages(blob: Path) -> tuple[list[tuple[str, str]], list[str]]:
    try:
        raw = json.loads(read_small(blob, MAX_TEXT))
    except (OSError, ValueError, RecursionError) as error:
        return [], [f"messages layer skipped ({one_line(str(error), 80)})"]
    if not isinstance(raw, list):
        return [], ["messages layer skipped: not a list"]
    messages = []
    for item in raw:
        role, content = (item.get("role"), item.get("content")) if isinstance(item, dict) else (None, None)
        if role not in _ROLES or not isinstance(content, str):
            return [], ["messages layer skipped: not system/user/assistant messages"]
        messages.append((str(role), content))
    return messages, []


def _notes(*notes: str | None) -> str | None:
    kept = [n for n in notes if n]
    return "; ".join(kept) if kept else None


__all__ = ["scan_ollama"]
