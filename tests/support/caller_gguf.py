"""A tiny chain GGUF that calls a tool by rote: ``Checking.<tool_call>{"name":"get_weather",...}``.

The vocabulary's last entries are the pieces of a Qwen-style call, so
llama.cpp really generates the call token by token (greedy decoding; any
prompt leads to the first piece, the last piece to ``</s>``). Without tools
the same text is an ordinary reply; with a tool named ``get_weather`` the
engine's parser turns it into a call.

    path = write_caller_gguf(tmp / "Caller-F32.gguf")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.chain_gguf import write_chain_gguf
from tests.support.tiny_gguf import tiny_vocab

SAID = [
    "Checking.",
    "<tool_call>",
    '{"name":"',
    "get_weather",
    '","arguments":',
    '{"city":"Paris"}}',
    "</tool_call>",
]
WEATHER: dict[str, Any] = {  # the tool's parameters, as a JSON schema
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def caller_vocab() -> tuple[list[str], list[float], list[int]]:
    """The tiny vocabulary with its last filler tokens replaced by the pieces the model says."""
    tokens, scores, types = tiny_vocab()
    for k, piece in enumerate(SAID):
        tokens[len(tokens) - 1 - k] = piece
    return tokens, scores, types


def write_caller_gguf(path: Path) -> Path:
    tokens = caller_vocab()[0]
    ids = [tokens.index(piece) for piece in SAID]
    chain = dict(zip(ids, ids[1:], strict=False)) | {ids[-1]: 2}  # then </s>
    # every other token (the prompt's last) leads to the first piece
    return write_chain_gguf(path, chain, default=ids[0], vocab=caller_vocab())
