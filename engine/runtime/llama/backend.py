"""llama.cpp's backend: started once per process (its log routed first), and what the build supports."""

from __future__ import annotations

import llama_cpp

from engine.runtime.llama.log import route_llama_log

_backend_ready = False


def init_backend() -> None:
    """Route llama.cpp's log away from stderr, then start the backend (once per process)."""
    global _backend_ready
    route_llama_log()
    if not _backend_ready:
        llama_cpp.llama_backend_init()
        _backend_ready = True


def supports_gpu_offload() -> bool:
    """Whether the installed llama.cpp was built with a GPU backend (CUDA, Metal, Vulkan...)."""
    return bool(llama_cpp.llama_supports_gpu_offload())
