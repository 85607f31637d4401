"""Tiny but real GGUF models for tests: llama.cpp loads them in milliseconds.

A llama-architecture model with 2 layers, 128-dim embeddings (two heads of
64, one KV head: grouped-query attention as in real models) and a 512-token
SentencePiece-style vocabulary (control tokens, 256 byte tokens, then single
characters and a few common pieces), random weights and a ChatML chat
template. Weights are random, so generated text is gibberish, but every byte
goes through the real gguf writer and the real llama.cpp loader.

    path = write_tiny_gguf(tmp_path / "tiny-Q8_0.gguf", quant="Q8_0")

Heads are 64 wide and the tensors are written in the order llama.cpp's
converters use (embeddings, blocks, output), like ``shared/gpu/mkmodel.py``
whose models load on a CUDA build: the first version of this fixture had
16-wide heads (64-dim, 4 heads), narrower than any real model and than the
head sizes CUDA kernels are built for, and it crashed the CUDA build even with
no layer offloaded. Not yet re-checked on a GPU (no device was lent to the
session that made this change); ``tests/test_tiny_gguf.py`` says how.

``pad_bytes`` adds one extra int8 tensor so a benchmark can have a
structurally valid GGUF of any size (llama.cpp will not load that one).
``split_tensors`` writes split files (``-00001-of-0000N.gguf``) the way
llama.cpp's gguf-split names them, and returns every part.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

N_LAYERS = 2
N_EMBD = 128
N_HEAD = 2
N_KV_HEAD = 1
N_FF = 256
N_CTX_TRAIN = 2048
N_VOCAB = 512

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

QUANT_TYPES: dict[str, tuple[gguf.GGMLQuantizationType, gguf.LlamaFileType]] = {
    "F32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "F16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "Q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "Q4_0": (gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
}

_PIECES = [
    "▁the", "▁a", "▁is", "▁of", "▁and", "▁to", "▁in", "▁Paris", "▁capital",
    "▁France", "▁hello", "▁world", "er", "in", "on", "an", "re", "th",
]  # fmt: skip


def tiny_vocab() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of a 512-entry SPM vocabulary."""
    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types = [
        gguf.TokenType.UNKNOWN,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
    ]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    singles = ["▁"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    singles += [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    singles += [chr(c) for c in range(ord("0"), ord("9") + 1)] + list(".,!?'\"-:;()")
    for piece in singles + _PIECES:
        if piece not in tokens:
            tokens.append(piece)
            types.append(gguf.TokenType.NORMAL)
    filler = 0
    while len(tokens) < N_VOCAB:
        tokens.append(f"▁w{filler}")
        types.append(gguf.TokenType.NORMAL)
        filler += 1
    scores = [0.0 if t != gguf.TokenType.NORMAL else -float(i) for i, t in enumerate(types)]
    return tokens, scores, [int(t) for t in types]


def _tensor_shapes() -> dict[str, tuple[int, ...]]:
    head_dim = N_EMBD // N_HEAD
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (N_VOCAB, N_EMBD)}
    for i in range(N_LAYERS):
        shapes |= {
            f"blk.{i}.attn_norm.weight": (N_EMBD,),
            f"blk.{i}.attn_q.weight": (N_EMBD, N_EMBD),
            f"blk.{i}.attn_k.weight": (N_KV_HEAD * head_dim, N_EMBD),
            f"blk.{i}.attn_v.weight": (N_KV_HEAD * head_dim, N_EMBD),
            f"blk.{i}.attn_output.weight": (N_EMBD, N_EMBD),
            f"blk.{i}.ffn_norm.weight": (N_EMBD,),
            f"blk.{i}.ffn_gate.weight": (N_FF, N_EMBD),
            f"blk.{i}.ffn_up.weight": (N_FF, N_EMBD),
            f"blk.{i}.ffn_down.weight": (N_EMBD, N_FF),
        }
    shapes["output_norm.weight"] = (N_EMBD,)
    shapes["output.weight"] = (N_VOCAB, N_EMBD)
    return shapes


def _add_weights(
    writer: gguf.GGUFWriter, qtype: gguf.GGMLQuantizationType, seed: int, qk_scale: float = 0.02
) -> None:
    rng = np.random.default_rng(seed)
    for name, shape in _tensor_shapes().items():
        if len(shape) == 1:  # norms stay F32, as llama.cpp's converters keep them
            writer.add_tensor(name, np.ones(shape, dtype=np.float32))
            continue
        scale = qk_scale if name.endswith(("attn_q.weight", "attn_k.weight")) else 0.02
        data = (rng.standard_normal(shape) * scale).astype(np.float32)
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, data)
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)


def write_tiny_gguf(
    path: Path,
    *,
    quant: str = "Q8_0",
    name: str = "Tiny Llama",
    license: str = "mit",
    chat_template: str | None = CHAT_TEMPLATE,
    seed: int = 0,
    pad_bytes: int = 0,
    split_tensors: int = 0,
    context_length: int = N_CTX_TRAIN,
    pooling: int | None = None,
    rms_eps: float = 1e-5,
    tokenizer_model: str | None = "llama",
    extra: dict[str, int | float] | None = None,
    arch: str = "llama",
    rope_sections: tuple[int, int, int, int] | None = None,
    qk_scale: float = 0.02,
) -> list[Path]:
    """Write a tiny llama GGUF to ``path``; returns the files written (several when split).

    ``pooling`` (a ``gguf.PoolingType``) makes it an embedding model;
    ``context_length``, ``rms_eps``, ``tokenizer_model`` and ``extra`` (more
    keys: u32 for an int, f32 for a float, e.g. ``{"llama.expert_count": 2}``)
    let a test write headers llama.cpp would choke on. ``arch`` names another architecture with the same
    tensors (``qwen2vl``, whose M-RoPE takes ``rope_sections``: they sum to half a head, 32).
    ``qk_scale`` (the spread of the query and key weights) well above 0.02 makes attention sharp enough
    that a token's position changes the output.
    """
    qtype, ftype = QUANT_TYPES[quant.upper()]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, arch, split_max_tensors=split_tensors)
    writer.add_name(name)
    writer.add_size_label("0.1M")
    writer.add_license(license)
    writer.add_file_type(int(ftype))
    writer.add_context_length(context_length)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYERS)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_KV_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_rope_freq_base(10000.0)
    if rope_sections is not None:
        writer.add_rope_dimension_sections(rope_sections)
    writer.add_layer_norm_rms_eps(rms_eps)
    writer.add_vocab_size(N_VOCAB)
    tokens, scores, types = tiny_vocab()
    if tokenizer_model is not None:
        writer.add_tokenizer_model(tokenizer_model)
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    if pooling is not None:
        writer.add_pooling_type(gguf.PoolingType(pooling))
    for key, value in (extra or {}).items():
        if isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_uint32(key, value)
    _add_weights(writer, qtype, seed, qk_scale)
    if pad_bytes:
        writer.add_tensor("llamadeck.pad", np.zeros(pad_bytes, dtype=np.int8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if not split_tensors:
        return [path]
    return sorted(path.parent.glob(f"{path.stem}-*-of-*.gguf"))
