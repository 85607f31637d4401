"""How much one request may make the server build: bytes, JSON values, nesting, per-field counts and sizes.

Parsed JSON takes ~25 times the memory of its text (a 57 MB body of ``{}``
took 1.5 GB), so a byte limit alone is not a bound. Each limit here is checked
before the structure it guards is built, or as soon as it is:

- while the body is read (``JsonShape.feed``, chunk by chunk): its bytes, and
  the JSON values a parser would build, counted from the commas, colons and
  opening brackets outside strings in C-speed passes over the text;
- before and while parsing (``JsonShape.parse``): nesting, and every number,
  which must fit in 64 bits (``1e300``, a 10,000-digit integer, ``NaN``: a
  400 here, never a 500 further in);
- on the parsed object, before any route reads it (``check_request``):
  messages (and ``/v1/responses`` input items), tools, options, images, the length of each
  text, embedding inputs.

Each refusal is a ``Refused`` naming its limit: 413 for a body too large, 400
for a field. ``api.errors.read_json`` applies them all, for every route.

    shape = JsonShape()
    for chunk in chunks: shape.feed(chunk)      # Refused(413) past the bytes or values
    data = shape.parse(body)                    # Refused(400): malformed, too deep, a number too large
    check_request("/api/chat", data, len(body)) # Refused(400): a field past its limit
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_BYTES = 16 << 20  # a JSON request body (blob uploads have their own limit, LLAMADECK_MAX_BLOB_BYTES)
MAX_JSON_VALUES = 250_000  # objects, arrays, keys and items in one body: ~50 MB once parsed, at worst
MAX_JSON_DEPTH = 64  # objects and arrays inside each other
MAX_NUMBER = 2**63 - 1  # any JSON number, by magnitude: what a 64-bit integer holds
MAX_TEXT_CHARS = 4 << 20  # one string anywhere in a request: a prompt, a message's content, a template
MAX_MESSAGES = 10_000  # messages in one chat (or MESSAGE turns in one /api/create)
MAX_TOOLS = 128  # tools offered in one chat (OpenAI's own limit)
MAX_OPTIONS = 128  # entries in ``options`` / ``parameters`` (llamadeck knows fewer than 64)
MAX_IMAGES = 16  # images in one request, all messages together
MAX_EMBED_INPUTS = 2048  # texts in one embedding request (OpenAI's own limit)
MAX_EMBED_CHARS = 2 << 20  # characters of all the texts of one embedding request together

_EMBEDDING_TEXTS = {"/api/embed": "input", "/api/embeddings": "prompt", "/v1/embeddings": "input"}
_SLICE = 256 << 10  # the text is scanned in slices: a scan's temporary copies stay this small
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b"[]{},:")))
_FOLD = bytes.maketrans(b"{}", b"[]")  # for nesting, objects and arrays are alike


class Refused(Exception):
    """A request past one of the limits: ``status`` (400 or 413) and a message naming the limit."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class JsonShape:
    """What a JSON body will build, counted as its chunks arrive, and then its parse under the limits.

    Outside strings, every value but a lone scalar follows a comma, a colon or
    an opening bracket, so their count bounds the values a parser builds. Strings
    are cut out first (escapes removed, then the text between quotes), so
    brackets and commas in a prompt are text, not structure. Invalid JSON may
    be miscounted, but only after the point where the parser stops anyway.
    """

    def __init__(self, limit: int = MAX_JSON_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self.values = 0
        self._in_string = False
        self._escaped = False  # the last slice ended with a backslash inside a string
        self._brackets = bytearray()  # the opening and closing brackets, in order

    def feed(self, chunk: bytes) -> None:
        """Count ``chunk``, the next part of the body; raises Refused(413) past the bytes or the values."""
        self.size += len(chunk)
        if self.size > self.limit:
            raise Refused(413, f"request body is larger than {self.limit >> 20} MiB")
        for start in range(0, len(chunk), _SLICE):
            self._scan(chunk[start : start + _SLICE])
        if self.values > MAX_JSON_VALUES:
            raise Refused(
                413,
                f"request body holds more than {MAX_JSON_VALUES:,} JSON values "
                "(objects, arrays, keys and items together)",
            )

    def _scan(self, piece: bytes) -> None:
        if self._escaped:
            piece, self._escaped = piece[1:], False
        if b"\\" in piece:  # JSON pairs backslashes from the left, as replace() finds them
            piece = piece.replace(b"\\\\", b"")
            if piece.endswith(b"\\"):  # its escaped character starts the next slice
                piece, self._escaped = piece[:-1], True
            piece = piece.replace(b'\\"', b"")  # every backslash left escapes what follows it
        parts = piece.split(b'"')  # with the escapes gone, each quote opens or closes a string
        outside = b"".join(parts[1 if self._in_string else 0 :: 2])
        if len(parts) % 2 == 0:
            self._in_string = not self._in_string
        structure = outside.translate(None, _NOT_STRUCTURE)
        self.values += len(structure) - structure.count(b"]") - structure.count(b"}")
        self._brackets += structure.translate(_FOLD, b",:")

    def too_deep(self) -> bool:
        """Whether the brackets nest past MAX_JSON_DEPTH (or do not balance: then the parser says so)."""
        brackets = bytes(self._brackets)
        if brackets.count(b"[") * 2 != len(brackets):
            return True
        for _ in range(MAX_JSON_DEPTH):  # each pass removes the innermost level
            brackets = brackets.replace(b"[]", b"")
            if not brackets:
                return False
        return True

    def parse(self, body: bytes | bytearray) -> Any:
        """The fed ``body`` parsed; Refused(400) when it is malformed, too deep or has a number too large."""
        if json.detect_encoding(body) not in ("utf-8", "utf-8-sig"):  # what was counted is UTF-8's structure
            raise Refused(400, "invalid JSON: the request body must be UTF-8 (RFC 8259)")
        deep = self.too_deep()
        try:
            data = json.loads(body, parse_int=_integer, parse_float=_float, parse_constant=_not_a_number)
        except RecursionError as error:
            raise Refused(400, f"invalid JSON: nested more than {MAX_JSON_DEPTH} levels deep") from error
        except (ValueError, UnicodeDecodeError) as error:
            raise Refused(400, f"invalid JSON: {str(error)[:200]}") from error
        if deep:  # it parsed, so the brackets balance: they nest too deep
            raise Refused(400, f"request body is nested more than {MAX_JSON_DEPTH} levels deep")
        return data


def _out_of_range(text: str) -> Refused:
    shown = text if len(text) <= 24 else f"{text[:20]}… ({len(text):,} characters)"
    return Refused(
        400, f"a number in the request is out of range: {shown} (numbers must lie within ±{MAX_NUMBER})"
    )


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > len(str(MAX_NUMBER)):
        raise _out_of_range(text)  # before int(): a 10,000-digit integer is not even converted
    value = int(text)
    if abs(value) > MAX_NUMBER:
        raise _out_of_range(text)
    return value


def _float(text: str) -> float:
    value = float(text)
    if not abs(value) <= MAX_NUMBER:  # also inf, from 1e999
        raise _out_of_range(text)
    return value


def _not_a_number(text: str) -> float:
    raise Refused(400, f"invalid JSON: {text} is not a number JSON allows")


# the parsed request ----------------------------------------------------------------


def check_request(path: str, data: dict[str, Any], size: int) -> None:
    """Refuse (400) a field of ``data`` past its limit; ``size``: the body's bytes (no text can be longer)."""
    if size > MAX_TEXT_CHARS:
        _check_texts(data)
    messages = data.get("messages")
    images = _count(data.get("images"))
    if isinstance(messages, list):
        _check_count("messages", len(messages), MAX_MESSAGES, "messages")
        images += sum(_count(m.get("images")) for m in messages if isinstance(m, dict))
    if path == "/v1/responses" and isinstance(items := data.get("input"), list):  # messages, calls, results
        _check_count("input", len(items), MAX_MESSAGES, "input items")
    if images > MAX_IMAGES:
        raise Refused(
            400, f"the request holds {images:,} images: at most {MAX_IMAGES:,} images in one request"
        )
    for field in ("tools", "functions"):
        if isinstance(tools := data.get(field), list):
            _check_count(field, len(tools), MAX_TOOLS, "tools")
    for field in ("options", "parameters"):
        if isinstance(options := data.get(field), dict):
            _check_count(field, len(options), MAX_OPTIONS, "entries")
    if texts := _EMBEDDING_TEXTS.get(path):
        _check_embedding_texts(texts, data.get(texts))


def _count(value: object) -> int:
    return len(value) if isinstance(value, list) else 0


def _check_count(field: str, count: int, limit: int, what: str) -> None:
    if count > limit:
        raise Refused(400, f"{field} holds {count:,} items: at most {limit:,} {what} in one request")


def _check_texts(data: dict[str, Any]) -> None:
    """Every string (and key) of ``data`` at most MAX_TEXT_CHARS long; the message names where one is not."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, container = stack.pop()
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, value in items:
            place = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and len(key) > MAX_TEXT_CHARS:
                place = f"a key in {where or 'the request'}"
                raise Refused(400, f"{place} is longer than {MAX_TEXT_CHARS:,} characters")
            if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
                raise Refused(400, f"{place} is longer than {MAX_TEXT_CHARS:,} characters")
            if isinstance(value, dict | list):
                stack.append((place, value))


def _check_embedding_texts(field: str, value: object) -> None:
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    _check_count(field, len(texts), MAX_EMBED_INPUTS, "inputs")
    characters = sum(len(t) for t in texts if isinstance(t, str))
    if characters > MAX_EMBED_CHARS:
        raise Refused(
            400,
            f"{field} holds {characters:,} characters: "
            f"at most {MAX_EMBED_CHARS:,} characters in one embedding request",
        )
