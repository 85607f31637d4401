"""Structured outputs: grammars that make a reply JSON, JSON valid against a schema, or a tool call.

Front ends ask through the facade (``Engine.chat(..., format=...)``,
``tool_choice=...``); the grammar is made here as GBNF text, carried in the
scheduler's ``Request`` (plain, picklable data), and compiled per sequence
by the scheduler's sampler (``engine.runtime.llama.grammar``), so a
constrained request and a free one decode in the same batch.

- ``schema.py``: JSON Schema -> GBNF, every validation keyword enforced or refused (``UnsupportedSchema``);
- ``numbers.py``: bounded numbers; ``formats.py``: string formats and the generic JSON rules;
- ``tools.py``: a forced tool call in the model's own call format;
- ``gbnf.py``: writing GBNF, with the size and repetition limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import InvalidInput
from engine.structured.schema import json_grammar, schema_grammar
from engine.structured.tools import call_style, forced_names, tool_call_grammar

__all__ = [
    "call_style",
    "forced_names",
    "format_grammar",
    "json_grammar",
    "schema_grammar",
    "tool_call_grammar",
]


def format_grammar(format: object) -> str | None:
    """The grammar of Ollama's ``format``: ``"json"`` (any JSON object) or a JSON schema; None for none.

    Raises InvalidInput for anything else, and UnsupportedSchema (a 400)
    naming what a schema holds that llamadeck cannot enforce.
    """
    if format is None or format == "":
        return None
    if format == "json":
        return json_grammar()
    if isinstance(format, Mapping):
        schema: Any = format
        return schema_grammar(schema)
    raise InvalidInput('format must be "json" or a JSON schema (an object)')
