"""A facade call's arguments, checked at the call and turned into the request its reply runs.

``Engine.chat`` and ``Engine.generate`` take many keyword arguments (Ollama's
fields: think, format, tool_choice, logprobs, suffix, context, ...). They are
gathered into a ``ChatCall`` or ``GenerateCall`` and checked here, before any
model loads, so a bad one fails at the call with InvalidInput; what comes
out is the ``GenerationRequest`` that ``runtime.session`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.durations import parse_keep_alive
from engine.errors import InvalidInput, check_unicode
from engine.options import LoadOptions, SamplingOptions
from engine.runtime.request import check_logprobs
from engine.runtime.session import GenerationRequest
from engine.store.manifest import Manifest
from engine.templates.message import Message
from engine.templates.thinking import ThinkSetting, format_of, parse_think, think_setting

Format = str | Mapping[str, Any] | None
OptionsOf = Callable[[Manifest, Mapping[str, object] | None], tuple[LoadOptions, SamplingOptions]]


@dataclass(frozen=True)
class ChatCall:
    """``chat``'s arguments, as given."""

    reference: str  # the model as the caller named it (messages quote it so)
    messages: Sequence[Mapping[str, Any] | Message]
    options: Mapping[str, object] | None = None
    conversation: str | None = None
    tools: Sequence[Mapping[str, Any]] | None = None
    keep_alive: float | str | None = None
    think: bool | str | None = None
    format: Format = None
    tool_choice: str | Mapping[str, Any] | None = None
    logprobs: int | None = None


@dataclass(frozen=True)
class GenerateCall:
    """``generate``'s arguments, as given (Ollama's ``/api/generate`` fields)."""

    reference: str
    prompt: str
    raw: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    options: Mapping[str, object] | None = None
    keep_alive: float | str | None = None
    system: str | None = None
    think: bool | str | None = None
    suffix: str | None = None
    context: Sequence[int] | None = None
    keep_context: bool = False
    format: Format = None
    logprobs: int | None = None
    images: Sequence[bytes | str] = ()  # with the prompt: raw bytes or base64, as Ollama's ``images``


def chat_request(call: ChatCall, manifest: Manifest, options_of: OptionsOf) -> GenerationRequest:
    """The checked request of a ``chat`` call for ``manifest`` (``options_of`` layers the options)."""
    messages = [
        m if isinstance(m, Message) else Message.of(m, where=f"message {i + 1}")
        for i, m in enumerate(call.messages)
    ]
    if not messages:
        raise InvalidInput("a chat needs at least one message")
    for i, message in enumerate(messages):
        check_unicode(message.role, f"message {i + 1}'s role")
        check_unicode(message.content, f"message {i + 1}")
        check_unicode(message.thinking, f"message {i + 1}'s thinking")
    messages = _checked_images(messages, manifest, call.reference)
    if call.conversation is not None and not isinstance(call.conversation, str):
        raise InvalidInput("conversation is a key: a string such as a chat's id")
    tools = call.tools
    if tools is not None and (
        isinstance(tools, str | bytes | Mapping) or not all(isinstance(t, Mapping) for t in tools)
    ):
        raise InvalidInput("tools is a list of tool definitions (JSON objects)")
    seconds = parse_keep_alive(call.keep_alive)
    load, sampling = options_of(manifest, call.options)
    grammar, tools = _grammar(manifest, call.format, tools, call.tool_choice)
    # raw=False: a conversation needs turns, so a base model chats in the format known for it
    return GenerationRequest(
        manifest,
        messages,
        sampling,
        load,
        seconds,
        tools=tools,
        raw=False,
        conversation=call.conversation,
        think=_think(manifest, call.think, call.reference),
        grammar=grammar,
        logprobs=check_logprobs(call.logprobs),
    )


def generate_request(call: GenerateCall, manifest: Manifest, options_of: OptionsOf) -> GenerationRequest:
    """The checked request of a ``generate`` call for ``manifest``."""
    if not isinstance(call.prompt, str):
        raise InvalidInput("the prompt must be text")
    check_unicode(call.prompt, "the prompt")
    system, suffix, context = _extras(call)
    seconds = parse_keep_alive(call.keep_alive)
    merged = dict(call.options or {})
    for name, value in (
        ("num_predict", call.max_tokens),
        ("temperature", call.temperature),
        ("seed", call.seed),
    ):
        if value is not None:
            merged[name] = value
    load, sampling = options_of(manifest, merged)
    grammar, _ = _grammar(manifest, call.format, None, None)
    raw = call.raw
    images = Message.of({"role": "user", "images": list(call.images or ())}, where="the prompt").images
    messages = _checked_images([Message("user", call.prompt, images)], manifest, call.reference)
    if system and not suffix and raw is not True:  # a system turn needs turns: a base model's known format
        messages.insert(0, Message("system", system))
        raw = False if raw is None else raw
    return GenerationRequest(
        manifest,
        messages,
        sampling,
        load,
        seconds,
        raw=raw,
        think=_think(manifest, call.think, call.reference),
        suffix=suffix,
        context=context,
        keep_context=bool(call.keep_context),
        grammar=grammar,
        logprobs=check_logprobs(call.logprobs),
    )


def _extras(call: GenerateCall) -> tuple[str | None, str | None, tuple[int, ...]]:
    """The system prompt, the suffix and the context, each of its type (else InvalidInput)."""
    for name, text in (("the system prompt", call.system), ("the suffix", call.suffix)):
        if text is not None and not isinstance(text, str):
            raise InvalidInput(f"{name} must be text")
        if text:
            check_unicode(text, name)
    context = call.context or ()
    if isinstance(context, str | bytes) or not all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in context
    ):
        raise InvalidInput("context must be a list of token ids (whole numbers ≥ 0) from an earlier reply")
    return call.system or None, call.suffix or None, tuple(context)


def _checked_images(messages: list[Message], manifest: Manifest, reference: str) -> list[Message]:
    """The messages with every image decoded once and within bounds (``engine.images``), else InvalidInput.

    A model without a vision projector refuses images with Ollama's words (``NAME does not support vision``).
    """
    count = sum(len(m.images) for m in messages)
    if not count:
        return messages
    from engine.images import MAX_IMAGES, check_image

    if manifest.config.projector is None:
        raise InvalidInput(f"{reference} does not support vision")
    if count > MAX_IMAGES:
        raise InvalidInput(f"{count} images in one request: at most {MAX_IMAGES}")
    for i, message in enumerate(messages):
        for k, image in enumerate(message.images):
            check_image(image, f"message {i + 1}'s image {k + 1}" if len(messages) > 1 else f"image {k + 1}")
    return messages


def _think(manifest: Manifest, think: object, reference: str) -> ThinkSetting:
    """``think`` resolved for this model; ``"NAME" does not support thinking`` is InvalidInput."""
    return think_setting(parse_think(think), format_of(manifest), reference)


def _grammar(
    manifest: Manifest,
    format: Format,
    tools: Sequence[Mapping[str, Any]] | None,
    tool_choice: str | Mapping[str, Any] | None,
) -> tuple[str | None, Sequence[Mapping[str, Any]] | None]:
    """The grammar a request's ``format`` or forced ``tool_choice`` asks for, and the tools the model sees."""
    from engine.structured import forced_names, format_grammar, tool_call_grammar

    grammar = format_grammar(format)
    if tool_choice == "none":
        return grammar, None
    names = forced_names(tools, tool_choice)
    if names is None:
        return grammar, tools
    if grammar is not None:
        raise InvalidInput("a forced tool_choice and a format together: the reply cannot be both")
    assert tools is not None
    return tool_call_grammar(tools, names, manifest.config.template), tools
