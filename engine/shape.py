"""The model's shape: the numbers from a GGUF header that decide memory use and layer plans.

Its own module because the store records it, the memory estimate sizes it and
the runtime plans offload from it; none of those should import the others.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelShape:
    """The architecture numbers from a GGUF header that decide memory use."""

    n_layers: int
    n_embd: int
    n_head: int
    n_kv_heads: int
    head_dim: int  # key length per head
    context_length: int  # trained context
    n_vocab: int
