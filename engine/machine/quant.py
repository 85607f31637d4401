"""Quantization names, the memory estimate and the choice of variant.

Everything here is a pure function of its arguments so the pick can be
tested from tables: the Hub listing and the machine probe happen elsewhere
and arrive as plain dataclasses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.errors import NoGGUFInRepo, UnknownQuant
from engine.machine.memory import Fit, Machine, estimate_memory, fit
from engine.shape import ModelShape
from engine.units import format_gib, format_size

# Best quality first. The order follows llama.cpp's own perplexity table
# (tools/quantize: Q8_0 +0.0026, Q6_K +0.0217, Q5_K_M +0.0569, Q5_K_S +0.1049,
# Q5_1 +0.1062, Q5_0 +0.1316, Q4_K_M +0.1754, Q4_K_S +0.2689, Q4_1 +0.4511,
# Q4_0 +0.4685, Q3_K_L +0.5562, Q3_K_M +0.6569, Q3_K_S +1.6321 ppl on
# Llama-3-8B) and bits per weight for the i-quants that table does not score.
# The _L / _XL variants (bartowski: embeddings and output kept at Q8_0;
# unsloth "UD-": dynamic, important layers kept wider) rank just above their
# base. IQ4_NL / IQ4_XS match Q4_K_S in practice, so they sit above the legacy
# Q4_1 / Q4_0. MXFP4 (4.25 bpw, power-of-two block scales) and NVFP4 are
# native only to a few models (gpt-oss); converted from others they are no
# better than Q4_0, so they follow it. Ternary TQ*_0 and 1-bit Q1_0 only suit
# models trained for them and come last.
QUANTS: tuple[str, ...] = (
    "F32",
    "BF16",
    "F16",
    "Q8_K_XL",
    "Q8_0",
    "Q6_K_XL",
    "Q6_K_L",
    "Q6_K",
    "Q5_K_XL",
    "Q5_K_L",
    "Q5_K_M",
    "Q5_K_S",
    "Q5_1",
    "Q5_0",
    "Q4_K_XL",
    "Q4_K_L",
    "Q4_K_M",
    "Q4_K_S",
    "IQ4_NL",
    "IQ4_XS",
    "Q4_1",
    "Q4_0",
    "NVFP4",
    "MXFP4",
    "Q3_K_XL",
    "Q3_K_L",
    "Q3_K_M",
    "IQ3_M",
    "IQ3_S",
    "IQ3_XS",
    "Q3_K_S",
    "IQ3_XXS",
    "Q2_K_XL",
    "Q2_K_L",
    "Q2_K",
    "Q2_K_S",
    "IQ2_M",
    "IQ2_S",
    "IQ2_XS",
    "IQ2_XXS",
    "IQ1_M",
    "IQ1_S",
    "TQ2_0",
    "TQ1_0",
    "Q1_0",
)

_RANK: dict[str, int] = {name: i for i, name in enumerate(QUANTS)}

# Spellings seen in file names and llama-quantize aliases for the same thing.
_ALIASES: dict[str, str] = {
    "FP32": "F32",
    "FP16": "F16",
    "Q3_K": "Q3_K_M",
    "Q4_K": "Q4_K_M",
    "Q5_K": "Q5_K_M",
    "MXFP4_MOE": "MXFP4",
}

DYNAMIC_PREFIX = "UD-"  # unsloth's "dynamic" quants: UD-Q4_K_XL, UD-IQ1_S, ...

# GGUF general.file_type (llama.cpp's llama_ftype), mirrored from
# gguf.LlamaFileType so this module needs nothing outside the standard
# library; tests/test_quant.py checks it against the installed gguf package.
_FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4",  # MOSTLY_MXFP4_MOE: files and users call it MXFP4
    39: "NVFP4",
    40: "Q1_0",
}
_FILE_TYPE_GUESSED = 1024  # llama.cpp ORs this in when the type was inferred

_SPLIT_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$", re.IGNORECASE)
_GGUF_EXT = re.compile(r"\.gguf$", re.IGNORECASE)
# A quant token: delimited by non-alphanumerics ("_" belongs to the token),
# either a k/i-quant shape (Q4_K_M, IQ4_XS, Q8_0, Q4_0_4_4, IQ4_KS_R4) or one
# of the float / special names, optionally with unsloth's UD- prefix.
_QUANT_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])"
    r"(?:(?P<ud>UD)[-_])?"
    r"(?P<quant>I?Q[1-8](?:_[A-Z0-9]{1,3})+|B?F16|F32|FP16|FP32|TQ[12]_0|MXFP4|NVFP4)"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE | re.ASCII,  # no Kelvin sign passing for a K
)


def normalize_quant(text: str) -> str:
    """Canonical spelling of a quant name, so lookups ignore case: ``q4_k_m`` -> ``Q4_K_M``.

    ``-`` is kept (``ud-q4_k_xl`` -> ``UD-Q4_K_XL``) because it is part of
    unsloth's names on the Hub.
    """
    return text.strip().upper()


def _base_quant(quant: str) -> str:
    """The quant without unsloth's UD- prefix, aliases resolved, for ranking."""
    q = normalize_quant(quant).removeprefix(DYNAMIC_PREFIX)
    return _ALIASES.get(q, q)


def quant_from_filename(filename: str) -> str | None:
    """The quant a GGUF file name announces, or None when it names none.

    Uses the last quant token of the file name (repository names can contain
    look-alikes earlier), after dropping ``.gguf`` and a ``-00001-of-00003``
    split suffix; only when the file name has none are the folders searched,
    innermost first (``Q8_0/model-00001-of-00002.gguf``).
    """
    parts = filename.replace("\\", "/").split("/")
    stem = _SPLIT_SUFFIX.sub("", _GGUF_EXT.sub("", parts[-1]))
    for text in (stem, *reversed(parts[:-1])):
        matches = list(_QUANT_TOKEN.finditer(text))
        if matches:
            last = matches[-1]
            quant = normalize_quant(last["quant"])
            quant = _ALIASES.get(quant, quant) if quant.startswith("F") else quant
            return DYNAMIC_PREFIX + quant if last["ud"] else quant
    return None


def quality_rank(quant: str) -> int:
    """Position in :data:`QUANTS` (0 = best); unknown quants rank after every known one.

    ``UD-`` variants rank with their base name; :func:`pick_variant` prefers
    them over a plain file of the same rank.
    """
    return _RANK.get(_base_quant(quant), len(QUANTS))


def quant_from_file_type(file_type: int) -> str | None:
    """Quant name for a GGUF ``general.file_type`` value, or None if unknown."""
    return _FILE_TYPES.get(file_type & ~_FILE_TYPE_GUESSED)


@dataclass(frozen=True)
class Variant:
    """One downloadable quantization of a model: its name and total size on disk."""

    quant: str
    size: int  # bytes on disk (all split parts)


@dataclass(frozen=True)
class QuantChoice:
    """The variant picked, the memory it is estimated to need, and why, for the user."""

    variant: Variant
    need: int  # estimated bytes
    reason: str


@dataclass(frozen=True)
class VariantFit:
    """A variant as ``pull --list`` shows it: its memory need here and where it would run."""

    quant: str
    size: int
    need: int  # estimated bytes to run at the default context
    fits_in: Fit  # where it would run whole: VRAM, RAM or nowhere
    recommended: bool  # what pull takes without a quant


def _best_first(v: Variant) -> tuple[int, int, int, str]:
    """Sort key: quality, then unsloth's dynamic over plain, then bigger, then name."""
    q = normalize_quant(v.quant)
    return (quality_rank(q), 0 if q.startswith(DYNAMIC_PREFIX) else 1, -v.size, q)


def _smallest_first(v: Variant) -> tuple[int, tuple[int, int, int, str]]:
    """Sort key: size, then quality."""
    return (v.size, _best_first(v))


def _available(variants: Sequence[Variant]) -> str:
    """Distinct quant names, best first, for a user-facing list."""
    names: list[str] = []
    for v in sorted(variants, key=_best_first):
        q = normalize_quant(v.quant)
        if q not in names:
            names.append(q)
    return ", ".join(names)


def _find_requested(variants: Sequence[Variant], quant: str) -> Variant:
    """The variant the user named; ``Q4_K_XL`` also finds a lone ``UD-Q4_K_XL``."""
    wanted = normalize_quant(quant)
    exact = [v for v in variants if normalize_quant(v.quant) == wanted]
    if not exact:
        exact = [v for v in variants if normalize_quant(v.quant).removeprefix(DYNAMIC_PREFIX) == wanted]
        if len({normalize_quant(v.quant) for v in exact}) != 1:
            exact = []
    if not exact:
        raise UnknownQuant(f"no {wanted} in this repository; available: {_available(variants)}")
    return min(exact, key=_best_first)


def _shortfall(need: int, machine: Machine) -> str:
    """How far short the machine falls, in the user's units."""
    text = f"needs {format_gib(need)} but only {format_gib(machine.free_ram)} free RAM"
    if machine.gpu_free_vram is not None:
        text += f" and {format_gib(machine.gpu_free_vram)} free VRAM"
    return text


def pick_variant(
    variants: Sequence[Variant],
    shape: ModelShape,
    machine: Machine,
    *,
    quant: str | None = None,
    n_ctx: int | None = None,
    projector: int = 0,
) -> QuantChoice:
    """Choose which quantization to download for this machine (with ``projector`` bytes of a vision
    projector pulled beside it, counted in every variant's need).

    An explicit ``quant`` always wins, fitting or not: the user knows best.
    Otherwise, with a GPU: the best quality up to Q8_0 that fits fully in
    VRAM (F16/BF16 double the memory and bandwidth for a gain within noise,
    so never automatically while a quant exists). On CPU, or when nothing
    fits the GPU: Q4_K_M, the usual balance of speed and quality for
    bandwidth-bound CPU decoding, or the best smaller quant that fits; if
    the repository has nothing at or below Q4_K_M, the smallest that fits.
    When nothing fits at all, the smallest variant, with the shortfall in
    the reason rather than an error, since loading may still work with swap
    or a shorter context.
    """
    if not variants:
        raise NoGGUFInRepo("this repository has no GGUF files to choose from")

    def need(v: Variant) -> int:
        return estimate_memory(v.size, shape, n_ctx, projector=projector)

    def choice(v: Variant, why: str) -> QuantChoice:
        picked = f"picked {normalize_quant(v.quant)} ({format_size(v.size)})"
        return QuantChoice(variant=v, need=need(v), reason=f"{picked}: {why}")

    ram = format_gib(machine.free_ram)
    vram = format_gib(machine.gpu_free_vram) if machine.gpu_free_vram is not None else ""

    if quant is not None:
        v = _find_requested(variants, quant)
        n = need(v)
        where_fits = fit(n, machine)
        if where_fits is Fit.VRAM:
            return choice(v, f"as requested; fits fully in {vram} free VRAM")
        if where_fits is Fit.RAM:
            where = f"too big for {vram} free VRAM" if machine.has_gpu else "CPU only"
            return choice(v, f"as requested; {where}, fits in {ram} free RAM")
        return choice(v, f"as requested; {_shortfall(n, machine)}")

    best = sorted(variants, key=_best_first)
    prefix = "CPU only, "
    if machine.has_gpu:
        q8 = quality_rank("Q8_0")
        quants = [v for v in best if quality_rank(v.quant) >= q8] or best
        for v in quants:
            if fit(need(v), machine) is Fit.VRAM:
                return choice(v, f"fits fully in {vram} free VRAM")
        prefix = f"none fits in {vram} free VRAM; "

    q4 = quality_rank("Q4_K_M")
    for v in (v for v in best if quality_rank(v.quant) >= q4):
        if need(v) <= machine.free_ram:
            return choice(v, f"{prefix}fits in {ram} free RAM")
    for v in sorted(variants, key=_smallest_first):
        if need(v) <= machine.free_ram:
            return choice(v, f"{prefix}fits in {ram} free RAM")

    smallest = min(variants, key=_smallest_first)
    return choice(smallest, f"the smallest; {_shortfall(need(smallest), machine)}")
