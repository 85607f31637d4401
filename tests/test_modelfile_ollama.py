"""engine.ingest.modelfile read as Ollama reads it, at the level of Ollama's commands.

Two kinds of check: tables ported from Ollama's ``parser/parser_test.go``
(before llamadeck gives the commands meaning), and a literal rune-by-rune
port of Ollama's ``ParseFile`` (``tests/support/ollama_modelfile.py``) used
as an oracle against the linear-time parser on generated files.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.ollama_modelfile import PIECES, ollama_parse, ours

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


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_parser_matches_ollama_rune_by_rune(text: str) -> None:
    """The linear parser and a literal port of Ollama's state machine agree on every file."""
    assert ours(text) == ollama_parse(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_parser_matches_ollama_after_from(text: str) -> None:
    assert ours("FROM m\n" + text) == ollama_parse("FROM m\n" + text)
