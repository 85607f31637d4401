"""A tiny Qwen2-VL pair: an M-RoPE text model (``qwen2vl``) and its projector (``qwen2vl_merger`` or
``qwen2.5vl_merger``), real enough for llama.cpp's ``mtmd`` to load and run on CPU.

In an M-RoPE model an image of ``n`` tokens takes ``n`` KV cells but only
``max(rows, cols)`` positions, with 2-D positions per token: the case where a
sequence's next position is not its cell count. The projector is Qwen2-VL's
vision tower at toy sizes (clip.cpp's ``clip_graph_qwen2vl``): two patch
convolutions (``v.patch_embd.weight`` and ``.weight.1``, the two frames of a
still image), no class or position embeddings (the tower ropes its patches),
pre-norm blocks, and the merger that folds 2x2 patches into one token
(``mm.0`` over four patches, GELU, ``mm.2`` into the text width). Qwen2-VL
uses layer norms with biases; Qwen2.5-VL RMS norms, a gated FFN and window
attention (``n_wa_pattern``). Images are resized to whole 28x28 cells (14-pixel
patches, merged 2x2) between 8 and 4096 tokens, clip.cpp's Qwen limits: a
40x30 image becomes a grid of a few tokens each way.

    text = write_tiny_qwen2vl(tmp_path / "qwen2vl-Q8_0.gguf")
    mmproj = write_tiny_qwen2vl_mmproj(tmp_path / "mmproj-qwen2vl.gguf")
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from tests.support.tiny_gguf import N_EMBD, write_tiny_gguf

V_EMBD = 64  # the vision tower's width: two heads of 32, whose rope sections are 8 each
V_FF = 128
V_LAYERS = 2  # Qwen2.5-VL's first block attends within windows, the second fully (n_wa_pattern)
V_HEADS = 2
PATCH_SIZE = 14
ROPE_SECTIONS = (8, 12, 12, 0)  # the text model's: time, height, width, unused; half its 64-wide heads


def write_tiny_qwen2vl(path: Path, *, quant: str = "Q8_0", seed: int = 0) -> Path:
    """The text half: tiny_gguf's llama tensors under the ``qwen2vl`` architecture, with M-RoPE sections
    and sharp attention (positions matter to its replies)."""
    return write_tiny_gguf(
        path,
        quant=quant,
        name="Tiny Qwen2-VL",
        seed=seed,
        arch="qwen2vl",
        rope_sections=ROPE_SECTIONS,
        qk_scale=0.3,  # attention sharp enough that a position off anywhere changes the reply
    )[0]


def _tensor_shapes(qwen25: bool, n_embd_text: int) -> dict[str, tuple[int, ...]]:
    """numpy shapes (ggml's ``ne`` reversed) of what clip.cpp loads for the Qwen2(.5)-VL projector."""
    shapes: dict[str, tuple[int, ...]] = {
        "v.patch_embd.weight": (V_EMBD, 3, PATCH_SIZE, PATCH_SIZE),
        "v.patch_embd.weight.1": (V_EMBD, 3, PATCH_SIZE, PATCH_SIZE),
    }
    for i in range(V_LAYERS):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            shapes[f"v.blk.{i}.{name}.weight"] = (V_EMBD, V_EMBD)
            shapes[f"v.blk.{i}.{name}.bias"] = (V_EMBD,)
        for name in ("ln1", "ln2"):
            shapes[f"v.blk.{i}.{name}.weight"] = (V_EMBD,)
            if not qwen25:
                shapes[f"v.blk.{i}.{name}.bias"] = (V_EMBD,)
        shapes[f"v.blk.{i}.ffn_up.weight"] = (V_FF, V_EMBD)
        shapes[f"v.blk.{i}.ffn_up.bias"] = (V_FF,)
        if qwen25:
            shapes[f"v.blk.{i}.ffn_gate.weight"] = (V_FF, V_EMBD)
            shapes[f"v.blk.{i}.ffn_gate.bias"] = (V_FF,)
        shapes[f"v.blk.{i}.ffn_down.weight"] = (V_EMBD, V_FF)
        shapes[f"v.blk.{i}.ffn_down.bias"] = (V_EMBD,)
    shapes["v.post_ln.weight"] = (V_EMBD,)
    if not qwen25:
        shapes["v.post_ln.bias"] = (V_EMBD,)
    shapes["mm.0.weight"] = (4 * V_EMBD, 4 * V_EMBD)
    shapes["mm.0.bias"] = (4 * V_EMBD,)
    shapes["mm.2.weight"] = (n_embd_text, 4 * V_EMBD)
    shapes["mm.2.bias"] = (n_embd_text,)
    return shapes


def write_tiny_qwen2vl_mmproj(
    path: Path, *, projector_type: str = "qwen2vl_merger", seed: int = 0, n_embd_text: int = N_EMBD
) -> Path:
    """Write a tiny ``qwen2vl_merger`` (or ``qwen2.5vl_merger``) projector GGUF (matrices F16, rest F32)."""
    qwen25 = projector_type == "qwen2.5vl_merger"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, "clip")
    writer.add_name("Tiny Qwen2.5-VL Projector" if qwen25 else "Tiny Qwen2-VL Projector")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    writer.add_string("clip.projector_type", projector_type)
    writer.add_bool("clip.has_vision_encoder", True)
    if qwen25:
        writer.add_bool("clip.use_silu", True)
        writer.add_uint32("clip.vision.n_wa_pattern", V_LAYERS)  # every second block attends fully
    else:
        writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", 560)  # a nominal size: Qwen resizes each image itself
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", V_EMBD)
    writer.add_uint32("clip.vision.feed_forward_length", V_FF)
    writer.add_uint32("clip.vision.projection_dim", n_embd_text)
    writer.add_uint32("clip.vision.block_count", V_LAYERS)
    writer.add_uint32("clip.vision.attention.head_count", V_HEADS)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    writer.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])
    rng = np.random.default_rng(seed)
    for tensor, shape in _tensor_shapes(qwen25, n_embd_text).items():
        data = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        if "ln" in tensor and tensor.endswith(".weight"):  # norms start at one
            data = np.ones(shape, np.float32)
        writer.add_tensor(tensor, data.astype(np.float16) if len(shape) > 1 else data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
