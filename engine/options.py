"""Every option llamadeck accepts: names, types, ranges and defaults, in one table.

The names are Ollama's (``api/types.go``: ``Options`` and ``Runner``), so a
Modelfile PARAMETER, an HTTP request's ``options`` object and a CLI flag all
mean the same thing. They fall in two groups, as in Ollama:

* **load** options (:class:`LoadOptions`): ``num_ctx``, ``num_gpu``,
  ``num_thread``, ``num_batch``, ``num_parallel``, ``kv_cache_type``,
  ``flash_attn``. They shape the llama.cpp context, so changing one means
  loading the model again.
* **sampling** (request) options (:class:`SamplingOptions`): everything else,
  ``seed`` and ``stop`` among them. They can change with every request.

The defaults live in one place, the two dataclasses' field defaults; ``None``
there means "decided at load time" (``num_ctx``: 4096 capped at the trained
context; ``num_gpu``: the offload planner; ``num_thread``: the physical cores;
``num_parallel``: chosen from memory); the server settings (``OLLAMA_NUM_PARALLEL``,
``OLLAMA_CONTEXT_LENGTH``, ..., ``engine.server_settings``) are the layer
just above them. Values come in as JSON and Modelfiles
give them (``0.7``, ``"0.7"``, ``["a", "b"]``), are checked by
:func:`parse_options` with one one-line :class:`InvalidOption` per problem,
and are layered by :func:`merge`::

    model = parse_options(manifest.config.parameters, source="model config")
    request = parse_options({"temperature": "0.2", "num_ctx": 8192}, source="request")
    load, sampling = merge(model, conversation, request)   # later layers win

Parsed values keep Ollama's spellings (``num_gpu -1``, ``num_thread 0``) so
they can be stored and written back as PARAMETER lines unchanged; only
:func:`merge` turns those "automatic" sentinels into ``None``. This module is
pure: no llama_cpp, no I/O.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Literal, NamedTuple, cast

from engine.errors import InvalidOption
from engine.text import quoted

__all__ = [
    "KV_CACHE_TYPES",
    "LOAD_OPTIONS",
    "DRAFT_OUTPUTS",
    "MAX_DRAFT",
    "MAX_STOP_CHARS",
    "MAX_STOPS",
    "OPTIONS",
    "SAMPLING_OPTIONS",
    "UNSUPPORTED",
    "FLASH_ATTN",
    "MAX_INT",
    "FlashAttn",
    "KVCacheType",
    "LoadOptions",
    "OptionInfo",
    "SamplingOptions",
    "collect_parameters",
    "describe",
    "merge",
    "parameter_pairs",
    "parse_one",
    "parse_options",
]

KVCacheType = Literal["f16", "q8_0", "q4_0"]
FlashAttn = Literal["auto", "on", "off"]
KV_CACHE_TYPES: tuple[KVCacheType, ...] = ("f16", "q8_0", "q4_0")  # Ollama's OLLAMA_KV_CACHE_TYPE values
FLASH_ATTN: tuple[FlashAttn, ...] = ("auto", "on", "off")
MAX_SEED = 2**32 - 2  # llama.cpp's seeds are uint32; 0xFFFFFFFF is its own "random" (LLAMA_DEFAULT_SEED)
MAX_THREADS = 512  # ggml's GGML_MAX_N_THREADS: 65,536 threads crashed llama.cpp (segfault)
MAX_PARALLEL = 256  # llama.cpp's LLAMA_MAX_SEQ: a context holds at most this many sequences
MAX_INT = 2**31 - 1  # the largest count llama.cpp takes (its ints are 32-bit)
MAX_STOPS = 64  # stop strings in one layer; Ollama's library models use at most a dozen
MAX_STOP_CHARS = 1024  # characters in one stop string
MAX_DRAFT = 32  # draft_num_predict: tokens drafted per step (engine.runtime.speculation verifies them)
DRAFT_OUTPUTS = 32  # draft tokens one step verifies, all sequences together: rows of logits beyond one each


@dataclass(frozen=True)
class LoadOptions:
    """How a model is loaded: a different value means a different llama.cpp context.

    ``None`` is decided at load time, by the runtime, from the model and the machine.
    """

    num_ctx: int | None = (
        None  # tokens of context per conversation; None: 4096, capped at the trained context
    )
    num_gpu: int | None = None  # layers offloaded to the GPU; None: as many as the planner fits
    num_thread: int | None = None  # CPU threads; None: the physical cores
    num_batch: int = 512  # tokens per prompt-processing batch (Ollama's default)
    num_parallel: int | None = None  # conversations decoded together (slots); None: chosen from memory
    kv_cache_type: KVCacheType = "f16"  # q8_0/q4_0 hold ~2x/~4x the context; both need flash attention
    flash_attn: FlashAttn = "auto"  # llama.cpp's own choice unless forced


@dataclass(frozen=True)
class SamplingOptions:
    """How each token is picked and when a reply ends; may change with every request.

    Defaults are Ollama's ``api.DefaultOptions()``; mirostat's (which Ollama
    dropped in 2025) are llama.cpp's.
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    # Ollama's default since 2026-08 (it was 1.1): no penalty unless the model or the request sets one
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int = -1  # -1: a new random seed for each request
    num_predict: int = -1  # -1: until the context is full; -2: fill the context
    num_keep: int = 4  # prompt tokens kept when the context overflows (Ollama's; -1: all)
    stop: tuple[str, ...] = ()
    # speculative decoding: most tokens drafted per step (prompt lookup, or the draft model); 0: off
    draft_num_predict: int = 16


class _Refused(Exception):
    """A value does not fit its option; the spec words the message unless this says more."""

    def __init__(self, expect: str | None = None) -> None:
        super().__init__(expect)
        self.expect = expect


@dataclass(frozen=True)
class _Spec:
    name: str
    type: str  # as ``describe`` shows it: float, int, string, list of strings
    expect: str  # "must be ..." in an error message
    help: str
    load: bool
    convert: Callable[[object], object]


class OptionInfo(NamedTuple):
    """One row of :func:`describe`."""

    name: str
    type: str
    default: object  # the dataclass default; None: decided at load time (see help)
    help: str
    load: bool


# -- value conversion -------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")  # one way to match: linear time


def _number(value: object) -> float | int:
    """An int or a finite float from what JSON or a Modelfile gives: 3, 0.7, "0.7", "1e-3"."""
    if isinstance(value, bool):  # True is an int to Python, not to JSON
        raise _Refused
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER.fullmatch(text):
            raise _Refused
        try:
            return int(text)
        except ValueError:
            value = float(text)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise _Refused


def _float(
    low: float | None = None, high: float | None = None, *, above: bool = False
) -> Callable[..., float]:
    def convert(value: object) -> float:
        try:
            number = float(_number(value))
        except OverflowError:
            raise _Refused from None
        if not math.isfinite(number):
            raise _Refused
        if low is not None and (number <= low if above else number < low):
            raise _Refused
        if high is not None and number > high:
            raise _Refused
        return number

    return convert


def _int(low: int, high: int | None = None, *, also: tuple[int, ...] = ()) -> Callable[..., int]:
    """A whole number from ``low`` to ``high``, or one of ``also``; llama.cpp's ints are 32-bit."""

    def convert(value: object) -> int:
        number = _number(value)
        if isinstance(number, float):
            if not number.is_integer():
                raise _Refused
            number = int(number)
        if number in also:
            return number
        if number < low or (high is not None and number > high):
            raise _Refused
        if high is None and number > MAX_INT:
            raise _Refused(f"a whole number from {low} to {MAX_INT}")
        return number

    return convert


def _choice(choices: tuple[str, ...], booleans: Mapping[bool, str] | None = None) -> Callable[..., str]:
    words = {c: c for c in choices}
    if booleans:
        words |= {str(b).lower(): w for b, w in booleans.items()}

    def convert(value: object) -> str:
        if booleans and isinstance(value, bool):
            return booleans[value]
        if isinstance(value, str) and (word := words.get(value.strip().lower())):
            return word
        raise _Refused

    return convert


def _stop(value: object) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or len(items) > MAX_STOPS:
        raise _Refused
    if not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in items):
        raise _Refused
    return list(cast(list[str], items))


# -- the table ---------------------------------------------------------------------


def _spec(name: str, type_: str, expect: str, convert: Callable[[object], object], help_: str) -> _Spec:
    return _Spec(name, type_, expect, help_, name in _LOAD_NAMES, convert)


_LOAD_NAMES = frozenset(f.name for f in fields(LoadOptions))
_ANY_FLOAT = _float()

_SPECS: tuple[_Spec, ...] = (
    # sampling, in the order Ollama documents them
    _spec(
        "temperature",
        "float",
        "a number ≥ 0",
        _float(0),
        "Higher is more varied; 0 always picks the likeliest token.",
    ),
    _spec(
        "top_k", "int", "a whole number ≥ 0", _int(0), "Sample from the k likeliest tokens; 0: all of them."
    ),
    _spec(
        "top_p",
        "float",
        "a number from 0 to 1",
        _float(0, 1),
        "Sample from the likeliest tokens whose probabilities add up to p; 1: all.",
    ),
    _spec(
        "min_p",
        "float",
        "a number from 0 to 1",
        _float(0, 1),
        "Drop tokens less likely than p times the likeliest one; 0: off.",
    ),
    _spec("typical_p", "float", "a number from 0 to 1", _float(0, 1), "Locally typical sampling; 1: off."),
    _spec(
        "repeat_penalty",
        "float",
        "a number > 0",
        _float(0, above=True),
        "Penalise tokens seen in the last repeat_last_n; 1: off, above 1 repeats less.",
    ),
    _spec(
        "repeat_last_n",
        "int",
        "a whole number ≥ -1",
        _int(-1),
        "How many recent tokens the penalties look at; 0: off, -1: the whole context.",
    ),
    _spec(
        "presence_penalty",
        "float",
        "a finite number",
        _ANY_FLOAT,
        "Subtracted once from every token already present; 0: off.",
    ),
    _spec(
        "frequency_penalty",
        "float",
        "a finite number",
        _ANY_FLOAT,
        "Subtracted for each time a token occurred; 0: off.",
    ),
    _spec(
        "mirostat",
        "int",
        "0, 1 or 2",
        _int(0, 2),
        "Mirostat sampling, which aims at a steady surprise: 0 off, 1 v1, 2 v2.",
    ),
    _spec(
        "mirostat_tau",
        "float",
        "a number ≥ 0",
        _float(0),
        "Mirostat's target surprise; lower is more focused.",
    ),
    _spec("mirostat_eta", "float", "a number ≥ 0", _float(0), "Mirostat's learning rate."),
    _spec(
        "seed",
        "int",
        f"-1 or a whole number from 0 to {MAX_SEED}",
        _int(0, MAX_SEED, also=(-1,)),
        "Random seed: the same seed, prompt and options give the same text; -1: random.",
    ),
    _spec(
        "num_predict",
        "int",
        "a whole number ≥ 1, or -1 (until the context is full) or -2 (fill the context)",
        _int(1, also=(-1, -2)),
        "Most tokens to generate; -1: until the context is full; -2: fill the context.",
    ),
    _spec(
        "num_keep",
        "int",
        "a whole number ≥ -1",
        _int(-1),
        "Prompt tokens kept when the context overflows; -1: all.",
    ),
    _spec(
        "stop",
        "list of strings",
        f"a string or a list of up to {MAX_STOPS} non-empty strings of at most {MAX_STOP_CHARS} characters",
        _stop,
        "Stop the reply where one of these appears; several PARAMETER stop lines add up.",
    ),
    _spec(
        "draft_num_predict",
        "int",
        f"a whole number from 0 to {MAX_DRAFT}",
        _int(0, MAX_DRAFT),
        "Most tokens drafted per step for speculative decoding (prompt lookup or the DRAFT model); 0: off.",
    ),
    # load
    _spec(
        "num_ctx",
        "int",
        "a whole number ≥ 1",
        _int(1),
        "Tokens of context per conversation; default 4096, capped at what the model was trained for.",
    ),
    _spec(
        "num_gpu",
        "int",
        "a whole number ≥ -1",
        _int(-1),
        "Layers to offload to the GPU; -1 (default): as many as fit.",
    ),
    _spec(
        "num_thread",
        "int",
        f"a whole number from 0 to {MAX_THREADS}",
        _int(0, MAX_THREADS),
        "CPU threads; 0 (default): the physical cores.",
    ),
    _spec("num_batch", "int", "a whole number ≥ 1", _int(1), "Tokens per prompt-processing batch."),
    _spec(
        "num_parallel",
        "int",
        f"a whole number from 0 to {MAX_PARALLEL}",
        _int(0, MAX_PARALLEL),
        "Conversations the loaded model serves at once (OLLAMA_NUM_PARALLEL); 0 (default): from memory.",
    ),
    _spec(
        "kv_cache_type",
        "string",
        "one of " + ", ".join(KV_CACHE_TYPES),
        _choice(KV_CACHE_TYPES),
        "KV cache precision: q8_0 holds about twice the context of f16, q4_0 nearly four times; "
        "both need flash attention.",
    ),
    _spec(
        "flash_attn",
        "string",
        "auto, on or off (or true/false)",
        _choice(FLASH_ATTN, {True: "on", False: "off"}),
        "Flash attention; auto lets llama.cpp decide for the device.",
    ),
)

OPTIONS: Mapping[str, _Spec] = {s.name: s for s in _SPECS}
LOAD_OPTIONS = frozenset(s.name for s in _SPECS if s.load)
SAMPLING_OPTIONS = frozenset(s.name for s in _SPECS if not s.load)

# Names Ollama knows or knew that llamadeck does not use, each with why: a Modelfile PARAMETER or
# the CLI refuses them with this reason, an HTTP request's options ignore them with a warning
# (engine.request_options), as Ollama's server does. The first are options Ollama retired (its
# parser.deprecatedParameters and older ones); the rest are Ollama options without a meaning here.
UNSUPPORTED: Mapping[str, str] = {
    "penalize_newline": "was removed from Ollama",
    "low_vram": "was removed from Ollama",
    "f16_kv": "was removed from Ollama; use kv_cache_type",
    "logits_all": "was removed from Ollama",
    "vocab_only": "was removed from Ollama",
    "use_mlock": "was removed from Ollama",
    "tfs_z": "was removed from Ollama and llama.cpp",
    "numa": "was removed from Ollama",
    "num_gqa": "was removed from Ollama",
    "embedding_only": "was removed from Ollama",
    "rope_frequency_base": "was removed from Ollama",
    "rope_frequency_scale": "was removed from Ollama",
    "use_mmap": "is an Ollama option llamadeck does not support",
    "main_gpu": "is an Ollama option llamadeck does not support",
}

# "Automatic" values in Ollama's spelling, which LoadOptions holds as None.
_AUTOMATIC: Mapping[str, int] = {"num_gpu": -1, "num_thread": 0, "num_parallel": 0}


# -- parsing -----------------------------------------------------------------------


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
    except _Refused as refused:
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


def describe() -> list[OptionInfo]:
    """Every option with its type, default and a one-line help, for ``show --parameters`` and docs."""
    defaults = {f.name: f.default for f in (*fields(LoadOptions), *fields(SamplingOptions))}
    return [OptionInfo(s.name, s.type, defaults[s.name], s.help, s.load) for s in _SPECS]


def _text(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)  # repr: the shortest exact spelling


def parameter_pairs(layer: Mapping[str, object]) -> list[tuple[str, str]]:
    """A parsed layer as Modelfile PARAMETER ``(name, value)`` pairs, in the table's order.

    ``stop`` gives one pair per string; numbers are written so that parsing
    them again gives the same value. Quoting is the Modelfile writer's job.
    """
    layer = parse_options(layer, source="parameters")
    pairs: list[tuple[str, str]] = []
    for spec in _SPECS:
        if spec.name not in layer:
            continue
        value = layer[spec.name]
        if spec.name == "stop":
            pairs.extend(("stop", s) for s in cast(list[str], value))
        else:
            pairs.append((spec.name, _text(value)))
    return pairs
