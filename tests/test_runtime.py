"""Generating with the real llama.cpp: tiny models from the fake Hub, the embedded Gemma via the CLI."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine import (
    CancelToken,
    Done,
    Engine,
    InvalidOption,
    Machine,
    ModelNotFound,
    PromptTooLong,
    Token,
)
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    d = tmp_path_factory.mktemp("runtime-repos")
    single = write_tiny_gguf(d / "Tiny-Q8_0.gguf")[0]
    parts = write_tiny_gguf(d / "split" / "Tiny-Q4_0.gguf", quant="Q4_0", split_tensors=8)
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Tiny-GGUF", {"Tiny-Q8_0.gguf": single})
        hub.add_repo("acme/Split-GGUF", {p.name: p for p in parts})
        engine = Engine(machine=lambda: CPU_BOX)
        engine.pull("acme/Tiny-GGUF")
        engine.pull("acme/Split-GGUF")
    return engine


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, Token))


def test_generate_streams_tokens_then_done(engine: Engine) -> None:
    events = list(engine.generate("acme/Tiny-GGUF", "hello world", max_tokens=8, temperature=0))
    done = events[-1]
    assert isinstance(done, Done) and all(isinstance(e, Token) for e in events[:-1])
    assert done.load_seconds > 0 and done.prompt_tokens > 0 and text_of(events)
    again = list(engine.generate("acme/Tiny-GGUF", "hello world", max_tokens=8, temperature=0))
    assert again[-1].load_seconds == 0.0  # the model stayed loaded
    assert text_of(events) == text_of(again)


def test_completion_tokens_counts_llama_tokens_not_text_pieces(engine: Engine) -> None:
    """Byte tokens that make one character between them yield one piece of text but are two tokens.

    The tiny model's random weights emit byte tokens often, so over a few
    seeds a count of text pieces would fall short of the tokens generated.
    """
    pieces_short = False
    for seed in range(4):
        events = list(engine.generate("acme/Tiny-GGUF", "hello", max_tokens=24, temperature=1.5, seed=seed))
        done = events[-1]
        assert isinstance(done, Done)
        if done.reason == "length":
            assert done.completion_tokens == 24
        pieces = sum(1 for e in events if isinstance(e, Token))
        pieces_short |= pieces < done.completion_tokens
    assert pieces_short, "no seed produced a multi-byte character: the test proves nothing"


def test_a_seed_repeats_the_text_and_no_seed_draws_a_new_one(engine: Engine) -> None:
    def run(seed: int | None) -> str:
        return text_of(
            list(engine.generate("acme/Tiny-GGUF", "hello", max_tokens=16, temperature=1.0, seed=seed))
        )

    assert run(7) == run(7)
    assert len({run(None) for _ in range(4)}) > 1


@pytest.mark.parametrize(
    "options",
    [
        {"max_tokens": 0},
        {"max_tokens": -3},
        {"options": {"temprature": 0.5}},
        {"options": {"top_p": 2}},
        {"options": {"num_ctx": "big"}},
        {"temperature": float("nan")},
        {"temperature": float("inf")},
        {"temperature": -5},
        {"seed": -2},
        {"seed": 2**40},
    ],
)
def test_bad_options_raise_at_the_call_before_anything_loads(engine: Engine, options: dict) -> None:
    with pytest.raises(InvalidOption):
        engine.generate("acme/Tiny-GGUF", "hello", **options)
    assert engine.loaded() == []


def test_generation_never_pulls_and_fails_at_the_call(tmp_path: Path) -> None:
    model = write_tiny_gguf(tmp_path / "Fresh-Q8_0.gguf")[0]
    with FakeHub() as hub, hub.patch_endpoint():
        hub.add_repo("acme/Fresh-GGUF", {"Fresh-Q8_0.gguf": model})
        engine = Engine(machine=lambda: CPU_BOX)
        with pytest.raises(ModelNotFound, match="pull it with llamadeck pull hf.co/acme/Fresh-GGUF"):
            engine.generate("acme/Fresh-GGUF", "hello", max_tokens=2)  # no next(): raised at the call
        assert hub.requests == []
        engine.ensure("acme/Fresh-GGUF")  # what run does first
        events = list(engine.generate("acme/Fresh-GGUF", "hello", max_tokens=2))
    assert isinstance(events[-1], Done)


def test_a_prompt_longer_than_the_context_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(PromptTooLong, match=r"needs \d+ tokens, more than the 2048-token context holds"):
        list(engine.generate("acme/Tiny-GGUF", "hello world " * 3000, max_tokens=4))


def test_a_huge_prompt_is_refused_without_tokenizing_it(engine: Engine) -> None:
    """Tokenizing megabytes is quadratic in some tokenizers (160k emoji took 7 s): refused uncounted."""
    with pytest.raises(PromptTooLong, match="far more tokens than the 2048-token context holds"):
        list(engine.generate("acme/Tiny-GGUF", "\U0001f600" * 4_000_000, max_tokens=4))


def test_max_tokens_stops_at_the_end_of_the_context(engine: Engine) -> None:
    prompt = "hello world " * 165  # about 1,980 of the 2,048 positions (12 tokens a repeat)
    done = list(engine.generate("acme/Tiny-GGUF", prompt, max_tokens=500, temperature=0))[-1]
    assert isinstance(done, Done) and 1_900 < done.prompt_tokens < 2_048
    assert done.prompt_tokens + done.completion_tokens <= 2048
    assert done.reason == "stop" or done.prompt_tokens + done.completion_tokens == 2048


def test_cancel_from_another_thread_ends_the_stream_with_done(engine: Engine) -> None:
    LIMIT = 600  # noqa: N806 - a constant of this test

    def run(seed: int, cancel: CancelToken | None = None) -> list:
        options = {"num_predict": LIMIT, "temperature": 1.0, "seed": seed}
        events = []
        for event in engine.generate(
            "acme/Tiny-GGUF", "hello", options=options, cancel=cancel or CancelToken()
        ):
            events.append(event)
            if cancel is not None and len(events) == 3:
                canceller = threading.Thread(target=cancel.cancel)
                canceller.start()
                canceller.join()
        return events

    # random weights reach an end token now and then: a seed that runs to the limit proves the cancel
    long_seed = next(seed for seed in range(50) if run(seed)[-1].reason == "length")
    done = run(long_seed, CancelToken())[-1]
    # tokens already decoded when the cancel lands still arrive (the tiny model runs ~20k tokens/s)
    assert isinstance(done, Done) and done.reason == "cancelled" and done.completion_tokens < LIMIT


def test_split_model_loads_from_its_blobs(engine: Engine) -> None:
    events = list(engine.generate("acme/Split-GGUF", "hello", max_tokens=4, temperature=0))
    assert isinstance(events[-1], Done) and events[-1].completion_tokens > 0
    views = engine.home / "views"
    assert len(list(views.iterdir())) == 1
    engine.remove("acme/Split-GGUF")
    assert list(views.iterdir()) == []  # no dangling symlinks left behind


def test_logs_show_llama_cpp_s_latest_lines_once_a_model_loaded(engine: Engine) -> None:
    list(engine.generate("acme/Tiny-GGUF", "hello", max_tokens=1, temperature=0))
    lines = engine.logs()  # what the TUI's log tab shows: found without importing llama.cpp
    assert lines and any(line.startswith("llama_") for line in lines)


@pytest.mark.slow
def test_quick_start_runs_the_embedded_default_model() -> None:
    llamadeck = str(Path(sys.executable).parent / "llamadeck")
    result = subprocess.run(
        [llamadeck, "run", "gemma3:270m", "The capital of France is", "-n", "16", "-t", "0", "--verbose"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) >= 5  # a real continuation, streamed to stdout
    assert "llama_" not in result.stderr and "tokens/s" in result.stderr  # llama.cpp's log stays out
