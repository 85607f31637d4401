"""Options as Ollama's API takes them (engine.request_options): lenient names, strict JSON types."""

from __future__ import annotations

import logging

import pytest

from engine import InvalidOption, parse_options, request_options
from engine.options import UNSUPPORTED

LOGGER = "llamadeck.engine.options"
# what LangChain's OllamaEmbeddings sends on every call (langchain-ollama 1.1), its defaults unset
LANGCHAIN = {
    "mirostat": None,
    "mirostat_eta": None,
    "mirostat_tau": None,
    "num_ctx": None,
    "num_gpu": None,
    "num_thread": None,
    "repeat_last_n": None,
    "repeat_penalty": None,
    "temperature": None,
    "stop": None,
    "tfs_z": None,
    "top_k": None,
    "top_p": None,
}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def test_null_values_are_skipped_and_langchains_options_are_no_options(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert request_options(LANGCHAIN) == {}
        assert request_options(None) == {}
    assert warnings(caplog) == [
        "ignoring options llamadeck does not use (from request): "
        "'tfs_z' (was removed from Ollama and llama.cpp)"
    ]


RETIRED = ["penalize_newline", "numa", "low_vram", "f16_kv", "vocab_only", "use_mlock", "logits_all",
           "embedding_only", "num_gqa", "rope_frequency_base", "rope_frequency_scale", "tfs_z"]  # fmt: skip
UNHONOURED = ["use_mmap", "main_gpu"]  # Ollama's, without a meaning here


@pytest.mark.parametrize("name", RETIRED + UNHONOURED)
def test_retired_and_unsupported_ollama_options_are_ignored_on_the_api_but_refused_elsewhere(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert name in UNSUPPORTED
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert request_options({name: 1, "temperature": 0.5}) == {"temperature": 0.5}
    (line,) = warnings(caplog)
    assert line == f"ignoring options llamadeck does not use (from request): '{name}' ({UNSUPPORTED[name]})"
    with pytest.raises(InvalidOption, match=rf"^{name} "):  # the CLI, the TUI and Modelfiles stay strict
        parse_options({name: 1}, source="Modelfile line 2")


def test_one_warning_per_request_names_every_ignored_option(caplog: pytest.LogCaptureFixture) -> None:
    raw = {f"opt{i}": i for i in range(15)} | {"bad\nname\x1b[2J": 1, "seed": 7}
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert request_options(raw, source="request to /api/chat") == {"seed": 7}
    (line,) = warnings(caplog)
    assert line.startswith(
        "ignoring options llamadeck does not use (from request to /api/chat): 'opt0', 'opt1'"
    )
    assert line.endswith("'opt11' and 4 more")  # twelve named, the rest counted
    assert "\n" not in line and "\x1b" not in line
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        request_options({"bad\nname\x1b[2J": 1})
    assert warnings(caplog)[-1].endswith("'bad\\nname\\x1b[2J'")  # a client's text, escaped


def test_no_warning_when_every_name_is_known(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert request_options({"temperature": 0, "stop": "\n", "num_ctx": 512.0}) == {
            "temperature": 0.0,
            "stop": ["\n"],
            "num_ctx": 512,
        }
    assert warnings(caplog) == []


def test_options_llamadeck_adds_to_ollamas_set_stay() -> None:
    raw = {"mirostat": 2, "mirostat_tau": 4.0, "mirostat_eta": 0.2, "num_parallel": 2}
    raw |= {"kv_cache_type": "q8_0", "flash_attn": True}
    assert request_options(raw) == raw | {"flash_attn": "on"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"temperature": "0.7"}, "temperature must be a number, not the string '0.7' (from request)"),
        ({"num_ctx": "4096"}, "num_ctx must be a number, not the string '4096' (from request)"),
        ({"top_k": True}, "top_k must be a number, not true (from request)"),
        ({"seed": [1]}, "seed must be a number, not a list (from request)"),
        ({"num_predict": {"n": 1}}, "num_predict must be a number, not an object (from request)"),
        ({"temperature": -1}, "temperature must be a number ≥ 0, not -1 (from request)"),
        ({"top_k": 4.5}, "top_k must be a whole number ≥ 0, not 4.5 (from request)"),
        ({"stop": [1]}, "stop must be a string or a list of up to 64 non-empty strings"),
        ({"kv_cache_type": 8}, "kv_cache_type must be one of f16, q8_0, q4_0, not 8 (from request)"),
    ],
)
def test_a_known_option_of_the_wrong_type_or_out_of_range_is_refused(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidOption) as caught:
        request_options(raw)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("raw", [["temperature", 1], "temperature=1", 3])
def test_options_that_are_not_an_object_are_refused(raw: object) -> None:
    with pytest.raises(InvalidOption, match=r"^options must be an object of name: value \(from request\)$"):
        request_options(raw)


def test_it_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    request_options({"tfs_z": 1, "numa": True})
    assert capsys.readouterr() == ("", "")
