"""Stand-ins for the folders other tools keep models in, laid out exactly as the tools write them.

    root = OllamaStore(tmp_path / "ollama")
    root.add("llama3.2", "3b", model_file, template="{{ .Prompt }}", params={"stop": ["<|im_end|>"]})

    cache = HFCache(tmp_path / "hub")
    cache.add("bartowski/Qwen-GGUF", {"Qwen-Q4_0.gguf": model_file})

    lms = LMStudio(tmp_path / "lms")
    lms.add("lmstudio-community", "Qwen-GGUF", {"Qwen-Q8_0.gguf": model_file})

Ollama (``manifest/manifest.go``, ``manifest/paths.go``): a Docker v2 manifest
at ``manifests/<host>/<namespace>/<model>/<tag>`` naming ``sha256:<hex>``
layers whose bytes are at ``blobs/sha256-<hex>``, plus a config blob. The
Hugging Face cache (huggingface_hub's ``file_download``):
``models--org--repo/blobs/<etag>``, ``snapshots/<rev>/<path>`` as relative
symlinks to ``../../blobs/<etag>``, ``refs/main``. LM Studio:
``<publisher>/<repo>/<file>.gguf``. Builders copy the bytes in, as the tools do.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA = "application/vnd.ollama.image."


class OllamaStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "manifests").mkdir(parents=True, exist_ok=True)
        (root / "blobs").mkdir(parents=True, exist_ok=True)

    def blob(self, data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / "blobs" / f"sha256-{digest}"
        if not path.exists():
            path.write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    def layer(self, kind: str, data: bytes) -> dict[str, Any]:
        return {"mediaType": MEDIA + kind, **self.blob(data)}

    def manifest_path(
        self, model: str, tag: str, *, host: str = "registry.ollama.ai", namespace: str = "library"
    ) -> Path:
        return self.root / "manifests" / host / namespace / model / tag

    def add(
        self,
        model: str,
        tag: str,
        gguf: Path | None,
        *,
        host: str = "registry.ollama.ai",
        namespace: str = "library",
        template: str | None = None,
        system: str | None = None,
        params: dict[str, Any] | None = None,
        license: str | None = None,
        messages: list[dict[str, str]] | None = None,
        extra_layers: list[dict[str, Any]] | None = None,
    ) -> Path:
        """Write a manifest as ``ollama pull`` leaves it; returns its path."""
        layers = []
        if gguf is not None:
            layers.append(self.layer("model", gguf.read_bytes()))
        if template is not None:
            layers.append(self.layer("template", template.encode()))
        if system is not None:
            layers.append(self.layer("system", system.encode()))
        if params is not None:
            layers.append(self.layer("params", json.dumps(params).encode()))
        if license is not None:
            layers.append(self.layer("license", license.encode()))
        if messages is not None:
            layers.append(self.layer("messages", json.dumps(messages).encode()))
        layers += extra_layers or []
        config = {"model_format": "gguf", "model_family": "llama", "file_type": "Q8_0"}
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, **self.blob(json.dumps(config).encode())},
            "layers": layers,
        }
        return self.write_manifest(model, tag, json.dumps(manifest).encode(), host=host, namespace=namespace)

    def write_manifest(
        self,
        model: str,
        tag: str,
        raw: bytes,
        *,
        host: str = "registry.ollama.ai",
        namespace: str = "library",
    ) -> Path:
        path = self.manifest_path(model, tag, host=host, namespace=namespace)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        return path


class HFCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def repo_dir(self, repo: str) -> Path:
        return self.root / ("models--" + repo.replace("/", "--"))

    def add(self, repo: str, files: dict[str, Path], *, revision: str = "a" * 40, main: bool = True) -> Path:
        """Cache ``files`` (name in the repo -> local file) at ``revision``; returns the snapshot folder."""
        base = self.repo_dir(repo)
        (base / "blobs").mkdir(parents=True, exist_ok=True)
        snapshot = base / "snapshots" / revision
        for name, source in files.items():
            data = source.read_bytes()
            etag = hashlib.sha256(data).hexdigest()  # LFS files: the etag is the sha256
            blob = base / "blobs" / etag
            if not blob.exists():
                shutil.copyfile(source, blob)
            link = snapshot / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
        if main:
            (base / "refs").mkdir(exist_ok=True)
            (base / "refs" / "main").write_text(revision)
        return snapshot


class LMStudio:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def add(self, publisher: str, repo: str, files: dict[str, Path]) -> Path:
        folder = self.root / publisher / repo
        folder.mkdir(parents=True, exist_ok=True)
        for name, source in files.items():
            shutil.copyfile(source, folder / name)
        return folder
