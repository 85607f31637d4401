"""A tiny llama GGUF that answers by rote: tests that need the real llama.cpp to say a known text.

    path = write_chain_gguf(tmp / "chain.gguf", {token_id("▁hello"): token_id("▁world")})
    # greedy decoding after "▁hello" now always picks "▁world"; other tokens end the reply

``vocab`` swaps in another vocabulary (same size) so a test can make the model say any pieces.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from tests.support import tiny_gguf
from tests.support.tiny_gguf import N_EMBD, N_VOCAB, tiny_vocab

Vocab = tuple[list[str], list[float], list[int]]

VOCAB = tiny_vocab()[0]


def token_id(text: str) -> int:
    """A tiny-vocabulary token by its text (``▁hello``, ``<0xE2>``)."""
    return VOCAB.index(text)


def byte_token(value: int) -> int:
    return token_id(f"<0x{value:02X}>")


def write_chain_gguf(
    path: Path,
    chain: dict[int, int],
    *,
    default: int = 2,
    pooling: int | None = None,
    vocab: Vocab | None = None,
    chat_template: str | None = None,
    token_keys: dict[str, int] | None = None,
    context_length: int = tiny_gguf.N_CTX_TRAIN,
) -> Path:
    """A tiny llama GGUF that answers by rote: greedy after token ``t`` picks ``chain[t]``, else ``default``.

    ``chat_template`` is written as ``tokenizer.chat_template``; ``token_keys``
    adds u32 keys (``{"tokenizer.ggml.fim_pre_token_id": 5}``).

    Attention and feed-forward outputs are zero, so the last hidden state is
    the last token's embedding: a one-hot vector (one dimension per chain
    key, a shared one for every other token), which the output matrix maps to
    the chosen next token. ``default`` 2 is ``</s>``: the reply ends.
    ``chat_template``: a Jinja template to write (none by default).
    """
    if len(chain) >= N_EMBD:
        raise ValueError("one embedding dimension per chain key")
    rng = np.random.default_rng(0)
    spare = N_EMBD - 1
    dims = {token: i for i, token in enumerate(chain)}
    embd = np.zeros((N_VOCAB, N_EMBD), dtype=np.float32)
    output = np.zeros((N_VOCAB, N_EMBD), dtype=np.float32)
    for token in range(N_VOCAB):
        embd[token, dims.get(token, spare)] = 1.0
    for token, following in chain.items():
        output[following, dims[token]] = 1.0
    output[default, spare] = 1.0
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("Chain")
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_context_length(context_length)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(tiny_gguf.N_LAYERS)
    writer.add_feed_forward_length(tiny_gguf.N_FF)
    writer.add_head_count(tiny_gguf.N_HEAD)
    writer.add_head_count_kv(tiny_gguf.N_KV_HEAD)
    writer.add_rope_dimension_count(N_EMBD // tiny_gguf.N_HEAD)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(N_VOCAB)
    tokens, scores, types = vocab or tiny_vocab()
    if len(tokens) != N_VOCAB:
        raise ValueError(f"the vocabulary must keep its {N_VOCAB} tokens")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    if pooling is not None:
        writer.add_pooling_type(gguf.PoolingType(pooling))
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    for key, value in (token_keys or {}).items():
        writer.add_uint32(key, value)
    for name, shape in tiny_gguf._tensor_shapes().items():
        if name == "token_embd.weight":
            data = embd
        elif name == "output.weight":
            data = output
        elif len(shape) == 1:
            data = np.ones(shape, dtype=np.float32)
        elif name.endswith(("attn_output.weight", "ffn_down.weight")):
            data = np.zeros(shape, dtype=np.float32)
        else:
            data = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
