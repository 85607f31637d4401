"""The Modelfile's syntax: Ollama's ``ParseFile`` state machine, instruction by instruction.

Split from ``modelfile.py`` (which gives the instructions their meaning and
writes files back) so each stays one job: this module knows lines, quotes,
the characters Ollama drops and the encodings it reads, and yields
``_Command``s; it knows nothing of options or of what FROM or DRAFT name.
See ``engine.ingest.modelfile`` for the quirks kept and the differences.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple, cast

from engine.errors import InvalidInput
from engine.text import quoted

MAX_MODELFILE_BYTES = 16 * 1024 * 1024  # templates and licences are kilobytes; this is far past any real file
ROLES = ("system", "user", "assistant")  # Ollama's isValidMessageRole: case-sensitive

_SUPPORTED = ("from", "parameter", "template", "system", "adapter", "draft", "license", "message")
_OLLAMA_ONLY = {
    "renderer": "a built-in prompt renderer",
    "parser": "a built-in output parser",
    "requires": "a minimum Ollama version",
}
_EXPECTED = "expected FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, DRAFT, LICENSE or MESSAGE"

_BLANK = re.compile(r"[ \t\r\n]*(?:#[^\r\n]*[ \t\r\n]*)*")  # blanks and comments; nothing follows: linear
_LETTERS = re.compile(r"[A-Za-z]*")
_NAME = re.compile(r"[A-Za-z0-9_]*")
_REST = re.compile(r"[^\r\n]*")
_SPACES = re.compile(r"[ \t]*")
_TOKEN = re.compile(r"[^ \t\r\n]{0,41}")
SURROGATE = re.compile(r"[\ud800-\udfff]")
_WS = " \t\r\n"  # the only whitespace that survives into a value (Go's TrimSpace on what is left)


class ModelfileError(InvalidInput):
    """A Modelfile Ollama would refuse (or llamadeck cannot honour); ``str(e)`` is one line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"Modelfile line {line}: {message}" if line else f"Modelfile: {message}")
        self.line = line


class _Command(NamedTuple):
    """One instruction as Ollama's parser yields it (before any meaning is given to it)."""

    line: int
    keyword: str  # lower case
    name: str | None  # PARAMETER's name or MESSAGE's role
    value: str


@functools.cache
def _dropped() -> re.Pattern[str]:
    """Characters Go's ``strconv.IsPrint`` refuses, which Ollama's parser leaves out of values.

    Unassigned code points are kept: Python's Unicode tables may be older than
    Go's, and a new emoji must not vanish.
    """
    ranges: list[str] = []
    start = -1
    for code in range(0x110001):
        category = unicodedata.category(chr(code)) if code < 0x110000 else "Cn"
        drop = code not in (0x09, 0x20) and category[0] in "CZ" and category != "Cn"  # tab: a blank
        if drop and start < 0:
            start = code
        elif not drop and start >= 0:
            ranges.append(f"\\U{start:08x}-\\U{code - 1:08x}")
            start = -1
    return re.compile("[" + "".join(ranges) + "]")


def _printable(segment: str) -> str:
    """A line's text as Ollama keeps it: tabs stay, other unprintable characters go."""
    if segment.isprintable() or ("\t" in segment and segment.replace("\t", " ").isprintable()):
        return segment
    return _dropped().sub("", segment)


def _is_dropped(char: str) -> bool:
    return not char.isprintable() and _dropped().fullmatch(char) is not None


class _Lines:
    """Line numbers for positions met in order; ``\\r\\n``, ``\\r`` and ``\\n`` each end one line."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.line = text, 0, 1

    def at(self, pos: int) -> int:
        part = self.text[self.pos : pos]
        self.line += part.count("\n") + part.count("\r") - part.count("\r\n")
        self.pos = pos
        return self.line


class _Buffer:
    """Ollama's value buffer, with its "is the quote closed?" test kept O(1) per line end.

    Ollama trims and re-checks the whole buffer at every line end; this keeps
    the trimmed text's first and last three characters instead.
    """

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.length = 0
        self.first: int | None = None  # index of the first non-blank character
        self.core_end = 0  # index after the last non-blank character
        self.head = ""  # first 3 characters from ``first``
        self.tail = ""  # last 3 characters before ``core_end`` (a line's: lines are added one by one)

    def add(self, text: str) -> None:
        if not text:
            return
        if self.first is None:
            stripped = text.lstrip(_WS)
            if stripped:
                self.first = self.length + len(text) - len(stripped)
        if self.first is not None and len(self.head) < 3:
            offset = max(0, self.first - self.length)
            self.head = (self.head + text[offset : offset + 3])[:3]
        core = text.rstrip(_WS)
        if core:
            self.core_end = self.length + len(core)
            self.tail = core[-3:]  # a shorter line follows a line end, so no quote ends before it
        self.pieces.append(text)
        self.length += len(text)

    def closed(self) -> bool:
        """Ollama's ``unquote(strings.TrimSpace(b))`` succeeds."""
        if self.first is None:
            return True
        size = self.core_end - self.first
        if self.head == '"""':
            return size >= 6 and self.tail == '"""'
        if self.head.startswith('"'):
            return size >= 2 and self.tail.endswith('"')
        return True

    def value(self) -> str:
        if self.first is None:
            return ""
        text = "".join(self.pieces)[self.first : self.core_end]
        if self.head == '"""':
            return text[3:-3]
        if self.head.startswith('"'):
            return text[1:-1]
        return text


def commands(text: str) -> Iterator[_Command]:
    """Ollama's ``ParseFile`` state machine, in linear time, one instruction at a time."""
    lines = _Lines(text)
    end = len(text)
    pos = 0
    while True:
        pos = cast(re.Match[str], _BLANK.match(text, pos)).end()
        if pos >= end:
            return
        line = lines.at(pos)
        start = pos
        first = "" if _is_dropped(text[pos]) else text[pos]  # Ollama lets a first unprintable through
        pos = cast(re.Match[str], _LETTERS.match(text, pos + 1)).end()
        word = first + text[start + 1 : pos]
        keyword = word.lower()
        after = text[pos : pos + 1]
        as_json = False
        if after == ":" and text[pos : pos + 5].lower() == ":json" and keyword in _SUPPORTED:
            as_json, pos = True, pos + 5
            after = text[pos : pos + 1]
        if keyword in _OLLAMA_ONLY:
            raise ModelfileError(
                f"{keyword.upper()} ({_OLLAMA_ONLY[keyword]}) is an Ollama instruction llamadeck "
                "does not support: remove it",
                line,
            )
        if keyword not in _SUPPORTED:
            token = cast(re.Match[str], _TOKEN.match(text, start)).group()
            raise ModelfileError(f"unknown instruction {quoted(token)}: {_EXPECTED}", line)
        if after in ("", "\r", "\n"):
            raise ModelfileError(needs(keyword), line)
        if after not in (" ", "\t"):
            raise ModelfileError(f"expected a space after {word.upper()}, not {quoted(after)}", line)
        pos += 1
        name: str | None = None
        if keyword in ("parameter", "message"):
            name, pos = _name(text, pos, keyword, line)
        if as_json:
            value, pos = _json_value(text, pos, keyword, line)
        else:
            value, pos = read_value(text, pos, keyword, line)
        yield _Command(line, keyword, name, value)


def needs(keyword: str) -> str:
    return {
        "from": "FROM needs a model name or path",
        "parameter": "PARAMETER needs a name and a value",
        "message": "MESSAGE needs a role (system, user or assistant) and a message",
    }.get(keyword, f"{keyword.upper()} needs a value")


def _name(text: str, pos: int, keyword: str, line: int) -> tuple[str, int]:
    """PARAMETER's name or MESSAGE's role, and the one space or tab after it."""
    pattern = _NAME if keyword == "parameter" else _LETTERS
    end = cast(re.Match[str], pattern.match(text, pos)).end()
    name, after = text[pos:end], text[end : end + 1]
    what = "name" if keyword == "parameter" else "role"
    if not name and after in (" ", "\t"):
        raise ModelfileError(f"{keyword.upper()} needs its {what} after a single space", line)
    if after in ("", "\r", "\n"):
        if not name:
            raise ModelfileError(needs(keyword), line)
        if keyword == "parameter":
            raise ModelfileError(f"PARAMETER {name} needs a value", line)
    if after not in (" ", "\t", "", "\r", "\n"):
        token = cast(re.Match[str], _TOKEN.match(text, pos)).group()
        if keyword == "parameter":
            raise ModelfileError(
                f"PARAMETER name {quoted(token)} may hold only letters, digits and _ (then a space)", line
            )
        raise ModelfileError(f"MESSAGE role must be system, user or assistant, not {quoted(token)}", line)
    if keyword == "message" and name not in ROLES:
        raise ModelfileError(f"MESSAGE role must be system, user or assistant, not {quoted(name)}", line)
    if after in ("", "\r", "\n"):
        raise ModelfileError(f"MESSAGE {name} needs a message", line)
    return name, end + 1


def read_value(text: str, pos: int, keyword: str, line: int) -> tuple[str, int]:
    """An Ollama value from ``pos``: line by line until a line end finds its quotes closed."""
    end = len(text)
    stop = cast(re.Match[str], _REST.match(text, pos)).end()
    first = _printable(text[pos:stop]).strip(_WS)
    if not first.startswith('"'):  # unquoted (most values): the line, trimmed
        return first, stop + 1
    buffer = _Buffer()
    while True:
        stop = cast(re.Match[str], _REST.match(text, pos)).end()
        buffer.add(_printable(text[pos:stop]))
        if stop >= end:
            if not buffer.closed():
                quote = '"""' if buffer.head == '"""' else '"'
                raise ModelfileError(f"{keyword.upper()}'s {quote} is never closed", line)
            return buffer.value(), stop
        if buffer.closed():
            return buffer.value(), stop + 1
        buffer.add(text[stop])
        pos = stop + 1


def _json_value(text: str, pos: int, keyword: str, line: int) -> tuple[str, int]:
    """The extension's value: one JSON string, then nothing but blanks to the line end."""
    pos = cast(re.Match[str], _SPACES.match(text, pos)).end()
    problem = f"{keyword.upper()}:json needs one JSON string on its line"
    if text[pos : pos + 1] != '"':
        raise ModelfileError(problem, line)
    try:
        value, pos = json.JSONDecoder().raw_decode(text, pos)
    except ValueError:
        raise ModelfileError(problem, line) from None
    pos = cast(re.Match[str], _SPACES.match(text, pos)).end()
    if text[pos : pos + 1] not in ("", "\r", "\n"):
        raise ModelfileError(problem, line)
    if SURROGATE.search(value):
        raise ModelfileError(f"{keyword.upper()}:json holds a lone surrogate, which is not text", line)
    return value, pos + 1


def decode(data: bytes | str) -> str:
    """The Modelfile's text: UTF-8 (BOM or not) or UTF-16 with its BOM, as Ollama's BOMOverride reads."""
    if isinstance(data, str):
        if len(data) > MAX_MODELFILE_BYTES or (
            len(data) > MAX_MODELFILE_BYTES // 4
            and len(data.encode("utf-8", "surrogatepass")) > MAX_MODELFILE_BYTES
        ):
            raise ModelfileError(f"the text is over {MAX_MODELFILE_BYTES // 2**20} MiB, too large")
        if found := SURROGATE.search(data):
            line = _Lines(data).at(found.start())
            raise ModelfileError("holds a lone surrogate, which is not text", line)
        return data.removeprefix("\ufeff")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ModelfileError(f"expected bytes or text, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_MODELFILE_BYTES:
        size = len(data) / 2**20
        raise ModelfileError(f"the file is {size:.1f} MiB, over the {MAX_MODELFILE_BYTES // 2**20} MiB limit")
    for bom, codec, label in (
        (b"\xef\xbb\xbf", "utf-8", "UTF-8"),
        (b"\xff\xfe", "utf-16-le", "UTF-16"),
        (b"\xfe\xff", "utf-16-be", "UTF-16"),
        (b"", "utf-8", "UTF-8"),
    ):
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                return body.decode(codec)
            except UnicodeDecodeError as error:
                good = body[: error.start].decode(codec)
                raise ModelfileError(
                    f"not valid {label} (at byte offset {len(bom) + error.start}): save the file as UTF-8",
                    _Lines(good).at(len(good)),
                ) from None
    raise AssertionError("unreachable")  # the empty BOM always matches
