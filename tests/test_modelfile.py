"""engine.ingest.modelfile parsed: options, one FROM, errors with line numbers, encodings, limits.

What Ollama itself accepts is pinned in ``test_modelfile_ollama.py``; writing and round trips in
``test_modelfile_format.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InvalidInput
from engine.ingest.modelfile import (
    MAX_MODELFILE_BYTES,
    Modelfile,
    ModelfileError,
    format_modelfile,
    parse_modelfile,
)
from tests.support.ollama_modelfile import PIECES

VALID: list[tuple[str, Modelfile]] = [
    ("FROM llama3.2", Modelfile(from_="llama3.2")),
    (
        "FROM hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
        Modelfile(from_="hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"),
    ),  # noqa: E501
    (
        "FROM ./model.gguf\nADAPTER ./a.gguf\nADAPTER ./b",
        Modelfile(from_="./model.gguf", adapters=("./a.gguf", "./b")),
    ),  # noqa: E501
    (  # Ollama's way to add a vision projector: a second FROM
        "FROM ./model.gguf\nFROM ./mmproj-model-f16.gguf\n",
        Modelfile(from_="./model.gguf", also_from=("./mmproj-model-f16.gguf",)),
    ),
    (
        "FROM llama3.2\n# sets the temperature\nPARAMETER temperature 1\nPARAMETER num_ctx 4096\n\n"
        "SYSTEM You are Mario from super mario bros, acting as an assistant.\n",
        Modelfile(
            from_="llama3.2",
            system="You are Mario from super mario bros, acting as an assistant.",
            parameters={"temperature": 1.0, "num_ctx": 4096},
        ),
    ),
    (
        'FROM x\nPARAMETER stop "<|start_header_id|>"\nPARAMETER stop <|eot_id|>\nPARAMETER stop """a\n"""',
        Modelfile(from_="x", parameters={"stop": ["<|start_header_id|>", "<|eot_id|>", "a\n"]}),
    ),
    (
        "FROM x\nPARAMETER temperature 0.2\nPARAMETER temperature 0.9",
        Modelfile(from_="x", parameters={"temperature": 0.9}),
    ),  # noqa: E501
    (
        'FROM x\nPARAMETER seed "42"\nPARAMETER flash_attn true',
        Modelfile(from_="x", parameters={"seed": 42, "flash_attn": "on"}),
    ),  # noqa: E501
    # Ollama's own examples (parser/parser_test.go TestParseFileDraft, TestCreateRequestDraftFiles)
    ("\nFROM base\nDRAFT ./assistant\n", Modelfile(from_="base", draft="./assistant")),
    ("\nFROM base\nDRAFT ./draft.gguf\n", Modelfile(from_="base", draft="./draft.gguf")),
    (
        'FROM qwen3:8b\ndraft "qwen3:0.6b"\nPARAMETER temperature 0',
        Modelfile(from_="qwen3:8b", draft="qwen3:0.6b", parameters={"temperature": 0.0}),
    ),
    ("FROM x\nSYSTEM one\nSYSTEM two\nTEMPLATE t", Modelfile(from_="x", system="two", template="t")),
    ('FROM x\nSYSTEM a\nSYSTEM ""\nTEMPLATE """"""', Modelfile(from_="x")),
    (
        'FROM x\nLICENSE MIT\nLICENSE """\nVery long.\n"Oh look, a quote!"\n"""\nLICENSE ""',
        Modelfile(from_="x", license=("MIT", '\nVery long.\n"Oh look, a quote!"\n', "")),
    ),
    (
        'MESSAGE user Is Toronto in Canada?\nMESSAGE assistant yes\nFROM x\nMESSAGE system ""',
        Modelfile(
            from_="x",
            messages=(("user", "Is Toronto in Canada?"), ("assistant", "yes"), ("system", "")),
        ),
    ),
    (
        'FROM:json "a\\u0000b"\nSYSTEM:JSON  "x\\"\\"\\"\\ny\\"\\nz"  ',
        Modelfile(from_="a\x00b", system='x"""\ny"\nz'),
    ),  # noqa: E501
    (
        'FROM x\nPARAMETER:json stop "\\u200b"\nMESSAGE:json user "\\t"',
        Modelfile(from_="x", parameters={"stop": ["\u200b"]}, messages=(("user", "\t"),)),
    ),  # noqa: E501
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_modelfiles(text: str, expected: Modelfile) -> None:
    assert parse_modelfile(text) == expected
    assert parse_modelfile(text.encode()) == expected
    assert parse_modelfile(format_modelfile(expected)) == expected


INVALID: list[tuple[str, int | None, str]] = [
    ("", None, "Modelfile: there is no FROM line"),
    ("# only a comment\nPARAMETER temperature 1", None, "no FROM line"),
    ("FROM a\nFROM b\nFROM c", 3, "a third FROM (the first is on line 1)"),
    ("FROM\n", 1, "FROM needs a model name or path"),
    ("FROM ", 1, "FROM needs a model name or path"),
    ('FROM ""', 1, "FROM needs a model name or path"),
    ("FROM x\nADAPTER \n", 2, "ADAPTER needs a path"),
    ("FROM x\nSYSTEM", 2, "SYSTEM needs a value"),
    (
        "FROM x\n\n\nBADCOMMAND param1 value1\n",
        4,
        "unknown instruction 'BADCOMMAND': expected FROM, PARAMETER",
    ),
    ("FROM x\nFROM-x y", 2, "expected a space after FROM, not '-'"),
    ("FROM x\n\x00\n", 2, "unknown instruction"),
    ("FROM x\nDRAFT ./d.gguf\nDRAFT gemma3:270m", 3, "a second DRAFT (the first is on line 2)"),
    ('FROM x\nDRAFT ""', 2, "DRAFT needs a model name or a path"),
    ("FROM x\nDRAFT", 2, "DRAFT needs a value"),
    ("FROM x\nREQUIRES 0.14.0", 2, "REQUIRES"),
    ("FROM x\nRENDERER qwen3", 2, "RENDERER"),
    ("FROM x\nPARSER qwen3", 2, "PARSER"),
    ("FROM x\nPARAMETER", 2, "PARAMETER needs a name and a value"),
    ("FROM x\nPARAMETER \n", 2, "PARAMETER needs a name and a value"),
    ("FROM x\nPARAMETER temperature\n", 2, "PARAMETER temperature needs a value"),
    ("FROM x\nPARAMETER  temperature 1", 2, "PARAMETER needs its name after a single space"),
    ("FROM x\nPARAMETER top-k 1", 2, "PARAMETER name 'top-k' may hold only letters, digits and _"),
    ("FROM x\nPARAMETER temprature 1", 2, "unknown PARAMETER 'temprature': did you mean temperature?"),
    ("FROM x\nPARAMETER Temperature 1", 2, "unknown PARAMETER 'Temperature'"),
    ("FROM x\nPARAMETER temperature hot", 2, "PARAMETER temperature must be a number ≥ 0, not 'hot'"),
    ("FROM x\nPARAMETER temperature ", 2, "PARAMETER temperature must be"),
    ("FROM x\nPARAMETER top_k 1.5", 2, "PARAMETER top_k must be a whole number"),
    ('FROM x\nPARAMETER stop ""', 2, "PARAMETER stop must be"),
    ("FROM x\nPARAMETER penalize_newline true", 2, "penalize_newline was removed from Ollama"),
    ("FROM x\nPARAMETER num_ctx " + "1" * 5000, 2, "PARAMETER num_ctx's value is too long"),
    ("FROM x\n" + "PARAMETER stop s\n" * 65, 66, "PARAMETER stop may be given at most 64 times"),
    ("FROM x\nMESSAGE system", 2, "MESSAGE system needs a message"),
    ("FROM x\nMESSAGE", 2, "MESSAGE needs a role (system, user or assistant) and a message"),
    (
        "FROM x\nMESSAGE badguy I'm a bad guy!",
        2,
        "MESSAGE role must be system, user or assistant, not 'badguy'",
    ),
    ("FROM x\nMESSAGE User hi", 2, "not 'User'"),
    ("FROM x\nMESSAGE user: hi", 2, "not 'user:'"),
    ("FROM x\nMESSAGE  user hi", 2, "MESSAGE needs its role after a single space"),
    ('FROM x\nSYSTEM """This is a multiline system.""\n\t\t\t', 2, 'SYSTEM\'s """ is never closed'),
    ('FROM x\nTEMPLATE "\nabc\n', 2, "TEMPLATE's \" is never closed"),
    ('FROM x\r\nLICENSE a\r\n\r\nSYSTEM "', 4, "never closed"),
    ("FROM x\rSYSTEM y\rBAD z", 3, "unknown instruction 'BAD'"),
    ('FROM x\nSYSTEM:json "a\nb"', 2, "SYSTEM:json needs one JSON string on its line"),
    ("FROM x\nSYSTEM:json abc", 2, "SYSTEM:json needs one JSON string"),
    ('FROM x\nSYSTEM:json "a" b', 2, "SYSTEM:json needs one JSON string"),
    ('FROM x\nSYSTEM:json "\\ud800"', 2, "lone surrogate"),
    ('FROM x\nRENDERER:json "a"', 2, "RENDERER"),
]


@pytest.mark.parametrize(("text", "line", "message"), INVALID)
def test_invalid_modelfiles(text: str, line: int | None, message: str) -> None:
    with pytest.raises(ModelfileError) as caught:
        parse_modelfile(text)
    error = caught.value
    assert isinstance(error, InvalidInput)
    assert error.line == line
    assert message in str(error)
    assert "\n" not in str(error) and "\r" not in str(error)
    assert str(error).startswith(f"Modelfile line {line}: " if line else "Modelfile: ")


def test_a_long_value_in_an_error_stays_one_short_line() -> None:
    with pytest.raises(ModelfileError) as caught:
        parse_modelfile("FROM x\nPARAMETER top_k " + "\u200b\x1b[31m" * 30)
    assert len(str(caught.value)) < 200 and "\x1b" not in str(caught.value)


# -- encodings -------------------------------------------------------------------------

UTF16_TEXT = "FROM bob\nPARAMETER num_ctx 4096\nSYSTEM You are a utf16 file. 你好👋\n"
UTF16_EXPECTED = Modelfile(from_="bob", system="You are a utf16 file. 你好👋", parameters={"num_ctx": 4096})


@pytest.mark.parametrize(
    "data",
    [
        UTF16_TEXT.encode("utf-8"),
        b"\xef\xbb\xbf" + UTF16_TEXT.encode("utf-8"),
        b"\xff\xfe" + UTF16_TEXT.encode("utf-16-le"),
        b"\xfe\xff" + UTF16_TEXT.encode("utf-16-be"),
        UTF16_TEXT.encode("utf-16"),  # Python's: BOM in the machine's order
        "\ufeff" + UTF16_TEXT,
        bytearray(UTF16_TEXT.encode()),
    ],
    ids=["utf8", "utf8-bom", "utf16-le", "utf16-be", "utf16", "str-bom", "bytearray"],
)
def test_encodings_ollama_accepts(data: bytes | str) -> None:
    assert parse_modelfile(data) == UTF16_EXPECTED


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        (b"FROM x\nSYSTEM caf\xe9\n", 2, "not valid UTF-8 (at byte offset 17)"),
        (b"FROM x\r\n\r\nSYSTEM \xc3", 3, "not valid UTF-8"),
        (b"\xef\xbb\xbfFROM \xff", 1, "not valid UTF-8"),
        (b"\xff\xfe" + "FROM x\n".encode("utf-16-le") + b"F", 2, "not valid UTF-16"),
        (b"\xff\xfe" + "FROM x\nSYSTEM ".encode("utf-16-le") + b"\x00\xd8", 2, "not valid UTF-16"),
        (b"\xfe\xff" + "FROM x".encode("utf-16-be") + b"\xdc\x00", 1, "not valid UTF-16"),
        (b"FROM x\n\x80", 2, "not valid UTF-8"),
        ("FROM x\nSYSTEM \ud83d", 2, "lone surrogate"),
    ],
)
def test_undecodable_input_is_one_error(data: bytes | str, line: int, message: str) -> None:
    with pytest.raises(ModelfileError) as caught:
        parse_modelfile(data)
    assert caught.value.line == line
    assert message in str(caught.value)


def test_not_bytes_or_text() -> None:
    with pytest.raises(ModelfileError, match="expected bytes or text, not int"):
        parse_modelfile(3)  # type: ignore[arg-type]


# -- limits ------------------------------------------------------------------------------


def test_over_16_mib_is_refused_before_decoding() -> None:
    with pytest.raises(ModelfileError, match="over the 16 MiB limit"):
        parse_modelfile(b"FROM x\nSYSTEM " + b"a" * MAX_MODELFILE_BYTES)
    with pytest.raises(ModelfileError, match="over 16 MiB"):
        parse_modelfile("FROM x\nSYSTEM " + "é" * (MAX_MODELFILE_BYTES // 2))


def test_parsing_is_linear() -> None:
    """Ollama re-trims the whole buffer at each line end and space: quadratic; this must not be."""
    lines = 400_000
    text = 'FROM x\nSYSTEM """' + 'a " b "\n' * lines + '"""\nTEMPLATE "' + "x " * lines + '"'
    parsed = parse_modelfile(text)  # quadratic, this would take hours: the suite would never end
    assert parsed.system is not None and parsed.system.count("\n") == lines
    with pytest.raises(ModelfileError):
        parse_modelfile("FROM x\nPARAMETER temperature " + "1" * 1_000_000 + "x")


# -- hypothesis: never another exception, always the same object back -----------------------


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_any_input_gives_a_modelfile_or_one_modelfile_error(data: bytes | str) -> None:
    _parse_or_error(data)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from([*PIECES, "PARAMETER temperature ", "PARAMETER stop ", ":json ", "0.5", "FROM x\n"]),
        max_size=40,
    ).map("".join)
)  # noqa: E501
def test_modelfile_like_input_gives_a_modelfile_or_one_error(text: str) -> None:
    result = _parse_or_error(text)
    if isinstance(result, Modelfile):
        assert parse_modelfile(format_modelfile(result)) == result


def _parse_or_error(data: bytes | str) -> Modelfile | ModelfileError:
    try:
        return parse_modelfile(data)
    except ModelfileError as error:
        text = str(error)
        assert text.startswith("Modelfile") and "\n" not in text and "\r" not in text
        assert error.line is None or error.line >= 1
        return error
