"""Chain GGUFs that say a fixed reply with a template of their own: thinking models, a fill-in-the-middle one.

Each is ``tests/support/chain_gguf.py``'s rote model with its last filler tokens
replaced by the reply's pieces (some of them control tokens, as ``<think>`` or
``<|channel|>`` may be in a real GGUF), so llama.cpp really generates the reply
token by token after any prompt, and the template decides what the engine makes of it.

    path = write_said_gguf(tmp / "thinker.gguf", THINKER, template=THINK_TEMPLATE)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gguf

from engine import Engine
from tests.support.chain_gguf import Vocab, write_chain_gguf
from tests.support.tiny_gguf import tiny_vocab


@dataclass(frozen=True)
class Said:
    """A reply as pieces (one token each, all different), those that are control tokens, and more of those."""

    pieces: tuple[str, ...]
    control: frozenset[str] = frozenset()
    extra: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "".join(self.pieces)


THINKING = "The user asks for the capital."
ANSWER = "The capital is Paris."

THINKER = Said(("<think>", "The user asks", " for the capital.", "</think>", "\n\n", ANSWER), frozenset())
"""Qwen3, QwQ, Cogito: the reply opens its reasoning itself."""
THINKER_CONTROL = Said(THINKER.pieces, frozenset({"<think>", "</think>"}))
"""The same with the tags as control tokens, which llama.cpp streams as nothing unless told."""
R1 = Said(("The user asks", " for the capital.", "</think>", "\n\n", ANSWER))
"""DeepSeek-R1's distills, OLMo 3 Think: the prompt ends with ``<think>``, the reply starts inside."""
HARMONY = Said(
    (
        "<|channel|>",
        "analysis",
        "<|message|>",
        THINKING,
        "<|end|>",
        "<|start|>",
        "assistant<|channel|>final<|message|>",  # one plain token: a chain says each token once
        ANSWER,
    ),
    frozenset({"<|channel|>", "<|message|>", "<|end|>", "<|start|>"}),
    ("<|return|>", "<|call|>"),  # with these llama.cpp stops at <|return|>, not <|end|> (its gpt-oss rule)
)
"""gpt-oss's harmony channels."""
HARMONY_CALL = Said(
    (
        *HARMONY.pieces[:6],
        "assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>",
        '{"city":"Paris"}',
    ),
    HARMONY.control,
    HARMONY.extra,
)
"""gpt-oss calling a tool after its reasoning."""
MIDDLE = Said(
    (
        "    return a",
        " + b",
    )
)
FIM = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")

THINK_TEMPLATE = (  # Qwen3's shape: earlier reasoning as reasoning_content, enable_thinking false closes it
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' and message.reasoning_content %}"
    "<think>{{ message.reasoning_content }}</think>\n\n{% endif %}"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
R1_TEMPLATE = (  # DeepSeek-R1's distills: strips earlier reasoning, opens the reply's
    "{% for message in messages %}{% if message['role'] == 'user' %}<|User|>{{ message['content'] }}"
    "{% else %}<|Assistant|>{{ message['content'].split('</think>')[-1] }}<|end|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|><think>\n{% endif %}"
)
GO_THINK_TEMPLATE = (  # an Ollama Modelfile's: the tags are found around .Thinking
    "{{- range $i, $_ := .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
    "{{- if and .IsThinkSet (not .Think) }}<think></think>{{ end }}\n"
)
HARMONY_TEMPLATE = (
    "<|start|>system<|message|>Reasoning: {{ reasoning_effort | default('medium') }}<|end|>"
    "{% for m in messages %}<|start|>{{ m['role'] }}"
    "{% if m['role'] == 'assistant' and m.thinking %}<|channel|>analysis<|message|>{{ m.thinking }}"
    "<|end|><|start|>assistant{% endif %}{% if m['role'] == 'assistant' %}<|channel|>final{% endif %}"
    "<|message|>{{ m['content'] }}<|end|>{% endfor %}<|start|>assistant"
)
GO_SUFFIX_TEMPLATE = (
    "{{ if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{ else }}{{ .Prompt }}{{ end }}"
)


def said_vocab(said: Said, extra: Sequence[str] = ()) -> Vocab:
    """The tiny vocabulary with its last filler tokens replaced by the reply's pieces and control tokens."""
    extra = (*said.extra, *extra)
    tokens, scores, types = tiny_vocab()
    for k, piece in enumerate([*said.pieces, *extra]):
        at = len(tokens) - 1 - k
        tokens[at] = piece
        control = piece in said.control or piece in extra
        types[at] = int(gguf.TokenType.CONTROL if control else gguf.TokenType.NORMAL)
    return tokens, scores, types


def write_said_gguf(path: Path, said: Said, *, template: str | None, fim: bool = False) -> Path:
    """A chain GGUF that says ``said`` after any prompt; ``fim`` adds fill-in-the-middle tokens and keys."""
    extra = FIM if fim else ()
    vocab = said_vocab(said, extra)
    ids = [vocab[0].index(piece) for piece in said.pieces]
    chain = dict(zip(ids, ids[1:], strict=False)) | {ids[-1]: 2}  # then </s>
    keys = {}
    if fim:
        names = ("fim_pre", "fim_suf", "fim_mid")
        keys = {f"tokenizer.ggml.{n}_token_id": vocab[0].index(t) for n, t in zip(names, FIM, strict=True)}
    return write_chain_gguf(path, chain, default=ids[0], vocab=vocab, chat_template=template, token_keys=keys)


def add_said_models(engine: Engine, folder: Path) -> None:
    """The thinking models by name in ``engine``: thinker, control, harmony, caller, gothink, and plain
    (one that cannot think), their GGUFs written in ``folder``."""
    thinker = write_said_gguf(folder / "thinker.gguf", THINKER, template=THINK_TEMPLATE)
    files = {
        "thinker": thinker,
        "control": write_said_gguf(folder / "control.gguf", THINKER_CONTROL, template=THINK_TEMPLATE),
        "harmony": write_said_gguf(folder / "harmony.gguf", HARMONY, template=HARMONY_TEMPLATE),
        "caller": write_said_gguf(folder / "caller.gguf", HARMONY_CALL, template=HARMONY_TEMPLATE),
        "plain": write_said_gguf(folder / "plain.gguf", MIDDLE, template=None),
    }
    for name, path in files.items():
        engine.create(name, f"FROM {path}\n")
    engine.create("gothink", f'FROM {thinker}\nTEMPLATE """{GO_THINK_TEMPLATE}"""\n')
