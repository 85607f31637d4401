"""What each Hugging Face architecture becomes in GGUF, as llama.cpp's ``convert_hf_to_gguf.py`` writes it.

For every supported ``architectures[0]`` of ``config.json``: the GGUF
architecture, the metadata keys (through ``gguf.GGUFWriter``'s own ``add_*``
calls, so the key names are the library's), and the tensor plan: each
Hugging Face tensor renamed by ``gguf.TensorNameMap`` with the transform it
needs. The transforms are llama.cpp's: the q/k rows of llama-family
attention permuted from Hugging Face's rotate-half layout to llama.cpp's
interleaved rope; Gemma's (1, 2, 3) norms stored as ``1 + w``; Llama 3's rope scaling
as a ``rope_freqs`` tensor. 1-D tensors and norms are F32, the rest keep the
model's 16-bit type (BF16 stays BF16, F16 and F32 become F16: llama.cpp's
default ``--outtype``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.convert.safetensors import TensorEntry
from engine.errors import InvalidInput
from engine.text import one_line

ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "MixtralForCausalLM": "llama",
    "Mistral3ForConditionalGeneration": "mistral3",  # Mistral Small 3.x: its language model
    "Qwen2ForCausalLM": "qwen2",
    "Qwen2MoeForCausalLM": "qwen2moe",
    "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3moe",
    "GemmaForCausalLM": "gemma",
    "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3",
    "Phi3ForCausalLM": "phi3",
}
MAX_LAYERS = 1024  # the deepest published models have ~130: a bound on what a config may make us build
MAX_EXPERTS = 1024
_EXPERT = re.compile(  # Mixtral's w1/w2/w3, Qwen MoE's gate/up/down projections
    r"model\.layers\.(\d+)\.(block_sparse_moe|mlp)\.experts\.(\d+)\.(w[123]|gate_proj|up_proj|down_proj)\.weight"
)
_F32_SUFFIXES = ("_norm.weight", "ffn_gate_inp.weight", "ffn_gate_inp_shexp.weight")  # with 1-D: llama.cpp's
_SKIPPED = ("rotary_emb.inv_freq", "vision_tower.", "multi_modal_projector.", "vision_model.")


def supported() -> str:
    return ", ".join(sorted(ARCHITECTURES))


@dataclass(frozen=True)
class OutTensor:
    """One tensor of the GGUF: from a source tensor (with a transform) or computed here (``data``)."""

    name: str
    shape: tuple[int, ...]  # numpy order (rows first), as GGUFWriter takes it
    out_type: str  # "F32", "F16" or "BF16"
    source: TensorEntry | None = None
    transform: str | None = None  # "permute" (q/k rows, needs ``heads``), "plus_one"
    heads: int = 0
    data: np.ndarray[Any, Any] | None = None
    parts: tuple[TensorEntry, ...] = ()  # experts stacked into one tensor, written one after another

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * (4 if self.out_type == "F32" else 2)


@dataclass(frozen=True)
class Plan:
    arch: str
    hparams: Mapping[str, Any]
    tensors: list[OutTensor]
    file_type: int  # gguf.LlamaFileType
    metadata: Callable[[Any], None]  # writes the architecture's keys to a GGUFWriter


def architecture(config: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(Hugging Face class, GGUF arch, hyperparameters) of ``config.json``; InvalidInput if unsupported."""
    names = config.get("architectures")
    hf = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else None
    if hf is None:
        raise InvalidInput("config.json names no architecture: cannot convert this model")
    if hf not in ARCHITECTURES:
        raise InvalidInput(f"cannot convert {one_line(hf, 60)} models; llamadeck converts {supported()}")
    hp = dict(config)
    text = config.get("text_config")
    if isinstance(text, dict):  # a multimodal model: its language model's settings
        hp.update(text)
    if hf == "Mistral3ForConditionalGeneration" and hp.get("model_type") not in (
        None,
        "mistral",
        "llama",
        "mistral3",
    ):
        kind = one_line(str(hp.get("model_type")), 30)
        raise InvalidInput(
            f"cannot convert a Mistral 3 model whose language model is {kind}: llamadeck converts mistral"
        )
    return hf, ARCHITECTURES[hf], hp


def _int(hp: Mapping[str, Any], *keys: str, default: int | None = None) -> int:
    for key in keys:
        value = hp.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31:
            return value
        if value is not None:  # given but wrong: a default here makes a model llama.cpp will not load
            raise InvalidInput(
                f"config.json lacks {key} (a positive integer): it is {one_line(repr(value), 40)}"
            )
    if default is not None:
        return default
    raise InvalidInput(f"config.json lacks {keys[0]} (a positive integer)")


def _bounded(value: int, most: int, key: str) -> int:
    if value > most:
        raise InvalidInput(f"config.json's {key} is {value:,}; llamadeck converts models of at most {most:,}")
    return value


def _float(hp: Mapping[str, Any], key: str, default: float | None = None) -> float | None:
    value = hp.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if value is not None:  # NaN, Infinity, a string: skipping it leaves a key llama.cpp requires unset
        raise InvalidInput(f"config.json's {key} is {one_line(repr(value), 40)}: not a finite number")
    return default


def plan(hf: str, arch: str, hp: dict[str, Any], tensors: Mapping[str, TensorEntry]) -> Plan:
    """The GGUF this model becomes: its tensors in order, its metadata writer, its file type."""
    import gguf

    n_layers = _bounded(_int(hp, "num_hidden_layers", "n_layer"), MAX_LAYERS, "num_hidden_layers")
    n_head = _int(hp, "num_attention_heads", "n_head")
    n_kv = _int(hp, "num_key_value_heads", default=n_head)
    n_embd = _int(hp, "hidden_size", "n_embd")
    head_dim = _int(hp, "head_dim", default=n_embd // n_head)
    model_arch = gguf.MODEL_ARCH[arch.upper()]
    names = gguf.get_tensor_name_map(model_arch, n_layers)
    sixteen = _sixteen_bit(tensors)
    out: list[OutTensor] = _experts(tensors, names, hp, sixteen)
    for name, entry in tensors.items():
        if any(s in name for s in _SKIPPED) or _EXPERT.fullmatch(name):
            continue
        gemma = arch in ("gemma", "gemma2", "gemma3")
        source = name.removeprefix("language_model.") if gemma else name
        if arch == "mistral3":  # language_model.model.*, model.language_model.*: as llama.cpp strips it
            source = name.replace("language_model.", "")
        if arch == "gemma3" and source.startswith("model.language_model."):
            source = "model." + source.removeprefix("model.language_model.")
        if gemma and source == "lm_head.weight":
            continue  # tied to the embeddings: llama.cpp reads token_embd
        new = names.get_name(source, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise InvalidInput(
                f"cannot convert tensor {one_line(name, 80)!r}: llamadeck does not know where it goes"
            )
        if entry.dtype not in ("F32", "F16", "BF16"):
            raise InvalidInput(f"tensor {one_line(name, 80)!r} is {entry.dtype}: only float weights convert")
        transform, heads = None, 0
        if arch in ("llama", "mistral3") and new.endswith(("attn_q.weight", "attn_k.weight")):
            transform, heads = "permute", n_head if new.endswith("attn_q.weight") else n_kv
        if gemma and new.endswith("norm.weight"):
            transform = "plus_one"
        one_d = len(entry.shape) <= 1 or new.endswith(_F32_SUFFIXES)
        out.append(OutTensor(new, entry.shape, "F32" if one_d else sixteen, entry, transform, heads))
    have = {t.name for t in out}
    if arch == "phi3" and "output.weight" not in have and "token_embd.weight" in have:
        embd = next(t for t in out if t.name == "token_embd.weight")  # tied: llama.cpp's phi3 wants output
        out.append(OutTensor("output.weight", embd.shape, embd.out_type, embd.source))
    if arch == "llama" and (freqs := _llama3_rope_factors(hp, head_dim)) is not None:
        out.insert(0, OutTensor("rope_freqs.weight", freqs.shape, "F32", data=freqs))
    attn_factor = None
    if arch == "phi3" and (longrope := _phi3_longrope(hp, n_embd, n_head)) is not None:
        long, short, attn_factor = longrope
        out[:0] = [
            OutTensor("rope_factors_long.weight", long.shape, "F32", data=long),
            OutTensor("rope_factors_short.weight", short.shape, "F32", data=short),
        ]
    _check_layers(out, n_layers)
    file_type = gguf.LlamaFileType.MOSTLY_BF16 if sixteen == "BF16" else gguf.LlamaFileType.MOSTLY_F16

    def metadata(w: Any) -> None:
        _metadata(w, arch, hp, n_layers=n_layers, n_head=n_head, n_kv=n_kv, n_embd=n_embd, head_dim=head_dim)
        if attn_factor is not None:
            w.add_rope_scaling_attn_factors(attn_factor)
        w.add_file_type(int(file_type))

    return Plan(arch, hp, out, int(file_type), metadata)


def _experts(
    tensors: Mapping[str, TensorEntry], names: Any, hp: Mapping[str, Any], sixteen: str
) -> list[OutTensor]:
    """Per-expert weights (Mixtral's w1/w2/w3, Qwen MoE's gate/up/down_proj) stacked into llama.cpp's
    ``ffn_{gate,down,up}_exps`` (expert-major), as its converter's Mixtral and Qwen2Moe models do."""
    groups: dict[tuple[int, str, str], dict[int, TensorEntry]] = {}
    for name, entry in tensors.items():
        if match := _EXPERT.fullmatch(name):
            groups.setdefault((int(match[1]), match[2], match[4]), {})[int(match[3])] = entry
    if not groups:
        return []
    key = "num_local_experts" if "num_local_experts" in hp else "num_experts"
    count = _bounded(_int(hp, key), MAX_EXPERTS, key)
    out = []
    for (layer, block, which), experts in sorted(groups.items()):
        if set(experts) != set(range(count)) or len({(p.shape, p.dtype) for p in experts.values()}) != 1:
            raise InvalidInput(f"layer {layer}'s experts ({which}) are not {count} tensors of one shape")
        parts = tuple(experts[i] for i in range(count))
        first = parts[0]
        new = names.get_name(
            f"model.layers.{layer}.{block}.experts.{which}.weight", try_suffixes=(".weight",)
        )
        if new is None or first.dtype not in ("F32", "F16", "BF16"):
            raise InvalidInput(f"cannot convert layer {layer}'s experts ({which}, {first.dtype})")
        out.append(OutTensor(new, (count, *first.shape), sixteen, first, parts=parts))
    return out


def _sixteen_bit(tensors: Mapping[str, TensorEntry]) -> str:
    """BF16 when most of the weights' bytes are BF16, F16 otherwise (as llama.cpp's ``--outtype auto``)."""
    bf16 = sum(t.nbytes for t in tensors.values() if t.dtype == "BF16" and len(t.shape) > 1)
    other = sum(t.nbytes for t in tensors.values() if t.dtype != "BF16" and len(t.shape) > 1)
    return "BF16" if bf16 > other else "F16"


def _check_layers(out: list[OutTensor], n_layers: int) -> None:
    names = {t.name for t in out}
    if "token_embd.weight" not in names:
        raise InvalidInput("the weights have no token embeddings (model.embed_tokens): not a whole model")
    present = {int(n.split(".")[1]) for n in names if n.startswith("blk.") and n.split(".")[1].isdigit()}
    missing = [i for i in range(n_layers) if i not in present]
    if missing:
        raise InvalidInput(f"the weights lack layer {missing[0]} of {n_layers}: are all the files there?")


def _llama3_rope_factors(hp: Mapping[str, Any], head_dim: int) -> np.ndarray[Any, Any] | None:
    """Llama 3.1+'s frequency factors, computed as llama.cpp's converter does (``rope_freqs.weight``)."""
    scaling = hp.get("rope_scaling")
    if (
        not isinstance(scaling, dict)
        or str(scaling.get("rope_type", scaling.get("type", ""))).lower() != "llama3"
    ):
        return None
    base = _float(hp, "rope_theta", 10000.0) or 10000.0
    factor = _float(scaling, "factor", 8.0) or 8.0
    low = _float(scaling, "low_freq_factor", 1.0) or 1.0
    high = _float(scaling, "high_freq_factor", 4.0) or 4.0
    old = _float(scaling, "original_max_position_embeddings", 8192.0) or 8192.0
    if high == low:
        raise InvalidInput("rope_scaling: high_freq_factor equals low_freq_factor")
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / float(freq)
        if wavelen < old / high:
            factors.append(1.0)
        elif wavelen > old / low:
            factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def _phi3_original_context(hp: Mapping[str, Any]) -> int:
    scaling = hp.get("rope_scaling")
    inner = scaling if isinstance(scaling, dict) else {}
    default = _int(hp, "original_max_position_embeddings", "max_position_embeddings", default=4096)
    return _int(inner, "original_max_position_embeddings", default=default)


def _phi3_longrope(
    hp: Mapping[str, Any], n_embd: int, n_head: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], float] | None:
    """Phi-3's long-context rope, as llama.cpp's ``Phi3MiniModel`` writes it: the long and short
    frequency factors (llama.cpp picks by context size) and the attention factor (``su``/``longrope``)."""
    scaling = hp.get("rope_scaling")
    if not isinstance(scaling, dict) or not scaling.get("long_factor"):
        return None
    kind = str(scaling.get("rope_type", scaling.get("type", ""))).lower()
    if kind not in ("su", "longrope"):
        raise InvalidInput(f"Phi-3 rope_scaling type {one_line(kind, 30)!r}: llamadeck converts longrope")
    dims = int((_float(hp, "partial_rotary_factor", 1.0) or 1.0) * n_embd) // n_head
    factors = []
    for key in ("long_factor", "short_factor"):
        values = scaling.get(key)
        if (
            not isinstance(values, list)
            or len(values) != dims // 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
            or not all(math.isfinite(v) and v > 0 for v in values)
        ):
            raise InvalidInput(
                f"rope_scaling.{key} must be {dims // 2} positive numbers (half the rope dimensions)"
            )
        factors.append(np.array(values, dtype=np.float32))
    original = _phi3_original_context(hp)
    scale = _int(hp, "max_position_embeddings", "n_positions", default=4096) / original
    attn_factor = math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0
    return factors[0], factors[1], attn_factor


def _metadata(
    w: Any,
    arch: str,
    hp: Mapping[str, Any],
    *,
    n_layers: int,
    n_head: int,
    n_kv: int,
    n_embd: int,
    head_dim: int,
) -> None:
    """The keys ``TextModel.set_gguf_parameters`` and each model class of llama.cpp's converter write."""
    import gguf

    w.add_context_length(_int(hp, "max_position_embeddings", "n_ctx", default=4096))
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(_int(hp, "intermediate_size", "n_inner"))
    w.add_block_count(n_layers)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    if (eps := _float(hp, "rms_norm_eps")) is not None:
        w.add_layer_norm_rms_eps(eps)
    default_base = {"gemma3": 1_000_000.0, "gemma2": 10_000.0}.get(arch)
    if (theta := _float(hp, "rope_theta", default_base)) is not None:
        w.add_rope_freq_base(theta)
    if "head_dim" in hp or arch in ("gemma", "gemma2", "gemma3"):
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    if (key := next((k for k in ("num_local_experts", "num_experts") if k in hp), None)) is not None:
        w.add_expert_count(_int(hp, key))
        w.add_expert_used_count(_int(hp, "num_experts_per_tok"))
    if arch in ("qwen2moe", "qwen3moe") and "moe_intermediate_size" in hp:
        w.add_expert_feed_forward_length(_int(hp, "moe_intermediate_size"))
    if arch == "qwen2moe" and "shared_expert_intermediate_size" in hp:
        w.add_expert_shared_feed_forward_length(_int(hp, "shared_expert_intermediate_size"))
    if arch in ("llama", "mistral3"):
        w.add_vocab_size(_int(hp, "vocab_size"))
        w.add_rope_dimension_count(head_dim)
    if arch == "phi3":
        rotary = _float(hp, "partial_rotary_factor", 1.0) or 1.0
        w.add_rope_dimension_count(int(rotary * n_embd) // n_head)
        w.add_rope_scaling_orig_ctx_len(_phi3_original_context(hp))
    if arch in ("gemma2", "gemma3", "phi3") and isinstance(hp.get("sliding_window"), int):
        w.add_sliding_window(hp["sliding_window"])
    if arch == "gemma2":  # llama.cpp caps scores and logits as Gemma 2 was trained
        w.add_attn_logit_softcapping(_float(hp, "attn_logit_softcapping", 50.0))
        w.add_final_logit_softcapping(_float(hp, "final_logit_softcapping", 30.0))
    scaling = hp.get("rope_scaling")
    if isinstance(scaling, dict):
        kind = str(scaling.get("rope_type", scaling.get("type", ""))).lower()
        factor = _float(scaling, "factor")
        if kind == "linear" and factor is not None:
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(factor)
        elif kind == "yarn" and factor is not None:
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(factor)
            w.add_rope_scaling_orig_ctx_len(_int(scaling, "original_max_position_embeddings", default=4096))
        elif kind not in ("", "default", "llama3") and not (arch == "phi3" and kind in ("su", "longrope")):
            raise InvalidInput(f"rope_scaling type {one_line(kind, 30)!r} is not one llamadeck converts")
