"""The converted GGUF's output: hashed on one thread, pushed to disk on another; the digest is the file's."""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from pathlib import Path

import gguf
import pytest

from engine.cancel import CancelToken
from engine.convert import output
from engine.convert.output import Output
from engine.convert.packing import Writer
from engine.errors import Cancelled
from engine.events import Event
from engine.store.transfer import ProgressMeter


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()} & {"writeback", "sha256"}


def test_the_digest_covers_the_header_and_every_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "WRITEBACK_EVERY", 4096)  # many ranges handed to the writeback thread
    path = tmp_path / "out.gguf"
    path.write_bytes(b"GGUF header")
    seen: list[Event] = []
    out = Output(path, ProgressMeter(seen.append, "converting", path.name, 10 * 5000))
    pieces = [os.urandom(5000) for _ in range(10)]
    for piece in pieces:
        out.write(piece)
    assert out.size == len(b"GGUF header") + 50_000
    written = out.finish()
    data = path.read_bytes()
    assert data == b"GGUF header" + b"".join(pieces)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert written.holds_for(path.stat()) and written.identity[2] == len(data)
    assert not _threads()
    out.close()  # after finish: nothing left to do


def test_a_cancelled_output_stops_its_threads_and_keeps_a_prefix(tmp_path: Path) -> None:
    path = tmp_path / "out.gguf"
    path.write_bytes(b"")
    cancel = CancelToken()
    out = Output(path, ProgressMeter(lambda e: None, "converting", path.name, 3), cancel=cancel)
    out.write(b"abc")
    cancel.cancel("stop")
    with pytest.raises(Cancelled):
        out.write(b"def")
    out.close()
    out.close()
    assert path.read_bytes() == b"abc" and not _threads()


def test_a_symlink_is_never_written_through(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_bytes(b"")
    (tmp_path / "out.gguf").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        Output(tmp_path / "out.gguf", ProgressMeter(lambda e: None, "converting", "out.gguf", 0))


ARRAYS = [
    ["<s>", "héllo", "▁world", "", "\u4e16\u754c"],  # token lists and merges
    [0.0, -1.5, 3.25, float("-inf"), float("nan"), 1e-40],  # scores
    [1, 3, 1, 6, 1, -2],  # token types
    [True, False, True],  # bool is an int subclass: GGUFWriter's own path
    [7],
    [1, 2**40],  # beyond int32
    [1.0, 1e300],  # beyond float32
    [1, 2.0],  # mixed
    [b"ab", b"c"],
    [[1, 2], [3]],
]


@pytest.mark.parametrize("values", ARRAYS, ids=range(len(ARRAYS)))
@pytest.mark.parametrize("sub_type", [None, gguf.GGUFValueType.UINT8, gguf.GGUFValueType.STRING])
def test_bulk_packed_arrays_are_gguf_writers_bytes(
    tmp_path: Path, values: list[object], sub_type: gguf.GGUFValueType | None
) -> None:
    def packed(cls: type[gguf.GGUFWriter]) -> bytes | str:
        try:
            return cls(tmp_path / "x.gguf", "llama")._pack_val(
                values, gguf.GGUFValueType.ARRAY, True, sub_type
            )
        except (struct.error, OverflowError, ValueError, TypeError, AttributeError) as error:
            return type(error).__name__

    assert packed(Writer) == packed(gguf.GGUFWriter)
