"""One turn of a conversation, the value every chat template renders: its own module, so that
the dispatcher (:mod:`engine.templates.render`) and each renderer import it without importing
one another.

Messages are :class:`Message` values, not dicts: the fields Ollama's ``api.Message`` has that a
template may read, checked once at the edge (:meth:`Message.of` takes the JSON shape).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidInput

__all__ = ["Message"]


@dataclass(frozen=True)
class Message:
    """One turn of a conversation, as Ollama's ``api.Message`` has it.

    ``images`` are raw bytes (the API decodes base64); ``tool_calls`` are
    ``{"function": {"name": ..., "arguments": {...}}}`` mappings as the model
    produced them; ``tool_name`` names the tool whose result a ``"tool"``
    message carries; ``thinking`` is an assistant turn's reasoning (templates
    of thinking models may print it again).
    """

    role: str
    content: str = ""
    images: tuple[bytes, ...] = ()
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    tool_name: str | None = None
    thinking: str = ""

    @classmethod
    def of(cls, raw: object, *, where: str = "message") -> Message:
        """A message from its JSON shape, checked; ``where`` ("messages[2]") starts each error.

        As Ollama does, the role is lower-cased, a null content is empty and
        fields a template cannot use (``tool_call_id``) are ignored.
        Raises :class:`InvalidInput`::

            Message.of({"role": "User", "content": "Hi"})   # Message(role="user", content="Hi")
        """
        if not isinstance(raw, Mapping):
            raise InvalidInput(f"{where} must be an object with a role and a content")
        role = raw.get("role")
        if not isinstance(role, str) or not role.strip():
            raise InvalidInput(f"{where}.role must be a non-empty string")
        content = raw.get("content")
        content = "" if content is None else content
        if not isinstance(content, str):
            raise InvalidInput(f"{where}.content must be a string")
        tool_name = raw.get("tool_name") or None
        if tool_name is not None and not isinstance(tool_name, str):
            raise InvalidInput(f"{where}.tool_name must be a string")
        tool_calls = raw.get("tool_calls") or []
        if not isinstance(tool_calls, list | tuple) or not all(isinstance(c, Mapping) for c in tool_calls):
            raise InvalidInput(f"{where}.tool_calls must be a list of objects")
        thinking = raw.get("thinking")
        thinking = "" if thinking is None else thinking
        if not isinstance(thinking, str):
            raise InvalidInput(f"{where}.thinking must be a string")
        images = raw.get("images") or []
        if not isinstance(images, list | tuple):
            raise InvalidInput(f"{where}.images must be a list of base64 strings")
        return cls(
            role.strip().lower(),
            content,
            tuple(_image(image, f"{where}.images[{i}]") for i, image in enumerate(images)),
            tuple(tool_calls),
            tool_name,
            thinking,
        )

    def for_template(self) -> dict[str, Any]:
        """The dict chat templates read: ``role`` and ``content`` always, the rest only when set.

        Reasoning goes as ``thinking`` and ``reasoning_content``. A tool
        result also carries its tool's name as ``name``, where Hugging
        Face templates look for it. Images stay out: a template places them by
        its own markers, not by their bytes.
        """
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.thinking:  # gpt-oss's template reads ``thinking``, Qwen3's ``reasoning_content``
            message["thinking"] = message["reasoning_content"] = self.thinking
        if self.tool_calls:
            message["tool_calls"] = [dict(call) for call in self.tool_calls]
        if self.tool_name is not None:
            message["tool_name"] = self.tool_name
            if self.role == "tool":
                message["name"] = self.tool_name
        return message


def _image(image: object, where: str) -> bytes:
    if isinstance(image, bytes):
        return image
    if isinstance(image, str):
        try:
            return base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise InvalidInput(f"{where} must be a base64 string")
