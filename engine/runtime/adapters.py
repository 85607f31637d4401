"""LoRA adapters: checking an adapter GGUF before llama.cpp ever sees it.

A Modelfile's ``ADAPTER`` names a LoRA in GGUF form (llama.cpp's
``convert_lora_to_gguf.py``): ``general.type = adapter``, ``adapter.type =
lora``, ``adapter.lora.alpha`` and pairs of tensors named after the model's
own (``blk.0.attn_q.weight.lora_a`` with ggml shape ``[n_in, rank]`` and
``.lora_b`` with ``[rank, n_out]``). ``create`` calls ``check_adapter`` so a
bad adapter is refused when the model is made, not when it is first run; the
runtime calls it again before ``llama_adapter_lora_init`` (a blob may be
damaged since), and llama.cpp then checks the shapes against the loaded model.

An adapter's header is read by the project's own bounded scanner
(``gguf_io.read_raw_header``) within ``ADAPTER_LIMITS``: a "LoRA" carrying a
2,000,000-string metadata array (18 MB) took ``gguf.GGUFReader`` 50 s and
2.3 GB; it is now refused before the array is walked. What was read is kept
per file (path, size, inode and modification time: a blob's name is its
digest) so a model's every load does not read its adapters again.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import IntegrityError, InvalidInput
from engine.store.gguf_io import ScanLimits, read_raw_header

_SUFFIXES = (".lora_a", ".lora_b")
# a LoRA's header is a few keys and two tensors per adapted matrix; these are generous
ADAPTER_LIMITS = ScanLimits(kvs=4096, tensors=65_536, array=65_536)


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter GGUF says of itself."""

    architecture: str
    alpha: float  # adapter.lora.alpha; 0 when missing (llama.cpp then scales by 1)
    rank: int  # the largest rank of its pairs
    targets: tuple[str, ...]  # the model tensors it changes, e.g. "blk.0.attn_q.weight"


def read_adapter(path: Path, *, label: str | None = None) -> AdapterInfo:
    """Read and check an adapter GGUF on its own; raises IntegrityError (unreadable) or InvalidInput."""
    path = Path(path)
    label = label or path.name
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if info is None or not path.is_file():
        raise IntegrityError(f"adapter {label} is missing")
    return _read_adapter(path, label, info.st_size, info.st_ino, info.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _read_adapter(path: Path, label: str, size: int, inode: int, mtime_ns: int) -> AdapterInfo:
    """``read_adapter`` of one version of a file (an exception is not cached: a bad file is read again)."""
    try:
        header = read_raw_header(path, label=f"adapter {label}", limits=ADAPTER_LIMITS)
    except OSError as error:
        raise IntegrityError(f"adapter {label} could not be read ({error.strerror or error})") from error
    general_type = header.strings.get("general.type")
    architecture = header.strings.get("general.architecture")
    adapter_type = header.strings.get("adapter.type")
    alpha = header.numbers.get("adapter.lora.alpha")
    tensors = header.tensors
    if general_type != "adapter":
        what = f"general.type is {general_type!r:.40}" if general_type else "it has no general.type"
        raise InvalidInput(f"{label} is not a LoRA adapter: {what}, not 'adapter'")
    if adapter_type != "lora":
        raise InvalidInput(f"{label} is not a LoRA adapter: adapter.type is {adapter_type!r:.40}, not 'lora'")
    if not isinstance(architecture, str) or not architecture:
        raise InvalidInput(f"adapter {label} has no general.architecture")
    if alpha is not None and not isinstance(alpha, int | float):
        raise InvalidInput(f"adapter {label} has an adapter.lora.alpha that is not a number")
    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, shape in tensors:
        suffix = next((s for s in _SUFFIXES if name.endswith(s)), None)
        if suffix is None:
            if name.endswith("_norm.weight"):
                continue  # llama.cpp skips these too
            raise InvalidInput(f"adapter {label} has a tensor {name!r:.80} that is not a LoRA pair")
        pairs.setdefault(name.removesuffix(suffix), {})[suffix] = shape
    if not pairs:
        raise InvalidInput(f"adapter {label} has no LoRA tensors")
    rank = 0
    for target, pair in pairs.items():
        if len(pair) != 2:
            raise InvalidInput(f"adapter {label} has only one half of the LoRA pair for {target!r:.80}")
        a, b = pair[".lora_a"], pair[".lora_b"]
        if len(a) < 2 or len(b) < 2:
            raise InvalidInput(f"adapter {label}: the LoRA pair for {target!r:.80} is not two matrices")
        # ggml order: a is [n_in, rank], b is [rank, n_out]; token_embd's pair is stored flipped
        pair_rank = a[0] if target.endswith("token_embd.weight") else a[1]
        if not target.endswith("token_embd.weight") and a[1] != b[0]:
            raise InvalidInput(
                f"adapter {label}: the LoRA pair for {target!r:.80} does not fit together "
                f"(lora_a {list(a)}, lora_b {list(b)})"
            )
        rank = max(rank, pair_rank)
    return AdapterInfo(architecture, float(alpha or 0.0), rank, tuple(sorted(pairs)))


def check_adapter(adapter_path: Path, *, architecture: str, label: str | None = None) -> AdapterInfo:
    """Refuse an adapter that is not a LoRA GGUF or was made for another architecture.

    What ``create`` calls for each ``ADAPTER`` of a Modelfile, with the base
    model's ``general.architecture``. Raises InvalidInput (one line, naming
    the adapter) or IntegrityError (missing or unreadable file).

        check_adapter(Path("my-lora.gguf"), architecture="llama")
    """
    label = label or Path(adapter_path).name
    info = read_adapter(adapter_path, label=label)
    if info.architecture != architecture:
        raise InvalidInput(
            f"adapter {label} was made for {info.architecture!r:.40} models, "
            f"and this model is {architecture!r:.40}"
        )
    return info
