"""Ollama's Modelfile parser as an oracle: a literal port of its ``ParseFile``, and ours spelt like it.

``ollama_parse`` is Ollama's state machine rune by rune (quadratic, as Ollama's is); ``commands`` and
``ours`` give llamadeck's parser's instructions as Ollama's ``Command{Name, Args}`` list, so the two can be
compared on any text. ``PIECES`` are the fragments generated Modelfiles are made of.
"""

from __future__ import annotations

import unicodedata

from engine.ingest.modelfile import ModelfileError, _commands


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


PIECES = [
    "FROM", "from", "Parameter", "SYSTEM", "template", "MESSAGE", "ADAPTER", "License", "BAD",
    "temperature", "stop", "x_1", "user", "system", "bad", " ", " ", "\t", "\n", "\n", "\r", "\r\n",
    '"', '"', '""', '"""', "#", "a", "b c", "é", "👋", "\x00", "\u200b", "\x0b", ":", "\\",
]  # fmt: skip
