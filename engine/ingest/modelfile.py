"""Ollama's Modelfile: parsed exactly as Ollama's ``parser/parser.go`` reads it, and written back.

Why a port and not a grammar of our own: people bring Modelfiles from Ollama
(``ollama show --modelfile``, the library, blog posts), and a file must mean
here what it means there, quirks included:

* instructions are case-insensitive, one per line; ``#`` starts a comment
  only at the start of a line (``FROM x # y`` is the model ``x # y``);
* a value is unquoted (trimmed), ``"..."`` or ``\"\"\"...\"\"\"``; a quoted value
  ends at the first line end where the text so far, trimmed, ends with its
  quote, so ``SYSTEM "a" b`` runs on until some line ends with ``"``;
* characters Ollama's parser drops (controls other than tab and line ends,
  format characters such as U+200B, non-ASCII spaces) are dropped here too;
* ``PARAMETER name value`` and ``MESSAGE role text`` take exactly one space
  after the instruction (two spaces give an empty name, an error);
* a lone ``\\r`` is a line end, as in Ollama.

What Ollama refuses, this refuses, as one :class:`ModelfileError` line that
names the line: ``Modelfile line 7: PARAMETER needs a name and a value``.
Deliberate differences, each where Ollama's behaviour cannot be represented
or silently loses data:

* bytes that are not valid UTF-8 / UTF-16 are an error (Ollama substitutes
  U+FFFD); line numbers count ``\\r\\n`` once (Ollama counts it twice);
* a second ``FROM`` is kept in ``also_from``: Ollama merges the files of
  every FROM, and a second one is how a vision projector joins the weights
  (``FROM ./model.gguf`` + ``FROM ./mmproj.gguf``); ``create`` accepts it only
  as a projector file. A third ``FROM`` is an error;
* ``DRAFT``, ``RENDERER``, ``PARSER`` and ``REQUIRES`` (Ollama-only) are errors;
* PARAMETER names and values are checked with llamadeck's option table
  (:mod:`engine.options`): ``mirostat`` is accepted (Ollama skips it
  as deprecated), ``penalize_newline`` and friends are refused (Ollama skips
  them with a warning);
* every ADAPTER line is kept (Ollama's create keeps only the last one's files);
* empty FROM / ADAPTER values are refused at parse time (Ollama fails later,
  resolving them as the Modelfile's directory); an empty TEMPLATE or SYSTEM
  is kept as unset (``None``), which is what Ollama's create makes of it;
* a PARAMETER value other than ``stop`` over 100 characters is refused
  before the option table sees it (no number is that long);
* at most :data:`MAX_MESSAGES` MESSAGE turns and :data:`MAX_PARAMETER_LINES`
  PARAMETER lines (Ollama takes any number: 500,000 turns made every chat
  with the model fail, and listing models slow);
* characters unassigned in Python's Unicode tables are kept (Go's tables
  may be newer: a new emoji must not vanish);
* an extension Ollama rejects, so no Ollama file changes meaning:
  ``SYSTEM:json "..."`` (any instruction, ``:json`` right after its name)
  takes one JSON string, for texts Ollama's syntax cannot hold. Only
  :func:`format_modelfile` needs to write it, and only for such texts.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, cast

from engine.errors import InvalidInput, InvalidOption
from engine.options import MAX_STOPS, collect_parameters, parameter_pairs, parse_one
from engine.store.manifest import MAX_TURNS
from engine.text import quoted

__all__ = [
    "MAX_MESSAGES",
    "MAX_MODELFILE_BYTES",
    "MAX_PARAMETER_LINES",
    "ROLES",
    "Modelfile",
    "ModelfileError",
    "format_modelfile",
    "parse_modelfile",
]

MAX_MODELFILE_BYTES = 16 * 1024 * 1024  # templates and licences are kilobytes; this is far past any real file
MAX_NUMBER_CHARS = 100  # a PARAMETER number this long is junk (and the option table's regex is not linear)
# MESSAGE turns are few-shot examples or a saved chat, and each is sent ahead of every chat with the model:
# 1,000 turns of even 30 tokens fill 30,000 tokens of context, more than most models are run with.
MAX_MESSAGES = MAX_TURNS  # the store's bound: a manifest keeps no more (an older one's last MAX_TURNS)
# About 40 option names and MAX_STOPS stop lines mean something; a later line only replaces an earlier one.
MAX_PARAMETER_LINES = 1_000
ROLES = ("system", "user", "assistant")  # Ollama's isValidMessageRole: case-sensitive

_SUPPORTED = ("from", "parameter", "template", "system", "adapter", "license", "message")
_OLLAMA_ONLY = {
    "draft": "a draft model for speculative decoding",
    "renderer": "a built-in prompt renderer",
    "parser": "a built-in output parser",
    "requires": "a minimum Ollama version",
}
_EXPECTED = "expected FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE or MESSAGE"

_BLANK = re.compile(r"[ \t\r\n]*(?:#[^\r\n]*[ \t\r\n]*)*")  # blanks and comments; nothing follows: linear
_LETTERS = re.compile(r"[A-Za-z]*")
_NAME = re.compile(r"[A-Za-z0-9_]*")
_REST = re.compile(r"[^\r\n]*")
_SPACES = re.compile(r"[ \t]*")
_TOKEN = re.compile(r"[^ \t\r\n]{0,41}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_WS = " \t\r\n"  # the only whitespace that survives into a value (Go's TrimSpace on what is left)


class ModelfileError(InvalidInput):
    """A Modelfile Ollama would refuse (or llamadeck cannot honour); ``str(e)`` is one line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"Modelfile line {line}: {message}" if line else f"Modelfile: {message}")
        self.line = line


@dataclass(frozen=True)
class Modelfile:
    """What a Modelfile says, in llamadeck's terms; equal files compare equal.

    ``template``/``system`` are ``None`` when unset; an empty one is unset too,
    as in Ollama (its create ignores ``SYSTEM ""``). ``parameters`` is an
    option layer as :func:`engine.options.collect_parameters` builds it.
    """

    from_: str  # FROM's value as written (a model name, a path, an hf.co/ ref)
    also_from: tuple[str, ...] = ()  # a second FROM: a vision projector's path, for create to check
    adapters: tuple[str, ...] = ()
    template: str | None = None
    system: str | None = None
    parameters: dict[str, object] = field(default_factory=dict)  # validated+converted; "stop" -> list[str]
    messages: tuple[tuple[str, str], ...] = ()  # (role, content), role in ROLES
    license: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # lists become tuples and "" becomes None, so equal meaning is equal value
        object.__setattr__(self, "adapters", tuple(self.adapters))
        object.__setattr__(self, "also_from", tuple(self.also_from))
        object.__setattr__(self, "messages", tuple((r, c) for r, c in self.messages))
        object.__setattr__(self, "license", tuple(self.license))
        object.__setattr__(self, "template", self.template or None)
        object.__setattr__(self, "system", self.system or None)


# -- reading -----------------------------------------------------------------------


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


def _commands(text: str) -> Iterator[_Command]:
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
            raise ModelfileError(_needs(keyword), line)
        if after not in (" ", "\t"):
            raise ModelfileError(f"expected a space after {word.upper()}, not {quoted(after)}", line)
        pos += 1
        name: str | None = None
        if keyword in ("parameter", "message"):
            name, pos = _name(text, pos, keyword, line)
        if as_json:
            value, pos = _json_value(text, pos, keyword, line)
        else:
            value, pos = _value(text, pos, keyword, line)
        yield _Command(line, keyword, name, value)


def _needs(keyword: str) -> str:
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
            raise ModelfileError(_needs(keyword), line)
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


def _value(text: str, pos: int, keyword: str, line: int) -> tuple[str, int]:
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
    if _SURROGATE.search(value):
        raise ModelfileError(f"{keyword.upper()}:json holds a lone surrogate, which is not text", line)
    return value, pos + 1


def _decode(data: bytes | str) -> str:
    """The Modelfile's text: UTF-8 (BOM or not) or UTF-16 with its BOM, as Ollama's BOMOverride reads."""
    if isinstance(data, str):
        if len(data) > MAX_MODELFILE_BYTES or (
            len(data) > MAX_MODELFILE_BYTES // 4
            and len(data.encode("utf-8", "surrogatepass")) > MAX_MODELFILE_BYTES
        ):
            raise ModelfileError(f"the text is over {MAX_MODELFILE_BYTES // 2**20} MiB, too large")
        if found := _SURROGATE.search(data):
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


def parse_modelfile(data: bytes | str) -> Modelfile:
    """A Modelfile's bytes or text, read as Ollama reads them; raises :class:`ModelfileError`.

    ::

        parse_modelfile(b"FROM llama3.2\\nPARAMETER temperature 0.5\\nSYSTEM You are Mario.\\n")
        # Modelfile(from_='llama3.2', system='You are Mario.', parameters={'temperature': 0.5})
    """
    text = _decode(data)
    from_: str | None = None
    from_line = 0
    also_from: list[str] = []
    adapters: list[str] = []
    template: str | None = None
    system: str | None = None
    entries: list[tuple[str, object, str]] = []
    stops = 0
    messages: list[tuple[str, str]] = []
    licenses: list[str] = []
    for command in _commands(text):
        line, value = command.line, command.value
        match command.keyword:
            case "from":
                if from_ is not None and also_from:
                    raise ModelfileError(
                        f"a third FROM (the first is on line {from_line}): a model is made from one base"
                        " and at most one vision projector",
                        line,
                    )
                if not value:
                    raise ModelfileError(_needs("from"), line)
                if from_ is None:
                    from_, from_line = value, line
                else:
                    also_from.append(value)
            case "adapter":
                if not value:
                    raise ModelfileError("ADAPTER needs a path", line)
                adapters.append(value)
            case "template":
                template = value or None
            case "system":
                system = value or None
            case "license":
                licenses.append(value)
            case "message":
                if len(messages) == MAX_MESSAGES:
                    raise ModelfileError(f"a model takes at most {MAX_MESSAGES:,} MESSAGE turns", line)
                messages.append((cast(str, command.name), value))
            case "parameter":
                if len(entries) == MAX_PARAMETER_LINES:
                    raise ModelfileError(
                        f"a Modelfile takes at most {MAX_PARAMETER_LINES:,} PARAMETER lines", line
                    )
                name = cast(str, command.name)
                stops += name == "stop"
                entries.append((name, _parameter(name, value, line, stops), f"Modelfile line {line}"))
    if from_ is None:
        raise ModelfileError("there is no FROM line: a Modelfile needs one, e.g. FROM llama3.2")
    try:
        parameters = collect_parameters(entries)
    except InvalidOption as error:  # each entry passed parse_one: only a layering limit is left
        raise ModelfileError(str(error)) from None
    return Modelfile(
        from_=from_,
        also_from=tuple(also_from),
        adapters=tuple(adapters),
        template=template,
        system=system,
        parameters=parameters,
        messages=tuple(messages),
        license=tuple(licenses),
    )


def _parameter(name: str, value: str, line: int, stops: int) -> str:
    """One PARAMETER line checked with the option table; its errors become this line's."""
    if name == "stop" and stops > MAX_STOPS:
        raise ModelfileError(f"PARAMETER stop may be given at most {MAX_STOPS} times", line)
    if name != "stop" and len(value) > MAX_NUMBER_CHARS:
        raise ModelfileError(f"PARAMETER {name}'s value is too long ({len(value)} characters)", line)
    source = f"Modelfile line {line}"
    try:
        parse_one(name, value, source=source)
    except InvalidOption as error:
        message = str(error).replace(f" (from {source})", "")
        if message.startswith("unknown option"):
            message = "unknown PARAMETER" + message.removeprefix("unknown option")
        elif message.startswith(name + " "):
            message = "PARAMETER " + message
        raise ModelfileError(message, line) from None
    return value


# -- writing -----------------------------------------------------------------------


def _reads_back(written: str, value: str) -> bool:
    """Whether Ollama's parser, given ``written`` after an instruction, reads exactly ``value``."""
    try:
        read, end = _value(written + "\n", 0, "check", 0)
    except ModelfileError:
        return False
    return read == value and end == len(written) + 1


def _quote(value: str) -> tuple[str, bool]:
    """``value`` as Ollama's parser will read it back, and whether that needs the ``:json`` form.

    Ollama's own ``quote`` leaves ``"hi"`` bare (read back as ``hi``), writes
    an empty string as nothing, leaves a leading tab bare (trimmed away) and
    breaks on a line ending in ``\"\"\"``. This tries bare, then ``"..."`` for
    one line without a quote, then ``\"\"\"...\"\"\"`` (always for several
    lines, the docs' style), each checked by running the parser on it, and
    only then a JSON string: for text no Ollama quoting holds, that is text
    with characters Ollama drops, or a line (not the last) ending in
    ``\"\"\"``, which closes any quote.
    """
    candidates = [value] if value else []
    if '"' not in value and "\n" not in value and "\r" not in value:
        candidates.append(f'"{value}"')
    candidates.append(f'"""{value}"""')
    for written in candidates:
        if _reads_back(written, value):
            return written, False
    return _json(value), True


def _json(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


def _line(keyword: str, value: str, name: str | None = None) -> str:
    written, as_json = _quote(value)
    head = keyword + (":json" if as_json else "")
    return " ".join(part for part in (head, name, written) if part is not None) + "\n"


def format_modelfile(modelfile: Modelfile) -> str:
    """The canonical Modelfile text: ``parse_modelfile(format_modelfile(m)) == m`` for every valid ``m``.

    Instructions come in the order ``ollama show --modelfile`` writes them
    (Ollama's ``Model.String``): FROM, ADAPTER, TEMPLATE, SYSTEM, PARAMETER,
    LICENSE, MESSAGE. Unlike Ollama, every value is quoted so that it reads
    back unchanged (FROM too, which Ollama never quotes); the few texts
    Ollama's syntax cannot hold at all are written as ``INSTRUCTION:json
    "..."``, which Ollama refuses rather than misreads. Raises
    :class:`ModelfileError` for a Modelfile that could not have been parsed
    (no FROM, an empty ADAPTER, a bad role or parameter, a lone surrogate).
    """
    m = modelfile
    texts = [m.from_, *m.also_from, *m.adapters, m.template or "", m.system or "", *m.license]
    texts += [text for message in m.messages for text in message]
    if any(not isinstance(t, str) or _SURROGATE.search(t) for t in texts):
        raise ModelfileError("cannot write a value that is not text (or holds a lone surrogate)")
    if not m.from_ or not all(m.also_from) or len(m.also_from) > 1:
        raise ModelfileError(_needs("from") if not m.from_ else "a second FROM needs a path (one at most)")
    if not all(m.adapters):
        raise ModelfileError("ADAPTER needs a path")
    for role, _ in m.messages:
        if role not in ROLES:
            raise ModelfileError(f"MESSAGE role must be system, user or assistant, not {quoted(role)}")
    try:
        pairs = parameter_pairs(m.parameters)
    except InvalidOption as error:
        raise ModelfileError(str(error)) from None
    if any(_SURROGATE.search(value) for _, value in pairs):
        raise ModelfileError("cannot write a PARAMETER value that holds a lone surrogate")
    out = [_line("FROM", m.from_)]
    out += [_line("FROM", also) for also in m.also_from]
    out += [_line("ADAPTER", adapter) for adapter in m.adapters]
    if m.template:
        out.append(_line("TEMPLATE", m.template))
    if m.system:
        out.append(_line("SYSTEM", m.system))
    out += [_line("PARAMETER", value, name) for name, value in pairs]
    out += [_line("LICENSE", text) for text in m.license]
    out += [_line("MESSAGE", content, role) for role, content in m.messages]
    return "".join(out)
