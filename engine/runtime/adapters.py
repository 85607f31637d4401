"""LoRA adapters: checking an adapter GGUF before llama.cpp ever sees it.

A Modelfile's ``ADAPTER`` names a LoRA in GGUF form (llama.cpp's
``convert_lora_to_gguf.py``): ``general.type = adapter``, ``adapter.type =
lora``, ``adapter.lora.alpha`` and pairs of tensors named after the model's
own (``blk.0.attn_q.weight.lora_a`` with ggml shape ``[n_in, rank]`` and
``.lora_b`` with ``[rank, n_out]``). ``create`` calls ``check_adapter`` so a
bad adapter is refused when the model is made, not when it is first run; the
runtime calls it again before ``llama_adapter_lora_init`` (a blob may be
damaged since), and llama.cpp then checks the shapes against the loaded model.

An adapter is small (megabytes), so ``gguf.GGUFReader`` reads it: unlike a
model header with a 262k-token vocabulary, there is nothing big to walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import IntegrityError, InvalidInput

_SUFFIXES = (".lora_a", ".lora_b")


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter GGUF says of itself."""

    architecture: str
    alpha: float  # adapter.lora.alpha; 0 when missing (llama.cpp then scales by 1)
    rank: int  # the largest rank of its pairs
    targets: tuple[str, ...]  # the model tensors it changes, e.g. "blk.0.attn_q.weight"


def _field(reader: Any, key: str) -> Any:
    field = reader.get_field(key)
    return None if field is None else field.contents()


def read_adapter(path: Path, *, label: str | None = None) -> AdapterInfo:
    """Read and check an adapter GGUF on its own; raises IntegrityError (unreadable) or InvalidInput."""
    path = Path(path)
    label = label or path.name
    if not path.is_file():
        raise IntegrityError(f"adapter {label} is missing")
    try:
        from gguf import GGUFReader  # numpy and gguf: only when an adapter is read

        reader = GGUFReader(path)
        general_type = _field(reader, "general.type")
        architecture = _field(reader, "general.architecture")
        adapter_type = _field(reader, "adapter.type")
        alpha = _field(reader, "adapter.lora.alpha")
        tensors = [(t.name, tuple(int(n) for n in t.shape)) for t in reader.tensors]
    except (ValueError, OSError, KeyError, IndexError, TypeError, UnicodeDecodeError) as error:
        raise IntegrityError(f"adapter {label} is not a readable GGUF file ({str(error)[:120]})") from error
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
