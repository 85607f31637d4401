"""``tokenizer.ggml.pre`` from tokenizer.json's pre-tokenizer: the shapes published models ship.

Each snippet is a ``pre_tokenizer`` as it appears in the model's
``tokenizer.json`` (JSON escapes and all), written from the published files'
definitions; the name is the one llama.cpp's converter gives that model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from gguf import GGUFReader

from engine.convert.pretokenizer import pre_tokenizer
from engine.convert.writer import convert_folder
from engine.runtime.llama.model import Model
from tests.support.hf_tiny import write_tiny_hf

_BYTES = r'{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}'


def _split(*regexes: str) -> str:
    splits = [
        rf'{{"type": "Split", "pattern": {{"Regex": "{r}"}}, "behavior": "Isolated", "invert": false}}'
        for r in regexes
    ]
    return '{"type": "Sequence", "pretokenizers": [' + ", ".join([*splits, _BYTES]) + "]}"


TEKKEN = (  # Mistral NeMo, Mistral Small 3.x, Ministral
    r"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    r"|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    r"|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
GPT4O = (  # o200k's split, as Llama 4, Phi-4-mini and others ship it
    r"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    r"|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)
DEEPSEEK_V3 = _split(  # DeepSeek V3 / R1: digits, CJK, then words; JSON carries CR and LF as \r \n escapes
    r"\\p{N}{1,3}",
    r"[一-龥\u3040-ゟ゠-ヿ]+",
    r"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    r"| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
)
SMOLLM = (  # SmolLM/SmolLM2, StarCoder 2, Command-R: single digits, then GPT-2's byte-level split
    r'{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, '
    r'{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]}'
)
GPT2 = r'{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}'

SHAPES = {
    "tekken": _split(TEKKEN),
    "gpt-4o": _split(GPT4O),
    "tiny_aya": _split(r"\\d{1,3}(?=(?:\\d{3})*\\b)", GPT4O),
    "llama-bpe": _split(LLAMA3),
    "llama-bpe, llama.cpp's spelling": _split(
        LLAMA3.replace(
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
        )
    ),
    "deepseek-v3": DEEPSEEK_V3,
    "smollm": SMOLLM,
    "gpt-2": GPT2,
    "qwen2": _split(LLAMA3.replace(r"\\p{N}{1,3}", r"\\p{N}")),
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_a_published_shape_gets_llama_cpps_name(shape: str, caplog: pytest.LogCaptureFixture) -> None:
    pre = json.loads(SHAPES[shape])
    with caplog.at_level(logging.WARNING, "llamadeck.engine.convert"):
        assert pre_tokenizer({"pre_tokenizer": pre}) == shape.split(",")[0]
    assert not caplog.records


METASPACE = r'{"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": false}'
UNKNOWN = {
    "metaspace": METASPACE,
    "an unknown regex": _split(r"\\p{L}+|\\p{N}+"),
    "a known regex, inverted": _split(TEKKEN).replace('"invert": false', '"invert": true'),
    "a known regex after an unknown step": '{"type": "Sequence", "pretokenizers": ['
    + METASPACE
    + ", "
    + _split(TEKKEN)[len('{"type": "Sequence", "pretokenizers": [') :],
}


@pytest.mark.parametrize("shape", UNKNOWN, ids=list(UNKNOWN))
def test_an_unknown_shape_is_default_with_a_note_in_the_log(
    shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "llamadeck.engine.convert"):
        assert pre_tokenizer({"pre_tokenizer": json.loads(UNKNOWN[shape])}) == "default"
    [record] = caplog.records
    assert "tokenizer.ggml.pre is 'default'" in record.getMessage()


def test_no_pre_tokenizer_is_default_without_a_note(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "llamadeck.engine.convert"):
        assert pre_tokenizer({"pre_tokenizer": None}) == "default"
        assert pre_tokenizer({}) == "default"
    assert not caplog.records


@pytest.mark.parametrize("pre", [[], "Split", {"type": "Sequence", "pretokenizers": "x"}, {"type": 3}])
def test_a_malformed_pre_tokenizer_is_default(pre: object) -> None:
    assert pre_tokenizer({"pre_tokenizer": pre}) == "default"


@pytest.mark.parametrize("shape", ["tekken", "gpt-4o", "tiny_aya", "deepseek-v3", "smollm"])
def test_llama_cpp_loads_the_name_and_splits_with_it(tmp_path: Path, shape: str) -> None:
    folder = write_tiny_hf(tmp_path / "m", "llama")
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["pre_tokenizer"] = json.loads(SHAPES[shape])
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    converted = convert_folder(folder, tmp_path / "m.gguf")
    assert bytes(GGUFReader(converted.path).fields["tokenizer.ggml.pre"].parts[-1]).decode() == shape
    model = Model.load(converted.path, n_gpu_layers=0)  # llama.cpp refuses a name it does not know
    try:
        ids = model.tokenize("Hello world 12345", add_special=False, parse_special=False)
        assert model.detokenize(ids) == "Hello world 12345"
    finally:
        model.free()
