"""llama.cpp's quantizer (``llama_model_quantize``), for the child process of ``engine.runtime.quantizer``."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from pathlib import Path

import llama_cpp

from engine.errors import LoadError
from engine.runtime.llama.log import forward_llama_log


def quantize_model(
    source: Path, target: Path, ftype: int, *, threads: int, log: Callable[[str], None]
) -> None:
    """llama.cpp's ``llama_model_quantize`` in this process, its log (pieces as they come) to ``log``.

    For a child process only (``engine.runtime.quantizer`` runs it): the call
    blocks with no progress or abort hook, and this takes over llama.cpp's log.
    ``ftype`` is a ``llama_ftype``; ``threads`` 0 uses every core. Raises
    LoadError with llama.cpp's reason when it fails.
    """
    forward_llama_log(log)
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    code = llama_cpp.llama_model_quantize(os.fsencode(source), os.fsencode(target), ctypes.byref(params))
    if code != 0:
        raise LoadError(f"llama.cpp could not quantize {source.name} (code {code})")
