"""Vision projectors (``mmproj`` GGUFs): recognising one, checking it, and choosing one among a repo's.

A vision model in GGUF form is two files: the text model's weights and a
projector (llama.cpp's ``mtmd``: a vision tower and the layers that map its
output into the text model's embeddings), named ``mmproj-*.gguf`` on the Hub
and by LM Studio, a layer of media type ``application/vnd.ollama.image.projector``
in Ollama. A projector is no model of its own: its header is read by the
bounded raw scanner (``gguf_io.read_raw_header``) within ``PROJECTOR_LIMITS``,
never by the model checks (it has no ``<arch>.block_count``).

Which GGUF is a projector is decided as Ollama's ``isProjectorGGUF`` does:
``general.type`` is ``projector`` or ``mmproj``, or the architecture is
``clip`` with a vision or audio encoder.

Precision (``pick_projector``): a repo often offers its projector as F16,
BF16 and F32 (and at times Q8_0). F16 is taken first: it is what llama.cpp's
converter writes by default and what Ollama's library ships, every backend
runs it natively, and the projector is small next to the weights (tens to
hundreds of MB), so quantizing it saves little and costs image quality.
BF16 comes next (same size, slower where the CPU lacks BF16 instructions),
then F32 (twice the size, no better in practice), then Q8_0, then any other
by size, smallest first.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from engine.errors import IntegrityError, InvalidInput
from engine.store.gguf_io import RawHeader, ScanLimits, read_raw_header

# a projector's header is ~30 keys and a few hundred tensors; these are generous
PROJECTOR_LIMITS = ScanLimits(kvs=4096, tensors=65_536, array=65_536)
_PRECISION_ORDER = ("F16", "BF16", "F32", "Q8_0")
_PRECISION = re.compile(r"(?:^|[-_.])(BF16|F16|F32|Q8_0|Q\d+_[A-Z0-9_]+)(?=[-_.]|$)", re.IGNORECASE)


class _Named(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...


_F = TypeVar("_F", bound=_Named)


@dataclass(frozen=True)
class ProjectorInfo:
    """What a projector GGUF says of itself."""

    projector_type: str  # clip.projector_type, e.g. "mlp", "gemma3"; "" when the file leaves it out
    vision: bool  # it has a vision encoder (an audio-only projector has not)
    audio: bool
    projection_dim: int  # the text model's embedding width it maps to; 0 when unknown
    tensors: int
    # the vision tower's sizes (clip.vision.*), for the memory plan (``engine.machine.projector``); 0: unknown
    image_size: int = 0
    patch_size: int = 0
    width: int = 0
    feed_forward: int = 0
    heads: int = 0
    scale_factor: int = 0  # clip.vision.projector.scale_factor: patches merged per side (Gemma 3's 4)


def is_projector(header: RawHeader) -> bool:
    """Ollama's ``isProjectorGGUF``: general.type projector/mmproj, or a ``clip`` file with an encoder."""
    kind = header.strings.get("general.type", "")
    if kind in ("projector", "mmproj"):
        return True
    numbers = header.numbers
    has_encoder = bool(numbers.get("clip.has_vision_encoder") or numbers.get("clip.has_audio_encoder"))
    return header.strings.get("general.architecture") == "clip" and has_encoder


def read_projector(path: Path, *, label: str | None = None) -> ProjectorInfo:
    """Read and check a projector GGUF; IntegrityError (unreadable, truncated) or InvalidInput (not one).

    What is read is kept per version of the file (path, size, inode, mtime), so
    a model's every load does not read its projector's header again.
    """
    path = Path(path)
    label = label or path.name
    try:
        info = os.stat(path)
    except OSError as error:
        raise IntegrityError(f"projector {label} is missing ({error.strerror})") from error
    if not path.is_file():
        raise IntegrityError(f"projector {label} is not a regular file")
    return _read(path, label, info.st_size, info.st_ino, info.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _read(path: Path, label: str, size: int, inode: int, mtime_ns: int) -> ProjectorInfo:
    try:
        header = read_raw_header(path, label=f"projector {label}", limits=PROJECTOR_LIMITS)
    except OSError as error:
        raise IntegrityError(f"projector {label} could not be read ({error.strerror or error})") from error
    if not is_projector(header):
        arch = header.strings.get("general.architecture") or "none"
        raise InvalidInput(
            f"{label} is not a vision projector (architecture {arch!r:.40}; a projector's is 'clip')"
        )
    numbers = header.numbers
    if numbers.get("clip.has_vision_encoder"):
        _check_vision(numbers, label)
    dim = numbers.get("clip.vision.projection_dim") or numbers.get("clip.audio.projection_dim") or 0
    return ProjectorInfo(
        projector_type=header.strings.get("clip.projector_type", ""),
        vision=bool(numbers.get("clip.has_vision_encoder")),
        audio=bool(numbers.get("clip.has_audio_encoder")),
        projection_dim=_size(dim),
        tensors=len(header.tensors),
        image_size=_size(numbers.get("clip.vision.image_size")),
        patch_size=_size(numbers.get("clip.vision.patch_size")),
        width=_size(numbers.get("clip.vision.embedding_length")),
        feed_forward=_size(numbers.get("clip.vision.feed_forward_length")),
        heads=_size(numbers.get("clip.vision.attention.head_count")),
        scale_factor=_size(numbers.get("clip.vision.projector.scale_factor")),
    )


def _size(value: object) -> int:
    """A size from the header: a positive int below 2**24 (anything else: 0, unknown)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 24 else 0


def _check_vision(numbers: dict[str, object], label: str) -> None:
    """Refuse the vision settings ``mtmd`` aborts or fails on (found by the outside review).

    A NaN epsilon, or an embedding width the head count does not divide,
    aborted the worker at the first image; a zero patch or image size failed
    every load or image. Caught here, ``create`` and ``pull`` refuse the file
    (422) instead of registering a model whose every request is a 500.
    """
    key = "clip.vision."
    eps = numbers.get(key + "attention.layer_norm_epsilon")
    if eps is not None and not (isinstance(eps, int | float) and math.isfinite(eps) and eps >= 0):
        raise IntegrityError(f"projector {label}: {key}attention.layer_norm_epsilon is {eps!r:.20}")
    for name in ("patch_size", "image_size", "attention.head_count", "embedding_length"):
        value = numbers.get(key + name)
        if value is not None and not (isinstance(value, int) and 0 < value <= 1 << 20):
            raise IntegrityError(f"projector {label}: {key}{name} is {value!r:.20}")
    heads, width = numbers.get(key + "attention.head_count"), numbers.get(key + "embedding_length")
    if isinstance(heads, int) and isinstance(width, int) and width % heads:
        raise IntegrityError(f"projector {label}: {heads} attention heads do not divide the width {width}")


def projector_precision(name: str) -> str | None:
    """The precision a projector's file name states (``mmproj-model-f16.gguf`` -> "F16"), if any."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".gguf").removesuffix(".GGUF")
    found = _PRECISION.findall(stem)
    return found[-1].upper() if found else None


def precision_rank(name: str) -> int:
    """How early a projector of this file name is chosen: 0 for F16 (see above), larger later."""
    precision = projector_precision(name)
    return _PRECISION_ORDER.index(precision) if precision in _PRECISION_ORDER else len(_PRECISION_ORDER)


def pick_projector(files: Sequence[_F]) -> _F | None:
    """The projector to fetch with a model's weights, by the precision its name states (see above).

    ``files`` are a repo's projector files (anything with ``path`` and ``size``).
    """
    return min(files, key=lambda file: (precision_rank(file.path), file.size, file.path), default=None)
