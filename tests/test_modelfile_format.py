"""engine.ingest.modelfile written: Ollama's order and syntax, quoting only as needed, read back the same."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ingest.modelfile import (
    Modelfile,
    ModelfileError,
    format_modelfile,
    parse_modelfile,
)
from tests.support.ollama_modelfile import commands, ollama_parse

# -- writing -----------------------------------------------------------------------------


def test_format_uses_ollama_show_order_and_ollama_syntax() -> None:
    m = Modelfile(
        from_="llama3.2",
        adapters=("./lora.gguf",),
        draft="./draft.gguf",
        template="{{ .Prompt }}\n",
        system="You are Mario.",
        parameters={"stop": ["<|eot_id|>", "User:"], "temperature": 0.7, "num_ctx": 8192},
        messages=(("user", "Is Toronto in Canada?"), ("assistant", "yes")),
        license=("MIT", 'Say "hi"'),
    )
    assert format_modelfile(m) == (
        "FROM llama3.2\n"
        "ADAPTER ./lora.gguf\n"
        "DRAFT ./draft.gguf\n"
        'TEMPLATE """{{ .Prompt }}\n"""\n'
        "SYSTEM You are Mario.\n"
        "PARAMETER temperature 0.7\n"
        "PARAMETER stop <|eot_id|>\n"
        "PARAMETER stop User:\n"
        "PARAMETER num_ctx 8192\n"
        "LICENSE MIT\n"
        'LICENSE Say "hi"\n'
        "MESSAGE user Is Toronto in Canada?\n"
        "MESSAGE assistant yes\n"
    )
    assert ollama_parse(format_modelfile(m)) is not None


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("plain", "plain"),
        ("", '""'),
        (" lead", '" lead"'),
        ("trail\t", '"trail\t"'),
        ('"quoted"', '""""quoted""""'),
        ("back\\slash", "back\\slash"),
        ("two\nlines", '"""two\nlines"""'),
        ('a """ b\nc', '"""a """ b\nc"""'),
        ('ends """\nmore', ':json "ends \\"\\"\\"\\nmore"'),
        ('no "\nquote', '"""no "\nquote"""'),
        ('a"""\nb"\nc', ':json "a\\"\\"\\"\\nb\\"\\nc"'),
        ("zero\u200dwidth", ':json "zero\\u200dwidth"'),
        ("nul\x00", ':json "nul\\u0000"'),
        ("你好👋", "你好👋"),
    ],
)
def test_format_quotes_only_as_needed(text: str, written: str) -> None:
    line = format_modelfile(Modelfile(from_="x", license=(text,))).splitlines(keepends=True)[1:]
    got = "".join(line).removesuffix("\n").removeprefix("LICENSE")
    assert got == (written if written.startswith(":json") else " " + written)
    assert parse_modelfile(format_modelfile(Modelfile(from_="x", license=(text,)))).license == (text,)
    if not written.startswith(":json"):  # Ollama's own parser reads it the same
        assert ollama_parse(f"FROM x\nLICENSE {written}\n") == [("model", "x"), ("license", text)]


@pytest.mark.parametrize(
    ("modelfile", "message"),
    [
        (Modelfile(from_=""), "FROM needs"),
        (Modelfile(from_="x", adapters=("",)), "ADAPTER needs a path"),
        (Modelfile(from_="x", messages=(("tool", "hi"),)), "MESSAGE role must be"),
        (Modelfile(from_="x", parameters={"temperature": -1}), "temperature must be"),
        (Modelfile(from_="x", parameters={"nope": 1}), "unknown option"),
        (Modelfile(from_="x", system="\udc00"), "lone surrogate"),
    ],
)
def test_format_refuses_what_cannot_be_parsed(modelfile: Modelfile, message: str) -> None:
    with pytest.raises(ModelfileError, match=message):
        format_modelfile(modelfile)


def test_modelfile_normalises_equal_meanings() -> None:
    m = Modelfile(from_="x", adapters=["a"], license=["l"], messages=[["user", "hi"]], system="")  # type: ignore[arg-type]
    assert m == Modelfile(from_="x", adapters=("a",), license=("l",), messages=(("user", "hi"),))


_TRICKY = st.sampled_from(['"', '"""', "\n", "\r", "\r\n", " ", "\t", "#", "\\", "\u200d", "\x00", "é", "👋"])
TEXT = st.lists(_TRICKY | st.characters(exclude_categories=("Cs",)), max_size=25).map("".join)
NON_EMPTY = TEXT.filter(bool)
PARAMETERS = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2, allow_nan=False),
        "top_k": st.integers(0, 1000),
        "seed": st.integers(-1, 2**32 - 2),
        "num_ctx": st.integers(1, 2**31 - 1),
        "presence_penalty": st.floats(-1e300, 1e300),
        "flash_attn": st.sampled_from(["auto", "on", "off"]),
        "stop": st.lists(NON_EMPTY, min_size=1, max_size=4),
    },
)
MODELFILES = st.builds(
    Modelfile,
    from_=NON_EMPTY,
    adapters=st.lists(NON_EMPTY, max_size=2).map(tuple),
    template=st.none() | TEXT,
    system=st.none() | TEXT,
    parameters=PARAMETERS,
    messages=st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), TEXT), max_size=3).map(
        tuple
    ),
    license=st.lists(TEXT, max_size=2).map(tuple),
    draft=st.none() | NON_EMPTY,
)


@settings(max_examples=500, deadline=None)
@given(MODELFILES)
def test_round_trip(m: Modelfile) -> None:
    text = format_modelfile(m)
    assert parse_modelfile(text) == m
    assert parse_modelfile(text.encode("utf-16")) == m
    assert format_modelfile(parse_modelfile(text)) == text
    if ":json" not in text:  # Ollama's own parser reads the same commands
        assert ollama_parse(text) == commands(text)
