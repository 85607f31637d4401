"""What this machine offers a model: free RAM and, where llama.cpp can offload, free VRAM.

Probing has side effects on nothing; the decisions built on it (quant pick,
layer plan) are pure functions elsewhere that take a ``Machine``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from engine.machine.memory import Machine


def free_ram() -> int:
    """Bytes the kernel says can be allocated without swapping (MemAvailable)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def llama_gpu_offload() -> bool:
    """Whether the installed llama.cpp was built with a GPU backend (CUDA, Metal, Vulkan...)."""
    from engine.runtime.llama.backend import supports_gpu_offload  # imports llama_cpp: only when asked

    return supports_gpu_offload()


def nvidia_free_vram() -> int | None:
    """Free memory summed over NVIDIA GPUs, from nvidia-smi; None when there is none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    mib = [int(line) for line in out.split() if line.strip().isdigit()]
    return sum(mib) * 1024 * 1024 if mib else None


def probe_machine() -> Machine:
    ram = free_ram()
    if not llama_gpu_offload():
        return Machine(free_ram=ram, gpu_free_vram=None)
    if sys.platform == "darwin":  # unified memory: Metal may use about three quarters of it
        return Machine(free_ram=ram, gpu_free_vram=ram * 3 // 4)
    return Machine(free_ram=ram, gpu_free_vram=nvidia_free_vram())
