"""Many chat clients at once against a server with default settings, as ratios to one client.

    python bench/concurrency.py [--clients 1,8,32] [--tokens 96] [--rounds 2] [--model REF]

What a user who never heard of ``num_parallel`` gets: the engine with its
built-in settings behind a real uvicorn, the real ``ollama`` client in a
process per client (as separate programs), every client sending
"Tell me about city number N." to ``/api/chat`` at the same instant (N new in
every request, so no reply's prompt was seen before)
(greedy, ``num_predict`` tokens). For each client count it prints the total
tokens/s ÷ one client's, and the time to first token (median, p95, max) ÷
one client's. Goals (issue 20): 8 clients >= 1.5x one stream's tokens/s and
p95 TTFT <= 3x a single request's; 32 clients no slower in total than 8.

On the demo Gemma 3 270M (imported from its package into a temporary store)
unless ``--model`` names a model in the store (``LLAMADECK_HOME``). Rates
count decode steps as bench/api.py does: all tokens over the time from the
first token of any client to the last of any. Rounds alternate the counts;
each figure is the best round (the machine is shared: read the spread).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import DEFAULT_MODEL, Engine  # noqa: E402
from tests.support.api_server import running_api  # noqa: E402

# (first token at, last token at, tokens, time to first token): wall-clock seconds, same in every process
Run = tuple[float, float, int, float]


def client(base_url: str, model: str, index: int, tokens: int, at: float) -> Run:
    """One ``ollama`` client in its own process, sending at the shared instant ``at``."""
    import ollama

    chat = ollama.Client(host=base_url, timeout=900)
    delay = at - time.time()
    if delay > 0:
        time.sleep(delay)
    sent = time.time()
    first = last = 0.0
    count = 0
    stream = chat.chat(
        model=model,
        messages=[{"role": "user", "content": f"Tell me about city number {index}."}],
        options={"temperature": 0, "num_predict": tokens, "seed": index},
        stream=True,
    )
    for chunk in stream:
        now = time.time()
        if chunk.message.content:
            first = first or now
            last = now
        if chunk.done:
            count = chunk.eval_count or 0
    return first, last, count, first - sent


def ready() -> None:
    """Nothing: makes the pool start its processes (and import ollama) before anything is timed."""
    import ollama  # noqa: F401


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


_next_city = iter(range(1, 1 << 30))


def together(pool: ProcessPoolExecutor, base_url: str, model: str, count: int, tokens: int) -> list[Run]:
    at = time.time() + 0.5
    futures = [pool.submit(client, base_url, model, next(_next_city), tokens, at) for _ in range(count)]
    return [future.result() for future in futures]


def total_rate(runs: list[Run]) -> float:
    start = min(r[0] for r in runs)
    end = max(r[1] for r in runs)
    steps = sum(max(r[2] - 1, 0) for r in runs)
    return steps / (end - start) if end > start else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", default="1,8,32", help="client counts, comma-separated (1 is the base)")
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", help="a model already in the store (default: the demo Gemma, imported)")
    args = parser.parse_args()
    counts = sorted({1, *(int(c) for c in args.clients.split(","))})
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="llamadeck-bench-concurrency-") as tmp:
        engine = Engine(None if args.model else Path(tmp) / "home")
        try:
            model = args.model or engine.pull(DEFAULT_MODEL).reference
            with running_api(engine) as base_url, ProcessPoolExecutor(max(counts), mp_context=spawn) as pool:
                for started in [pool.submit(ready) for _ in range(max(counts))]:
                    started.result()
                together(pool, base_url, model, 1, 8)  # load and warm up
                loaded = engine.loaded()[0]
                print(
                    f"{model}: default settings ({loaded.slots} sequences, context {loaded.context}),"
                    f" {args.tokens} tokens each, greedy, {args.rounds} round(s)"
                )
                rates: dict[int, list[float]] = {n: [] for n in counts}
                firsts: dict[int, list[float]] = {n: [] for n in counts}
                for _ in range(args.rounds):
                    for n in counts:
                        runs = together(pool, base_url, model, n, args.tokens)
                        rates[n].append(
                            total_rate(runs) if n > 1 else (runs[0][2] - 1) / (runs[0][1] - runs[0][0])
                        )
                        firsts[n].extend(r[3] for r in runs)
            report(counts, rates, firsts)
        finally:
            engine.close()
    return 0


def report(counts: list[int], rates: dict[int, list[float]], firsts: dict[int, list[float]]) -> None:
    one = max(rates[1])
    one_ttft = statistics.median(firsts[1])
    header = ("clients", "tok/s", "÷ one", "TTFT median", "p95", "max", "p95 ÷ one")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, (8, 8, 7, 12, 8, 8, 10), strict=True)))
    for n in counts:
        best = max(rates[n])
        ttfts = firsts[n]
        print(
            f"{n:>8} {best:>8.1f} {best / one:>7.2f} {statistics.median(ttfts):>11.2f}s {p95(ttfts):>7.2f}s"
            f" {max(ttfts):>7.2f}s {p95(ttfts) / one_ttft:>10.1f}"
            f"   (rounds: {', '.join(f'{r:.1f}' for r in rates[n])})"
        )
    if 8 in rates:
        print(
            f"goal 8 clients >= 1.5x one: {max(rates[8]) / one:.2f}x;"
            f" p95 TTFT <= 3x one: {p95(firsts[8]) / one_ttft:.1f}x"
        )
    if 8 in rates and 32 in rates:
        print(f"goal 32 clients >= 8 clients: {max(rates[32]) / max(rates[8]):.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
