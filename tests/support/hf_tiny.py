"""Tiny seeded random models in Hugging Face's format, one per architecture the converter takes.

Written with numpy only (a small safetensors writer below), so the tests make
them without torch. ``tests/support/hf_reference.py`` writes the same folders
and runs them through ``transformers`` once, for the reference logits and
token ids committed in ``tests/data/convert/reference.json``.

    write_tiny_hf(tmp_path / "llama", "llama")

The tokenizers are committed test data (``tests/data/convert/``): a small
byte-level BPE (its pre-tokenizer set per model to Llama 3's or Qwen 2's
Split regex) and a small SentencePiece model for Gemma 3, both trained once
by ``hf_reference.py --tokenizers``.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data" / "convert"
PROMPT = "Hello world, this is a test of 123 tokens!"
EVAL_IDS = [1, 70, 101, 33, 250, 7, 300, 45, 12, 199, 88, 5]  # fed to both sides: logits at every position

LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB = 64, 4, 2, 16, 128, 384

# architecture -> (config.json extras, source dtype of the weights, tokenizer kind, layers)
MODELS: dict[str, tuple[dict[str, Any], str, str, int]] = {
    "llama": (
        {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "rope_theta": 10000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
        },
        "BF16", "llama-bpe", 2,
    ),
    "mistral": (
        {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "rope_theta": 10000.0,
         "sliding_window": None},
        "F32", "llama-bpe", 2,
    ),
    "mixtral": (
        {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "rope_theta": 1000000.0,
         "num_local_experts": 4, "num_experts_per_tok": 2, "router_jitter_noise": 0.0,
         "sliding_window": None},
        "BF16", "llama-bpe", 2,
    ),
    "qwen2": (
        {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "rope_theta": 1000000.0,
         "tie_word_embeddings": True},
        "F16", "qwen2", 2,
    ),
    "qwen3": (
        {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "rope_theta": 1000000.0,
         "head_dim": HEAD_DIM, "attention_bias": False},
        "BF16", "qwen2", 2,
    ),
    "qwen2moe": (
        {"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "rope_theta": 1000000.0,
         "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": FFN // 2,
         "shared_expert_intermediate_size": FFN, "norm_topk_prob": False, "decoder_sparse_step": 1,
         "mlp_only_layers": [], "router_aux_loss_coef": 0.0, "qkv_bias": True},
        "BF16", "qwen2", 2,
    ),
    "qwen3moe": (
        {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "rope_theta": 1000000.0,
         "head_dim": HEAD_DIM, "attention_bias": False, "num_experts": 4, "num_experts_per_tok": 2,
         "moe_intermediate_size": FFN // 2, "norm_topk_prob": True, "decoder_sparse_step": 1,
         "mlp_only_layers": [], "router_aux_loss_coef": 0.0},
        "BF16", "qwen2", 2,
    ),
    "gemma3": (
        {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "rope_theta": 1000000.0,
         "rope_local_base_freq": 10000.0, "head_dim": HEAD_DIM, "query_pre_attn_scalar": HEAD_DIM,
         "sliding_window": 512, "sliding_window_pattern": 6, "hidden_activation": "gelu_pytorch_tanh",
         "final_logit_softcapping": None, "attn_logit_softcapping": None, "rope_scaling": None,
         "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0, "tie_word_embeddings": True},
        "F32", "spm", 6,
    ),
    "gemma": (
        {"architectures": ["GemmaForCausalLM"], "model_type": "gemma", "rope_theta": 10000.0,
         "head_dim": HEAD_DIM, "hidden_act": "gelu_pytorch_tanh", "bos_token_id": 2, "eos_token_id": 1,
         "pad_token_id": 0, "tie_word_embeddings": True},
        "BF16", "spm", 2,
    ),
    "gemma2": (
        {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "rope_theta": 10000.0,
         "head_dim": HEAD_DIM, "query_pre_attn_scalar": HEAD_DIM, "sliding_window": 512,
         "hidden_activation": "gelu_pytorch_tanh", "final_logit_softcapping": 30.0,
         "attn_logit_softcapping": 50.0, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
         "tie_word_embeddings": True},
        "BF16", "spm", 2,
    ),
    "phi3": (
        {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "rope_theta": 10000.0,
         "original_max_position_embeddings": 512, "partial_rotary_factor": 1.0, "sliding_window": None,
         "tie_word_embeddings": False, "pad_token_id": 0},
        "F16", "phi3", 2,
    ),
    "phi3-longrope": (  # Phi-3's 128k models; the original context is past llama.cpp's smallest (256)
        {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "rope_theta": 10000.0,
         "max_position_embeddings": 2048, "original_max_position_embeddings": 512,
         "rope_scaling": {"type": "longrope", "long_factor": [1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 8.0, 12.0],
                          "short_factor": [1.0, 1.02, 1.05, 1.1, 1.2, 1.4, 1.7, 2.0]},
         "partial_rotary_factor": 1.0, "sliding_window": None, "tie_word_embeddings": False,
         "pad_token_id": 0},
        "F16", "phi3", 2,
    ),
}  # fmt: skip
CHAT_TEMPLATE = (
    "{% for message in messages %}<|start|>{{ message['role'] }}\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|start|>assistant\n{% endif %}"
)


def write_safetensors(path: Path, tensors: dict[str, tuple[np.ndarray[Any, Any], str]]) -> None:
    """A safetensors file from numpy arrays, each with its dtype name (BF16 given as uint16 bits)."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (array, dtype) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for array, _ in tensors.values():
            f.write(np.ascontiguousarray(array).tobytes())


def _as(array: np.ndarray[Any, Any], dtype: str) -> np.ndarray[Any, Any]:
    if dtype == "F32":
        return array.astype(np.float32)
    if dtype == "F16":
        return array.astype(np.float16)
    bits = array.astype(np.float32).view(np.uint32)  # BF16 by truncation: exact for what it keeps
    return (bits >> 16).astype(np.uint16)


def _weights(arch: str, layers: int, rng: np.random.Generator) -> dict[str, np.ndarray[Any, Any]]:
    def w(*shape: int, scale: float = 0.15) -> np.ndarray[Any, Any]:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def norm() -> np.ndarray[Any, Any]:
        base = 0.0 if arch.startswith("gemma") else 1.0  # Gemma's norms scale by 1 + w
        return (base + rng.standard_normal(HIDDEN) * 0.1).astype(np.float32)

    q_out, kv_out = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    out = {"model.embed_tokens.weight": w(VOCAB, HIDDEN, scale=0.5)}
    for i in range(layers):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = norm()
        out[p + "post_attention_layernorm.weight"] = norm()
        if arch == "phi3":
            out[p + "self_attn.qkv_proj.weight"] = w(q_out + 2 * kv_out, HIDDEN)
            out[p + "mlp.gate_up_proj.weight"] = w(2 * FFN, HIDDEN)
        elif arch in ("qwen2moe", "qwen3moe"):
            out[p + "mlp.gate.weight"] = w(4, HIDDEN, scale=0.5)
            for x in range(4):
                out[p + f"mlp.experts.{x}.gate_proj.weight"] = w(FFN // 2, HIDDEN)
                out[p + f"mlp.experts.{x}.up_proj.weight"] = w(FFN // 2, HIDDEN)
                out[p + f"mlp.experts.{x}.down_proj.weight"] = w(HIDDEN, FFN // 2)
            if arch == "qwen2moe":  # one shared expert, gated by a sigmoid
                out[p + "mlp.shared_expert.gate_proj.weight"] = w(FFN, HIDDEN)
                out[p + "mlp.shared_expert.up_proj.weight"] = w(FFN, HIDDEN)
                out[p + "mlp.shared_expert.down_proj.weight"] = w(HIDDEN, FFN)
                out[p + "mlp.shared_expert_gate.weight"] = w(1, HIDDEN, scale=0.5)
        elif arch == "mixtral":
            out[p + "block_sparse_moe.gate.weight"] = w(4, HIDDEN, scale=0.5)
            for x in range(4):
                out[p + f"block_sparse_moe.experts.{x}.w1.weight"] = w(FFN, HIDDEN)
                out[p + f"block_sparse_moe.experts.{x}.w2.weight"] = w(HIDDEN, FFN)
                out[p + f"block_sparse_moe.experts.{x}.w3.weight"] = w(FFN, HIDDEN)
        if arch != "phi3":
            out[p + "self_attn.q_proj.weight"] = w(q_out, HIDDEN)
            out[p + "self_attn.k_proj.weight"] = w(kv_out, HIDDEN)
            out[p + "self_attn.v_proj.weight"] = w(kv_out, HIDDEN)
        if arch not in ("phi3", "mixtral", "qwen2moe", "qwen3moe"):
            out[p + "mlp.gate_proj.weight"] = w(FFN, HIDDEN)
            out[p + "mlp.up_proj.weight"] = w(FFN, HIDDEN)
        out[p + "self_attn.o_proj.weight"] = w(HIDDEN, q_out)
        if arch not in ("mixtral", "qwen2moe", "qwen3moe"):
            out[p + "mlp.down_proj.weight"] = w(HIDDEN, FFN)
        if arch in ("qwen2", "qwen2moe"):
            out[p + "self_attn.q_proj.bias"] = w(q_out, scale=0.1)
            out[p + "self_attn.k_proj.bias"] = w(kv_out, scale=0.1)
            out[p + "self_attn.v_proj.bias"] = w(kv_out, scale=0.1)
        if arch in ("qwen3", "qwen3moe", "gemma3"):
            base = 0.0 if arch == "gemma3" else 1.0
            out[p + "self_attn.q_norm.weight"] = (base + rng.standard_normal(HEAD_DIM) * 0.1).astype(
                np.float32
            )
            out[p + "self_attn.k_norm.weight"] = (base + rng.standard_normal(HEAD_DIM) * 0.1).astype(
                np.float32
            )
        if arch in ("gemma2", "gemma3"):
            out[p + "pre_feedforward_layernorm.weight"] = norm()
            out[p + "post_feedforward_layernorm.weight"] = norm()
    out["model.norm.weight"] = norm()
    if not MODELS[arch][0].get("tie_word_embeddings", False):
        out["lm_head.weight"] = w(VOCAB, HIDDEN)
    return out


def write_tiny_hf(folder: Path, arch: str, *, seed: int = 0) -> Path:
    """A tiny random ``arch`` model in Hugging Face's layout in ``folder``; returns the folder."""
    extra, dtype, tokenizer, layers = MODELS[arch]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, zlib.crc32(arch.encode())])
    weights = _weights(arch.split("-")[0], layers, rng)  # "phi3-longrope": phi3's tensors, its own seed
    config = {
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "num_hidden_layers": layers, "vocab_size": VOCAB,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": {"BF16": "bfloat16", "F16": "float16"}.get(dtype, "float32"),
        **extra,
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    names = sorted(weights)
    half = len(names) // 2  # two shards, as big models come
    weight_map = {}
    for index, part in enumerate((names[:half], names[half:]), 1):
        shard = {n: (_as(weights[n], dtype), dtype) for n in part}
        file = f"model-0000{index}-of-00002.safetensors"
        write_safetensors(folder / file, shard)
        weight_map.update(dict.fromkeys(part, file))
    index_json = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index_json))
    _tokenizer(folder, tokenizer)
    return folder


def _tokenizer(folder: Path, kind: str) -> None:
    if kind == "spm":
        shutil.copy(DATA / "tokenizer.model", folder / "tokenizer.model")
        config = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "add_bos_token": True,
                  "add_eos_token": False, "chat_template": CHAT_TEMPLATE}  # fmt: skip
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
        return
    tokenizer = json.loads((DATA / "tokenizer.json").read_text())
    regex = QWEN2_REGEX if kind == "qwen2" else LLAMA3_REGEX
    tokenizer["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }
    if kind == "phi3":  # llama.cpp's phi3 vocabulary code looks these up by name
        for i, text in enumerate(("<s>", "</s>", "<unk>", "<|endoftext|>"), start=330):
            tokenizer["added_tokens"].append(
                {"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True}
            )  # fmt: skip
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    config = {"bos_token": "<|begin|>", "eos_token": "<|end|>", "add_bos_token": True, "add_eos_token": False,
              "chat_template": CHAT_TEMPLATE, "tokenizer_class": "PreTrainedTokenizerFast"}  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
