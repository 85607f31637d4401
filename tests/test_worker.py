"""llama.cpp in a worker process per model (issue 18): real aborts end one worker, never the engine.

The worker-level tests load a GGUF whose header makes llama.cpp abort at its
first decode (``nan-eps`` of ``hostile_gguf``): the engine's checks refuse
it before a load, so here it goes to ``Worker.start`` with a sound file's
header, as a header llama.cpp trusts and the checks do not know would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from engine import Done, ModelCrashed, Token
from engine.runtime.request import GREEDY, Request
from engine.runtime.worker.client import Worker
from engine.runtime.worker.spec import LoadSettings, LoadSpec
from engine.store.gguf_io import verify_structure
from tests.support.chain_gguf import token_id, write_chain_gguf
from tests.support.hostile_gguf import write_hostile
from tests.support.tiny_gguf import write_tiny_gguf

SETTINGS = LoadSettings(
    n_ctx=256, num_parallel=2, n_gpu_layers=0, n_threads=1, n_batch=64, kv_type="f16", flash_attn="auto"
)
ROOT = Path(__file__).resolve().parent.parent


def endless(directory: Path) -> Path:
    """A model that says "▁hello" for ever (greedy): a stream that is running when the test acts
    (with ``LONG``'s context it runs for a minute or more, however fast the machine)."""
    hello = token_id("▁hello")
    return write_chain_gguf(directory / "endless.gguf", {hello: hello}, default=hello, context_length=1 << 20)


LONG = replace(SETTINGS, n_ctx=1 << 17)


def spec_for(
    path: Path, header_of: Path | None = None, label: str = "tiny", settings: LoadSettings = SETTINGS
) -> LoadSpec:
    header = verify_structure(header_of or path, label=label)
    return LoadSpec(path=path, label=label, settings=settings, headers=(header,))


def first_token(handle_iter) -> Token:
    event = next(handle_iter)
    assert isinstance(event, Token), event
    return event


def test_a_worker_serves_generation_tokenizing_and_stats(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "tiny.gguf")[0]
    progress: list[float] = []
    worker = Worker.start(spec_for(path), on_progress=progress.append)
    try:
        assert progress and progress == sorted(progress) and progress[-1] == 1.0  # llama.cpp's, as it read

        assert worker.pid != os.getpid()
        tokens = worker.tokenize("hello world")
        assert tokens and all(isinstance(t, int) for t in tokens)
        text, done = worker.submit(Request(tokens, GREEDY, max_tokens=8)).collect()
        assert done.reason in ("stop", "length") and done.completion_tokens <= 8
        again, _ = worker.submit(Request(tokens, GREEDY, max_tokens=8)).collect()
        assert again == text  # greedy: the same text from the same worker
        stats = worker.stats()
        assert stats is not None and stats.n_parallel == 2
        # past a limit only the count comes back: a long prompt is never a list of millions of tokens
        assert worker.tokenize_within("hello world", 100) == tokens
        long = worker.tokenize_within("hello world " * 50_000, 100)
        assert isinstance(long, int) and long > 50_000
    finally:
        worker.close()
    assert worker.broken == "tiny was unloaded"
    assert not _alive(worker.pid)  # closed means the process is gone, not just quiet


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_llama_cpp_abort_ends_the_worker_with_its_reason_and_the_engine_goes_on(tmp_path: Path) -> None:
    sound = write_tiny_gguf(tmp_path / "sound.gguf")[0]
    hostile = write_hostile(tmp_path, "nan-eps")
    crashes: list[tuple[str, list[Request]]] = []
    worker = Worker.start(
        spec_for(hostile, header_of=sound, label="nan-eps"),
        on_crash=lambda w, reason, requests, embeds: crashes.append((reason, requests)),
    )
    request = Request(worker.tokenize("hello"), GREEDY, max_tokens=4)
    handle = worker.submit(request)
    events = list(handle)
    done = events[-1]
    assert isinstance(done, Done) and done.reason == "error"
    assert isinstance(handle.error, ModelCrashed)
    message = str(handle.error)
    assert "nan-eps" in message and "GGML_ASSERT" in message and "SIGABRT" in message
    assert "\n" not in message
    assert crashes and crashes[0][1] == [request]  # the engine learns what was in flight
    # later calls fail at once with the same line; nothing hangs
    with pytest.raises(ModelCrashed):
        worker.tokenize("hello")
    late = worker.submit(request)
    assert late.collect()[1].reason == "error" and isinstance(late.error, ModelCrashed)
    assert worker.stats() is None
    worker.close()
    # and this process is fine: another worker serves
    healthy = Worker.start(spec_for(sound))
    try:
        assert healthy.submit(Request(healthy.tokenize("hi"), GREEDY, max_tokens=3)).collect()[1].reason in (
            "stop",
            "length",
        )
    finally:
        healthy.close()


def test_killing_a_worker_mid_stream_ends_only_its_streams(tmp_path: Path) -> None:
    model = endless(tmp_path)
    doomed = Worker.start(spec_for(model, label="doomed", settings=LONG))
    other = Worker.start(spec_for(model, label="other", settings=LONG))
    try:
        prompt = doomed.tokenize("hello")
        running = iter(doomed.submit(Request(prompt, GREEDY, max_tokens=100_000)))
        beside = iter(other.submit(Request(prompt, GREEDY, max_tokens=200)))
        first_token(running)
        first_token(beside)
        os.kill(doomed.pid, signal.SIGKILL)  # as the OOM killer would
        rest = list(running)
        assert isinstance(rest[-1], Done) and rest[-1].reason == "error"
        assert "doomed" in (rest[-1].error or "") and "SIGKILL" in (rest[-1].error or "")
        tail = list(beside)
        assert isinstance(tail[-1], Done) and tail[-1].reason == "length"
    finally:
        doomed.close()
        other.close()


def test_cancel_reaches_the_worker_and_frees_the_slot(tmp_path: Path) -> None:
    worker = Worker.start(spec_for(endless(tmp_path), settings=LONG))
    try:
        prompt = worker.tokenize("hello")
        handle = worker.submit(Request(prompt, GREEDY, max_tokens=100_000))
        events = iter(handle)
        first_token(events)
        handle.cancel()
        rest = list(events)
        assert isinstance(rest[-1], Done) and rest[-1].reason == "cancelled"
        stats = worker.stats()
        assert stats is not None and all(slot.status == "idle" for slot in stats.slots)
    finally:
        worker.close()


def test_a_worker_ends_when_its_engine_is_killed(tmp_path: Path) -> None:
    model = write_tiny_gguf(tmp_path / "tiny.gguf")[0]
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from engine.runtime.worker.client import Worker
        from tests.test_worker import spec_for
        worker = Worker.start(spec_for(Path({str(model)!r})))
        print(worker.pid, flush=True)
        time.sleep(600)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    engine = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    assert engine.stdout is not None
    pid = int(engine.stdout.readline())
    assert _alive(pid)
    engine.kill()
    engine.wait()
    # the worker sees its engine gone (its socket ends, its parent changes) and exits; no orphan stays
    for _ in range(600):  # a minute at most: the worker looks every half second
        if not _alive(pid):
            break
        time.sleep(0.1)
    assert not _alive(pid)
