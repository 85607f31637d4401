"""What discovery reports: ``FoundModel``, the tools' names, and the local name each model is suggested as.

Its own module so that each scanner (``ollama_store``,
``gguf_folders``) and the ``discover`` that gathers them share one record type
and one naming rule without importing each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InvalidReference
from engine.store.manifest import ModelConfig
from engine.store.refs import LocalRef

OLLAMA = "ollama"
HUGGINGFACE = "huggingface"
LMSTUDIO = "lmstudio"

_UNSAFE = re.compile(r"[^a-z0-9._-]+")
GGUF_SUFFIX = re.compile(r"-gguf$")


@dataclass(frozen=True)
class FoundModel:
    """One model another tool downloaded, and what llamadeck would import it as."""

    tool: str  # "ollama" | "huggingface" | "lmstudio"
    name: str  # what the tool calls it: "llama3.2:3b", "bartowski/Qwen2.5-0.5B-Instruct-GGUF/…Q4_K_M.gguf"
    suggested: str  # a valid llamadeck local name:tag to register it as (unique within one discover())
    files: tuple[Path, ...]  # the GGUF file(s), split parts in order: real files, symlinks resolved
    size: int
    config: ModelConfig | None  # Ollama's template / system / parameters / messages
    note: str | None = None  # why it cannot be imported, or what the import leaves behind
    importable: bool = True  # False when ``note`` says why it cannot be imported
    license: str | None = None  # Ollama's license layers, joined
    projector: Path | None = None  # its vision projector: Ollama's layer, an mmproj beside it

    @property
    def origin(self) -> str:
        """What the imported manifest records as its source: ``ollama llama3.2:3b``."""
        return f"{self.tool} {self.name}"


def _slug(text: str, *, first: str) -> str:
    """``text`` as a local name part: lower-case, unsafe runs as ``-``, starting as ``first`` allows."""
    slug = _UNSAFE.sub("-", text.lower()).replace("..", ".")
    while slug and not re.match(first, slug[0]):
        slug = slug[1:]
    return slug[:80].rstrip(".-") or ""


def suggest(name: str, tag: str | None) -> str:
    """A valid local ``name:tag`` from any text: ``"Qwen2.5 0.5B", "Q4_K_M"`` → ``qwen2.5-0.5b:q4_k_m``."""
    base = GGUF_SUFFIX.sub("", _slug(name, first="[a-z0-9]")) or "imported"
    if base in ("hf.co", "huggingface.co"):
        base += "-model"
    label = _slug(tag or "", first="[a-z0-9_]") or "latest"
    try:
        return str(LocalRef(base, label))
    except InvalidReference:
        return "imported:latest"


__all__ = ["GGUF_SUFFIX", "HUGGINGFACE", "LMSTUDIO", "OLLAMA", "FoundModel", "suggest"]
