"""Options as Ollama's HTTP API takes them: lenient about names, strict about JSON types.

Ollama's server (``api/types.go``, ``Options.FromMap``) skips a null value
and ignores a name it does not know with a warning in its log ("invalid
option provided"), while its Modelfile parser refuses unknown PARAMETERs.
Clients rely on that leniency: LangChain's ``OllamaEmbeddings`` sends every
option it has on every call, most of them null and ``tfs_z`` (retired in
2024) among them; other clients still send ``penalize_newline``, ``numa``,
``low_vram``, ``f16_kv`` and the like.

:func:`request_options` does the same over llamadeck's own table
(:mod:`engine.options`): nulls are skipped, names the table does not have
(retired, unknown, or Ollama options llamadeck cannot honour such as
``use_mmap``) are left out and named in one warning per request on the
``llamadeck.engine.options`` logger. What stays strict, as in Ollama, is the
JSON type of an option llamadeck knows: ``"temperature": "0.7"`` is refused
(Ollama: ``option "temperature" must be of type float32``), and so is a
value out of range. The options llamadeck adds to Ollama's current set
(``mirostat``, ``num_parallel``, ``kv_cache_type``, ``flash_attn``) are honoured.

The CLI, the TUI and Modelfiles keep :func:`engine.option_parsing.parse_options`,
which refuses an unknown name with a suggestion: a person's typo is worth an error.

    request_options({"temperature": 0.2, "tfs_z": None, "numa": False})
    # {"temperature": 0.2}; logged: ignoring options llamadeck does not use (from request): 'tfs_z', 'numa'
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from engine.errors import InvalidOption
from engine.option_parsing import parse_one
from engine.options import OPTIONS, UNSUPPORTED
from engine.text import quoted

__all__ = ["request_options"]

log = logging.getLogger("llamadeck.engine.options")

_NUMBER_TYPES = frozenset({"int", "float"})
_NAMES_SHOWN = 12  # ignored names quoted in the warning; the rest are counted
_NAME_CHARS = 40  # characters of one ignored name in the warning


def _json_type(value: object) -> str:
    """The JSON type of ``value`` in words, for "must be a number, not a string"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {quoted(value, 40)}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _name(name: object) -> str:
    text = quoted(name, _NAME_CHARS) if isinstance(name, str) else quoted(repr(name), _NAME_CHARS)
    reason = UNSUPPORTED.get(name) if isinstance(name, str) else None
    return f"{text} ({reason})" if reason else text


def request_options(raw: object, *, source: str = "request") -> dict[str, object]:
    """The options of a request's ``options`` object that llamadeck uses, checked and converted.

    ``None`` (no ``options``) is no options. Raises :class:`InvalidOption`
    when ``raw`` is not an object, when a known option's value has the wrong
    JSON type (a string or a boolean where a number goes, as Ollama refuses
    it) or is out of range. Unknown and retired names are ignored, with one
    warning naming them all (control characters escaped: the names are the
    client's text).
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidOption(f"options must be an object of name: value (from {source})")
    kept: dict[str, object] = {}
    ignored: list[object] = []
    for name, value in raw.items():
        spec = OPTIONS.get(name) if isinstance(name, str) else None
        if spec is None:
            ignored.append(name)  # as Ollama: named in the log even when its value is null
            continue
        if value is None:
            continue
        if spec.type in _NUMBER_TYPES and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidOption(f"{name} must be a number, not {_json_type(value)} (from {source})")
        kept[name] = parse_one(name, value, source=source)
    if ignored:
        shown = ", ".join(_name(n) for n in ignored[:_NAMES_SHOWN])
        more = f" and {len(ignored) - _NAMES_SHOWN} more" if len(ignored) > _NAMES_SHOWN else ""
        log.warning("ignoring options llamadeck does not use (from %s): %s%s", source, shown, more)
    return kept
