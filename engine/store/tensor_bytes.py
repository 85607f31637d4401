"""Bytes of a GGUF's tensor data, grouped the way llama.cpp places tensors on devices.

The header scan (``gguf_io``) sums each tensor it walks into ``TensorBytes``
(bytes per repeating layer ``blk.N``, the input layer, the output layer),
which is what ``engine.machine.offload`` plans GPU layers from.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest

from engine.store.gguf_values import MAX_LAYERS

# where llama.cpp's tensor table (llm_tensor_info) puts a tensor that is not in a blk.N layer
_INPUT_PREFIXES = (b"token_embd.", b"position_embd.", b"token_types.", b"per_layer_token_embd.")
_OUTPUT_PREFIXES = (b"output.", b"output_norm.")


@dataclass(frozen=True)
class TensorBytes:
    """Bytes of tensor data, grouped the way llama.cpp puts tensors on devices.

    llama.cpp keeps the input layer (token embeddings) in RAM, gives each
    repeating layer ``blk.N`` one device, and puts the output layer
    (``output.weight``, ``output_norm``) on the GPU first of all when any layer
    is offloaded. A model without ``output.weight`` ties its output to the
    token embeddings: llama.cpp then loads ``token_embd`` a second time with
    the output layer (see ``tied_output``).

        info.tensor_bytes.layers[0]  # bytes of blk.0.*
    """

    layers: tuple[int, ...] = ()  # bytes of blk.N.* at index N
    token_embd: int = 0  # the input layer: token_embd, position_embd, token_types, per_layer_token_embd
    output: int = 0  # the output layer: output.*, output_norm.*
    other: int = 0  # everything else (rope_freqs, token_embd_norm, ...): small in real models
    has_output_weight: bool = False  # output.weight is in the file

    @property
    def tied_output(self) -> bool:
        """Whether the output layer reuses the token embeddings (Gemma, small Llamas and Qwens)."""
        return self.token_embd > 0 and not self.has_output_weight

    @property
    def total(self) -> int:
        return sum(self.layers) + self.token_embd + self.output + self.other

    def __add__(self, other: TensorBytes) -> TensorBytes:
        """Both tables together: the parts of a split model add up to the model."""
        return TensorBytes(
            layers=tuple(a + b for a, b in zip_longest(self.layers, other.layers, fillvalue=0)),
            token_embd=self.token_embd + other.token_embd,
            output=self.output + other.output,
            other=self.other + other.other,
            has_output_weight=self.has_output_weight or other.has_output_weight,
        )


def _layer_index(raw: bytes) -> int | None:
    """N of a tensor named ``blk.N.*``; None for any other name or an N llama.cpp would not load."""
    dot = raw.find(b".", 4)
    digits = raw[4:dot]
    if dot < 0 or not digits.isdigit() or len(digits) > 3:  # isdigit: ASCII only, as bytes
        return None
    index = int(digits)
    return index if index < MAX_LAYERS else None


class ByLayer:
    """Sums tensor bytes into ``TensorBytes`` while the table is walked."""

    def __init__(self) -> None:
        self.layers: dict[int, int] = {}
        self.token_embd = self.output = self.other = 0
        self.has_output_weight = False

    def add(self, raw: bytes, size: int) -> None:
        if raw.startswith(b"blk."):
            index = _layer_index(raw)
            if index is not None:
                self.layers[index] = self.layers.get(index, 0) + size
                return
        elif raw.startswith(_INPUT_PREFIXES):
            self.token_embd += size
            return
        elif raw.startswith(_OUTPUT_PREFIXES):
            self.output += size
            self.has_output_weight = self.has_output_weight or raw == b"output.weight"
            return
        self.other += size

    def done(self) -> TensorBytes:
        count = max(self.layers) + 1 if self.layers else 0
        return TensorBytes(
            layers=tuple(self.layers.get(index, 0) for index in range(count)),
            token_embd=self.token_embd,
            output=self.output,
            other=self.other,
            has_output_weight=self.has_output_weight,
        )
