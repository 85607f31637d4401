"""Converting safetensors to GGUF: time against reading and hashing the safetensors once, and peak memory.

    python bench/convert.py [--layers 8] [--hidden 1024] [--rounds 3] [--dtype BF16]

Writes a random llama-shaped model in Hugging Face's layout (two shards, a
32,000-token vocabulary: about 390 MB at the defaults), reads it once to warm
the page cache, then alternates, best of ``--rounds``:

- baseline: read and sha256 every safetensors file (``hash_file``, as fast as ``sha256sum``);
- write: the same bytes written from memory and fsynced: the disk's durable write rate, which
  bounds any converter that keeps every blob durable (the same bytes, since a disk that
  compresses or dedups writes random bytes slower than a model's);
- copy: the same bytes read, hashed, written to one file and fsynced (the floor for any writer,
  since every blob is fsynced before it enters the store);
- ``convert_folder`` to a GGUF beside it (output hashed while written, as every blob is),
  each in a fresh process whose peak RSS is reported;
- ``Engine.create`` FROM the folder into a scratch store (convert, then the import's own
  hash and structural check, then the manifest).

Goal: conversion <= 1.5 x the baseline; peak RSS <= 1 GiB + the largest tensor. The second ratio,
conversion / max(baseline, durable write), says what is the converter's and what is the disk's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.hf_tiny import _tokenizer, write_safetensors  # noqa: E402

GOAL = 1.5
WHATS = ("hash", "write", "copy", "convert", "create")
VOCAB = 32000


def write_model(folder: Path, layers: int, hidden: int, dtype: str) -> int:
    """A random llama-shaped model; returns its largest tensor's size in bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    ffn, heads = hidden * 4, max(hidden // 64, 1)
    rng = np.random.default_rng(0)
    kind = np.uint16 if dtype == "BF16" else np.float16
    pool = rng.integers(0x3C00, 0x3E00, size=VOCAB * hidden, dtype=np.uint16).view(kind)

    def w(*shape: int) -> tuple[np.ndarray, str]:
        return pool[: int(np.prod(shape))].reshape(shape), dtype

    shards: list[dict[str, tuple[np.ndarray, str]]] = [{"model.embed_tokens.weight": w(VOCAB, hidden)}, {}]
    for i in range(layers):
        p, shard = f"model.layers.{i}.", shards[0 if i < layers // 2 else 1]
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shard[p + f"self_attn.{name}.weight"] = w(hidden, hidden)
        for name, shape in (
            ("gate_proj", (ffn, hidden)),
            ("up_proj", (ffn, hidden)),
            ("down_proj", (hidden, ffn)),
        ):
            shard[p + f"mlp.{name}.weight"] = w(*shape)
        for name in ("input_layernorm", "post_attention_layernorm"):
            shard[p + f"{name}.weight"] = (np.ones(hidden, dtype=np.float32), "F32")
    shards[1]["model.norm.weight"] = (np.ones(hidden, dtype=np.float32), "F32")
    shards[1]["lm_head.weight"] = w(VOCAB, hidden)
    for i, shard in enumerate(shards, 1):
        write_safetensors(folder / f"model-0000{i}-of-00002.safetensors", shard)
    config = {
        "architectures": ["LlamaForCausalLM"], "hidden_size": hidden, "intermediate_size": ffn,
        "num_attention_heads": heads, "num_key_value_heads": heads, "num_hidden_layers": layers,
        "vocab_size": VOCAB, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    _tokenizer(folder, "llama-bpe")
    return VOCAB * hidden * 2


def child(what: str, source: str, out: str) -> None:
    """One timed run in this (fresh) process: prints seconds and peak RSS as JSON."""
    from engine.convert.writer import convert_folder
    from engine.store.transfer import hash_file

    start = time.perf_counter()
    if what == "hash":
        for path in sorted(Path(source).glob("*.safetensors")):
            hash_file(path)
    elif what == "write":  # the disk's durable write rate: the model's own bytes from memory, fsynced
        data = [p.read_bytes() for p in sorted(Path(source).glob("*.safetensors"))]  # not timed
        start = time.perf_counter()
        with open(out, "wb") as f:
            for blob in map(memoryview, data):
                for at in range(0, len(blob), 16 << 20):  # in the pieces the copy writes
                    f.write(blob[at : at + (16 << 20)])
            f.flush()
            os.fsync(f.fileno())
    elif what == "copy":  # the floor for any writer: the same bytes read, hashed, written and fsynced
        import hashlib

        with open(out, "wb") as f:
            for path in sorted(Path(source).glob("*.safetensors")):
                digest = hashlib.sha256()
                with open(path, "rb") as src:
                    while chunk := src.read(16 << 20):
                        digest.update(chunk)
                        f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    elif what == "convert":
        convert_folder(Path(source), Path(out))
    else:
        from engine import Engine

        os.environ["LLAMADECK_HOME"] = out
        Engine().create("bench", f"FROM {source}\n", base_dir=Path(source).parent)
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across execve
    status = Path("/proc/self/status").read_text()
    rss = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "rss": rss}))


def run(what: str, source: Path, out: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", what, str(source), str(out)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", choices=("BF16", "F16"), default="BF16")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="bench-convert-", dir=os.environ.get("BENCH_DIR")) as tmp:
        source = Path(tmp) / "model"
        largest = write_model(source, args.layers, args.hidden, args.dtype)
        size = sum(p.stat().st_size for p in source.glob("*.safetensors"))
        print(
            f"model: {size / 2**20:.0f} MiB of {args.dtype} safetensors, "
            f"largest tensor {largest / 2**20:.0f} MiB"
        )
        run("hash", source, source)  # warm the page cache
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for what in WHATS:
                out = Path(tmp) / ("out.gguf" if what != "create" else f"home-{time.monotonic_ns()}")
                got = run(what, source, out)
                if what != "create":
                    out.unlink(missing_ok=True)
                elif what == "create":
                    subprocess.run(["rm", "-rf", str(out)], check=True)
                if what not in best or got["seconds"] < best[what]["seconds"]:
                    best[what] = got
        base = best["hash"]["seconds"]
        for what in WHATS:
            b = best[what]
            print(
                f"{what:8s} {b['seconds']:6.2f} s  {b['seconds'] / base:5.2f} x baseline  "
                f"peak RSS {b['rss'] / 2**20:6.0f} MiB"
            )
        ratio = best["convert"]["seconds"] / base
        bound = 2**30 + largest
        floor = best["convert"]["seconds"] / best["copy"]["seconds"]
        peak = best["convert"]["rss"] / 2**20
        rate = size / best["write"]["seconds"]
        disk = best["convert"]["seconds"] / max(base, best["write"]["seconds"])
        print(
            f"disk: durable write {rate / 1e6:.0f} MB/s "
            f"({best['write']['seconds']:.2f} s for the model's bytes)"
        )
        print(f"conversion / (read + sha256): {ratio:.2f} (goal <= {GOAL}); / (copy + fsync): {floor:.2f}")
        print(f"conversion / max(read + sha256, durable write): {disk:.2f}")
        print(f"conversion peak RSS {peak:.0f} MiB (bound: 1 GiB + largest tensor = {bound / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
