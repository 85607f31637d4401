"""The Python half of ``bench/gpu_check.sh``: the fixtures offloaded, the offload plan against llama.cpp.

    python bench/gpu_probe.py fixtures OUT_DIR
    python bench/gpu_probe.py plan MODEL.gguf LABEL --ctx 8192 --slots 1 --flash 1 [--card-gib 3]

``fixtures`` writes the tiny test models (``tests/support/tiny_gguf.py``, the
rote ``chain_gguf``) and decodes 8 greedy tokens from each with no layer and
with every layer offloaded: both must load (the fixtures once segfaulted the
CUDA build), and the GPU's tokens must equal the CPU's (random weights make
near ties, so a divergence is reported with its position, not hidden).

``plan`` plans the model as the engine would (``plan_offload`` on the real
free VRAM, or ``--card-gib`` pretend GiB for a partial offload), loads it
with llama.cpp at the planned layers, context and slots, and compares the
plan with the buffers llama.cpp logs on the device: the plan's ``vram`` with
the CUDA0 buffers on a GPU; on a CPU build (``--cpu-dry-run``) its ``ram``,
less the runtime's fixed overhead, with the CPU buffers. Goal: within 10%.
Each prints one line per row, ``|``-separated, for gpu_check.sh's table.
"""

from __future__ import annotations

import argparse
import ctypes
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import llama_cpp  # noqa: E402  (after the path is set)

from engine.machine.memory import FIXED_OVERHEAD, Machine  # noqa: E402
from engine.machine.offload import plan_offload  # noqa: E402
from engine.store.gguf_io import read_header  # noqa: E402
from engine.units import GIB, MIB  # noqa: E402

GOAL = 0.10  # the plan within 10% of what llama.cpp allocates
_BUFFER = re.compile(r"(\w+) (?:model|KV|compute|output|RS) buffer size =\s*([\d.]+) MiB")
_log: list[str] = []


@llama_cpp.llama_log_callback
def _keep(level: int, text: bytes, data: ctypes.c_void_p) -> None:
    _log.append(text.decode(errors="replace"))


def _init() -> bool:
    llama_cpp.llama_log_set(_keep, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    return bool(llama_cpp.llama_supports_gpu_offload())


def _free_vram() -> int | None:
    """Free VRAM of the first GPU as nvidia-smi reports it; None without one."""
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = smi.stdout.split()
    return int(first[0]) * MIB if smi.returncode == 0 and first else None


def _greedy(path: Path, ngl: int, n: int = 8) -> list[int]:
    """``n`` greedy tokens after a short prompt, with llama.cpp's own sampler; the model freed after."""
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = ngl
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mp)
    if not model:
        raise RuntimeError(f"llama.cpp could not load {path.name} with n_gpu_layers={ngl}")
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = 256, 64, 64
    ctx = llama_cpp.llama_init_from_model(model, cp)
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
    try:
        prompt = (llama_cpp.llama_token * 4)(1, 300, 301, 302)
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(prompt, 4)) != 0:
            raise RuntimeError(f"llama_decode failed on {path.name} with n_gpu_layers={ngl}")
        out, one = [], (llama_cpp.llama_token * 1)()
        for _ in range(n):
            one[0] = llama_cpp.llama_sampler_sample(chain, ctx, -1)
            out.append(int(one[0]))
            if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1)) != 0:
                raise RuntimeError(f"llama_decode failed on {path.name} with n_gpu_layers={ngl}")
        return out
    finally:
        llama_cpp.llama_sampler_free(chain)
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)


def fixtures(folder: Path) -> int:
    from tests.support.chain_gguf import token_id, write_chain_gguf
    from tests.support.tiny_gguf import write_tiny_gguf

    gpu = _init()
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "tiny Q8_0": write_tiny_gguf(folder / "tiny-Q8_0.gguf", quant="Q8_0")[0],
        "tiny F16": write_tiny_gguf(folder / "tiny-F16.gguf", quant="F16", seed=1)[0],
        "tiny Q4_0": write_tiny_gguf(folder / "tiny-Q4_0.gguf", quant="Q4_0", seed=2)[0],
        "chain": write_chain_gguf(folder / "chain.gguf", {token_id("▁hello"): token_id("▁world")}),
    }
    failed = 0
    for label, path in made.items():
        cpu = _greedy(path, 0)
        offloaded = _greedy(path, -1)
        same = cpu == offloaded
        first = next((i for i, (a, b) in enumerate(zip(cpu, offloaded, strict=True)) if a != b), None)
        where = "" if first is None else f", first divergence at token {first}"
        failed += not same and label == "chain"  # the rote model has no near ties: it must agree
        on = "GPU" if gpu else "CPU build"
        cells = [f"fixture {label}", f"loads and decodes, 0 and all layers ({on})", "same greedy tokens"]
        cells += ["ok" if same else "DIFFERS", f"{len(cpu)} tokens{where}"]
        print("|".join(cells))
    return 1 if failed else 0


def plan(path: Path, label: str, ctx: int, slots: int, flash: bool, card_gib: float | None) -> int:
    gpu = _init()
    info = read_header(path, label=path.name)
    free = None if not gpu else int(card_gib * GIB) if card_gib else _free_vram()
    machine = Machine(free_ram=100 * GIB, gpu_free_vram=free)
    planned = plan_offload(
        info.tensor_bytes, info.shape, machine, n_ctx=ctx, num_parallel=slots, flash_attention=flash
    )
    _log.clear()
    before = _free_vram() if gpu else None
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = planned.n_gpu_layers
    started = time.perf_counter()
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mp)
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_seq_max, cp.n_batch, cp.n_ubatch = ctx * slots, slots, 512, 512
    cp.flash_attn_type = 1 if flash else 0
    lctx = llama_cpp.llama_init_from_model(model, cp) if model else None
    seconds = time.perf_counter() - started
    if not lctx:
        print(f"plan {label}|{planned.layers_label} layers|within 10%|FAILED|llama.cpp could not load it")
        return 1
    used = (before - (_free_vram() or 0)) if before is not None else None
    buffers: dict[str, float] = {}
    for device, mib in _BUFFER.findall("".join(_log)):
        buffers[device] = buffers.get(device, 0.0) + float(mib) * MIB
    if gpu:
        mine, theirs = planned.vram, buffers.get("CUDA0", 0.0)
        side = "VRAM"
    else:  # a CPU build: the plan's host memory less the runtime's own share, against every CPU buffer
        mine = planned.ram - FIXED_OVERHEAD
        theirs = sum(v for device, v in buffers.items() if device.startswith("CPU"))
        side = "RAM"
    ratio = mine / theirs if theirs else float("inf")
    ok = abs(ratio - 1) <= GOAL
    smi = f", nvidia-smi {used / GIB:.2f} GiB" if used is not None else ""
    setting = f"ctx {ctx}x{slots}, FA {'on' if flash else 'off'}"
    setting += f", {card_gib:g} GiB card" if card_gib else ""
    devices = ", ".join(f"{d} {v / GIB:.2f}" for d, v in sorted(buffers.items()))
    cells = [
        f"plan {label} ({setting})",
        f"{planned.layers_label} layers, {side} plan / llama.cpp",
        f"{ratio:.3f}, goal 0.9-1.1",
        "ok" if ok else "MISSED",
        f"plan {mine / GIB:.2f} GiB, llama.cpp {theirs / GIB:.2f} GiB{smi}; "
        f"by device {devices}; load {seconds:.1f} s",
    ]
    print("|".join(cells))
    llama_cpp.llama_free(lctx)
    llama_cpp.llama_model_free(model)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    fix = sub.add_parser("fixtures")
    fix.add_argument("folder", type=Path)
    pl = sub.add_parser("plan")
    pl.add_argument("model", type=Path)
    pl.add_argument("label")
    pl.add_argument("--ctx", type=int, default=8192)
    pl.add_argument("--slots", type=int, default=1)
    pl.add_argument("--flash", type=int, choices=(0, 1), default=1)
    pl.add_argument(
        "--card-gib", type=float, help="pretend the card has this much free VRAM (a partial offload)"
    )
    args = parser.parse_args()
    if args.what == "fixtures":
        return fixtures(args.folder)
    return plan(args.model, args.label, args.ctx, args.slots, bool(args.flash), args.card_gib)


if __name__ == "__main__":
    sys.exit(main())
