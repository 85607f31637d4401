"""engine.ingest.modelfile: Ollama's Modelfile, read as Ollama reads it and written so it reads back.

Three kinds of check: tables ported from Ollama's ``parser/parser_test.go``
(at the level of Ollama's commands, before llamadeck gives them meaning);
a literal rune-by-rune port of Ollama's ``ParseFile`` used as an oracle
against the linear-time parser on generated files; and llamadeck's own
layer (options, one FROM, errors with line numbers, encodings, round trips).
"""

from __future__ import annotations

import time
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import InvalidInput
from engine.ingest.modelfile import (
    MAX_MODELFILE_BYTES,
    Modelfile,
    ModelfileError,
    _commands,
    format_modelfile,
    parse_modelfile,
)

# -- Ollama's commands: our parser as Ollama's (name, args) list ------------------------


def commands(text: str) -> list[tuple[str, str]]:
    """Our parser's instructions spelled as Ollama's ``Command{Name, Args}``."""
    out = []
    for c in _commands(text):
        if c.keyword == "from":
            out.append(("model", c.value))
        elif c.keyword == "parameter":
            out.append((str(c.name), c.value))
        elif c.keyword == "message":
            out.append(("message", f"{c.name}: {c.value}"))
        else:
            out.append((c.keyword, c.value))
    return out


_VALID = {"from", "license", "template", "system", "adapter", "draft", "renderer", "parser"}
_VALID |= {"parameter", "message", "requires"}


def ollama_parse(text: str, *, need_from: bool = True) -> list[tuple[str, str]] | None:
    """A literal port of Ollama's ``ParseFile`` (rune by rune, quadratic); None where it errors."""
    nil, name, value, parameter, message, comment = range(6)
    curr, cmd, role, buf = nil, "", "", ""
    out: list[tuple[str, str]] = []

    def is_print(r: str) -> bool:  # Go's strconv.IsPrint; unassigned code points kept (see the module)
        return r.isprintable() or unicodedata.category(r) == "Cn"

    def unquote(s: str) -> tuple[str, bool]:
        if s[:3] == '"""':
            return (s[3:-3], True) if len(s) >= 6 and s[-3:] == '"""' else ("", False)
        if s[:1] == '"':
            return (s[1:-1], True) if len(s) >= 2 and s[-1] == '"' else ("", False)
        return s, True

    for r in text:
        rr: str | None
        if curr == nil:
            nxt, rr = (comment, None) if r == "#" else (nil, None) if r in " \t\r\n" else (name, r)
        elif curr == name:
            if r.isascii() and r.isalpha():
                nxt, rr = name, r
            elif r in " \t":
                nxt, rr = value, None
            else:
                return None
        elif curr == value:
            nxt, rr = (nil, r) if r in " \t\r\n" else (value, r)
        elif curr in (parameter, message):
            if r.isascii() and (r.isalpha() or (curr == parameter and (r.isdigit() or r == "_"))):
                nxt, rr = curr, r
            elif r in " \t":
                nxt, rr = value, None
            else:
                return None
        else:
            nxt, rr = (nil, None) if r in "\r\n" else (comment, None)
        if nxt != curr:
            if curr == name:
                s = buf.lower()
                if s not in _VALID:
                    return None
                if s == "from":
                    cmd = "model"
                elif s == "parameter":
                    nxt = parameter
                else:
                    nxt = message if s == "message" else nxt
                    cmd = s
            elif curr == parameter:
                cmd = buf
            elif curr == message:
                if buf not in ("system", "user", "assistant"):
                    return None
                role = buf
            elif curr == value:
                s, ok = unquote(buf.strip())
                if not ok or (rr is not None and rr in " \t"):
                    buf += rr or ""
                    continue
                if role:
                    s, role = f"{role}: {s}", ""
                out.append((cmd, s))
            buf, curr = "", nxt
        if rr is not None and is_print(rr):
            buf += rr
    if curr == value:
        s, ok = unquote(buf.strip())
        if not ok:
            return None
        out.append((cmd, f"{role}: {s}" if role else s))
    elif curr not in (nil, comment):
        return None
    if need_from and not any(c == "model" for c, _ in out):
        return None
    if any(c == "" for c, _ in out):  # "PARAMETER  x": ParseFile takes it, FormatParams refuses the name ''
        return None
    return out


def ours(text: str) -> list[tuple[str, str]] | None:
    try:
        found = commands(text)
    except ModelfileError:
        return None
    return found if any(c == "model" for c, _ in found) else None


TEMPLATE = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
)

# (input, Ollama's commands, or None where Ollama errors): parser_test.go's tables
OLLAMA_CASES: list[tuple[str, list[tuple[str, str]] | None]] = [
    # TestParseFileFile
    (
        f"\nFROM model1\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\nPARAMETER param2 value2\n"
        f'TEMPLATE """{TEMPLATE}"""    \n',
        [
            ("model", "model1"),
            ("adapter", "adapter1"),
            ("license", "MIT"),
            ("param1", "value1"),
            ("param2", "value2"),
            ("template", TEMPLATE),
        ],
    ),
    # TestParseFileTrimSpace
    (
        '\nFROM "     model 1"\nADAPTER      adapter3\nLICENSE "MIT       "\nPARAMETER param1        value1\n'
        f'PARAMETER param2    value2\nTEMPLATE """   {TEMPLATE}   """    \n',
        [
            ("model", "     model 1"),
            ("adapter", "adapter3"),
            ("license", "MIT       "),
            ("param1", "value1"),
            ("param2", "value2"),
            ("template", f"   {TEMPLATE}   "),
        ],
    ),
    # TestParseFileFrom
    ('FROM "FOO  BAR  "', [("model", "FOO  BAR  ")]),
    ('FROM "FOO BAR"\nPARAMETER param1 value1', [("model", "FOO BAR"), ("param1", "value1")]),
    ("FROM     FOOO BAR    ", [("model", "FOOO BAR")]),
    ("FROM /what/is/the path ", [("model", "/what/is/the path")]),
    ("FROM foo", [("model", "foo")]),
    ("FROM /path/to/model/fp16.bin", [("model", "/path/to/model/fp16.bin")]),
    ("FROM llama3:7b-instruct-q4_K_M", [("model", "llama3:7b-instruct-q4_K_M")]),
    ("", None),
    ("PARAMETER param1 value1", None),
    ("PARAMETER param1 value1\nFROM foo", [("param1", "value1"), ("model", "foo")]),
    (
        "PARAMETER what the \nFROM lemons make lemonade ",
        [("what", "the"), ("model", "lemons make lemonade")],
    ),
    # TestParseFileParametersMissingValue, TestParseFileBadCommand
    ("\nFROM foo\nPARAMETER param1\n", None),
    ("\nFROM foo\nBADCOMMAND param1 value1\n", None),
    # TestParseFileMessages
    (
        "\nFROM foo\nMESSAGE system You are a file parser. Always parse things.\n",
        [("model", "foo"), ("message", "system: You are a file parser. Always parse things.")],
    ),
    (
        "\nFROM foo\nMESSAGE system You are a file parser. Always parse things.",
        [("model", "foo"), ("message", "system: You are a file parser. Always parse things.")],
    ),
    (
        "\nFROM foo\nMESSAGE system A.\nMESSAGE user Hey there!\nMESSAGE assistant Hello, I parse!\n",
        [
            ("model", "foo"),
            ("message", "system: A."),
            ("message", "user: Hey there!"),
            ("message", "assistant: Hello, I parse!"),
        ],
    ),
    (
        '\nFROM foo\nMESSAGE system """\nYou are a multiline file parser. Always parse things.\n"""\n\t\t\t',
        [("model", "foo"), ("message", "system: \nYou are a multiline file parser. Always parse things.\n")],
    ),
    ("\nFROM foo\nMESSAGE badguy I'm a bad guy!\n", None),
    ("\nFROM foo\nMESSAGE system\n", None),
    ("\nFROM foo\nMESSAGE system", None),
    # TestParseFileQuoted
    (
        '\nFROM foo\nSYSTEM """\nThis is a\nmultiline system.\n"""\n\t\t\t',
        [("model", "foo"), ("system", "\nThis is a\nmultiline system.\n")],
    ),
    (
        '\nFROM foo\nSYSTEM """\nThis is a\nmultiline system."""\n\t\t\t',
        [("model", "foo"), ("system", "\nThis is a\nmultiline system.")],
    ),
    (
        '\nFROM foo\nSYSTEM """This is a\nmultiline system."""\n\t\t\t',
        [("model", "foo"), ("system", "This is a\nmultiline system.")],
    ),
    (
        '\nFROM foo\nSYSTEM """This is a multiline system."""\n\t\t\t',
        [("model", "foo"), ("system", "This is a multiline system.")],
    ),
    ('\nFROM foo\nSYSTEM """This is a multiline system.""\n\t\t\t', None),
    ('\nFROM foo\nSYSTEM "\n\t\t\t', None),
    (
        '\nFROM foo\nSYSTEM """\nThis is a multiline system with "quotes".\n"""\n',
        [("model", "foo"), ("system", '\nThis is a multiline system with "quotes".\n')],
    ),
    ('\nFROM foo\nSYSTEM """"""\n', [("model", "foo"), ("system", "")]),
    ('\nFROM foo\nSYSTEM ""\n', [("model", "foo"), ("system", "")]),
    ('\nFROM foo\nSYSTEM "\'"\n', [("model", "foo"), ("system", "'")]),
    (
        '\nFROM foo\nSYSTEM """\'\'"\'""\'""\'"\'\'\'\'\'""\'""\'"""\n',
        [("model", "foo"), ("system", "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'")],
    ),
    ('\nFROM foo\nTEMPLATE """\n{{ .Prompt }}\n"""', [("model", "foo"), ("template", "\n{{ .Prompt }}\n")]),
    # TestParseFileComments, TestParseMultiByte
    ("\n# comment\nFROM foo\n\t", [("model", "foo")]),
    ("FROM test\n\tSYSTEM 你好👋", [("model", "test"), ("system", "你好👋")]),
    # quirks read off parser.go
    ("FROM x # not a comment", [("model", "x # not a comment")]),
    ('FROM x\nSYSTEM "a" b\nc "d"\n', [("model", "x"), ("system", 'a" b\nc "d')]),
    ('FROM x\nSYSTEM "a" "b"', [("model", "x"), ("system", 'a" "b')]),
    ("FROM x\nSYSTEM a\x00b\u200bc\td", [("model", "x"), ("system", "abc\td")]),
    ("\x00FROM x", [("model", "x")]),
    ("\x00\x00FROM x", None),
    ("from x\nsYsTeM y", [("model", "x"), ("system", "y")]),
    ("FROM\tx\nSYSTEM\t\t y \t", [("model", "x"), ("system", "y")]),
    ("FROM x\rSYSTEM y\r\n", [("model", "x"), ("system", "y")]),
    ('FROM x\nSYSTEM "a\r\nb"', [("model", "x"), ("system", "a\r\nb")]),
    ("FROM x\nSYSTEM \n", [("model", "x"), ("system", "")]),
    ("FROM x\nMESSAGE user \n", [("model", "x"), ("message", "user: ")]),
    ("FROM x\nPARAMETER  stop a", None),  # parses as [("", "stop a")]: create refuses the name ''
    ("FROM x\nMESSAGE  user hi", None),
    ("FROM x\nMESSAGE User hi", None),
    ("FROM x\nPARAMETER top-k 1", None),
    ("FROM x\nSYSTEM", None),
    ("FROM1 x", None),
    ('FROM x\nSYSTEM """a"""\nb"""', None),
    ('FROM x\nSYSTEM """""\nx"""', [("model", "x"), ("system", '""\nx')]),  # 5 quotes: still open
    ('FROM x\nSYSTEM """"\n"""', [("model", "x"), ("system", '"\n')]),
    ('FROM x\nSYSTEM """"""\nx', None),  # 6 quotes: closed, then "x" is no instruction
    ('FROM x\nSYSTEM ""\nx', None),
    ('FROM x\nSYSTEM "\n"', [("model", "x"), ("system", "\n")]),
    (
        'FROM x\nSYSTEM \t """a\n\n  b""" \t\nLICENSE c',
        [("model", "x"), ("system", "a\n\n  b"), ("license", "c")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), OLLAMA_CASES)
def test_ollama_parser_tables(text: str, expected: list[tuple[str, str]] | None) -> None:
    assert ollama_parse(text) == expected  # the oracle agrees with Ollama's own tables...
    assert ours(text) == expected  # ...and so does the parser


@pytest.mark.parametrize(
    "name,value",
    [
        ("stop ### User:", "### User:"),
        ("stop ### User: ", "### User:"),
        ('stop "### User:"', "### User:"),
        ('stop "### User: "', "### User: "),
        ('stop """### User:"""', "### User:"),
        ('stop """### User:\n"""', "### User:\n"),
        ("stop <|eot_id|>", "<|eot_id|>"),
        ("top_p 1.0", "1.0"),
        ("use_mmap true", "true"),
    ],
)
def test_ollama_parameter_values(name: str, value: str) -> None:
    """parser_test.go's TestParseFileParameters."""
    key = name.split(" ", 1)[0]
    assert ours(f"FROM foo\nPARAMETER {name}\n") == [("model", "foo"), (key, value)]


_PIECES = [
    "FROM", "from", "Parameter", "SYSTEM", "template", "MESSAGE", "ADAPTER", "License", "BAD",
    "temperature", "stop", "x_1", "user", "system", "bad", " ", " ", "\t", "\n", "\n", "\r", "\r\n",
    '"', '"', '""', '"""', "#", "a", "b c", "é", "👋", "\x00", "\u200b", "\x0b", ":", "\\",
]  # fmt: skip


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_parser_matches_ollama_rune_by_rune(text: str) -> None:
    """The linear parser and a literal port of Ollama's state machine agree on every file."""
    assert ours(text) == ollama_parse(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30).map("".join))
def test_parser_matches_ollama_after_from(text: str) -> None:
    assert ours("FROM m\n" + text) == ollama_parse("FROM m\n" + text)


# -- llamadeck's Modelfile ------------------------------------------------------------

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
    ("FROM a\nFROM b", 2, "a second FROM (the first is on line 1)"),
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
    ("FROM x\nDRAFT ./d.gguf", 2, "DRAFT (a draft model for speculative decoding) is an Ollama instruction"),
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
    ('FROM x\nDRAFT:json "a"', 2, "DRAFT"),
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
    started = time.perf_counter()
    parsed = parse_modelfile(text)
    elapsed = time.perf_counter() - started
    assert parsed.system is not None and parsed.system.count("\n") == lines
    assert elapsed < 5, elapsed
    started = time.perf_counter()
    with pytest.raises(ModelfileError):
        parse_modelfile("FROM x\nPARAMETER temperature " + "1" * 1_000_000 + "x")
    assert time.perf_counter() - started < 1


# -- writing -----------------------------------------------------------------------------


def test_format_uses_ollama_show_order_and_ollama_syntax() -> None:
    m = Modelfile(
        from_="llama3.2",
        adapters=("./lora.gguf",),
        template="{{ .Prompt }}\n",
        system="You are Mario.",
        parameters={"stop": ["<|eot_id|>", "User:"], "temperature": 0.7, "num_ctx": 8192},
        messages=(("user", "Is Toronto in Canada?"), ("assistant", "yes")),
        license=("MIT", 'Say "hi"'),
    )
    assert format_modelfile(m) == (
        "FROM llama3.2\n"
        "ADAPTER ./lora.gguf\n"
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


# -- hypothesis: never another exception, always the same object back -----------------------


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_any_input_gives_a_modelfile_or_one_modelfile_error(data: bytes | str) -> None:
    _parse_or_error(data)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from([*_PIECES, "PARAMETER temperature ", "PARAMETER stop ", ":json ", "0.5", "FROM x\n"]),
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
