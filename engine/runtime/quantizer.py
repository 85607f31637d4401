"""Quantizing an F16/BF16/F32 GGUF (``create --quantize``), in a child process that can be stopped.

llama.cpp's ``llama_model_quantize`` blocks for minutes (75 s for an 8B to
Q4_K_M on 16 threads) and has no progress callback and no abort hook. So it
runs in a child process (``python -m engine.runtime.quantizer``), as Ollama
runs ``llama-quantize``: a cancel kills the child, and progress comes from the
per-tensor lines of llama.cpp's log, which the child writes to a pipe::

    [  12/ 201] blk.0.attn_q.weight - [ 4096,  4096, 1, 1], type = f16, converting to q4_K .. size = ...

The child writes to a temporary file next to the target (``.<name>.<random>.tmp``);
only a finished, structurally valid file is renamed onto the target, so a
failure or a cancel leaves nothing behind. What the child prints never reaches
the terminal: its last lines go into the error message and llama.cpp's log
ring buffer.

    quantize(Path("model-f16.gguf"), Path("model-q4_k_m.gguf"), "Q4_K_M", on_event=print)
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.errors import Cancelled, DiskFull, IntegrityError, InvalidInput, LlamadeckError
from engine.events import EventSink, Progress, Status, ignore
from engine.machine.physical import physical_cores
from engine.store.gguf_io import GGUFInfo, check_data_inside, read_header, verify_structure

# The llama_ftype of each target (llama.h; stable across versions, so the parent never imports llama_cpp).
# Ollama's ``create --quantize`` takes Q4_K_M, Q4_K_S and Q8_0 (and F16/F32); the others are what
# llama-quantize makes without an importance matrix. The IQ and very low-bit types need one: not offered.
QUANTIZE_TARGETS: dict[str, int] = {
    "Q4_0": 2,
    "Q4_1": 3,
    "Q5_0": 8,
    "Q5_1": 9,
    "Q8_0": 7,
    "Q3_K_S": 11,
    "Q3_K_M": 12,
    "Q3_K_L": 13,
    "Q4_K_S": 14,
    "Q4_K_M": 15,
    "Q5_K_S": 16,
    "Q5_K_M": 17,
    "Q6_K": 18,
    "F16": 1,
    "BF16": 32,
    "F32": 0,
}
ALIASES = {"Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "Q3_K": "Q3_K_M"}  # as llama-quantize and Ollama read them
# general.file_type of the models that may be quantized
SOURCE_TYPES: dict[int, str] = {0: "F32", 1: "F16", 32: "BF16"}
_FILE_TYPE_NAMES = {v: k for k, v in QUANTIZE_TARGETS.items()} | {10: "Q2_K", 21: "Q2_K_S"}

_PROGRESS = re.compile(rb"^\s*\[\s*(\d+)\s*/\s*(\d+)\s*\]")
_TAIL_LINES = 40
_FULL_BELOW = 16 << 20  # free bytes under which a failed write is taken for a full disk


class QuantizeError(LlamadeckError):
    """llama.cpp could not quantize the model; the message carries its reason."""

    status = 500
    kind = "quantize"


def quantize_target(quant: str) -> tuple[str, int]:
    """The canonical name and llama_ftype of a target (any case); InvalidInput lists the valid ones."""
    name = quant.strip().upper()
    name = ALIASES.get(name, name)
    if name not in QUANTIZE_TARGETS:
        shown = quant if quant.isprintable() and len(quant) <= 40 else ascii(quant[:40])
        raise InvalidInput(
            f"unsupported quantization type {shown} - supported types are {', '.join(QUANTIZE_TARGETS)}"
        )
    return name, QUANTIZE_TARGETS[name]


def file_type_name(file_type: int | None) -> str:
    """``general.file_type`` as a quant name (``Q8_0``), or what llama.cpp would call an unknown one."""
    if file_type is None:
        return "unknown"
    return _FILE_TYPE_NAMES.get(file_type, f"file type {file_type}")


def check_source(source: Path, *, label: str | None = None) -> str:
    """The source's type (F16, BF16 or F32); InvalidInput for an already quantized model.

    Read from ``general.file_type``, as Ollama does. A GGUF without it (llama.cpp
    then guesses) is judged by the type of its largest tensors.
    """
    label = label or source.name
    return _source_type(read_header(source, label=label), source, label)


def _source_type(info: GGUFInfo, source: Path, label: str) -> str:
    """``check_source`` on a header already read."""
    if info.split_count > 1:
        raise InvalidInput(f"{label} is split in {info.split_count} files: merge it before quantizing")
    file_type = info.file_type if info.file_type is not None else _guess_file_type(info)
    if file_type not in SOURCE_TYPES:
        raise InvalidInput(
            f"quantization is only supported for F16, BF16 and F32 models; {label} is already "
            f"{file_type_name(file_type)}"
        )
    return SOURCE_TYPES[file_type]


def _guess_file_type(info: GGUFInfo) -> int | None:
    """The file type llama.cpp would guess: that of the most 2-D tensor elements (rare: no file_type key).

    From the bounded header scan's tally, not a second parse of the file
    (``gguf.GGUFReader`` would materialise every metadata array).
    """
    if not info.matrix_elements:
        return None
    ggml_type = max(info.matrix_elements, key=lambda pair: pair[1])[0]
    return {0: 0, 1: 1, 30: 32}.get(ggml_type, -1)  # ggml F32, F16, BF16 -> llama_ftype; else quantized


def quantize(
    source: Path,
    target: Path,
    quant: str,
    *,
    on_event: EventSink = ignore,
    cancel: CancelToken = NEVER,
    threads: int | None = None,
    label: str | None = None,
) -> None:
    """Write ``source`` (an F16, BF16 or F32 GGUF) quantized to ``quant`` at ``target``.

    Emits ``Progress(action="quantizing", completed=tensors done, total=tensors)``
    and a ``Status`` when llama.cpp had to fall back to another type for some
    tensors (K-quants need rows that are whole multiples of 256). Raises
    InvalidInput (unknown target, already quantized source), Cancelled (the
    child is killed), DiskFull or QuantizeError (llama.cpp's reason); in every
    failure nothing is left at ``target`` or beside it.
    """
    source, target = Path(source), Path(target)
    label = label or source.name
    name, ftype = quantize_target(quant)
    if not source.is_file():
        raise IntegrityError(f"{label} is missing")
    info = read_header(source, label=label)  # once: the type first, then whether the data is all there
    _source_type(info, source, label)
    check_data_inside(info, source.stat().st_size, label=label)
    if not target.parent.is_dir():
        raise QuantizeError(f"cannot write {target}: {target.parent} is not a directory")
    cancel.check()
    partial = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        _run_child(source, partial, name, ftype, threads or physical_cores(), label, on_event, cancel)
        verify_structure(partial, label=f"{label} quantized to {name}")
        with open(partial, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(partial, target)
        with contextlib.suppress(OSError):
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise DiskFull(f"no space left on {target.parent} to quantize {label}") from error
        raise QuantizeError(f"cannot write the quantized {label} to {target}: {error.strerror}") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _child_env() -> dict[str, str]:
    """The environment for the child: this engine importable, whatever the working directory."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _run_child(
    source: Path,
    partial: Path,
    name: str,
    ftype: int,
    threads: int,
    label: str,
    on_event: EventSink,
    cancel: CancelToken,
) -> None:
    command = [sys.executable, "-m", "engine.runtime.quantizer", str(source), str(partial), str(ftype)]
    command.append(str(threads))
    child = subprocess.Popen(  # noqa: S603 (our own module, our own arguments)
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_child_env(),
        start_new_session=True,  # a Ctrl+C in the terminal reaches us, not the child: we stop it
    )
    remove = cancel.on_cancel(lambda: _kill(child))
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    started = time.monotonic()
    fallback = ""
    try:
        assert child.stdout is not None
        for raw in child.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                tail.append(line)
            match = _PROGRESS.match(raw)
            if match is not None and " size = " in line:  # the tensor's line is complete: it is written
                done, total = int(match[1]), int(match[2])
                elapsed = time.monotonic() - started
                rate = done / elapsed if elapsed > 0 else 0.0
                eta = (total - done) / rate if rate > 0 else None
                on_event(Progress("quantizing", label, done, total, rate, eta, unit="tensors"))
            elif "required fallback quantization" in line:
                fallback = line.split(": ", 1)[-1]
        code = child.wait()
    except BaseException:
        _kill(child)
        child.wait()
        raise
    finally:
        remove()
        if child.stdout is not None:
            child.stdout.close()
    _keep_in_log(tail)
    if cancel.cancelled:
        raise Cancelled(cancel.reason)
    if code != 0:
        if _disk_nearly_full(partial.parent):  # llama.cpp says only "iostream error" when a write fails
            raise DiskFull(f"no space left on {partial.parent} to quantize {label} to {name}")
        raise _failure(label, name, code, list(tail))
    if fallback:
        counted = fallback.strip().removeprefix("WARNING:").strip()
        on_event(Status(f"{label} to {name}: {counted}: their rows are not whole blocks of the type chosen"))


def _disk_nearly_full(directory: Path) -> bool:
    """Whether the partial output filled the disk (checked before it is removed)."""
    try:
        return shutil.disk_usage(directory).free < _FULL_BELOW
    except OSError:
        return False


def _kill(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)  # its own session: any thread it started goes too


def _keep_in_log(tail: collections.deque[str]) -> None:
    """The child's last lines into llama.cpp's ring buffer (when the runtime is loaded), for ``ps``/debug."""
    runtime = sys.modules.get("engine.runtime.llama.log")
    if runtime is not None:
        runtime.LLAMA_LOG.extend(f"quantize: {line}" for line in tail)


def _failure(label: str, name: str, code: int, tail: list[str]) -> LlamadeckError:
    """One line from what the child printed last: llama.cpp's reason when it gave one."""
    reason = ""
    for line in reversed(tail):
        if "failed to quantize:" in line:
            reason = line.split("failed to quantize:", 1)[1].strip()
            break
        if line.startswith("error: ") and not reason:
            reason = line.removeprefix("error: ")
    if not reason and code < 0:
        reason = (
            f"the quantizer was killed by {signal.Signals(-code).name}"
            if -code in signal.valid_signals()
            else ""
        )
    if not reason:
        reason = tail[-1] if tail else f"the quantizer exited with code {code}"
    reason = " ".join(reason.split())[:300]
    if "no space left" in reason.lower():
        return DiskFull(f"no space left to quantize {label} to {name}: {reason}")
    return QuantizeError(f"quantizing {label} to {name} failed: {reason}")


def _exit_with_parent(output: Path) -> None:
    """Stop (and remove the partial output) when the parent dies: nobody would rename or remove it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        with contextlib.suppress(OSError):
            output.unlink()
        os._exit(1)

    threading.Thread(target=watch, name="parent watch", daemon=True).start()


def _main(argv: list[str]) -> int:
    """The child: ``python -m engine.runtime.quantizer SOURCE OUTPUT FTYPE THREADS``."""
    source, output, ftype, threads = argv
    _exit_with_parent(Path(output))
    from engine.runtime.llama.quantize import quantize_model  # llama.cpp is loaded in the child only

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        quantize_model(Path(source), Path(output), int(ftype), threads=int(threads), log=write)
    except LlamadeckError as error:
        write(f"\nerror: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
