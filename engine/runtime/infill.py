"""Fill in the middle: a prompt and a ``suffix``, and the model writes what goes between them.

Two ways a model can, tried in this order:

* its Go template reads ``.Suffix`` (Ollama's ``insert`` capability: Qwen2.5-Coder,
  CodeLlama, StarCoder2 Modelfiles): the template is run on ``.Prompt`` and
  ``.Suffix`` alone, as Ollama does;
* its vocabulary has fill-in-the-middle tokens (GGUF
  ``tokenizer.ggml.fim_pre_token_id``/``fim_suf_token_id``/``fim_mid_token_id``, or
  tokens llama.cpp recognises by their text, such as ``<|fim_prefix|>``): the prompt
  is ``[BOS] <FIM_PRE> prompt <FIM_SUF> suffix <FIM_MID>``, llama.cpp server's
  ``/infill`` order. Ollama needs a template for this; any such GGUF works here.

Any other model refuses a suffix with Ollama's words: ``NAME does not support insert``.

    inserts(manifest, {"tokenizer.ggml.fim_pre_token_id": 1, ...})   # for /api/show's capabilities
    insert_tokens(model, "def add(a, b):\\n    return ", "\\n\\nprint(add(1, 2))")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from engine.errors import InvalidInput
from engine.store.manifest import Manifest

__all__ = ["FIM_KEYS", "has_fim_tokens", "insert_tokens", "inserts", "reads_suffix", "refuse_insert"]

FIM_KEYS = (
    ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"),
    ("tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"),
    ("tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"),
)
"""The GGUF keys of the three tokens, each with the older name llama.cpp also reads."""


class _Vocabulary(Protocol):
    @property
    def add_bos(self) -> bool: ...
    @property
    def bos(self) -> int: ...
    @property
    def fim(self) -> tuple[int, int, int] | None: ...

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]: ...


def has_fim_tokens(metadata: Mapping[str, Any]) -> bool:
    """Whether a GGUF's key/values name all three fill-in-the-middle tokens."""

    def named(keys: tuple[str, str]) -> bool:
        value = next((metadata[k] for k in keys if k in metadata), None)
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    return all(named(keys) for keys in FIM_KEYS)


def reads_suffix(template: str | None) -> bool:
    """Whether a model's template fills in the middle: a Go template that reads ``.Suffix``."""
    from engine.errors import TemplateError
    from engine.templates.render import is_go_template

    if not template or not is_go_template(template):
        return False
    from engine.templates.go.template import GoTemplate

    try:
        return GoTemplate.parse(template).reads_suffix
    except TemplateError:
        return False


def inserts(manifest: Manifest, metadata: Mapping[str, Any] | None = None) -> bool:
    """``insert``: the template reads ``.Suffix``, or the GGUF's ``metadata`` has FIM tokens."""
    return reads_suffix(manifest.config.template) or (metadata is not None and has_fim_tokens(metadata))


def refuse_insert(reference: str) -> InvalidInput:
    return InvalidInput(f"{reference} does not support insert")


def insert_tokens(model: _Vocabulary, prompt: str, suffix: str) -> list[int] | None:
    """``[BOS] <FIM_PRE> prompt <FIM_SUF> suffix <FIM_MID>`` as tokens; None without FIM tokens.

    The texts are tokenized as plain text: a ``<|fim_middle|>`` typed into the
    prompt is text, not the token.
    """
    if model.fim is None:
        return None
    pre, suf, mid = model.fim
    head = [model.bos] if model.add_bos and model.bos >= 0 else []
    before = model.tokenize(prompt, add_special=False, parse_special=False)
    after = model.tokenize(suffix, add_special=False, parse_special=False)
    return [*head, pre, *before, suf, *after, mid]
