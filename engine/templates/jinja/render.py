"""Rendering a chat through a Jinja template: messages in, prompt text out, within the budget.

:func:`render_chat` compiles (once, see :mod:`.sandbox`), sizes the budget from
the conversation and renders chunk by chunk, so the output is measured as it
grows; anything a template raises becomes a one-line :class:`TemplateError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from engine.errors import InvalidInput, TemplateError
from engine.templates.jinja.budget import Budget, current_budget
from engine.templates.jinja.sandbox import compile_template
from engine.text import one_line

__all__ = ["render_chat"]


def render_chat(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    bos_token: str,
    eos_token: str,
    add_generation_prompt: bool = True,
    tools: list[Any] | None = None,
    extra: Mapping[str, object] | None = None,
) -> str:
    """The prompt for ``messages``, without a leading BOS (the tokenizer adds that itself).

    ``tools`` reaches the template as ``tools`` (OpenAI-style function schemas);
    ``extra`` holds further variables some templates read, such as
    ``date_string`` or ``enable_thinking``. Raises :class:`TemplateError` when
    the template does not compile, refuses the conversation
    (``raise_exception``) or runs past its time or size limit::

        render_chat(template, [{"role": "user", "content": "Hi"}], bos_token="<s>", eos_token="</s>")
    """
    compiled = compile_template(template)
    if isinstance(compiled, str):
        raise TemplateError(compiled)
    variables: dict[str, Any] = dict(extra or {})
    core = {
        "messages": list(messages),
        "tools": tools,
        "bos_token": bos_token,
        "eos_token": eos_token,
        "add_generation_prompt": add_generation_prompt,
    }
    if clash := sorted(variables.keys() & core.keys()):
        raise InvalidInput(f"extra template variables may not replace {', '.join(map(one_line, clash))}")
    variables.update(core)
    try:
        budget = Budget.for_inputs(variables)
    except RecursionError:
        raise InvalidInput("the conversation is nested too deeply to render") from None
    token = current_budget.set(budget)
    try:
        text = _run(compiled, variables, budget)
    finally:
        current_budget.reset(token)
    return text.removeprefix(bos_token) if bos_token else text


def _run(compiled: jinja2.Template, variables: dict[str, Any], budget: Budget) -> str:
    """Render chunk by chunk, so the output is measured as it grows, not once it is whole."""
    parts: list[str] = []
    total = 0
    try:
        for chunk in compiled.generate(variables):
            budget.tick()
            total += len(chunk)
            if total > budget.size_limit:
                raise TemplateError(
                    f"the chat template's output passed {budget.size_limit:,} characters, "
                    "the limit for this conversation"
                )
            parts.append(chunk)
    except TemplateError:
        raise
    except RecursionError:
        raise TemplateError("the chat template recursed too deeply") from None
    except MemoryError:
        raise TemplateError("the chat template ran out of memory") from None
    except jinja2.TemplateError as error:  # undefined names, unsafe attributes, bad arguments
        raise TemplateError(f"the model's chat template failed: {one_line(error.message or '')}") from error
    except Exception as error:  # template code can raise anything: 1 + 'a', 1 / 0, int('x')
        raise TemplateError(
            f"the model's chat template failed: {type(error).__name__}: {one_line(str(error))}"
        ) from error
    return "".join(parts)
