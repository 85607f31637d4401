"""``tokenizer.ggml.pre``: llama.cpp's name for how a BPE tokenizer splits text before merging.

llama.cpp's converter finds the name by tokenizing a test text through
``transformers`` and hashing the ids; llamadeck does not run ``transformers``.
Ollama hashes the pre-tokenizer's Split regexes and knows six hashes
(``OLLAMA``, kept first). Beyond those, the pre-tokenizer's *structure* is
read here: each step of ``tokenizer.json``'s ``pre_tokenizer`` becomes the
regex llama.cpp would split with (a Split's own regex; ``Digits`` is
``\\p{N}`` or ``\\p{N}+``; a ``ByteLevel`` that splits is GPT-2's regex), and
the list is compared with the regexes llama.cpp's ``llama-vocab.cpp`` uses for
each name (``KNOWN``, written from the tokenizer.json regexes it quotes).
Two spellings of one regex are the same here: ``(?i:'s|'t|…)`` and llama.cpp's
``(?:'[sS]|'[tT]|…)``, a literal CR/LF and ``\\r``/``\\n``.

Several names share one regex list and differ only in detokenizer flags
(``clean_spaces``, ``ignore_merges``); each list maps to the name of the
model family the converter sees most (``smollm`` for digits + GPT-2,
a llama-architecture model). Anything else is ``default``, with a warning in
the log naming what was not recognized.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from engine.text import one_line

log = logging.getLogger("llamadeck.engine.convert")

# sha256 of the concatenated Split regexes -> name (Ollama's convert/tokenizer.go)
OLLAMA = {
    "d98f9631be1e9607a9848c26c1f9eac1aa9fc21ac6ba82a2fc0741af9780a48f": "llama-bpe",
    "03df5c5863ad70781dcfdef491ead25140f895fe8010964be0daefe27be32b02": "deepseek-llm",
    "21cde974d587f0d54dc8d56b183cc1e6239600172035c68fbd6d4b9f8da0576e": "deepseek-coder",
    "1ff7f41064896984db5d1bb6ff64fa4bc29007d08c1b439e505b7392777a319e": "qwen2",
    "00431aed57e696b747435f734d1e3b9b1bfd931a121fb5cac7129e97c181e9ba": "qwen35",
    "b92c0824a58e1d8dc3221cf3e12c433c3a86f57e46d57229993489f0798e7702": "laguna",
}

_CONTRACTIONS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
_CONTRACTIONS_LLAMA_CPP = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_SPACES = r"|\s*[\r\n]+|\s+(?!\S)|\s+"
_WORD = r"[^\r\n\p{L}\p{N}]?\p{L}+"
_PUNCT = r" ?[^\s\p{L}\p{N}]+[\r\n]*"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = rf"{_CONTRACTIONS}|{_WORD}|\p{{N}}{{1,3}}|{_PUNCT}{_SPACES}"
QWEN2 = rf"{_CONTRACTIONS}|{_WORD}|\p{{N}}|{_PUNCT}{_SPACES}"
_UPPER, _LOWER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
_TAIL = r"| ?[^\s\p{L}\p{N}]+[\r\n/]*" + _SPACES
TEKKEN = rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*|\p{{N}}{_TAIL}"
GPT4O = (
    rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+{_CONTRACTIONS}?|"
    rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*{_CONTRACTIONS}?|\p{{N}}{{1,3}}{_TAIL}"
)
_DEEPSEEK3_WORDS = (
    "[!\"#$%&'()*+,"
    r"\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
    r"| ?[\p{P}\p{S}]+[\r\n]*" + _SPACES
)
_JAIS2_SPACES = "|".join(rf"\s{{{n}}}(?!\S)" for n in (512, 256, 128, 64, 32, 16, 8, 4))
_JAIS2_SPACES += r"|\s{1,2}(?!\S)|\s{1}"

# name -> the regexes llama.cpp splits with, in order, as tokenizer.json spells them
KNOWN: dict[str, tuple[str, ...]] = {
    "llama-bpe": (LLAMA3,),
    "qwen2": (QWEN2,),
    "qwen35": (rf"{_CONTRACTIONS}|[^\r\n\p{{L}}\p{{N}}]?[\p{{L}}\p{{M}}]+|\p{{N}}"
               rf"| ?[^\s\p{{L}}\p{{M}}\p{{N}}]+[\r\n]*{_SPACES}",),
    "tekken": (TEKKEN,),
    "gpt-4o": (GPT4O,),
    "tiny_aya": (r"\d{1,3}(?=(?:\d{3})*\b)", GPT4O),
    "deepseek-v3": (r"\p{N}{1,3}", "[一-龥\u3040-ゟ゠-ヿ]+", _DEEPSEEK3_WORDS),
    "smollm": (r"\p{N}", GPT2),  # StarCoder, Refact, Command-R share these regexes
    "gpt-2": (GPT2,),
    "jais-2": (rf"{_CONTRACTIONS}|{_WORD}|\p{{N}}{{1,3}}|{_PUNCT}|\s*[\r\n]+|{_JAIS2_SPACES}",),
    "minicpm5": (r"\p{N}{1,3}", rf"{_CONTRACTIONS}|{_WORD}|\p{{N}}+|{_PUNCT}{_SPACES}"),
    "seed-coder": (rf"{_CONTRACTIONS}|{_WORD}|\p{{N}}{{1}}| ?[^\s\p{{L}}\p{{N}}\r\n]+{_SPACES}",),
    "bailingmoe": (r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*"
                   r"|\s*[\r\n]|\s+(?!\S)|\s+",),
    "exaone-moe": (rf"{_CONTRACTIONS}|[^\r\n\p{{L}}\p{{N}}]?(?:\p{{L}}\p{{M}}*(?: \p{{L}}\p{{M}}*)*)+|\p{{N}}"
                   r"| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+",),
}  # fmt: skip


def _canonical(regex: str) -> str:
    """One spelling for regexes that split alike: llama.cpp's contractions, escaped CR and LF."""
    return regex.replace(_CONTRACTIONS_LLAMA_CPP, _CONTRACTIONS).replace("\r", r"\r").replace("\n", r"\n")


_BY_REGEXES = {tuple(_canonical(r) for r in regexes): name for name, regexes in KNOWN.items()}


def steps(pre: Any) -> list[str] | None:
    """The regexes ``pre`` (tokenizer.json's ``pre_tokenizer``) splits with, in order; None when a step
    is one llama.cpp has no regex for (Metaspace, Whitespace, Punctuation, ...)."""
    if pre is None:
        return []
    if not isinstance(pre, dict):
        return None
    kind = pre.get("type")
    if kind == "Sequence":
        parts = pre.get("pretokenizers")
        if not isinstance(parts, list):
            return None
        found: list[str] = []
        for part in parts:
            regexes = steps(part) if isinstance(part, dict) and part.get("type") != "Sequence" else None
            if regexes is None:
                return None
            found += regexes
        return found
    if kind == "Split":
        pattern = pre.get("pattern")
        regex = pattern.get("Regex") if isinstance(pattern, dict) else None
        return [regex] if isinstance(regex, str) and regex and not pre.get("invert") else None
    if kind == "Digits":
        return [r"\p{N}" if pre.get("individual_digits") else r"\p{N}+"]
    if kind == "ByteLevel":
        return [GPT2] if pre.get("use_regex", True) else []
    return None


def pre_tokenizer(tokenizer: dict[str, Any]) -> str:
    """llama.cpp's name for ``tokenizer``'s (tokenizer.json's) pre-tokenizer; ``default`` when unknown."""
    pre = tokenizer.get("pre_tokenizer")
    digest = hashlib.sha256()
    parts = pre.get("pretokenizers") if isinstance(pre, dict) else None
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, dict) and part.get("type") == "Split":
            regex = part.get("pattern", {}).get("Regex") if isinstance(part.get("pattern"), dict) else None
            if isinstance(regex, str) and regex:
                digest.update(regex.encode())
    if (name := OLLAMA.get(digest.hexdigest())) is not None:
        return name
    regexes = steps(pre)
    if regexes is not None and (name := _BY_REGEXES.get(tuple(map(_canonical, regexes)))) is not None:
        return name
    if regexes == []:
        return "default"  # no pre-tokenizer at all: llama.cpp's default split is what it asks for
    what = one_line(str(pre.get("type") if isinstance(pre, dict) else pre), 40)
    log.warning(
        "tokenizer.json's pre-tokenizer (%s, %s) is not one llama.cpp names: tokenizer.ggml.pre is "
        "'default', so text may be split into other tokens than the model was trained on",
        what,
        "; ".join(one_line(r, 60) for r in regexes or []) or "no regexes",
    )
    return "default"
