"""Whether llama.cpp's own grammar engine accepts a text: the judge of the grammars llamadeck writes.

The tiny model's vocabulary has a token per byte (``<0x00>`` ... ``<0xFF>``),
so any text can be fed to a real grammar sampler byte by byte, the way a
model could write it, and the end checked with the end-of-text token:

    with Oracle() as oracle:
        assert oracle.accepts(integer(0, 10), "7")
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from engine.runtime.llama.grammar import Grammar
from engine.runtime.llama.model import Model
from tests.support.tiny_gguf import write_tiny_gguf

_FIRST_BYTE = 5  # <0x00>: after <unk>, <s>, </s>, <|im_start|>, <|im_end|>
_EOS = 2


class Oracle:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory()
        path = write_tiny_gguf(Path(self._dir.name) / "oracle.gguf")[0]
        self.model = Model.load(path)

    def accepts(self, grammar: str, text: str) -> bool:
        """Whether ``grammar`` (GBNF) lets a model write exactly ``text`` and then stop."""
        compiled = Grammar(self.model, grammar)
        try:
            for byte in text.encode("utf-8"):
                token = _FIRST_BYTE + byte
                if not compiled.allows(token):
                    return False
                compiled.accept(token)
            return compiled.allows(_EOS)
        finally:
            compiled.free()

    def close(self) -> None:
        self.model.free()
        self._dir.cleanup()

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
