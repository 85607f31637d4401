"""Chat templates behind one interface: messages in, the prompt text a model was trained on out.

The runtime renders every chat through :class:`ChatTemplate`, whatever the
template is written in:

* ``"jinja"``: a GGUF's ``tokenizer.chat_template`` or a Modelfile TEMPLATE in
  Jinja, rendered by :func:`engine.templates.jinja.render.render_chat` (sandboxed, on a budget);
* ``"builtin"``: a Jinja template llamadeck recorded itself for a base model
  whose GGUF has none (the demo Gemma's turn format);
* ``"go"``: Ollama's Go ``text/template`` form of a Modelfile TEMPLATE. Detected
  here (:func:`is_go_template`) and rendered by
  :class:`engine.templates.go.template.GoTemplate` byte for byte as Ollama does;
  a construct it cannot render faithfully is a :class:`TemplateError` when the
  template is read, never a silently wrong prompt.

Messages are :class:`engine.templates.message.Message` values, not dicts
(see there); a renderer turns them into whatever its template language expects.

Which template applies, and when (:func:`template_for`), follows ``raw``:
``True`` never templates; ``None`` (the default) uses the model's own template
(from its GGUF or its Modelfile) and continues the text plainly for a base
model; ``False`` also applies a template llamadeck recorded for a base model.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from engine.templates.message import Message

if TYPE_CHECKING:
    from engine.templates.thinking import ThinkSetting

__all__ = [
    "SOURCE_GGUF",
    "SOURCE_MODELFILE",
    "ChatTemplate",
    "JinjaTemplate",
    "built_template",
    "is_go_template",
    "template_for",
    "with_system_prompt",
]

# ``ModelConfig.template_source`` values for a model's own template, which applies unless raw.
# Anything else (such as "llamadeck: Gemma turn format") was recorded by llamadeck for a base
# model and applies only when raw is False.
SOURCE_GGUF = "gguf"  # the GGUF's tokenizer.chat_template
SOURCE_MODELFILE = "modelfile"  # a Modelfile TEMPLATE (the Modelfile issue records it so)
_OWN_SOURCES = frozenset({SOURCE_GGUF, SOURCE_MODELFILE})


class ChatTemplate(Protocol):
    """Turns a conversation into prompt text. Every renderer raises :class:`TemplateError` when it fails."""

    @property
    def kind(self) -> str:
        """ "jinja", "go" or "builtin"."""
        ...

    @property
    def source(self) -> str:
        """The template's text, as ``show --template`` prints it."""
        ...

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        think: ThinkSetting | None = None,
    ) -> str:
        """The prompt for ``messages`` (without a leading BOS: the tokenizer adds it).

        ``tools`` are OpenAI-style function schemas; ``add_generation_prompt``
        ends the text with the header of the assistant's next turn; ``think``
        is what the template is told of thinking (``engine.templates.thinking``).
        """
        ...


@dataclass(frozen=True)
class JinjaTemplate:
    """A Jinja chat template, rendered in :mod:`engine.templates.jinja`'s sandbox.

    Compiles on the first render (a broken template is a :class:`TemplateError`
    then, not at load); the BOS the template prints first is left out, since
    the tokenizer adds its own.
    """

    source: str
    bos_token: str
    eos_token: str
    kind: str = "jinja"  # "builtin" when llamadeck recorded it for a base model

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        think: ThinkSetting | None = None,
    ) -> str:
        from engine.templates.jinja.render import (
            render_chat,
        )  # jinja2 loads with the first chat, not with the engine

        return render_chat(
            self.source,
            [m.for_template() for m in messages],
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            add_generation_prompt=add_generation_prompt,
            tools=None if tools is None else [dict(t) for t in tools],
            extra=None if think is None else think.jinja_values(),
        )


# An action whose first word only Go's text/template gives it: a field or variable (``{{ .System }}``,
# ``{{- $.Tools }}``), a comment, or a keyword Jinja has no ``{{ }}`` use for (``{{ range .Messages }}``,
# ``{{ end }}``; ``range(...)`` is a Jinja call and does not count).
_GO_ACTION = re.compile(
    r"\{\{-?\s*(?:[.$]|/\*|(?:range|end|if|else|with|define|template|block|break|continue)\b(?!\s*\())"
)  # only the start of an action is read: linear time on any text a downloaded file holds


def is_go_template(source: str) -> bool:
    """Whether ``source`` is an Ollama Go template rather than Jinja.

    Go if an action starts the way only Go's do (``{{ .Prompt }}``,
    ``{{- range .Messages }}``, ``{{ $.Tools }}``, ``{{ end }}``, ``{{/* */}}``)
    and there is no Jinja statement (``{%``), which Go templates never have.
    A template with neither renders the same either way and counts as Jinja.
    """
    if "{%" in source:
        return False
    return _GO_ACTION.search(source) is not None


_BUILT_TEMPLATES = 32  # distinct templates kept built; a request names one model, a server holds a few


@functools.lru_cache(maxsize=_BUILT_TEMPLATES)
def built_template(source: str, kind: str, bos_token: str, eos_token: str) -> ChatTemplate:
    """The template for ``source``, built once: every request with the same arguments gets this object.

    ``kind`` is "jinja" or "builtin" for a Jinja template (Go is detected
    here). A Go template is parsed here, so one llamadeck cannot render
    faithfully is a :class:`TemplateError` when the model is picked, not a
    wrong prompt later (a failure is not kept: the next request tries again).
    Ollama's Go templates start without a BOS (the tokenizer adds it), so
    neither token is needed for them; a Jinja template compiles on its first
    render, once too (:mod:`engine.templates.jinja.sandbox`). Both are
    immutable, so requests on several threads share them::

        built_template(text, "jinja", "<s>", "</s>") is built_template(text, "jinja", "<s>", "</s>")  # True
    """
    if is_go_template(source):
        from engine.templates.go.template import GoTemplate

        return GoTemplate.parse(source)
    return JinjaTemplate(source, bos_token, eos_token, kind=kind)


def template_for(
    config_template: str | None,
    template_source: str | None,
    *,
    bos_token: str,
    eos_token: str,
    raw: bool | None,
) -> ChatTemplate | None:
    """The template a request uses, or None for plain completion (the text continued as it is).

    ``config_template`` and ``template_source`` are the manifest's
    (``manifest.config.template``/``template_source``). With ``raw=True`` no
    template; with ``raw=None`` the model's own template (``"gguf"`` or
    ``"modelfile"``) and none for a base model; with ``raw=False`` also the
    template llamadeck recorded for a base model. A Go template that uses a
    construct llamadeck cannot render raises :class:`TemplateError`::

        template_for(manifest.template, manifest.template_source, bos_token=bos, eos_token=eos, raw=None)
    """
    if not config_template or raw is True:
        return None
    own = template_source in _OWN_SOURCES
    if raw is None and not own:
        return None
    return built_template(config_template, "jinja" if own else "builtin", bos_token, eos_token)


def with_system_prompt(
    messages: Sequence[Message], system: str | None, *, preset: Sequence[Message] = ()
) -> list[Message]:
    """The conversation as the template sees it, as Ollama's chat handler builds it.

    ``preset`` (the Modelfile's MESSAGE turns) comes before ``messages``; the
    model's SYSTEM (``manifest.config.system``) goes first unless the
    conversation starts with a system message of its own (Ollama looks at the
    first message only). For a one-prompt ``generate``, pass
    ``[Message("user", prompt)]``::

        with_system_prompt([Message("user", "Hi")], "You are terse.")
        # [Message("system", "You are terse."), Message("user", "Hi")]
    """
    conversation = [*preset, *messages]
    if system and (not messages or messages[0].role != "system"):
        conversation.insert(0, Message("system", system))
    return conversation
