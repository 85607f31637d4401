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
just above them.

Values are checked and layered by ``engine.option_parsing``
(``parse_options``, ``merge``) with the converters of
``engine.option_values``; this module is the table itself and is pure: no
llama_cpp, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Literal, NamedTuple, cast

from engine.option_values import Refused, choice, float_in, int_in

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
    "FlashAttn",
    "KVCacheType",
    "LoadOptions",
    "OptionInfo",
    "SamplingOptions",
    "describe",
]

KVCacheType = Literal["f16", "q8_0", "q4_0"]
FlashAttn = Literal["auto", "on", "off"]
KV_CACHE_TYPES: tuple[KVCacheType, ...] = ("f16", "q8_0", "q4_0")  # Ollama's OLLAMA_KV_CACHE_TYPE values
FLASH_ATTN: tuple[FlashAttn, ...] = ("auto", "on", "off")
MAX_SEED = 2**32 - 2  # llama.cpp's seeds are uint32; 0xFFFFFFFF is its own "random" (LLAMA_DEFAULT_SEED)
MAX_THREADS = 512  # ggml's GGML_MAX_N_THREADS: 65,536 threads crashed llama.cpp (segfault)
MAX_PARALLEL = 256  # llama.cpp's LLAMA_MAX_SEQ: a context holds at most this many sequences
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


def _stop(value: object) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or len(items) > MAX_STOPS:
        raise Refused
    if not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in items):
        raise Refused
    return list(cast(list[str], items))


# -- the table ---------------------------------------------------------------------


def _spec(name: str, type_: str, expect: str, convert: Callable[[object], object], help_: str) -> _Spec:
    return _Spec(name, type_, expect, help_, name in _LOAD_NAMES, convert)


_LOAD_NAMES = frozenset(f.name for f in fields(LoadOptions))
_ANY_FLOAT = float_in()

_SPECS: tuple[_Spec, ...] = (
    # sampling, in the order Ollama documents them
    _spec(
        "temperature",
        "float",
        "a number ≥ 0",
        float_in(0),
        "Higher is more varied; 0 always picks the likeliest token.",
    ),
    _spec(
        "top_k", "int", "a whole number ≥ 0", int_in(0), "Sample from the k likeliest tokens; 0: all of them."
    ),
    _spec(
        "top_p",
        "float",
        "a number from 0 to 1",
        float_in(0, 1),
        "Sample from the likeliest tokens whose probabilities add up to p; 1: all.",
    ),
    _spec(
        "min_p",
        "float",
        "a number from 0 to 1",
        float_in(0, 1),
        "Drop tokens less likely than p times the likeliest one; 0: off.",
    ),
    _spec("typical_p", "float", "a number from 0 to 1", float_in(0, 1), "Locally typical sampling; 1: off."),
    _spec(
        "repeat_penalty",
        "float",
        "a number > 0",
        float_in(0, above=True),
        "Penalise tokens seen in the last repeat_last_n; 1: off, above 1 repeats less.",
    ),
    _spec(
        "repeat_last_n",
        "int",
        "a whole number ≥ -1",
        int_in(-1),
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
        int_in(0, 2),
        "Mirostat sampling, which aims at a steady surprise: 0 off, 1 v1, 2 v2.",
    ),
    _spec(
        "mirostat_tau",
        "float",
        "a number ≥ 0",
        float_in(0),
        "Mirostat's target surprise; lower is more focused.",
    ),
    _spec("mirostat_eta", "float", "a number ≥ 0", float_in(0), "Mirostat's learning rate."),
    _spec(
        "seed",
        "int",
        f"-1 or a whole number from 0 to {MAX_SEED}",
        int_in(0, MAX_SEED, also=(-1,)),
        "Random seed: the same seed, prompt and options give the same text; -1: random.",
    ),
    _spec(
        "num_predict",
        "int",
        "a whole number ≥ 1, or -1 (until the context is full) or -2 (fill the context)",
        int_in(1, also=(-1, -2)),
        "Most tokens to generate; -1: until the context is full; -2: fill the context.",
    ),
    _spec(
        "num_keep",
        "int",
        "a whole number ≥ -1",
        int_in(-1),
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
        int_in(0, MAX_DRAFT),
        "Most tokens drafted per step for speculative decoding (prompt lookup or the DRAFT model); 0: off.",
    ),
    # load
    _spec(
        "num_ctx",
        "int",
        "a whole number ≥ 1",
        int_in(1),
        "Tokens of context per conversation; default 4096, capped at what the model was trained for.",
    ),
    _spec(
        "num_gpu",
        "int",
        "a whole number ≥ -1",
        int_in(-1),
        "Layers to offload to the GPU; -1 (default): as many as fit.",
    ),
    _spec(
        "num_thread",
        "int",
        f"a whole number from 0 to {MAX_THREADS}",
        int_in(0, MAX_THREADS),
        "CPU threads; 0 (default): the physical cores.",
    ),
    _spec("num_batch", "int", "a whole number ≥ 1", int_in(1), "Tokens per prompt-processing batch."),
    _spec(
        "num_parallel",
        "int",
        f"a whole number from 0 to {MAX_PARALLEL}",
        int_in(0, MAX_PARALLEL),
        "Conversations the loaded model serves at once (OLLAMA_NUM_PARALLEL); 0 (default): from memory.",
    ),
    _spec(
        "kv_cache_type",
        "string",
        "one of " + ", ".join(KV_CACHE_TYPES),
        choice(KV_CACHE_TYPES),
        "KV cache precision: q8_0 holds about twice the context of f16, q4_0 nearly four times; "
        "both need flash attention.",
    ),
    _spec(
        "flash_attn",
        "string",
        "auto, on or off (or true/false)",
        choice(FLASH_ATTN, {True: "on", False: "off"}),
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


def describe() -> list[OptionInfo]:
    """Every option with its type, default and a one-line help, for ``show --parameters`` and docs."""
    defaults = {f.name: f.default for f in (*fields(LoadOptions), *fields(SamplingOptions))}
    return [OptionInfo(s.name, s.type, defaults[s.name], s.help, s.load) for s in _SPECS]
