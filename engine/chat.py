"""Chat templates: turning messages into the prompt text a model was trained on.

Pure functions over Jinja2 (the language of GGUF ``tokenizer.chat_template``),
rendered in a sandbox because templates arrive from downloaded files.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from engine.errors import LlamadeckError


class TemplateError(LlamadeckError):
    """The model's chat template could not be rendered."""


def _raise(message: str) -> None:
    raise TemplateError(f"the chat template refused the conversation: {message}")


@lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(template)


def render_chat(
    template: str,
    messages: Sequence[dict[str, str]],
    *,
    bos_token: str,
    eos_token: str,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt for ``messages``, without a leading BOS (the tokenizer adds that itself)."""
    from jinja2 import TemplateError as JinjaError

    try:
        text = _compile(template).render(
            messages=list(messages),
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
        )
    except JinjaError as error:
        raise TemplateError(f"the model's chat template is broken: {error}") from error
    return text.removeprefix(bos_token) if bos_token else text
