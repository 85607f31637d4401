"""Greedy tokens straight from the runtime's llama.cpp wrappers: what a model says, to compare two models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.runtime.llama.compute import COMPUTE
from engine.runtime.llama.context import Batch, Context
from engine.runtime.llama.model import AdapterSpec, Model
from engine.runtime.llama.sampler import Sampler


def greedy_tokens(
    path: Path, prompt: str = "hello world", n: int = 8, *, adapters: Sequence[AdapterSpec] = ()
) -> list[int]:
    """``n`` greedy tokens (no penalties) after ``prompt`` from the model at ``path``, with ``adapters``."""

    def run() -> list[int]:
        model = (
            Model.load(path, n_gpu_layers=0, adapters=list(adapters))
            if adapters
            else Model.load(path, n_gpu_layers=0)
        )
        ctx, batch = Context(model, n_ctx=128), Batch(64)
        sampler = Sampler(model, temperature=0, repeat_penalty=1.0, seed=42)
        try:
            tokens = model.tokenize(prompt)
            last = batch.add_run(tokens, 0, 0, logits_last=True)
            out, pos = [], len(tokens)
            for _ in range(n):
                ctx.decode(batch)
                token = sampler.sample(ctx, last)
                out.append(token)
                batch.clear()
                last = batch.add(token, pos, 0, True)
                pos += 1
            return out
        finally:
            sampler.free()
            batch.free()
            ctx.free()
            model.free()

    return COMPUTE.call(run)
