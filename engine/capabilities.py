"""What a model can do, as Ollama's ``/api/show`` lists it: decided from its GGUF header and its template.

Clients pick models by this list: llm-ollama offers a model for embeddings
only when it says ``embedding`` and passes tools only when it says
``tools``; oterm enables its tools selector on ``tools``. The rules are
Ollama's (``server/images.go``: ``Capabilities``), applied to what llamadeck
renders and runs:

* ``embedding``: the GGUF declares a pooling type llamadeck embeds with
  (``<arch>.pooling_type`` mean, CLS or last); ``completion`` for every other
  model, except a reranker (rank pooling), which can do neither here;
* ``tools``: the chat template renders tools: a Go template reads ``.Tools``,
  a Jinja one mentions ``tools`` or ``tool_call`` (Ollama's test);
* ``thinking``: a Go template reads ``.Thinking``/``.Think``/``.IsThinkSet``;
  a Jinja one has ``<think>`` and ``</think>``, strips earlier reasoning at
  ``</think>`` (Qwen, DeepSeek), or takes ``enable_thinking``; gpt-oss thinks
  whatever its template says (Ollama's family rule);
* ``insert`` (fill in the middle): a Go template reads ``.Suffix``, or the
  vocabulary names FIM prefix and suffix tokens;
* ``vision``: the model has a vision projector (an ``mmproj`` GGUF beside its
  weights, which llamadeck runs through llama.cpp's ``mtmd``), or the GGUF
  carries a vision tower itself (``<arch>.vision.block_count``).

Pure: the header's key/values and the template text in, names out.

    capabilities({"general.architecture": "bert", "bert.pooling_type": 1}, None)   # ("embedding",)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import TemplateError

__all__ = ["CAPABILITIES", "capabilities", "template_capabilities"]

COMPLETION, EMBEDDING, TOOLS, THINKING, INSERT, VISION = (
    "completion",
    "embedding",
    "tools",
    "thinking",
    "insert",
    "vision",
)
CAPABILITIES = (COMPLETION, EMBEDDING, TOOLS, THINKING, INSERT, VISION)  # the order they are listed in

_EMBEDDING_POOLING = frozenset({1, 2, 3})  # llama.cpp's MEAN, CLS, LAST: what the embedder takes
_RANK_POOLING = 4
_GO_THINKING = frozenset({"thinking", "think", "isthinkset", "thinklevel"})
_THINKING_FAMILIES = frozenset({"gpt-oss", "gptoss"})
# llama.cpp's FIM keys, and the older names some converters wrote
_FIM_PREFIX = ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id")
_FIM_SUFFIX = ("tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id")


def _go_names(template: str) -> frozenset[str] | None:
    """The lower-cased names a Go template reads (Ollama's ``Template.Vars``); None if it is not Go."""
    from engine.templates.render import is_go_template

    if not is_go_template(template):
        return None
    from engine.templates.go.template import GoTemplate

    try:
        return GoTemplate.parse(template).vars
    except TemplateError:  # a template llamadeck cannot render: no chat, so nothing it could offer
        return frozenset()


def _jinja_thinks(template: str) -> bool:
    """Ollama's ``chatTemplateHasThinkingSupport``, and Qwen 3's ``enable_thinking`` switch."""
    if "<think>" in template and "</think>" in template:
        return True
    if "enable_thinking" in template:
        return True
    splits = "content.split('</think>')" in template or 'content.split("</think>")' in template
    return splits and "reasoning_content" not in template and "<SPECIAL_12>" not in template


def template_capabilities(template: str | None) -> frozenset[str]:
    """``tools``, ``thinking`` and ``insert`` as a chat template (Go or Jinja) offers them.

    ``template_capabilities("{{ .Prompt }}{{ .Suffix }}")``  # frozenset({"insert"})
    """
    if not template:
        return frozenset()
    names = _go_names(template)
    found: set[str] = set()
    if names is not None:
        if "tools" in names:
            found.add(TOOLS)
        if "suffix" in names:
            found.add(INSERT)
        if names & _GO_THINKING:
            found.add(THINKING)
        return frozenset(found)
    if "tools" in template or "tool_call" in template:
        found.add(TOOLS)
    if _jinja_thinks(template):
        found.add(THINKING)
    return frozenset(found)


def _has(metadata: Mapping[str, Any], keys: tuple[str, ...]) -> bool:
    return any(isinstance(metadata.get(key), int) for key in keys)


def capabilities(
    metadata: Mapping[str, Any], template: str | None, *, projector: bool = False
) -> tuple[str, ...]:
    """The model's capabilities in Ollama's words, in a fixed order (see :data:`CAPABILITIES`).

    ``metadata`` is the GGUF header's key/values (``read_metadata``);
    ``template`` the chat template the model's chats use (its manifest's);
    ``projector`` whether a vision projector comes with the weights.
    """
    arch = str(metadata.get("general.architecture") or "")
    pooling = metadata.get(f"{arch}.pooling_type")
    found = set(template_capabilities(template))
    if pooling in _EMBEDDING_POOLING:
        found = {EMBEDDING}  # an embedding model does not chat, whatever its template says
    elif pooling != _RANK_POOLING:
        found.add(COMPLETION)
        if arch in _THINKING_FAMILIES:
            found.add(THINKING)
        if _has(metadata, _FIM_PREFIX) and _has(metadata, _FIM_SUFFIX):
            found.add(INSERT)
        if projector or metadata.get(f"{arch}.vision.block_count") is not None:
            found.add(VISION)
    else:
        found = set()
    return tuple(c for c in CAPABILITIES if c in found)
