"""A tiny but real vision projector (``mmproj``) GGUF that llama.cpp's ``mtmd`` loads and runs.

The simplest projector type ``mtmd`` supports is LLaVA's ``mlp``: a CLIP
vision tower (patch embedding, class and position embeddings, pre-norm
transformer blocks) followed by a two-layer MLP (``mm.0``, GELU, ``mm.2``)
into the text model's embedding width. Here it is one block of 64-wide
embeddings over 28x28 images cut into 14x14 patches, so an image becomes
four embeddings of the text model's width (``N_EMBD`` of tiny_gguf.py, 128),
with seeded random weights: ~200 KB, loaded in milliseconds.

    path = write_tiny_mmproj(tmp_path / "mmproj-tiny-F16.gguf")

Pair it with ``write_tiny_gguf``: ``mtmd_init_from_file`` refuses a projector
whose output width differs from the text model's (``n_embd_text``);
``n_embd_text`` here makes such a mismatched one for a test. ``tower`` sizes
the same kind of projector up (``bench/vision.py``: LLaVA 1.5's 336-pixel
images, 576 tokens, for a real text model's width):

    write_tiny_mmproj(path, n_embd_text=640, tower=Tower(image_size=336, width=512, layers=6))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from tests.support.tiny_gguf import N_EMBD

V_EMBD = 64  # the vision tower's width
V_FF = 128
V_LAYERS = 1
V_HEADS = 2
IMAGE_SIZE = 28  # every image is resized to this square
PATCH_SIZE = 14
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # embeddings one image becomes: 4


@dataclass(frozen=True)
class Tower:
    """The vision tower's sizes: the tiny fixture's by default."""

    image_size: int = IMAGE_SIZE
    patch_size: int = PATCH_SIZE
    width: int = V_EMBD
    ff: int = V_FF
    layers: int = V_LAYERS
    heads: int = V_HEADS

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


TINY = Tower()


def _tensor_shapes(n_embd_text: int, tower: Tower = TINY) -> dict[str, tuple[int, ...]]:
    """numpy shapes (ggml's ``ne`` reversed) of the tensors clip.cpp loads for the ``mlp`` projector."""
    n_pos = tower.image_tokens + 1  # + the class embedding
    width, patch = tower.width, tower.patch_size
    shapes: dict[str, tuple[int, ...]] = {
        "v.class_embd": (width,),
        "v.patch_embd.weight": (width, 3, patch, patch),
        "v.position_embd.weight": (n_pos, width),
        "v.pre_ln.weight": (width,),
        "v.pre_ln.bias": (width,),
    }
    for i in range(tower.layers):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            shapes[f"v.blk.{i}.{name}.weight"] = (width, width)
            shapes[f"v.blk.{i}.{name}.bias"] = (width,)
        for name in ("ln1", "ln2"):
            shapes[f"v.blk.{i}.{name}.weight"] = (width,)
            shapes[f"v.blk.{i}.{name}.bias"] = (width,)
        shapes[f"v.blk.{i}.ffn_up.weight"] = (tower.ff, width)
        shapes[f"v.blk.{i}.ffn_up.bias"] = (tower.ff,)
        shapes[f"v.blk.{i}.ffn_down.weight"] = (width, tower.ff)
        shapes[f"v.blk.{i}.ffn_down.bias"] = (width,)
    shapes["mm.0.weight"] = (n_embd_text, width)
    shapes["mm.0.bias"] = (n_embd_text,)
    shapes["mm.2.weight"] = (n_embd_text, n_embd_text)
    shapes["mm.2.bias"] = (n_embd_text,)
    return shapes


def write_tiny_mmproj(
    path: Path,
    *,
    seed: int = 0,
    n_embd_text: int = N_EMBD,
    name: str = "Tiny Llava Projector",
    tower: Tower = TINY,
) -> Path:
    """Write a tiny ``mlp`` projector GGUF to ``path`` (matrices F16, norms and biases F32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, "clip")
    writer.add_name(name)
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", tower.image_size)
    writer.add_uint32("clip.vision.patch_size", tower.patch_size)
    writer.add_uint32("clip.vision.embedding_length", tower.width)
    writer.add_uint32("clip.vision.feed_forward_length", tower.ff)
    writer.add_uint32("clip.vision.projection_dim", n_embd_text)
    writer.add_uint32("clip.vision.block_count", tower.layers)
    writer.add_uint32("clip.vision.attention.head_count", tower.heads)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    rng = np.random.default_rng(seed)
    for tensor, shape in _tensor_shapes(n_embd_text, tower).items():
        data = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        if "ln" in tensor and tensor.endswith(".weight"):  # layer norms start at one
            data = np.ones(shape, np.float32)
        writer.add_tensor(tensor, data.astype(np.float16) if len(shape) > 1 else data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
