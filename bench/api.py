"""Generation through the HTTP API against the same engine in process, as ratios measured side by side.

    python bench/api.py [--quick] [--rounds 3] [--tokens 128] [--streams 8] [--model REF]

On the demo Gemma 3 270M (imported from its package into a temporary store)
unless ``--model`` names a model already in the store (``LLAMADECK_HOME``):

- one stream's tokens/s through ``/api/generate`` (NDJSON, a real uvicorn
  on 127.0.0.1, read with httpx) / the engine's own ``generate`` loop;
  goal >= 0.97;
- ``--streams`` concurrent streaming clients' total tokens/s / the same
  number of in-process streams on threads; goal >= 0.9;
- time to first token at the 95th percentile with that many clients (from
  sending the request to the first token's line).

Greedy, the same prompts and options on both sides, so the same model
settings (one load, ``num_parallel`` = the stream count). In-process and
HTTP runs alternate; each ratio uses the best of ``--rounds``. Rates count
decode steps: (tokens - 1) over the time from the first token to the last,
tokens as the engine counts them (Done/``eval_count``); several streams: all
tokens over the time from the first token of any stream to the last of any.
The server runs in this process, as ``llamadeck serve`` would (same engine,
same GIL); each client runs in a process of its own, as separate programs do.
The machine is shared: read the spread too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402  (after the path is set)

from engine import DEFAULT_MODEL, Done, Engine, Token  # noqa: E402
from tests.support.api_server import running_api  # noqa: E402

PROMPTS = [
    f"Story {i}: the history of the city begins with a small settlement on the river, where traders met "
    f"to exchange salt, grain and cloth. Tell it in {i + 3} chapters."
    for i in range(64)
]

# (first token time, last token time, tokens, time to first token) for one stream
Run = tuple[float, float, int, float]


def in_process(engine: Engine, model: str, prompt: str, options: dict[str, object]) -> Run:
    sent = time.perf_counter()
    first = last = 0.0
    tokens = 0
    for event in engine.generate(model, prompt, raw=True, options=options):
        now = time.perf_counter()
        if isinstance(event, Token):
            first = first or now
            last = now
        elif isinstance(event, Done):
            tokens = event.completion_tokens
    return first, last, tokens, first - sent


def over_http(http: httpx.Client, base_url: str, model: str, prompt: str, options: dict[str, object]) -> Run:
    body = {"model": model, "prompt": prompt, "raw": True, "options": options}
    sent = time.perf_counter()
    first = last = 0.0
    tokens = 0
    with http.stream("POST", f"{base_url}/api/generate", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            now = time.perf_counter()
            chunk = json.loads(line)
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
            if chunk["done"]:
                tokens = chunk["eval_count"]
            else:
                first = first or now
                last = now
    return first, last, tokens, first - sent


def http_client(base_url: str, model: str, prompt: str, options: dict[str, object]) -> Run:
    """One client, in a process of its own as separate programs are: it takes no GIL from the server."""
    with httpx.Client(timeout=600) as http:
        return over_http(http, base_url, model, prompt, options)


def ready() -> None:
    """Nothing: makes a pool start its processes (and import httpx) before anything is timed."""


def together(count: int, one: Callable[[int], Run]) -> tuple[float, list[float]]:
    """``count`` streams at once on threads: total tokens/s and each stream's time to first token."""
    runs: list[Run] = []
    failures: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            runs.append(one(i))
        except BaseException as error:  # reported below, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    start = min(r[0] for r in runs)
    end = max(r[1] for r in runs)
    steps = sum(r[2] - 1 for r in runs)
    return steps / (end - start), [r[3] for r in runs]


def rate(run: Run) -> float:
    first, last, tokens, _ = run
    return (tokens - 1) / (last - first)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and tokens")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--verbose", action="store_true", help="print each round's figures")
    parser.add_argument("--model", help="a model already in the store (default: the demo Gemma, imported)")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    n_tokens = 64 if args.quick else args.tokens
    streams = args.streams

    with tempfile.TemporaryDirectory(prefix="llamadeck-bench-api-") as tmp:
        engine = Engine(None if args.model else Path(tmp) / "home")
        try:
            model = args.model or engine.pull(DEFAULT_MODEL).reference
            options: dict[str, object] = {
                "temperature": 0,
                "num_predict": n_tokens,
                "num_parallel": streams,
                "num_ctx": 2048,
            }
            spawn = multiprocessing.get_context("spawn")
            with running_api(engine) as base_url, ProcessPoolExecutor(streams, mp_context=spawn) as clients:
                for started in [clients.submit(ready) for _ in range(streams)]:
                    started.result()
                in_process(engine, model, PROMPTS[0], options)  # load and warm up
                clients.submit(http_client, base_url, model, PROMPTS[0], options).result()
                loaded = engine.loaded()[0]
                print(
                    f"{model}: {loaded.slots} slots, {loaded.gpu_layers}/{loaded.layers} layers on the GPU, "
                    f"{rounds} round(s), {n_tokens} tokens, greedy"
                )
                return measure(engine, clients, base_url, model, options, rounds, streams, args.verbose)
        finally:
            engine.close()


def measure(
    engine: Engine,
    clients: ProcessPoolExecutor,
    base_url: str,
    model: str,
    options: dict[str, object],
    rounds: int,
    streams: int,
    verbose: bool,
) -> int:
    single: dict[str, list[float]] = {"engine": [], "http": []}
    many: dict[str, list[float]] = {"engine": [], "http": []}
    first_tokens: list[float] = []
    engine_first: list[float] = []
    for r in range(rounds):
        prompt = PROMPTS[r]
        single["engine"].append(rate(in_process(engine, model, prompt, options)))
        single["http"].append(rate(clients.submit(http_client, base_url, model, prompt, options).result()))
        base = 8 + r * streams  # fresh prompts each round: no prefix reused from the round before

        prompts = PROMPTS[base : base + streams]
        total, ttfts = together(
            streams, lambda i, prompts=prompts: in_process(engine, model, prompts[i], options)
        )
        many["engine"].append(total)
        engine_first += ttfts

        def client(i: int, prompts: list[str] = prompts) -> Run:
            return clients.submit(http_client, base_url, model, prompts[i], options).result()

        total, ttfts = together(streams, client)
        many["http"].append(total)
        first_tokens += ttfts
        if verbose:
            print(
                f"  round {r + 1}: 1 stream {single['engine'][-1]:.1f} / {single['http'][-1]:.1f} tok/s,"
                f" {streams} streams {many['engine'][-1]:.1f} / {many['http'][-1]:.1f} tok/s (engine / http);"
                f" first tokens over HTTP at {', '.join(f'{t:.2f}' for t in sorted(ttfts))} s",
                flush=True,
            )

    def show(name: str, figures: dict[str, list[float]], goal: float) -> None:
        spread = ", ".join(f"{h / e:.3f}" for e, h in zip(figures["engine"], figures["http"], strict=True))
        ratio = max(figures["http"]) / max(figures["engine"])
        verdict = "ok" if ratio >= goal else "below goal"
        print(
            f"{name}: http {max(figures['http']):.1f} tok/s / engine {max(figures['engine']):.1f} tok/s"
            f" = {ratio:.3f} (goal >= {goal}, {verdict}; per round {spread})"
        )

    show("1 stream", single, 0.97)
    show(f"{streams} streams", many, 0.9)
    print(
        f"time to first token, {streams} clients: p95 {p95(first_tokens) * 1000:.0f} ms over HTTP"
        f" (median {statistics.median(first_tokens) * 1000:.0f} ms), in process p95"
        f" {p95(engine_first) * 1000:.0f} ms ({len(first_tokens)} requests)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
