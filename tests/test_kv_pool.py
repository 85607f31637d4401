"""The scheduler's shared KV pool on the real llama.cpp: many sequences in few cells, parking, admission.

A pool smaller than what its requests would hold at once: requests must
still all finish, each exactly as it would alone (greedy, the random tiny
model whose text depends on its whole history, flash attention off so that
batched and single decoding agree), whether a parked request's cells were
saved to host memory or evaluated again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import InvalidInput
from engine.events import Done
from engine.machine.offload import MAX_SEQUENCES, default_sequences
from engine.runtime.llama.model import Model
from engine.runtime.request import GREEDY, Request
from engine.runtime.scheduler import Scheduler

TEXTS = [f"story {i}: the river town of number {i} had a market" for i in range(8)]


@pytest.fixture(scope="module")
def tiny(tiny_models: dict[str, Path]) -> Iterator[Model]:
    model = Model.load(tiny_models["Q8_0"], n_gpu_layers=0)
    yield model
    model.free()


def make(model: Model, **options: object) -> Scheduler:
    settings: dict[str, object] = {"n_ctx_per_seq": 256, "n_parallel": 8, "n_threads": 1, "flash_attn": "off"}
    settings.update(options)
    return Scheduler(model, **settings)  # type: ignore[arg-type]


def alone(model: Model, tokens: list[int], max_tokens: int) -> tuple[str, Done]:
    with make(model, n_parallel=1) as scheduler:
        return scheduler.submit(Request(tokens, GREEDY, max_tokens)).collect()


@pytest.mark.parametrize("save_states", [True, False], ids=["cells-saved", "evaluated-again"])
def test_more_than_the_pool_holds_all_finish_each_as_alone(tiny: Model, save_states: bool) -> None:
    prompts = [tiny.tokenize(text) for text in TEXTS]
    expected = [alone(tiny, tokens, 60) for tokens in prompts]
    # 8 requests of ~75 cells each want ~600 cells; the pool has 256: some must be parked and resumed
    with make(tiny, kv_cells=256, save_states=save_states) as scheduler:
        handles = scheduler.submit_many([Request(tokens, GREEDY, 60) for tokens in prompts])
        results = [handle.collect() for handle in handles]
        stats = scheduler.stats()
    assert [text for text, _ in results] == [text for text, _ in expected]
    assert [(d.reason, d.completion_tokens) for _, d in results] == [
        (d.reason, d.completion_tokens) for _, d in expected
    ]
    assert [done.prompt_tokens for _, done in results] == [len(tokens) for tokens in prompts]
    assert stats.parks > 0 and stats.paused == 0 and stats.queued == 0
    assert stats.kv_cells == 256 and 0 < stats.kv_used <= 256


def test_short_requests_share_the_pool_all_at_once(tiny: Model) -> None:
    """A pool of two contexts' cells decodes eight short chats together, none waiting or parked."""
    prompts = [tiny.tokenize(text) for text in TEXTS]
    with make(tiny, kv_cells=512) as scheduler:
        handles = scheduler.submit_many([Request(tokens, GREEDY, 8) for tokens in prompts])
        results = [handle.collect() for handle in handles]
        stats = scheduler.stats()
    assert all(done.error is None for _, done in results)
    assert stats.parks == 0
    held = sorted(slot.tokens for slot in stats.slots)
    # each sequence kept its own cells: the prompt and every generated token but the last
    assert held == sorted(
        len(tokens) + d.completion_tokens - 1 for tokens, (_, d) in zip(prompts, results, strict=True)
    )
    assert stats.kv_used == sum(held)


def test_a_long_conversation_may_use_its_whole_context_beside_short_ones(tiny: Model) -> None:
    """Cells are not reserved per sequence: one request fills its 256-token context in a 320-cell pool
    while short ones come and go (they wait or are parked, never refused)."""
    long_prompt = tiny.tokenize(" ".join(TEXTS))[:200]
    with make(tiny, kv_cells=320) as scheduler:
        big = scheduler.submit(Request(long_prompt, GREEDY, None))  # until its context is full
        small = scheduler.submit_many([Request(tiny.tokenize(text), GREEDY, 24) for text in TEXTS[:4]])
        text, done = big.collect()
        smalls = [handle.collect() for handle in small]
    assert done.reason == "length" and done.prompt_tokens + done.completion_tokens == 256
    assert all(d.error is None and d.completion_tokens > 0 for _, d in smalls)


def test_an_idle_conversation_is_evicted_for_cells_and_comes_back_from_host_memory(tiny: Model) -> None:
    first = tiny.tokenize(TEXTS[0])
    with make(tiny, kv_cells=256, save_states=True) as scheduler:
        text, _ = scheduler.submit(Request(first, GREEDY, 40, conversation="chat-a")).collect()
        # others fill the pool: chat-a's cells (idle) are evicted, saved to host memory
        for other in TEXTS[1:4]:
            scheduler.submit(Request(tiny.tokenize(other), GREEDY, 120)).collect()
        assert "chat-a" in scheduler.stats().saved_conversations
        reply = tiny.tokenize(text, add_special=False, parse_special=False)[:30]
        follow_up = first + reply + tiny.tokenize(" next", add_special=False)
        _, done = scheduler.submit(Request(follow_up, GREEDY, 4, conversation="chat-a")).collect()
    assert done.cached_tokens >= len(first)


def test_a_pool_smaller_than_one_context_is_refused(tiny: Model) -> None:
    with pytest.raises(InvalidInput, match="cannot hold one 256-token context"):
        make(tiny, kv_cells=128)


def test_default_sequences_come_from_the_pool_size() -> None:
    assert default_sequences(4096 * 4) == 32  # the demo Gemma on a CPU: 4 contexts of 4096 cells
    assert default_sequences(2048) == 4  # never fewer than 4: short chats share even a small pool
    assert default_sequences(1 << 22) == MAX_SEQUENCES
