"""The option table: Ollama's names and defaults, one clear error per bad value, layers merged in order."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import pytest

from engine import option_parsing, option_values, options
from engine.errors import InvalidInput, InvalidOption
from engine.option_parsing import collect_parameters, merge, parameter_pairs, parse_options
from engine.options import (
    LOAD_OPTIONS,
    MAX_STOPS,
    OPTIONS,
    SAMPLING_OPTIONS,
    UNSUPPORTED,
    LoadOptions,
    SamplingOptions,
    describe,
)

# -- defaults ----------------------------------------------------------------------

# Ollama's api.DefaultOptions() (api/types.go, 2026-08: repeat_penalty 1.0) and Runner; mirostat's are
# llama.cpp's (Ollama dropped mirostat in 2025); None: decided at load time.
DEFAULTS = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_penalty": 1.0,
    "repeat_last_n": 64,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "mirostat": 0,
    "mirostat_tau": 5.0,
    "mirostat_eta": 0.1,
    "seed": -1,
    "num_predict": -1,
    "num_keep": 4,
    "stop": (),
    "draft_num_predict": 16,  # Ollama: 4 with a draft model, else 0; lookup drafts for every model here
    "num_ctx": None,
    "num_gpu": None,
    "num_thread": None,
    "num_batch": 512,
    "num_parallel": None,
    "kv_cache_type": "f16",
    "flash_attn": "auto",
}


@pytest.mark.parametrize(("name", "default"), DEFAULTS.items())
def test_every_option_has_ollamas_default(name: str, default: object) -> None:
    load, sampling = merge()
    target = load if name in LOAD_OPTIONS else sampling
    assert getattr(target, name) == default
    assert {row.name: row.default for row in describe()}[name] == default


def test_the_table_lists_every_option_once() -> None:
    assert set(OPTIONS) == set(DEFAULTS)
    assert [row.name for row in describe()] == list(OPTIONS)
    assert all(row.help and row.type for row in describe())


def test_load_and_sampling_options_are_split_as_ollama_splits_runner_from_options() -> None:
    assert {
        "num_ctx",
        "num_gpu",
        "num_thread",
        "num_batch",
        "num_parallel",
        "kv_cache_type",
        "flash_attn",
    } == LOAD_OPTIONS
    assert {f.name for f in fields(LoadOptions)} == LOAD_OPTIONS
    assert {f.name for f in fields(SamplingOptions)} == SAMPLING_OPTIONS
    assert "seed" in SAMPLING_OPTIONS and "stop" in SAMPLING_OPTIONS
    assert not LOAD_OPTIONS & SAMPLING_OPTIONS
    assert {row.name for row in describe() if row.load} == LOAD_OPTIONS


def test_options_are_frozen_and_comparable_so_a_load_change_is_visible() -> None:
    a, _ = merge({"num_ctx": 2048})
    b, _ = merge({"num_ctx": "2048"})
    c, _ = merge({"num_ctx": 4096})
    assert a == b != c and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.num_ctx = 1  # type: ignore[misc]


# -- good values, as JSON and Modelfiles give them --------------------------------

GOOD = [
    ("temperature", 0, 0.0),
    ("temperature", "0.7", 0.7),
    ("temperature", " 1.5 ", 1.5),
    ("temperature", 2, 2.0),
    ("temperature", "1e-3", 0.001),
    ("top_k", "40", 40),
    ("top_k", 40.0, 40),
    ("top_k", "1e2", 100),
    ("top_k", 0, 0),
    ("top_p", "1", 1.0),
    ("top_p", 0, 0.0),
    ("min_p", ".05", 0.05),
    ("typical_p", 1, 1.0),
    ("repeat_penalty", "1.1", 1.1),
    ("repeat_last_n", -1, -1),
    ("repeat_last_n", 0, 0),
    ("presence_penalty", "-1.5", -1.5),
    ("frequency_penalty", 3, 3.0),
    ("mirostat", "2", 2),
    ("mirostat_tau", "5", 5.0),
    ("mirostat_eta", 0.1, 0.1),
    ("seed", -1, -1),
    ("seed", "42", 42),
    ("seed", 2**32 - 2, 2**32 - 2),
    ("num_predict", -2, -2),
    ("num_predict", "-1", -1),
    ("num_predict", 128, 128),
    ("num_keep", 24, 24),
    ("stop", "<|im_end|>", ["<|im_end|>"]),
    ("stop", ["a", "\n\n"], ["a", "\n\n"]),
    ("stop", ("a",), ["a"]),
    ("stop", [], []),
    ("num_ctx", "8192", 8192),
    ("num_gpu", -1, -1),
    ("num_gpu", 999, 999),
    ("num_thread", 0, 0),
    ("num_batch", 256, 256),
    ("num_parallel", 256, 256),
    ("num_parallel", "4", 4),
    ("kv_cache_type", "q8_0", "q8_0"),
    ("kv_cache_type", "Q4_0", "q4_0"),
    ("flash_attn", "on", "on"),
    ("flash_attn", "AUTO", "auto"),
    ("flash_attn", True, "on"),
    ("flash_attn", False, "off"),
    ("flash_attn", "false", "off"),
    ("flash_attn", "true", "on"),
]


@pytest.mark.parametrize(("name", "value", "parsed"), GOOD)
def test_values_from_json_and_modelfiles_are_accepted(name: str, value: object, parsed: object) -> None:
    result = parse_options({name: value}, source="Modelfile line 3")[name]
    assert result == parsed
    assert type(result) is type(parsed)


def test_parsing_twice_gives_the_same_values() -> None:
    once = parse_options({name: value for name, value, _ in GOOD}, source="request")
    assert parse_options(once, source="request") == once


def test_null_values_are_skipped_as_ollama_skips_json_nulls() -> None:
    assert parse_options({"temperature": None, "top_k": 3}, source="request") == {"top_k": 3}


# -- bad values: one line each, naming the option and the source -------------------

BAD = [
    ("temperature", "hot", "a number ≥ 0"),
    ("temperature", -0.1, "a number ≥ 0"),
    ("temperature", math.nan, "a number ≥ 0"),
    ("temperature", math.inf, "a number ≥ 0"),
    ("temperature", "nan", "a number ≥ 0"),
    ("temperature", "inf", "a number ≥ 0"),
    ("temperature", "1_0", "a number ≥ 0"),
    ("temperature", "0x10", "a number ≥ 0"),
    ("temperature", True, "a number ≥ 0"),
    ("temperature", [0.5], "a number ≥ 0"),
    ("temperature", {"v": 1}, "a number ≥ 0"),
    ("temperature", 10**400, "a number ≥ 0"),
    ("temperature", "", "a number ≥ 0"),
    ("top_k", 4.5, "a whole number ≥ 0"),
    ("top_k", "4.5", "a whole number ≥ 0"),
    ("top_k", -1, "a whole number ≥ 0"),
    ("top_k", False, "a whole number ≥ 0"),
    ("top_p", 1.01, "a number from 0 to 1"),
    ("top_p", -0.5, "a number from 0 to 1"),
    ("min_p", 2, "a number from 0 to 1"),
    ("typical_p", "1.5", "a number from 0 to 1"),
    ("repeat_penalty", 0, "a number > 0"),
    ("repeat_penalty", -1, "a number > 0"),
    ("repeat_last_n", -2, "a whole number ≥ -1"),
    ("presence_penalty", math.inf, "a finite number"),
    ("frequency_penalty", "lots", "a finite number"),
    ("mirostat", 3, "0, 1 or 2"),
    ("mirostat", 1.5, "0, 1 or 2"),
    ("mirostat_tau", -1, "a number ≥ 0"),
    ("mirostat_eta", "fast", "a number ≥ 0"),
    ("seed", -2, "-1 or a whole number from 0 to 4294967294"),
    ("seed", 2**32 - 1, "-1 or a whole number from 0 to 4294967294"),
    ("seed", 1.5, "-1 or a whole number from 0 to 4294967294"),
    ("num_predict", 0, "a whole number ≥ 1, or -1"),
    ("num_predict", -3, "a whole number ≥ 1, or -1"),
    ("num_keep", -2, "a whole number ≥ -1"),
    ("stop", 3, "a string or a list"),
    ("stop", "", "a string or a list"),
    ("stop", ["ok", ""], "a string or a list"),
    ("stop", ["ok", 3], "a string or a list"),
    ("stop", ["x"] * (MAX_STOPS + 1), "a string or a list"),
    ("stop", "x" * 2000, "a string or a list"),
    ("stop", {"a": 1}, "a string or a list"),
    ("num_ctx", 0, "a whole number ≥ 1"),
    ("num_ctx", 2**31, "a whole number from 1 to 2147483647"),
    ("num_ctx", "4k", "a whole number ≥ 1"),
    ("num_gpu", -2, "a whole number ≥ -1"),
    ("num_thread", -1, "a whole number from 0 to 512"),
    ("num_thread", 65536, "a whole number from 0 to 512"),  # llama.cpp segfaulted on this
    ("num_batch", 0, "a whole number ≥ 1"),
    ("num_parallel", 257, "a whole number from 0 to 256"),
    ("num_parallel", -1, "a whole number from 0 to 256"),
    ("kv_cache_type", "q5_1", "one of f16, q8_0, q4_0"),
    ("kv_cache_type", 8, "one of f16, q8_0, q4_0"),
    ("flash_attn", "maybe", "auto, on or off"),
    ("flash_attn", 1, "auto, on or off"),
]


@pytest.mark.parametrize(("name", "value", "expect"), BAD)
@pytest.mark.parametrize("source", ["request", "Modelfile line 3"])
def test_a_bad_value_is_refused_naming_the_option_and_where_it_came_from(
    name: str, value: object, expect: str, source: str
) -> None:
    with pytest.raises(InvalidOption) as caught:
        parse_options({name: value}, source=source)
    message = str(caught.value)
    assert message.startswith(f"{name} must be {expect}")
    assert message.endswith(f"(from {source})")
    assert "\n" not in message and message.isprintable()
    assert len(message) < 300
    assert isinstance(caught.value, InvalidInput)  # the API answers 400


def test_the_error_reads_as_a_sentence() -> None:
    with pytest.raises(
        InvalidOption, match=r"^temperature must be a number ≥ 0, not 'hot' \(from Modelfile line 3\)$"
    ):
        parse_options({"temperature": "hot"}, source="Modelfile line 3")


def test_a_hostile_value_is_quoted_on_one_printable_line() -> None:
    with pytest.raises(InvalidOption) as caught:
        parse_options({"temperature": "\x1b[2J\nrm -rf /" + "x" * 500}, source="request")
    message = str(caught.value)
    assert "\x1b" not in message and "\n" not in message and len(message) < 200


# -- names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("temprature", "temperature"),
        ("Temperature", "temperature"),
        ("top-k", "top_k"),
        ("num_predicts", "num_predict"),
        ("numctx", "num_ctx"),
        ("kv_cache", "kv_cache_type"),
        ("flash_attention", "flash_attn"),
    ],
)
def test_an_unknown_name_suggests_the_closest_known_one(name: str, suggestion: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        parse_options({name: 1}, source="Modelfile line 9")
    assert str(caught.value) == (
        f"unknown option '{name}' (from Modelfile line 9): did you mean {suggestion}?"
    )


def test_a_name_like_none_lists_the_options() -> None:
    with pytest.raises(
        InvalidOption, match=r"^unknown option 'zzz' \(from request\): the options are temperature, "
    ):
        parse_options({"zzz": 1}, source="request")


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_ollama_options_llamadeck_lacks_say_so(name: str) -> None:
    with pytest.raises(
        InvalidOption, match=rf"^{name} (was removed from|is an Ollama option).*\(from request\)$"
    ):
        parse_options({name: 1}, source="request")


@pytest.mark.parametrize("raw", [["temperature", 1], "temperature=1", None, 3])
def test_options_that_are_not_an_object_are_refused(raw: object) -> None:
    with pytest.raises(InvalidOption, match=r"^options must be an object .*\(from request\)$"):
        parse_options(raw, source="request")  # type: ignore[arg-type]


def test_a_name_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidOption, match=r"^option names must be strings, not 3 \(from request\)$"):
        parse_options({3: 1}, source="request")  # type: ignore[dict-item]


# -- layers ------------------------------------------------------------------------


def test_layers_merge_built_in_then_model_then_conversation_then_request() -> None:
    model = {"temperature": 0.1, "top_k": 10, "top_p": 0.5, "num_ctx": 1024}
    conversation = {"temperature": 0.2, "top_k": 20}
    request = {"temperature": 0.3}
    load, sampling = merge(model, conversation, request)
    assert sampling.temperature == 0.3  # the request wins
    assert sampling.top_k == 20  # the conversation over the model
    assert sampling.top_p == 0.5  # the model over the built-in
    assert sampling.min_p == 0.0  # built-in
    assert load.num_ctx == 1024
    assert load.num_batch == 512


def test_a_later_stop_list_replaces_an_earlier_one() -> None:
    _, sampling = merge({"stop": ["<|im_end|>", "<|im_start|>"]}, {"stop": "User:"})
    assert sampling.stop == ("User:",)
    _, sampling = merge({"stop": ["a"]}, {"temperature": 1}, {"stop": []})
    assert sampling.stop == ()
    _, sampling = merge({"stop": ["a", "b"]}, {"temperature": 1})
    assert sampling.stop == ("a", "b")


def test_modelfile_stop_lines_add_up_and_other_repeats_keep_the_last() -> None:
    layer = collect_parameters(
        [
            ("stop", "<|im_end|>", "Modelfile line 3"),
            ("temperature", "0.2", "Modelfile line 4"),
            ("stop", "<|im_start|>", "Modelfile line 5"),
            ("temperature", "0.4", "Modelfile line 6"),
        ]
    )
    assert layer == {"stop": ["<|im_end|>", "<|im_start|>"], "temperature": 0.4}


def test_a_bad_modelfile_parameter_names_its_line() -> None:
    entries = [("stop", "a", "Modelfile line 2"), ("top_p", "2", "Modelfile line 7")]
    with pytest.raises(
        InvalidOption, match=r"^top_p must be a number from 0 to 1, not '2' \(from Modelfile line 7\)$"
    ):
        collect_parameters(entries)
    with pytest.raises(
        InvalidOption, match=r"^stop may be given at most 64 times \(from Modelfile line 64\)$"
    ):
        collect_parameters([("stop", str(i), f"Modelfile line {i}") for i in range(MAX_STOPS + 1)])


def test_ollamas_automatic_values_load_as_none() -> None:
    load, _ = merge(
        {"num_gpu": 20, "num_thread": 8, "num_parallel": 4},
        {"num_gpu": -1, "num_thread": 0, "num_parallel": 0},
    )
    assert (load.num_gpu, load.num_thread, load.num_parallel) == (None, None, None)
    load, _ = merge({"num_gpu": 0, "num_thread": 2, "num_parallel": 1})
    assert (load.num_gpu, load.num_thread, load.num_parallel) == (0, 2, 1)


def test_merge_checks_its_layers_too() -> None:
    with pytest.raises(InvalidOption, match="^temperature must be"):
        merge({"temperature": -1})
    with pytest.raises(InvalidOption, match="^unknown option 'temp'"):
        merge({}, {"temp": 1})


def test_merged_values_have_the_dataclass_types() -> None:
    load, sampling = merge({"temperature": 1, "top_k": "5", "stop": "x", "kv_cache_type": "Q8_0"})
    assert type(sampling.temperature) is float and type(sampling.top_k) is int
    assert sampling.stop == ("x",) and load.kv_cache_type == "q8_0"


# -- writing back --------------------------------------------------------------------


def test_parameter_lines_round_trip_through_parsing() -> None:
    layer = parse_options(
        {"stop": ["<|im_end|>", "\n"], "temperature": 0.1, "top_k": 3, "num_gpu": -1, "flash_attn": True},
        source="request",
    )
    lines = parameter_pairs(layer)
    assert lines == [
        ("temperature", "0.1"),
        ("top_k", "3"),
        ("stop", "<|im_end|>"),
        ("stop", "\n"),
        ("num_gpu", "-1"),
        ("flash_attn", "on"),
    ]
    assert collect_parameters((name, value, "line") for name, value in lines) == layer


def test_the_modules_are_pure() -> None:
    for module in (options, option_parsing, option_values):
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        assert "import llama_cpp" not in source and "from llama_cpp" not in source
