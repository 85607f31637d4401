"""OpenAI's reasoning fields as Ollama's OpenAI layer maps them to ``think`` (``openai/openai.go``).

``reasoning_effort`` (or ``reasoning: {"effort": ...}``, which wins) becomes
``think``: "none" is false, "minimal" low, "xhigh" and "ultra" max, the rest
as they are; no effort leaves thinking at the model's default. A message's
``reasoning`` (Ollama's name; DeepSeek's clients send ``reasoning_content``)
is the reasoning of an earlier assistant turn.

    think_of({"reasoning_effort": "minimal"})   # "low"
"""

from __future__ import annotations

from typing import Any

from api.errors import APIError

EFFORTS: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
    "xhigh": "max",
    "ultra": "max",
}
REASONING_EFFORT: dict[str, Any] = {"enum": list(EFFORTS)}


def think_of(data: dict[str, Any]) -> bool | str | None:
    """The ``think`` a chat completion asks for, None for the model's default; a 400 for an unknown effort."""
    effort: object = None
    reasoning = data.get("reasoning")
    if isinstance(reasoning, dict):
        effort = reasoning.get("effort")
    elif reasoning is not None:
        raise APIError(400, 'reasoning must be an object such as {"effort": "low"}')
    if effort is None:
        effort = data.get("reasoning_effort")
    if effort is None or effort == "":
        return None
    if not isinstance(effort, str) or effort not in EFFORTS:
        shown = effort[:40] if isinstance(effort, str) else type(effort).__name__
        raise APIError(
            400,
            f'invalid reasoning value: "{shown}" (must be "minimal", "low", "medium", "high", "xhigh", '
            '"ultra", "max", or "none")',
        )
    return EFFORTS[effort]


def reasoning_of(message: dict[str, Any], where: str) -> str:
    """An earlier assistant turn's reasoning, from ``reasoning`` or ``reasoning_content``."""
    value = message.get("reasoning")
    if value is None:
        value = message.get("reasoning_content")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise APIError(400, f"{where}.reasoning must be a string")
    return value
