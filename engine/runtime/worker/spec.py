"""What the engine sends a worker to load (``LoadSpec``) and what the worker answers (``ModelFacts``).

Plain data, pickled across the process boundary: decided in the engine's
process (paths, the plan's settings, the headers it already read), acted on
in the worker's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.store.gguf_io import GGUFInfo


@dataclass(frozen=True)
class LoadSettings:
    """Load options with every automatic value decided: what the model is really loaded with."""

    n_ctx: int  # per conversation
    num_parallel: int
    n_gpu_layers: int
    n_threads: int
    n_batch: int
    kv_type: str
    flash_attn: str


@dataclass(frozen=True)
class LoadSpec:
    """One model to load in a worker: the GGUF (or a split model's first part) and how."""

    path: Path
    label: str  # the reference, for messages
    settings: LoadSettings
    adapters: tuple[tuple[Path, float, str | None], ...] = ()  # LoRA GGUFs: (path, scale, label)
    headers: tuple[GGUFInfo, ...] = ()  # the parts' headers, read and checked by the engine already
    log_path: Path | None = None  # where llama.cpp's log goes; None: the state directory's llama.log
    draft: Path | None = None


@dataclass(frozen=True)
class ModelFacts:
    """What the engine needs of a loaded model without asking its worker each time."""

    bos_text: str
    eos_text: str
    n_vocab: int
    load_seconds: float
    bos: int = -1  # the BOS token, -1 when the vocabulary has none
    add_bos: bool = False  # whether tokenizing adds it
    fim: tuple[int, int, int] | None = None  # fill-in-the-middle tokens (prefix, suffix, middle)
