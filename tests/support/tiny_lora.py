"""Tiny LoRA adapters in GGUF form for the tiny llama of ``tests/support/tiny_gguf.py``.

Written the way llama.cpp's ``convert_lora_to_gguf.py`` writes them:
``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``,
no vocabulary and no hyperparameters, and one pair per adapted tensor,
``<tensor>.lora_a`` (numpy shape ``(rank, n_in)``, ggml ``[n_in, rank]``) and
``<tensor>.lora_b`` (numpy ``(n_out, rank)``). llama.cpp adds
``scale * alpha / rank * B @ A`` to the tensor's product.

    path = write_tiny_lora(tmp_path / "lora.gguf")                 # changes what the model says
    path = write_tiny_lora(tmp_path / "zero.gguf", zero=True)      # B = 0: changes nothing
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from tests.support.tiny_gguf import N_EMBD, N_FF, N_HEAD, N_KV_HEAD, N_LAYERS, N_VOCAB

# tensor -> (n_out, n_in), numpy order, as tiny_gguf writes them
_KV = N_KV_HEAD * (N_EMBD // N_HEAD)
_SHAPES = {
    "attn_q": (N_EMBD, N_EMBD),
    "attn_v": (_KV, N_EMBD),
    "ffn_down": (N_EMBD, N_FF),
}
DEFAULT_TARGETS = tuple(f"blk.{i}.{name}.weight" for i in range(N_LAYERS) for name in _SHAPES) + (
    "output.weight",
)


def _shape(target: str) -> tuple[int, int]:
    if target == "output.weight":
        return (N_VOCAB, N_EMBD)
    return _SHAPES[target.split(".")[2]]


def write_tiny_lora(
    path: Path,
    *,
    architecture: str = "llama",
    rank: int = 4,
    alpha: float = 8.0,
    seed: int = 0,
    zero: bool = False,
    targets: tuple[str, ...] = DEFAULT_TARGETS,
    general_type: str = "adapter",
    adapter_type: str = "lora",
    shapes: dict[str, tuple[int, int]] | None = None,
    junk_strings: int = 0,
) -> Path:
    """Write a LoRA GGUF; ``zero`` makes every B zero (no effect), ``shapes`` overrides (n_out, n_in).

    ``junk_strings`` adds a metadata array of that many one-letter strings: a hostile "LoRA".
    """
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, architecture)
    writer.add_type(general_type)
    writer.add_string(gguf.Keys.Adapter.TYPE, adapter_type)
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name("Tiny LoRA")
    if junk_strings:
        writer.add_array("llamadeck.junk", ["x"] * junk_strings)
    for target in targets:
        n_out, n_in = (shapes or {}).get(target) or _shape(target)
        a = (rng.standard_normal((rank, n_in)) * 0.5).astype(np.float32)
        b = np.zeros((n_out, rank), dtype=np.float32) if zero else rng.standard_normal((n_out, rank))
        writer.add_tensor(f"{target}.lora_a", a)
        writer.add_tensor(f"{target}.lora_b", np.asarray(b, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
