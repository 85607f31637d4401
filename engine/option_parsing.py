"""Reading options where users give them, and layering them: requests, Modelfiles, model configs.

Values come in as JSON and Modelfiles give them (``0.7``, ``"0.7"``,
``["a", "b"]``), are checked by :func:`parse_options` against the table of
``engine.options`` with one one-line :class:`InvalidOption` per problem, and
are layered by :func:`merge`::

    model = parse_options(manifest.config.parameters, source="model config")
    request = parse_options({"temperature": "0.2", "num_ctx": 8192}, source="request")
    load, sampling = merge(model, conversation, request)   # later layers win

Parsed values keep Ollama's spellings (``num_gpu -1``, ``num_thread 0``) so
they can be stored and written back as PARAMETER lines unchanged
(:func:`parameter_pairs`); only :func:`merge` turns those "automatic"
sentinels into ``None``. Pure: no llama_cpp, no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import cast

from engine.errors import InvalidOption
from engine.option_values import Refused
from engine.options import (
    LOAD_OPTIONS,
    MAX_STOPS,
    OPTIONS,
    SAMPLING_OPTIONS,
    UNSUPPORTED,
    LoadOptions,
    SamplingOptions,
)
from engine.text import quoted

# "Automatic" values in Ollama's spelling, which LoadOptions holds as None.
_AUTOMATIC: Mapping[str, int] = {"num_gpu": -1, "num_thread": 0, "num_parallel": 0}


def _show(value: object, limit: int = 40) -> str:
    """A value as a user typed it, on one printable line (it may come from a file); text is ``quoted``."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int | float):
        return repr(value)[:limit]
    if isinstance(value, list | tuple):
        shown = ", ".join(_show(item, 20) for item in value[:3])
        return f"[{shown}{', ...' if len(value) > 3 else ''}]"
    if isinstance(value, Mapping):
        return "an object"
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    return quoted(value, limit)


def _unknown(name: str, source: str) -> InvalidOption:
    if name in UNSUPPORTED:
        return InvalidOption(f"{name} {UNSUPPORTED[name]}: remove it (from {source})")
    lowered = {n.lower(): n for n in OPTIONS}
    close = difflib.get_close_matches(name.lower(), lowered, n=1, cutoff=0.6)
    hint = (
        f"did you mean {close and lowered[close[0]]}?" if close else "the options are " + ", ".join(OPTIONS)
    )
    return InvalidOption(f"unknown option {_show(name)} (from {source}): {hint}")


def parse_one(name: object, value: object, *, source: str) -> object:
    """One option's value, checked and converted (floats as float, ints as int, stop as a list).

    Raises :class:`InvalidOption` naming the option, what it must be, the
    value and ``source``::

        parse_one("temperature", "0.7", source="Modelfile line 3")   # 0.7
    """
    if not isinstance(name, str):
        raise InvalidOption(f"option names must be strings, not {_show(name)} (from {source})")
    spec = OPTIONS.get(name)
    if spec is None:
        raise _unknown(name, source)
    try:
        return spec.convert(value)
    except Refused as refused:
        expect = refused.expect or spec.expect
        raise InvalidOption(f"{name} must be {expect}, not {_show(value)} (from {source})") from None


def parse_options(raw: Mapping[str, object], *, source: str) -> dict[str, object]:
    """The options in ``raw``, checked and converted; raises :class:`InvalidOption` at the first bad one.

    ``source`` says where they came from and ends each message: "request",
    "Modelfile line 3", "model config". Accepts what JSON and Modelfiles give:
    numbers as int, float or string, whole floats for ints (``40.0``),
    booleans or ``true``/``false`` for ``flash_attn``, ``stop`` as a string
    or a list. ``None`` values are skipped, as Ollama skips JSON nulls. NaN,
    infinities, fractions for ints, values out of range and unknown names are
    refused; an unknown name gets the closest known one as a suggestion::

        parse_options({"temprature": 1}, source="request")
        # InvalidOption: unknown option 'temprature' (from request): did you mean temperature?
    """
    if not isinstance(raw, Mapping):
        raise InvalidOption(f"options must be an object of name: value, not {_show(raw)} (from {source})")
    return {name: parse_one(name, value, source=source) for name, value in raw.items() if value is not None}


def collect_parameters(entries: Iterable[tuple[str, object, str]]) -> dict[str, object]:
    """A Modelfile's PARAMETER lines, ``(name, value, source)`` each, as one layer of options.

    Each line is checked with its own source ("Modelfile line 7"). As in
    Ollama's parser, several ``stop`` lines add up, in order; any other
    option given twice keeps the later value::

        collect_parameters([("stop", "<|im_end|>", "line 3"), ("stop", "<|im_start|>", "line 4")])
        # {"stop": ["<|im_end|>", "<|im_start|>"]}
    """
    layer: dict[str, object] = {}
    for name, value, source in entries:
        parsed = parse_one(name, value, source=source)
        if name == "stop":
            stops = cast(list[str], layer.get("stop", [])) + cast(list[str], parsed)
            if len(stops) > MAX_STOPS:
                raise InvalidOption(f"stop may be given at most {MAX_STOPS} times (from {source})")
            layer["stop"] = stops
        else:
            layer[name] = parsed
    return layer


def merge(*layers: Mapping[str, object]) -> tuple[LoadOptions, SamplingOptions]:
    """The options in effect: the built-in defaults, then each layer in turn, later layers winning.

    Pass the layers in Ollama's order: the model's Modelfile PARAMETERs
    (``manifest.config.parameters``), then the conversation's, then the
    request's. Each layer is a mapping as :func:`parse_options` returns it
    (checked again here, which is cheap, so an unchecked mapping cannot slip
    through). ``stop`` from a later layer replaces the earlier list, as
    Ollama's ``Options.FromMap`` does. Ollama's "automatic" values
    (``num_gpu -1``, ``num_thread 0``, ``num_parallel 0``) become ``None``.
    """
    values: dict[str, object] = {}
    for layer in layers:
        values.update(parse_options(layer, source="merged options"))
    load = {k: v for k, v in values.items() if k in LOAD_OPTIONS}
    for name, automatic in _AUTOMATIC.items():
        if load.get(name) == automatic:
            load[name] = None
    sampling = {k: v for k, v in values.items() if k in SAMPLING_OPTIONS}
    if "stop" in sampling:
        sampling["stop"] = tuple(cast(list[str], sampling["stop"]))
    return LoadOptions(**load), SamplingOptions(**sampling)  # type: ignore[arg-type]


def _text(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)  # repr: the shortest exact spelling


def parameter_pairs(layer: Mapping[str, object]) -> list[tuple[str, str]]:
    """A parsed layer as Modelfile PARAMETER ``(name, value)`` pairs, in the table's order.

    ``stop`` gives one pair per string; numbers are written so that parsing
    them again gives the same value. Quoting is the Modelfile writer's job.
    """
    layer = parse_options(layer, source="parameters")
    pairs: list[tuple[str, str]] = []
    for spec in OPTIONS.values():
        if spec.name not in layer:
            continue
        value = layer[spec.name]
        if spec.name == "stop":
            pairs.extend(("stop", s) for s in cast(list[str], value))
        else:
            pairs.append((spec.name, _text(value)))
    return pairs


__all__ = ["collect_parameters", "merge", "parameter_pairs", "parse_one", "parse_options"]
