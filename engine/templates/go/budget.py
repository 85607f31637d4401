"""What one Go template render may spend: steps, output, the size of a value, and work in all.

A template can loop only over its data, but it can copy and grow values as it
goes: ``{{ $x = print $x $x }}`` in a range over the messages doubles a string
per message (29 messages made 5 GiB). So a render has one :class:`Budget`,
shared by every turn of a legacy template, that counts work rather than
seconds (the same render is refused on any machine, however loaded):

* :data:`MAX_STEPS` nodes, commands and loop turns;
* :data:`MAX_OUTPUT` characters written;
* :data:`MAX_VALUE` characters in any one string a function builds, refused
  before it is built when the arguments alone are longer;
* :data:`MAX_WORK` characters and list items that functions read and build
  (and ranges copy), added up: the memory a render can hold, and with the
  steps, its time.

The limits are read at each check, so tests can lower them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import TemplateError

MAX_STEPS = 2_000_000  # nodes, commands and loop turns one render may take (about a second or two)
MAX_OUTPUT = 4 << 20  # characters one render may write
MAX_VALUE = 4 << 20  # characters in one string a function builds: no prompt needs more than the output
MAX_WORK = 64 << 20  # characters and list items functions read, build and copy in one render, in all

_BUILDERS = frozenset({"print", "printf", "println", "html"})  # their result holds every string argument
_COMPARISONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})
_BYTE_WISE = frozenset({"len", "index", "slice"})  # a string argument is read as its UTF-8 bytes


@dataclass(eq=False)
class Budget:
    """What one render (every turn of a legacy template together) has spent so far."""

    steps: int = 0
    written: int = 0
    work: int = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateError(f"the Go template ran past {MAX_STEPS} steps; is it looping over too much?")

    def write(self, size: int) -> None:
        self.written += size
        if self.written > MAX_OUTPUT:
            raise TemplateError(f"the Go template wrote more than {MAX_OUTPUT:,} characters")

    def spend(self, amount: int) -> None:
        self.work += amount
        if self.work > MAX_WORK:
            raise TemplateError(
                f"the Go template read and built more than {MAX_WORK:,} characters and list items; "
                "does it copy the conversation over and over?"
            )

    def fits(self, size: int) -> None:
        if size > MAX_VALUE:
            raise TemplateError(
                f"the Go template tried to build a value of {size:,} characters; the limit is {MAX_VALUE:,}"
            )

    def before_call(self, name: str, args: Sequence[Any]) -> None:
        """Refuse a call whose result is certainly too long; pay for what it reads but does not build."""
        if name in _BUILDERS:
            self.fits(sum(len(a) for a in args if isinstance(a, str)))
        elif name == "json" and len(args) == 1 and isinstance(args[0], str):
            self.fits(len(args[0]) + 2)  # quoted, escapes aside
        elif name in _COMPARISONS and len(args) > 1 and isinstance(args[0], str):
            # a comparison reads the shorter string at most (strings of unequal length: none of it)
            self.spend(sum(min(len(args[0]), len(b)) for b in args[1:] if isinstance(b, str)))
        elif name in _BYTE_WISE and args and isinstance(args[0], str) and not args[0].isascii():
            self.spend(len(args[0]))  # encoded to UTF-8 first; ASCII is read in place

    def built(self, value: Any) -> Any:
        """``value``, a function's result, once it fits and is paid for."""
        if isinstance(value, str):
            self.fits(len(value))
            self.spend(len(value))
        elif isinstance(value, list | tuple | bytes):
            self.spend(len(value))
        return value
