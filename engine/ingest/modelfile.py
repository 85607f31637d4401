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
* ``RENDERER``, ``PARSER`` and ``REQUIRES`` (Ollama-only) are errors;
* ``DRAFT`` (a draft model for speculative decoding) names a GGUF file or
  folder, as in Ollama, or a stored model (Ollama's client takes paths
  only); a second DRAFT is an error (Ollama merges their files), and so is
  an empty one;
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

import json
from dataclasses import dataclass, field
from typing import cast

from engine.errors import InvalidOption
from engine.ingest.modelfile_syntax import (
    MAX_MODELFILE_BYTES,
    ROLES,
    SURROGATE,
    ModelfileError,
    commands,
    decode,
    needs,
    read_value,
)
from engine.option_parsing import collect_parameters, parameter_pairs, parse_one
from engine.options import MAX_STOPS
from engine.store.manifest import MAX_TURNS
from engine.text import quoted

_commands = commands  # the name tests/support/ollama_modelfile.py imports

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

MAX_NUMBER_CHARS = 100  # a PARAMETER number this long is junk (and the option table's regex is not linear)
# MESSAGE turns are few-shot examples or a saved chat, and each is sent ahead of every chat with the model:
# 1,000 turns of even 30 tokens fill 30,000 tokens of context, more than most models are run with.
MAX_MESSAGES = MAX_TURNS  # the store's bound: a manifest keeps no more (an older one's last MAX_TURNS)
# About 40 option names and MAX_STOPS stop lines mean something; a later line only replaces an earlier one.
MAX_PARAMETER_LINES = 1_000


@dataclass(frozen=True)
class Modelfile:
    """What a Modelfile says, in llamadeck's terms; equal files compare equal.

    ``template``/``system`` are ``None`` when unset; an empty one is unset too,
    as in Ollama (its create ignores ``SYSTEM ""``). ``parameters`` is an
    option layer as :func:`engine.option_parsing.collect_parameters` builds it.
    """

    from_: str  # FROM's value as written (a model name, a path, an hf.co/ ref)
    also_from: tuple[str, ...] = ()  # a second FROM: a vision projector's path, for create to check
    adapters: tuple[str, ...] = ()
    template: str | None = None
    system: str | None = None
    parameters: dict[str, object] = field(default_factory=dict)  # validated+converted; "stop" -> list[str]
    messages: tuple[tuple[str, str], ...] = ()  # (role, content), role in ROLES
    license: tuple[str, ...] = ()
    draft: str | None = None  # DRAFT's value as written: a GGUF path or a model name

    def __post_init__(self) -> None:
        # lists become tuples and "" becomes None, so equal meaning is equal value
        object.__setattr__(self, "adapters", tuple(self.adapters))
        object.__setattr__(self, "also_from", tuple(self.also_from))
        object.__setattr__(self, "messages", tuple((r, c) for r, c in self.messages))
        object.__setattr__(self, "license", tuple(self.license))
        object.__setattr__(self, "template", self.template or None)
        object.__setattr__(self, "system", self.system or None)
        object.__setattr__(self, "draft", self.draft or None)


def parse_modelfile(data: bytes | str) -> Modelfile:
    """A Modelfile's bytes or text, read as Ollama reads them; raises :class:`ModelfileError`.

    ::

        parse_modelfile(b"FROM llama3.2\\nPARAMETER temperature 0.5\\nSYSTEM You are Mario.\\n")
        # Modelfile(from_='llama3.2', system='You are Mario.', parameters={'temperature': 0.5})
    """
    text = decode(data)
    from_: str | None = None
    from_line = 0
    also_from: list[str] = []
    adapters: list[str] = []
    draft: str | None = None
    draft_line = 0
    template: str | None = None
    system: str | None = None
    entries: list[tuple[str, object, str]] = []
    stops = 0
    messages: list[tuple[str, str]] = []
    licenses: list[str] = []
    for command in commands(text):
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
                    raise ModelfileError(needs("from"), line)
                if from_ is None:
                    from_, from_line = value, line
                else:
                    also_from.append(value)
            case "adapter":
                if not value:
                    raise ModelfileError("ADAPTER needs a path", line)
                adapters.append(value)
            case "draft":
                if draft is not None:
                    raise ModelfileError(
                        f"a second DRAFT (the first is on line {draft_line}): a model takes one draft model",
                        line,
                    )
                if not value:
                    raise ModelfileError("DRAFT needs a model name or a path", line)
                draft, draft_line = value, line
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
        draft=draft,
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
        read, end = read_value(written + "\n", 0, "check", 0)
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
    (Ollama's ``Model.String``): FROM, ADAPTER, DRAFT, TEMPLATE, SYSTEM, PARAMETER,
    LICENSE, MESSAGE. Unlike Ollama, every value is quoted so that it reads
    back unchanged (FROM too, which Ollama never quotes); the few texts
    Ollama's syntax cannot hold at all are written as ``INSTRUCTION:json
    "..."``, which Ollama refuses rather than misreads. Raises
    :class:`ModelfileError` for a Modelfile that could not have been parsed
    (no FROM, an empty ADAPTER, a bad role or parameter, a lone surrogate).
    """
    m = modelfile
    texts = [m.from_, *m.also_from, *m.adapters, m.draft or "", m.template or "", m.system or "", *m.license]
    texts += [text for message in m.messages for text in message]
    if any(not isinstance(t, str) or SURROGATE.search(t) for t in texts):
        raise ModelfileError("cannot write a value that is not text (or holds a lone surrogate)")
    if not m.from_ or not all(m.also_from) or len(m.also_from) > 1:
        raise ModelfileError(needs("from") if not m.from_ else "a second FROM needs a path (one at most)")
    if not all(m.adapters):
        raise ModelfileError("ADAPTER needs a path")
    for role, _ in m.messages:
        if role not in ROLES:
            raise ModelfileError(f"MESSAGE role must be system, user or assistant, not {quoted(role)}")
    try:
        pairs = parameter_pairs(m.parameters)
    except InvalidOption as error:
        raise ModelfileError(str(error)) from None
    if any(SURROGATE.search(value) for _, value in pairs):
        raise ModelfileError("cannot write a PARAMETER value that holds a lone surrogate")
    out = [_line("FROM", m.from_)]
    out += [_line("FROM", also) for also in m.also_from]
    out += [_line("ADAPTER", adapter) for adapter in m.adapters]
    if m.draft:
        out.append(_line("DRAFT", m.draft))
    if m.template:
        out.append(_line("TEMPLATE", m.template))
    if m.system:
        out.append(_line("SYSTEM", m.system))
    out += [_line("PARAMETER", value, name) for name, value in pairs]
    out += [_line("LICENSE", text) for text in m.license]
    out += [_line("MESSAGE", content, role) for role, content in m.messages]
    return "".join(out)
