"""A Markdown reply streamed into the Chat tab's ChatLog: speed, flatness, key latency, cold start.

    python bench/tui_stream.py [--tokens 5000] [--rounds 3] [--paced-rounds 3] [--cold-rounds 5] [--baseline]
                               [--key-blocks 4] [--keys 50] [--pull-rate 50]

On a headless app (``App.run_test()``, 120x40, after a short earlier exchange)
a worker thread posts a Markdown-heavy reply (paragraphs, fences in several
languages, lists, tables, headings; 4 characters a token) as one Message a
token, the way the engine's worker does; the app's handler appends each to
``ChatLog.start_reply()``, then finishes it, and the run waits for the final
render. Printed, each with its goal and PASS/MISS:

1. tokens per second, first token to final render, the source unpaced
   (as fast as the thread can post), median of ``--rounds``: goal >= 1,000;
2. the UI thread's CPU time (``time.thread_time``: message handling, frames,
   layout, painting) over the last 1,000 tokens / the first 1,000, the source
   paced at ``--key-rate`` (1,000 tok/s) so frames run all along, median of
   ``--paced-rounds``: goal <= 1.5;
3. p95 key-press latency in those paced rounds: a ``pilot.press`` every 20 ms,
   time from the press to the binding's handler, pooled: goal <= 50 ms;
4. cold start to the first frame, an app with a ChatLog (two messages) / a
   bare ``App``, each in a fresh subprocess, medians of ``--cold-rounds``:
   goal <= 1.5.

5. p95 key latency in the full app, loaded / idle: ``bench/tui_keys.py`` (the
   whole ``LlamadeckApp`` on a real model, key posted to frame written, idle
   and loaded blocks interleaved; loaded = two llama.cpp replies streaming
   and a pull from the loopback fake Hub): goal <= 1.5, and loaded < 50 ms.
   ``--key-blocks 0`` leaves it out.

``--baseline`` also streams the same reply into one Textual ``Markdown`` through
``MarkdownStream`` (the design this replaces), tokens per second and the ratio.
The machine is shared: compare the figures of one run with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from textual.app import App
from textual.message import Message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN_CHARS = 4
SIZE = (120, 40)

SECTIONS = [
    "## Section {n}: what the loader does\n\n"
    "The loader reads the **header** first, then maps the tensors; nothing is copied until a layer "
    "is needed. This keeps start-up under a second even for an `8B` model, and it means a truncated "
    "file fails *early* with a clear message instead of half-way through generation.\n\n",
    "```python\n"
    "def load(path: Path, *, n_ctx: int = 4096) -> Model:\n"
    '    """Load a GGUF model {n}."""\n'
    "    header = read_header(path)\n"
    "    if header.n_layers > MAX_LAYERS:\n"
    '        raise ModelError(f"{{path.name}}: too many layers")\n'
    "    return Model(header, mmap_tensors(path), n_ctx=n_ctx)\n"
    "```\n\n",
    "Things to check before a pull:\n\n"
    "- the quant fits in memory (see `ps`)\n"
    "- the disk has room for the blob and its temp file\n"
    "- the reference names a real repository, e.g. `org/model-{n}`\n"
    "  with an optional `:Q4_K_M` tag\n\n",
    "| quant | size | tok/s | fits |\n"
    "|---|---:|---:|:---:|\n"
    "| Q4_K_M | 4.4 GB | 261 | yes |\n"
    "| Q5_K_M | 5.1 GB | 240 | yes |\n"
    "| Q8_0 | 7.7 GB | 198 | no |\n\n",
    "```javascript\n"
    "const res = await fetch(`/api/generate`, {{ method: 'POST', body }});\n"
    "for await (const chunk of res.body) {{\n"
    "  process(JSON.parse(new TextDecoder().decode(chunk)), {n});\n"
    "}}\n"
    "```\n\n",
    "1. Start the server with `llamadeck serve`.\n"
    "2. Point the client at port `11434`.\n"
    "3. Stream replies; press **Esc** to stop one.\n\n",
    "```rust\n"
    "fn main() -> Result<(), Box<dyn Error>> {{\n"
    '    let model = Model::load("demo-{n}.gguf")?;\n'
    '    println!("{{}}", model.generate("Hello")?);\n'
    "    Ok(())\n"
    "}}\n"
    "```\n\n",
    "> Note: the scheduler batches sequences of one model into one decode, so eight chats cost "
    "far less than eight times one chat. [bold]literal[/] stays literal.\n\n",
]


def reply_text(n_tokens: int) -> list[str]:
    """A Markdown-heavy reply cut into ``n_tokens`` tokens of ``TOKEN_CHARS`` characters."""
    parts: list[str] = []
    size, n = 0, 0
    while size < n_tokens * TOKEN_CHARS:
        section = SECTIONS[n % len(SECTIONS)].format(n=n)
        parts.append(section)
        size += len(section)
        n += 1
    text = "".join(parts)[: n_tokens * TOKEN_CHARS]
    return [text[i : i + TOKEN_CHARS] for i in range(0, len(text), TOKEN_CHARS)]


@dataclass
class Delta(Message):
    """A token from the engine's worker thread, as the Chat pane receives them."""

    text: str


def source(app: App[None], tokens: list[str], rate: float | None) -> None:
    """Post ``tokens`` to ``app`` from this thread: as fast as it can, or at ``rate`` tokens/s."""
    start = time.perf_counter()
    for i, token in enumerate(tokens):
        if rate is not None and (ahead := start + i / rate - time.perf_counter()) > 0:
            time.sleep(ahead)
        app.post_message(Delta(token))
    app.post_message(Delta(""))  # the end


async def stream_round(
    tokens: list[str], *, rate: float | None, press: bool
) -> tuple[float, float, list[float]]:
    """Stream ``tokens`` into a fresh ChatLog: (tokens/s, last-1k/first-1k ratio, key latencies in s).

    Tokens come as Messages from a thread, the way the engine's worker posts
    them. The ratio compares the UI thread's CPU time (``time.thread_time``:
    message handling, frames, layout, painting) over the first and the last
    1,000 tokens, as the UI thread appends them.
    """
    from textual.app import ComposeResult
    from textual.binding import Binding

    from tui.widgets.chat_log import ChatLog
    from tui.widgets.message_view import ReplyStream

    n = len(tokens)
    stamps: dict[int, float] = {}

    class Host(App[None]):
        BINDINGS = [Binding("z", "mark", "Mark", priority=True)]

        def __init__(self) -> None:
            super().__init__()
            self.marks: list[float] = []
            self.stream: ReplyStream | None = None
            self.count = 0

        def compose(self) -> ComposeResult:
            yield ChatLog()

        def action_mark(self) -> None:
            self.marks.append(time.perf_counter())

        def on_delta(self, message: Delta) -> None:
            assert self.stream is not None
            if not message.text:
                stamps[n] = time.thread_time()
                self.stream.finish(stats=f"{n} tokens")
                return
            if self.count in (0, 1000, n - 1000):
                stamps[self.count] = time.thread_time()
            self.count += 1
            self.stream.append(message.text)

    app = Host()
    latencies: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        log = app.query_one(ChatLog)
        # an earlier exchange, as in a real chat: one-time imports and first renders happen before timing
        log.add_message("user", "Hello")
        log.add_message("assistant", "Hi! Some `code`:\n\n```python\nprint(1)\n```\n\n| a |\n|---|\n| 1 |\n")
        log.add_message("user", "Show me everything about loading models, with code.")
        await pilot.pause()
        done = False
        sent: list[float] = []
        presses: list[asyncio.Task[None]] = []

        async def presser() -> None:
            # a press every 20 ms, not awaited one by one: pilot.press waits for the app to go idle
            while not done:
                await asyncio.sleep(0.02)
                if not done:
                    sent.append(time.perf_counter())
                    presses.append(asyncio.create_task(pilot.press("z")))

        stream = app.stream = log.start_reply()
        await pilot.pause()
        task = asyncio.create_task(presser()) if press else None
        t_start = time.perf_counter()
        thread = threading.Thread(target=source, args=(app, tokens, rate), daemon=True)
        thread.start()
        while not stream.finished:
            await asyncio.sleep(0.005)
        done = True  # keys are timed while the reply streams
        await stream.wait_rendered()
        t_end = time.perf_counter()
        thread.join()
        if task is not None:
            await task
            await asyncio.gather(*presses)
            await pilot.pause()
            latencies = [mark - t0 for t0, mark in zip(sent, app.marks, strict=True)]
        assert stream.text == "".join(tokens)
    first = stamps[1000] - stamps[0]
    last = stamps[n] - stamps[n - 1000]
    return n / (t_end - t_start), last / first, latencies


async def baseline_round(tokens: list[str]) -> tuple[float, float]:
    """The same reply through one Textual Markdown + MarkdownStream: (tokens/s, last-1k/first-1k)."""
    from textual.app import App, ComposeResult
    from textual.containers import VerticalScroll
    from textual.widgets import Markdown

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            with VerticalScroll():
                yield Markdown()

    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        md = app.query_one(Markdown)
        stream = Markdown.get_stream(md)
        n = len(tokens)
        stamps: dict[int, float] = {}
        t_start = time.perf_counter()
        for i, token in enumerate(tokens):
            if i in (0, 1000, n - 1000):
                stamps[i] = time.perf_counter()
            await stream.write(token)
        stamps[n] = time.perf_counter()
        await stream.stop()
        await pilot.pause()
        t_end = time.perf_counter()
    return n / (t_end - t_start), (stamps[n] - stamps[n - 1000]) / (stamps[1000] - stamps[0])


COLD_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from textual.app import App
WITH_LOG = {with_log}
if WITH_LOG:
    from tui.widgets.chat_log import ChatLog

class Cold(App):
    def compose(self):
        if WITH_LOG:
            yield ChatLog()

    def on_mount(self):
        if WITH_LOG:
            log = self.query_one(ChatLog)
            log.add_message("user", "hello")
            log.add_message("assistant", "Hi! *How* can I help?")
        self.call_after_refresh(self.first_frame)

    def first_frame(self):
        print(time.time(), flush=True)
        self.exit()

Cold().run(headless=True, size=(120, 40))
"""


def cold_start(with_log: bool) -> float:
    """Seconds from spawning a fresh interpreter to the app's first frame."""
    code = COLD_CHILD.format(root=str(ROOT), with_log=with_log)
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1]) - t0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold-rounds", type=int, default=5)
    parser.add_argument("--paced-rounds", type=int, default=3)
    parser.add_argument(
        "--key-rate", type=float, default=1000.0, help="tokens/s of the source while keys are pressed"
    )
    parser.add_argument(
        "--baseline", action="store_true", help="also time Textual's Markdown + MarkdownStream"
    )
    parser.add_argument("--key-blocks", type=int, default=4, help="idle/loaded block pairs for figure 5")
    parser.add_argument("--keys", type=int, default=50, help="key presses per block")
    parser.add_argument("--pull-rate", type=float, default=50.0, help="MB/s the fake Hub serves the pull at")
    args = parser.parse_args()
    tokens = reply_text(args.tokens)
    print(f"reply: {len(tokens)} tokens, {sum(map(len, tokens))} chars, {SIZE[0]}x{SIZE[1]} headless")

    rates = []
    for r in range(args.rounds):
        rate, ratio, _ = asyncio.run(stream_round(tokens, rate=None, press=False))
        rates.append(rate)
        print(f"  round {r + 1}, source unpaced: {rate:,.0f} tok/s")
    rate = statistics.median(rates)
    ratios, latencies = [], []
    for r in range(args.paced_rounds):
        paced, ratio, lat = asyncio.run(stream_round(tokens, rate=args.key_rate, press=True))
        ratios.append(ratio)
        latencies += lat
        print(
            f"  round {r + 1}, source at {args.key_rate:,.0f} tok/s, a key every 20 ms: {paced:,.0f} tok/s, "
            f"UI CPU last/first 1k {ratio:.2f}, {len(lat)} presses"
        )
    ratio = statistics.median(ratios)
    p95 = statistics.quantiles(latencies, n=20)[-1] * 1000 if len(latencies) >= 2 else float("nan")

    bare, with_log = [], []
    for _ in range(args.cold_rounds):
        bare.append(cold_start(False))
        with_log.append(cold_start(True))
    cold = statistics.median(with_log) / statistics.median(bare)

    print()
    print(f"1. tokens/s over {len(tokens)} tokens: {rate:8,.0f}   goal >= 1,000   {verdict(rate >= 1000)}")
    print(f"2. UI cost/token last 1k / first 1k:  {ratio:8.2f}   goal <= 1.5     {verdict(ratio <= 1.5)}")
    print(
        f"3. p95 key latency while streaming:    {p95:8.1f} ms goal <= 50 ms   {verdict(p95 <= 50)}"
        f"   ({len(latencies)} presses, max {max(latencies, default=0) * 1000:.1f} ms)"
    )
    print(
        f"4. cold start ChatLog / bare App:      {cold:8.2f}   goal <= 1.5     {verdict(cold <= 1.5)}"
        f"   ({statistics.median(with_log):.3f} s / {statistics.median(bare):.3f} s)"
    )
    if args.key_blocks > 0:
        from bench.tui_keys import run as keys_run

        keys = keys_run(args.key_blocks, args.keys, 0.05, args.pull_rate * 1e6, 128)
        idle, loaded = keys.p95(keys.idle) * 1000, keys.p95(keys.loaded) * 1000
        ok = loaded / idle <= 1.5 and loaded < 50
        seconds = keys.loaded_seconds or float("nan")
        print(
            f"5. p95 key latency loaded / idle:      {loaded / idle:8.2f}   goal <= 1.5     {verdict(ok)}"
            f"   (full app, key to frame: idle {idle:.1f} ms, loaded {loaded:.1f} ms, goal < 50 ms;"
            f" {len(keys.idle)} + {len(keys.loaded)} keys, {keys.dropped} left out)"
        )
        print(
            f"   load while keys were timed: {keys.model} reply in the Chat tab"
            f" {keys.pane_tokens / seconds:.1f} tok/s"
            f" + a second reply {keys.api_tokens_timed / seconds:.1f} tok/s;"
            f" a pull {keys.pulled_timed / seconds / 1e6:.0f} MB/s"
        )
        print(
            f"   the UI thread per key (p95), idle / loaded: CPU {keys.p95(keys.idle_cpu) * 1000:.1f}"
            f" / {keys.p95(keys.loaded_cpu) * 1000:.1f} ms, waiting for a core"
            f" {keys.p95(keys.idle_queued) * 1000:.1f} / {keys.p95(keys.loaded_queued) * 1000:.1f} ms"
        )
    if args.baseline:
        base_rate, base_ratio = asyncio.run(baseline_round(tokens))
        print(
            f"   baseline Markdown+MarkdownStream:   {base_rate:8,.0f} tok/s, last/first 1k {base_ratio:.2f};"
            f" ChatLog / MarkdownStream {rate / base_rate:.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
