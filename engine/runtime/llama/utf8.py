"""Valid UTF-8 for constrained replies: which tokens may come next without breaking a character.

llama.cpp's grammar decodes each token's bytes to code points, but it lets
through sequences that are not UTF-8 (an overlong ``C1 BF`` reads as
``DEL``, ``ED A0 80`` as a surrogate, ``FF 80 80 80`` as a code point past
U+10FFFF). Decoded, each bad byte is a U+FFFD, so a string the grammar
counted as one character comes out as four, and ``maxLength`` breaks. A
model with byte tokens (most have them) can write such bytes; a random one
does. So a constrained sequence also tracks where it stands in a UTF-8
character (``State``), and a token that would break it counts as refused.

``Utf8Table`` is made once per model, from every token's bytes (a second or
so for a 262,144-token vocabulary; only for models that get a grammar), and
gives the tokens allowed from a state as a mask, for the full pass. It also
keeps each token's first byte and a token for each single byte, so the full
pass can skip the tokens whose first byte the grammar refuses.
"""

from __future__ import annotations

import threading

import numpy as np

from engine.runtime.llama.model import Model

State = tuple[int, int, int]  # continuation bytes still due, and the range the next one must be in
CLEAN: State = (0, 0x80, 0xBF)

_LEADS: dict[int, State] = {
    **{b: (1, 0x80, 0xBF) for b in range(0xC2, 0xE0)},
    0xE0: (2, 0xA0, 0xBF),
    **{b: (2, 0x80, 0xBF) for b in range(0xE1, 0xED)},
    0xED: (2, 0x80, 0x9F),
    0xEE: (2, 0x80, 0xBF),
    0xEF: (2, 0x80, 0xBF),
    0xF0: (3, 0x90, 0xBF),
    0xF1: (3, 0x80, 0xBF),
    0xF2: (3, 0x80, 0xBF),
    0xF3: (3, 0x80, 0xBF),
    0xF4: (3, 0x80, 0x8F),
}


def advance(state: State, data: bytes) -> State | None:
    """The state after ``data``, or None when it breaks UTF-8."""
    due, low, high = state
    for byte in data:
        if due:
            if not low <= byte <= high:
                return None
            due, low, high = due - 1, 0x80, 0xBF
        elif byte >= 0x80:
            lead = _LEADS.get(byte)
            if lead is None:
                return None
            due, low, high = lead
    return (due, low, high) if due else CLEAN


class Utf8Table:
    """Per token: how its bytes begin and whether the rest is valid, so a state's mask is a few array ops."""

    def __init__(self, model: Model) -> None:
        n = model.n_vocab
        self.length = np.zeros(n, dtype=np.int32)
        self.first = np.zeros(n, dtype=np.int32)
        self.leading = np.zeros(n, dtype=np.int32)  # continuation bytes it starts with (at most 3 counted)
        self.valid_after = np.zeros((4, n), dtype=bool)  # its bytes from k on are valid from a clean state
        self.single = np.full(256, -1, dtype=np.int32)  # a token whose piece is that one byte, -1: none
        for token in range(n):
            piece = model.piece(token)
            self.length[token] = len(piece)
            if piece:
                self.first[token] = piece[0]
                if len(piece) == 1 and self.single[piece[0]] < 0:
                    self.single[piece[0]] = token
            k = 0
            while k < min(3, len(piece)) and 0x80 <= piece[k] <= 0xBF:
                k += 1
            self.leading[token] = k
            for skip in range(k + 1):
                self.valid_after[skip, token] = advance(CLEAN, piece[skip:]) is not None
        self._masks: dict[State, np.ndarray] = {}

    def mask(self, state: State) -> np.ndarray:
        """The tokens that keep UTF-8 valid from ``state``."""
        known = self._masks.get(state)
        if known is not None:
            return known
        due, low, high = state
        if not due:
            mask = self.valid_after[0]
        else:
            shorter = self.length <= due  # only continuation bytes, all of them due
            covered = self.leading >= np.minimum(self.length, due)
            first_ok = (self.first >= low) & (self.first <= high)
            rest_ok = shorter | self.valid_after[min(due, 3)]
            mask = covered & first_ok & rest_ok & (self.length > 0)
        self._masks[state] = mask
        return mask


_LOCK = threading.Lock()


def table_for(model: Model) -> Utf8Table:
    """The model's table, made on first use (by the thread that submits the first constrained request)."""
    with _LOCK:
        table: Utf8Table | None = getattr(model, "utf8_table", None)
        if table is None:
            table = Utf8Table(model)
            model.utf8_table = table  # type: ignore[attr-defined]  # lives and dies with the model
        return table
