"""Chat formats llamadeck records for GGUFs that carry no template, chosen by architecture.

A base model's GGUF (the embedded Gemma 3 270M, many conversions) has no
``tokenizer.chat_template``. For an architecture whose turn format is one and
unambiguous, the store records it with ``template_source`` "llamadeck: <name>
format", so ``show --template`` shows what a chat will use and why. Such a
template is used for chats (a conversation needs turns) and with ``--raw`` off,
never for a plain ``generate``: a base model continues text as it is.

Architectures shared by families with different formats (``llama`` is Llama 2,
Llama 3, Mistral, Vicuna, ...) get none: a guessed template would be a
silently wrong prompt.

The formats are data files in :mod:`engine.templates.formats` (see there), read
once with :mod:`importlib.resources`, so they are found in a wheel as in a checkout.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

__all__ = ["KnownFormat", "known_format", "known_formats", "template_and_source"]

_FORMATS = "engine.templates.formats"  # the package holding the files, declared as package data
_INDEX = "index.json"


@dataclass(frozen=True)
class KnownFormat:
    """A built-in chat format: its name ("Gemma turn") and its Jinja template."""

    name: str
    template: str


@functools.cache
def known_formats() -> Mapping[str, KnownFormat]:
    """Every built-in format by architecture, read once from the package's data files."""
    folder = resources.files(_FORMATS)
    index = json.loads(folder.joinpath(_INDEX).read_text(encoding="utf-8"))
    texts: dict[str, str] = {}
    formats: dict[str, KnownFormat] = {}
    for architecture, entry in index.items():
        file = entry["file"]
        if file not in texts:
            texts[file] = folder.joinpath(file).read_bytes().decode("utf-8")  # bytes: no newline translation
        formats[architecture] = KnownFormat(entry["format"], texts[file])
    return formats


def known_format(architecture: str) -> KnownFormat | None:
    """The built-in format of ``architecture``, or None when it has none::

    known_format("gemma3")   # KnownFormat(name="Gemma turn", template="{{ bos_token }}...")
    """
    return known_formats().get(architecture)


def template_and_source(architecture: str, gguf_template: str | None) -> tuple[str | None, str | None]:
    """What a manifest records: the GGUF's own template ("gguf"), else the known format, else none."""
    if gguf_template:
        return gguf_template, "gguf"
    known = known_format(architecture)
    if known is None:
        return None, None
    return known.template, f"llamadeck: {known.name} format"
