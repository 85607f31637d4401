"""String formats a grammar can enforce (``date``, ``time``, ``date-time``, ``uuid``, ``email``), JSON rules.

Each format is a GBNF expression for the characters between the quotes,
with the shortest and longest length it writes, so a schema's
``minLength``/``maxLength`` beside a format can be checked against it. A
date is always a real one (no 31 April; February stops at 28 so no year is
asked about); a time is RFC 3339 with seconds and a zone, as JSON Schema's
``time`` wants. Formats not here are refused, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

# whitespace between JSON tokens: none, a space, or a new line and some indentation (bounded: a model
# cannot spin in it for ever)
WS = '(" " | "\\n" [ \\t]{0,20})?'
# one character of a JSON string: anything but a quote, a backslash or a control character, or an escape
# (\u escapes of surrogates left out: a pair would count as two characters here and one in the reply)
_NOT_SURROGATE = "[0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}"
CHAR = f'[^"\\\\\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" ({_NOT_SURROGATE}))'


@dataclass(frozen=True)
class Format:
    expression: str  # the characters between the quotes
    shortest: int
    longest: int


_HOUR = '([01] [0-9] | "2" [0-3])'
_MINUTE = "[0-5] [0-9]"
_ZONE = f'("Z" | [+-] {_HOUR} ":" {_MINUTE})'
_TIME = f'{_HOUR} ":" {_MINUTE} ":" {_MINUTE} ("." [0-9]{{1,6}})? {_ZONE}'
_DAY_31 = '("0" [1-9] | [12] [0-9] | "3" [01])'
_DAY_30 = '("0" [1-9] | [12] [0-9] | "30")'
_DAY_28 = '("0" [1-9] | "1" [0-9] | "2" [0-8])'
_DATE = (
    f'[1-9] [0-9]{{3}} "-" (("0" [13578] | "1" [02]) "-" {_DAY_31} | ("0" [469] | "11") "-" {_DAY_30}'
    f' | "02" "-" {_DAY_28})'
)
_HEX = "[0-9a-f]"
_WORD = "[a-zA-Z0-9_+-]{1,32}"
_LABEL = "[a-zA-Z0-9]{1,63}"

FORMATS = {
    "date": Format(_DATE, 10, 10),
    "time": Format(_TIME, 9, 21),
    "date-time": Format(f'{_DATE} "T" {_TIME}', 20, 32),
    "uuid": Format(f'{_HEX}{{8}} "-" {_HEX}{{4}} "-" {_HEX}{{4}} "-" {_HEX}{{4}} "-" {_HEX}{{12}}', 36, 36),
    "email": Format(
        f'{_WORD} ("." {_WORD}){{0,4}} "@" {_LABEL} ("." {_LABEL}){{1,4}}', 5, 164 + 1 + 63 + 256
    ),
}

# Any JSON value: the rules written into a grammar that needs one (``format: "json"``, ``{}``, ``true``).
GENERIC_RULES = {
    "value": "object | array | string | number | boolean | null",
    "object": '"{" ws (string ws ":" ws value ws ("," ws string ws ":" ws value ws)*)? "}"',
    "array": '"[" ws (value ws ("," ws value ws)*)? "]"',
    "string": '"\\"" char* "\\""',
    "char": CHAR,
    "boolean": '"true" | "false"',
    "null": '"null"',
    "ws": WS,
}
