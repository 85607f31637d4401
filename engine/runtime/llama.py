"""The engine's one door to llama.cpp: thin, typed wrappers over llama-cpp-python's low-level bindings.

This is the only module in the engine that imports ``llama_cpp``. It offers
what the scheduler needs and no policy: a ``Model`` (weights and vocabulary),
a ``Context`` (a KV cache with several sequences, decoded a ``Batch`` at a
time), a ``Sampler`` (llama.cpp's own sampler chain) and an ``Embedder``.
LoRA adapters load with the model (``Model.load(adapters=...)``) and every
context made on it applies them. ``quantize_model`` is llama.cpp's quantizer,
for the child process of ``engine.runtime.quantizer``.

Why not llama-cpp-python's high-level ``Llama``: it runs one sequence, forces
flash attention off (llama.cpp's own default is auto: +10-40% on an H100),
copies a 512 x n_vocab scores array with every state save, and its
``token_to_piece`` returns a whole padded buffer.

llama.cpp's log goes through ``llama_log_set`` into ``LLAMA_LOG`` (the
latest lines, for error messages) and a size-capped file in the state
directory (``$XDG_STATE_HOME/llamadeck/llama.log``): printed to stderr it
would tear a full-screen UI.

    model = Model.load(path, n_gpu_layers=-1)
    ctx = Context(model, n_ctx=4096, n_seq_max=4, n_threads=physical_cores())
    batch = Batch(512)
    last = batch.add_run(model.tokenize("The capital of France is"), 0, seq=0, logits_last=True)
    ctx.decode(batch)
    token = Sampler(model, temperature=0).sample(ctx, last)
"""

from __future__ import annotations

import array
import atexit
import collections
import ctypes
import functools
import math
import os
import random
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import llama_cpp

from engine.cancel import CancelToken
from engine.errors import (
    Cancelled,
    IntegrityError,
    InvalidInput,
    InvalidOption,
    LlamadeckError,
    LoadError,
    PromptTooLong,
)
from engine.store.gguf_io import verify_structure
from engine.runtime.adapters import check_adapter
from engine.machine.physical import physical_cores

_T = TypeVar("_T")

# -- llama.cpp's log -------------------------------------------------------------------------------

LLAMA_LOG: collections.deque[str] = collections.deque(maxlen=200)  # the latest llama.cpp log lines
LOG_FILE_BYTES = 2 << 20  # the log file is rotated to llama.log.1 past this size

_DEBUG, _ERROR, _CONT = 1, 4, 5  # ggml_log_level
_log_lock = threading.Lock()
_log_callback: Any = None  # kept alive for as long as llama.cpp may call it
_backend_ready = False


def default_log_path() -> Path:
    """``$XDG_STATE_HOME/llamadeck/llama.log``, ``~/.local/state/llamadeck/llama.log`` by default."""
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if state and os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "llamadeck" / "llama.log"


class _LogSink:
    """Whole lines of llama.cpp's log into the ring buffer and a size-capped file.

    llama.cpp sends a line in pieces at times (``GGML_LOG_LEVEL_CONT``, the
    dots of a load), so pieces are joined until a newline. Debug lines are
    dropped: llama.cpp may send some per decode, and they help nobody here.
    """

    def __init__(self) -> None:
        self.path: Path | None = None  # None until first written: default_log_path() then
        self.max_bytes = LOG_FILE_BYTES
        self.file: Any = None
        self.size = 0
        self.partial = ""
        self.keep = True  # whether the line being continued is kept
        self.errors: collections.deque[str] = collections.deque(maxlen=20)  # the latest error lines
        self.n_errors = 0  # error lines ever seen: a mark taken before a call finds that call's lines
        self.failed = False  # the file could not be written: the ring buffer still works

    def take(self, level: int, text: str) -> None:
        if level != _CONT:
            self.keep = level != _DEBUG
            if self.partial:  # a piece that never got its newline
                self._line(self.partial)
                self.partial = ""
        if not self.keep:
            return
        text = self.partial + text
        *lines, self.partial = text.split("\n")
        for line in lines:
            self._line(line)
            if level == _ERROR:
                self.errors.append(line)
                self.n_errors += 1

    def _line(self, line: str) -> None:
        line = line.rstrip()
        if not line:
            return
        LLAMA_LOG.append(line)
        if self.failed:
            return
        try:
            self._write(line + "\n")
        except OSError:
            self.failed = True

    def _write(self, text: str) -> None:
        if self.file is None:
            path = self.path or default_log_path()
            self.path = path
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115 (kept open)
            self.size = self.file.tell()
        if self.size + len(text) > self.max_bytes:
            self.file.close()
            assert self.path is not None
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self.file = open(self.path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
            self.size = 0
        self.file.write(text)
        self.file.flush()
        self.size += len(text)

    def redirect(self, path: Path | None, max_bytes: int) -> None:
        if self.file is not None:
            self.file.close()
        self.file, self.path, self.max_bytes, self.failed = None, path, max_bytes, False


_sink = _LogSink()


@atexit.register
def _close_log() -> None:
    """Close the log file at exit; whatever llama.cpp logs from C after that is dropped."""
    with _log_lock:
        if _sink.file is not None:
            _sink.file.close()
            _sink.file = None
            _sink.failed = True  # nothing reopens it during shutdown


def set_log_file(path: Path | None, *, max_bytes: int = LOG_FILE_BYTES) -> None:
    """Write llama.cpp's log to ``path`` from now on (None: the default in the state directory)."""
    with _log_lock:
        _sink.redirect(path, max_bytes)


def log_file() -> Path:
    """Where llama.cpp's log goes."""
    return _sink.path or default_log_path()


def route_llama_log() -> None:
    """Send llama.cpp's log into ``LLAMA_LOG`` and the log file instead of stderr (once per process)."""
    global _log_callback
    with _log_lock:
        if _log_callback is not None:
            return

        @llama_cpp.llama_log_callback
        def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            try:
                with _log_lock:
                    _sink.take(level, text.decode("utf-8", "replace"))
            except Exception:  # noqa: BLE001 (an exception must never cross into C)
                pass

        _log_callback = collect
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def _init_backend() -> None:
    global _backend_ready
    route_llama_log()
    if not _backend_ready:
        llama_cpp.llama_backend_init()
        _backend_ready = True


def _error_mark() -> int:
    return _sink.n_errors


def last_error_line(mark: int | None = None) -> str:
    """llama.cpp's first error line since ``mark`` (``_error_mark()`` before a call: later lines are
    consequences of the first), else its latest line mentioning an error or failure; one line, escaped."""
    with _log_lock:
        new = _sink.n_errors - mark if mark is not None else 0
        errors = list(_sink.errors)[-new:] if 0 < new <= len(_sink.errors) else []
    if errors:
        return one_line(errors[0])
    for line in reversed(LLAMA_LOG):
        if "error" in line.lower() or "fail" in line.lower():
            return one_line(line)
    return ""


def one_line(text: str, limit: int = 200) -> str:
    """Text from llama.cpp (which may quote a downloaded file's strings) fit for a one-line message."""
    text = " ".join(text.split())
    return ascii(text)[1:-1][:limit] if not text.isprintable() else text[:limit]


def supports_gpu_offload() -> bool:
    """Whether the installed llama.cpp was built with a GPU backend (CUDA, Metal, Vulkan...)."""
    return bool(llama_cpp.llama_supports_gpu_offload())


class DecodeError(LlamadeckError):
    """llama.cpp could not decode a batch (``code`` is what ``llama_decode`` returned).

    ``fatal`` (a code below -1): part of the batch may remain in the KV cache
    and the context should not be trusted; otherwise the cache is as it was.
    """

    status = 500
    kind = "decode"

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = code < -1


# -- the compute thread ----------------------------------------------------------------------------


class Poller(Protocol):
    """What the compute thread steps: a scheduler. Both methods run on the compute thread."""

    def wants_step(self) -> bool:
        """Whether ``tick`` has anything to do (called under ``COMPUTE.cond``)."""
        ...

    def tick(self) -> bool:
        """Do one step; False when nothing could be done (then the thread naps briefly)."""
        ...


class _Call:
    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class ComputeThread:
    """The one thread of this process that runs llama.cpp compute: every decode of every context.

    The CPU build runs its kernels on an OpenMP team, and libgomp keeps one
    team per calling thread for as long as that thread lives. Once two
    threads have called ``llama_decode``, the teams' threads outnumber the
    cores and libgomp stops spinning at its barriers: on this 2-core box a
    bare greedy loop on the demo Gemma went from 99-101 tok/s to 79-86, in
    whichever thread decoded next (2026-11-25); loading a model in another
    thread did no harm. So schedulers do not get a thread each:
    this one steps every attached scheduler in turn and runs one-off calls
    (contexts made and freed, embeddings, the benchmark's bare loops).
    Several models on a CPU fight for the same cores anyway; on a GPU the
    steps of two models interleave on the one device.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._calls: collections.deque[_Call] = collections.deque()
        self._pollers: list[Poller] = []
        self._thread: threading.Thread | None = None

    def _ensure_started(self) -> None:  # under cond
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="llama.cpp compute", daemon=True)
            self._thread.start()

    @property
    def current(self) -> bool:
        """Whether the calling thread is the compute thread."""
        return threading.current_thread() is self._thread

    def call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the compute thread and return (or raise) what it did."""
        if self.current:
            return fn()
        call = _Call(fn)
        with self.cond:
            self._ensure_started()
            self._calls.append(call)
            self.cond.notify()
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def attach(self, poller: Poller) -> None:
        with self.cond:
            self._ensure_started()
            self._pollers.append(poller)
            self.cond.notify()

    def detach(self, poller: Poller) -> None:
        with self.cond:
            if poller in self._pollers:
                self._pollers.remove(poller)

    def notify(self) -> None:
        with self.cond:
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self._calls and not any(p.wants_step() for p in self._pollers):
                    self.cond.wait()
                calls = list(self._calls)
                self._calls.clear()
                pollers = list(self._pollers)
            for call in calls:
                try:
                    call.result = call.fn()
                except BaseException as error:  # noqa: BLE001 (handed to the caller)
                    call.error = error
                call.done.set()
            progressed = bool(calls)
            for poller in pollers:
                try:
                    progressed = poller.tick() or progressed
                except BaseException:  # noqa: BLE001 (a poller handles its own errors; never stop the others)
                    self.detach(poller)
            if not progressed:
                with self.cond:
                    self.cond.wait(0.01)


COMPUTE = ComputeThread()


# -- the model -------------------------------------------------------------------------------------

_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def _split_parts(path: Path, count: int) -> list[Path]:
    """Every part of a split model, from the first part's name (``X-00001-of-00003.gguf``)."""
    match = _SPLIT.search(path.name)
    if count <= 1 or match is None:
        return [path]
    stem = path.name[: match.start()]
    return [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


@dataclass(frozen=True)
class AdapterSpec:
    """A LoRA adapter to load with a model: its GGUF, its scale (Ollama applies 1.0) and its name."""

    path: Path
    scale: float = 1.0
    label: str | None = None


class Model:
    """Weights and vocabulary in memory. Free it with ``free()`` after every context on it.

    ``adapters`` holds the LoRA adapters loaded with it (handle and scale):
    every ``Context`` made on the model applies them.
    """

    def __init__(self, handle: Any, *, label: str, n_gpu_layers: int) -> None:
        self._model = handle
        self.adapters: list[tuple[Any, float, str]] = []  # (llama_adapter_lora *, scale, label)
        self._vocab = llama_cpp.llama_model_get_vocab(handle)
        self.label = label
        self.n_gpu_layers = n_gpu_layers
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train: int = llama_cpp.llama_model_n_ctx_train(handle)
        self.n_layers: int = llama_cpp.llama_model_n_layer(handle)
        self.n_embd: int = llama_cpp.llama_model_n_embd(handle)
        self.size_bytes: int = llama_cpp.llama_model_size(handle)
        self.has_encoder: bool = bool(llama_cpp.llama_model_has_encoder(handle))
        self.has_decoder: bool = bool(llama_cpp.llama_model_has_decoder(handle))
        self.add_bos: bool = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self.bos: int = llama_cpp.llama_vocab_bos(self._vocab)
        self.eos: int = llama_cpp.llama_vocab_eos(self._vocab)
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        n_gpu_layers: int = -1,
        use_mmap: bool = True,
        cancel: CancelToken | None = None,
        progress: Callable[[float], None] | None = None,
        label: str | None = None,
        adapters: Sequence[AdapterSpec] = (),
    ) -> Model:
        """Check the GGUF's structure, then load it; ``n_gpu_layers`` -1 offloads every layer.

        Raises IntegrityError (damaged or missing file: never a crash in
        llama.cpp), Cancelled (``cancel`` fired during the load) or LoadError
        (llama.cpp refused it, with llama.cpp's own reason). ``progress`` gets
        llama.cpp's load progress, 0.0 to 1.0, from the loading thread.
        ``adapters`` are LoRA GGUFs loaded onto the model (LoadError when one
        does not fit it: another architecture, other tensor names or shapes).
        """
        for spec in adapters:
            _finite("adapter scale", spec.scale)
        path = Path(path)
        label = label or path.name
        if not path.exists():
            raise IntegrityError(f"{label} is missing")
        info = verify_structure(path, label=label)
        for part in _split_parts(path, info.split_count)[1:]:
            if not part.exists():
                raise IntegrityError(
                    f"{label} is split in {info.split_count} files and {part.name} is missing"
                )
            verify_structure(part, label=part.name)
        if cancel is not None:
            cancel.check()
        _init_backend()

        def on_progress(fraction: float, user_data: ctypes.c_void_p) -> bool:
            try:
                if progress is not None:
                    progress(float(fraction))
                return not (cancel is not None and cancel.cancelled)
            except Exception:  # noqa: BLE001 (never raise into C: stop the load instead)
                return False

        callback = llama_cpp.llama_progress_callback(on_progress)
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        params.load_mode = llama_cpp.LLAMA_LOAD_MODE_AUTO if use_mmap else llama_cpp.LLAMA_LOAD_MODE_NONE
        params.progress_callback = callback
        mark = _error_mark()
        handle = llama_cpp.llama_model_load_from_file(os.fsencode(path), params)
        if not handle:
            if cancel is not None and cancel.cancelled:
                raise Cancelled(f"loading {label} was cancelled")
            reason = last_error_line(mark) or "no reason given (see the llama.cpp log)"
            raise LoadError(f"llama.cpp could not load {label}: {reason}")
        model = cls(handle, label=label, n_gpu_layers=n_gpu_layers)
        try:
            for spec in adapters:
                model._load_adapter(spec)
        except BaseException:
            model.free()
            raise
        return model

    def _load_adapter(self, spec: AdapterSpec) -> None:
        """Check the adapter's header (llama.cpp must never see another architecture's), then load it."""
        name = spec.label or Path(spec.path).name
        try:
            check_adapter(Path(spec.path), architecture=self.architecture, label=name)
        except (InvalidInput, IntegrityError) as error:
            raise LoadError(f"cannot load {self.label}: {error}") from error
        mark = _error_mark()
        handle = llama_cpp.llama_adapter_lora_init(self._model, os.fsencode(spec.path))
        if not handle:
            reason = last_error_line(mark) or "no reason given (see the llama.cpp log)"
            raise LoadError(f"llama.cpp could not apply adapter {name} to {self.label}: {reason}")
        self.adapters.append((handle, float(spec.scale), name))

    def apply_adapters(self, ctx_handle: Any) -> None:
        """Set this model's adapters on a new context (``llama_set_adapters_lora``); LoadError if refused."""
        if not self.adapters:
            return
        n = len(self.adapters)
        handles = (llama_cpp.llama_adapter_lora_p_ctypes * n)(*(h for h, _, _ in self.adapters))
        scales = (ctypes.c_float * n)(*(scale for _, scale, _ in self.adapters))
        mark = _error_mark()
        if llama_cpp.llama_set_adapters_lora(ctx_handle, handles, n, scales) != 0:
            reason = last_error_line(mark) or "no reason given (see the llama.cpp log)"
            raise LoadError(f"llama.cpp could not set the adapters of {self.label}: {reason}")

    @property
    def offloaded(self) -> bool:
        """Whether layers live on a GPU (a GPU build asked for more than 0 layers)."""
        return self.n_gpu_layers != 0 and supports_gpu_offload()

    def free(self) -> None:
        """Free the adapters, then the weights (after every context on the model)."""
        for handle, _, _ in self.adapters:
            llama_cpp.llama_adapter_lora_free(handle)
        self.adapters = []
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    # -- metadata ---------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as llama.cpp prints it, or None."""
        size = 256
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buffer, size)
            if n < 0:
                return None
            if n < size:
                return buffer.value.decode("utf-8", "replace")
            size = n + 1

    @property
    def architecture(self) -> str:
        return self.meta("general.architecture") or ""

    @property
    def chat_template(self) -> str | None:
        """The GGUF's default chat template (``tokenizer.chat_template``), or None."""
        raw = llama_cpp.llama_model_chat_template(self._model, None)
        return raw.decode("utf-8", "replace") if raw else None

    def token_text(self, token: int) -> str:
        """A token's text in the vocabulary (``<s>``, ``▁the``), empty for -1."""
        if token < 0:
            return ""
        return (llama_cpp.llama_vocab_get_text(self._vocab, token) or b"").decode("utf-8", "replace")

    @property
    def bos_text(self) -> str:
        return self.token_text(self.bos)

    @property
    def eos_text(self) -> str:
        return self.token_text(self.eos)

    # -- text <-> tokens --------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Tokens of ``text``. ``add_special`` adds BOS where the model wants it; ``parse_special`` reads
        ``<|im_start|>`` and the like as the special tokens they name (a rendered chat template needs it)."""
        raw = text.encode("utf-8")
        size = len(raw) + 8
        buffer = (llama_cpp.llama_token * size)()  # per call: callers tokenize from their own threads
        n = llama_cpp.llama_tokenize(self._vocab, raw, len(raw), buffer, size, add_special, parse_special)
        if n < 0:  # more tokens than bytes (rare: added special tokens)
            size = -n
            buffer = (llama_cpp.llama_token * size)()
            n = llama_cpp.llama_tokenize(self._vocab, raw, len(raw), buffer, size, add_special, parse_special)
        return buffer[:n]

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token: part of a UTF-8 character for a byte token.

        llama-cpp-python's ``token_to_piece`` returns its whole padded buffer;
        this asks again with a bigger buffer when a piece does not fit.
        ``special`` renders control tokens (``<|im_end|>``); by default they are empty.
        """
        if not special:
            cached = self._pieces.get(token)
            if cached is not None:
                return cached
        buffer = ctypes.create_string_buffer(32)  # per call (thread-safe); pieces are cached anyway
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, 32, 0, special)
        if n < 0:  # a longer piece: ask again with room for it
            buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, -n, 0, special)
        piece = buffer.raw[:n]
        if not special:
            self._pieces[token] = piece
        return piece

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends a generation (EOS, EOT, ``<|im_end|>``...: ``llama_vocab_is_eog``)."""
        known = self._eog.get(token)
        if known is None:
            known = self._eog[token] = bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
        return known


# -- quantizing ------------------------------------------------------------------------------------


def quantize_model(
    source: Path, target: Path, ftype: int, *, threads: int, log: Callable[[str], None]
) -> None:
    """llama.cpp's ``llama_model_quantize`` in this process, its log (pieces as they come) to ``log``.

    For a child process only (``engine.runtime.quantizer`` runs it): the call
    blocks with no progress or abort hook, and this takes over llama.cpp's log.
    ``ftype`` is a ``llama_ftype``; ``threads`` 0 uses every core. Raises
    LoadError with llama.cpp's reason when it fails.
    """
    global _log_callback
    level_kept = [True]

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        try:
            if level != _CONT:
                level_kept[0] = level != _DEBUG
            if level_kept[0]:
                log(text.decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 (an exception must never cross into C)
            pass

    with _log_lock:
        _log_callback = forward
        llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    code = llama_cpp.llama_model_quantize(os.fsencode(source), os.fsencode(target), ctypes.byref(params))
    if code != 0:
        raise LoadError(f"llama.cpp could not quantize {source.name} (code {code})")


# -- batches and contexts --------------------------------------------------------------------------


class Batch:
    """A reusable ``llama_batch`` of up to ``capacity`` tokens, one sequence id per token.

    Filled with ``add``/``add_run`` and handed to ``Context.decode``; ``clear``
    starts over without allocating. Returns batch indices, which is what
    ``Sampler.sample`` takes for a token whose logits were asked for.
    """

    def __init__(self, capacity: int, n_seq_max: int = 1) -> None:
        self.capacity = capacity
        self.raw = llama_cpp.llama_batch_init(capacity, 0, n_seq_max)
        self.n = 0
        raw = self.raw
        self._token, self._pos, self._logits = raw.token, raw.pos, raw.logits
        self._seq = [raw.seq_id[i] for i in range(capacity)]
        for i in range(capacity):
            raw.n_seq_id[i] = 1
            raw.logits[i] = 0
        self._token_addr = ctypes.cast(raw.token, ctypes.c_void_p).value or 0
        self._pos_addr = ctypes.cast(raw.pos, ctypes.c_void_p).value or 0
        self._logits_addr = ctypes.cast(raw.logits, ctypes.c_void_p).value or 0

    def clear(self) -> None:
        self.n = 0

    @property
    def free_space(self) -> int:
        return self.capacity - self.n

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """One token of sequence ``seq`` at position ``pos``; returns its index in the batch."""
        i = self.n
        self._token[i] = token
        self._pos[i] = pos
        self._seq[i][0] = seq
        self._logits[i] = logits
        self.n = i + 1
        return i

    def add_run(self, tokens: Sequence[int], pos: int, seq: int, *, logits_last: bool) -> int:
        """Consecutive tokens of one sequence from position ``pos``; returns the last one's index."""
        k = len(tokens)
        i = self.n
        if k == 0:
            return i - 1
        if i + k > self.capacity:
            raise ValueError(f"batch overflow: {i} + {k} > {self.capacity}")
        token_values = array.array("i", tokens)  # kept referenced until copied
        positions = array.array("i", range(pos, pos + k))
        ctypes.memmove(self._token_addr + 4 * i, token_values.buffer_info()[0], 4 * k)
        ctypes.memmove(self._pos_addr + 4 * i, positions.buffer_info()[0], 4 * k)
        ctypes.memset(self._logits_addr + i, 0, k)
        rows = self._seq
        for j in range(i, i + k):
            rows[j][0] = seq
        self.n = i + k
        if logits_last:
            self._logits[i + k - 1] = 1
        return i + k - 1

    def free(self) -> None:
        if self.raw is not None:
            llama_cpp.llama_batch_free(self.raw)
            self.raw = None


FLASH_ATTN = {
    "auto": llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO,
    "on": llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    "off": llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED,
}
# the KV cache types llama.cpp's own ``-ctk``/``-ctv`` accept (ggml_type values)
KV_TYPES = {
    "f32": 0,
    "f16": 1,
    "bf16": 30,
    "q8_0": 8,
    "q4_0": 2,
    "q4_1": 3,
    "iq4_nl": 20,
    "q5_0": 6,
    "q5_1": 7,
}


class Context:
    """A llama.cpp context: the KV cache of ``n_seq_max`` sequences and the compute buffers.

    Not thread-safe: one thread owns it (``COMPUTE``, the compute thread). ``kv_unified``
    False gives each sequence its own ``n_ctx / n_seq_max`` cells (rounded up
    to 256 by llama.cpp: ``n_ctx_seq``). ``n_outputs_max`` caps the tokens
    per batch whose logits are asked for (0: ``n_batch``); a scheduler that
    needs one per sequence saves ``n_vocab x (n_batch - n_seq_max) x 4``
    bytes of compute buffer with it: 500 MiB for Gemma 3's 262k vocabulary.
    """

    def __init__(
        self,
        model: Model,
        *,
        n_ctx: int,
        n_seq_max: int = 1,
        n_batch: int = 512,
        n_ubatch: int | None = None,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        flash_attn: str = "auto",
        type_k: str = "f16",
        type_v: str = "f16",
        kv_unified: bool = False,
        embeddings: bool = False,
        n_outputs_max: int = 0,
    ) -> None:
        if flash_attn not in FLASH_ATTN:
            raise InvalidOption(f"flash_attn must be auto, on or off, not {flash_attn!r}")
        for name, kind in (("type_k", type_k), ("type_v", type_v)):
            if kind not in KV_TYPES:
                raise InvalidOption(f"{name} {kind!r} is not a KV cache type ({', '.join(KV_TYPES)})")
        if n_ctx <= 0 or n_seq_max <= 0 or n_batch <= 0:
            raise InvalidOption("n_ctx, n_seq_max and n_batch must be positive")
        _init_backend()
        threads = n_threads or physical_cores()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_ubatch or min(n_batch, 512)
        params.n_seq_max = n_seq_max
        params.n_threads = threads
        params.n_threads_batch = n_threads_batch or threads
        params.flash_attn_type = FLASH_ATTN[flash_attn]
        params.type_k = KV_TYPES[type_k]
        params.type_v = KV_TYPES[type_v]
        params.kv_unified = kv_unified
        params.embeddings = embeddings
        params.n_outputs_max = n_outputs_max  # 0: n_batch. The compute buffer holds logits for this many rows
        params.no_perf = True
        mark = _error_mark()
        handle = llama_cpp.llama_init_from_model(model._model, params)
        if not handle:
            reason = last_error_line(mark) or "no reason given (see the llama.cpp log)"
            raise LoadError(f"llama.cpp could not create a context for {model.label}: {reason}")
        try:
            model.apply_adapters(handle)
        except BaseException:
            llama_cpp.llama_free(handle)
            raise
        self._ctx = handle
        self.model = model
        self._mem = llama_cpp.llama_get_memory(handle)
        self.n_ctx: int = llama_cpp.llama_n_ctx(handle)
        self.n_ctx_seq: int = llama_cpp.llama_n_ctx_seq(handle)
        self.n_batch: int = llama_cpp.llama_n_batch(handle)
        self.n_seq_max: int = llama_cpp.llama_n_seq_max(handle)
        self.n_threads = threads
        self.flash_attn = flash_attn
        self.kv_unified = kv_unified
        self._decode = llama_cpp.llama_decode

    @property
    def ptr(self) -> Any:
        """The raw ``llama_context *`` (for the sampler)."""
        return self._ctx

    def decode(self, batch: Batch) -> None:
        """Run the batch; raises DecodeError (``fatal`` says whether the cache is still trustworthy)."""
        raw = batch.raw
        raw.n_tokens = batch.n
        mark = _sink.n_errors
        code = self._decode(self._ctx, raw)
        if code != 0:
            why = {1: "no room in the KV cache", 2: "aborted", -1: "invalid batch"}.get(code, "failed")
            detail = last_error_line(mark)
            raise DecodeError(f"llama.cpp decode {why} (code {code}){': ' + detail if detail else ''}", code)

    def set_threads(self, n_threads: int, n_threads_batch: int | None = None) -> None:
        llama_cpp.llama_set_n_threads(self._ctx, n_threads, n_threads_batch or n_threads)
        self.n_threads = n_threads

    # -- memory (the KV cache) --------------------------------------------------------------------

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> bool:
        """Drop positions [p0, p1) of ``seq`` (-1: open end). False when a partial removal is impossible
        (recurrent models, or a sliding-window cache that no longer holds those positions)."""
        return bool(llama_cpp.llama_memory_seq_rm(self._mem, seq, p0, p1))

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        """Make ``dst`` hold what ``src`` holds. Without ``kv_unified`` only whole sequences (-1, -1) copy,
        and the copy replaces everything ``dst`` held."""
        llama_cpp.llama_memory_seq_cp(self._mem, src, dst, p0, p1)

    def seq_keep(self, seq: int) -> None:
        llama_cpp.llama_memory_seq_keep(self._mem, seq)

    def seq_pos_max(self, seq: int) -> int:
        """The largest position ``seq`` holds, -1 when empty."""
        return int(llama_cpp.llama_memory_seq_pos_max(self._mem, seq))

    def seq_pos_min(self, seq: int) -> int:
        return int(llama_cpp.llama_memory_seq_pos_min(self._mem, seq))

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)

    # -- per-sequence state -----------------------------------------------------------------------

    def state_size(self, seq: int) -> int:
        return int(llama_cpp.llama_state_seq_get_size(self._ctx, seq))

    def state_get(self, seq: int) -> bytearray:
        """A copy of ``seq``'s KV cells in host memory (``llama_state_seq_get_data``)."""
        size = self.state_size(seq)
        data = bytearray(size)
        if size == 0:
            return data
        view = (ctypes.c_uint8 * size).from_buffer(data)
        n = llama_cpp.llama_state_seq_get_data(self._ctx, view, size, seq)
        del view  # release the export so the bytearray may be resized
        if n != size:
            del data[n:]
        return data

    def state_set(self, seq: int, data: bytes | bytearray) -> bool:
        """Load what ``state_get`` saved into ``seq`` (which should be empty); False if llama.cpp refused."""
        size = len(data)
        if size == 0:
            return False
        if isinstance(data, bytearray):
            view = (ctypes.c_uint8 * size).from_buffer(data)
        else:
            view = (ctypes.c_uint8 * size).from_buffer_copy(data)
        n = llama_cpp.llama_state_seq_set_data(self._ctx, view, size, seq)
        del view
        return n > 0

    def free(self) -> None:
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None


# -- sampling --------------------------------------------------------------------------------------

_RANDOM = random.SystemRandom()


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise InvalidOption(f"{name} must be a finite number, not {value}")
    return value


class Sampler:
    """llama.cpp's own sampler chain for one request, built the way llama.cpp's ``common_sampler`` does.

    Without mirostat: penalties (repeat_last_n, repeat_penalty, frequency,
    presence), top_k, typical_p, top_p, min_p, temperature, then ``dist``
    (seeded); samplers that would do nothing are left out. Temperature 0 is
    greedy (after the penalties). Mirostat 1 or 2: temperature, then the
    mirostat sampler, as ``common_sampler`` does. Defaults are Ollama's.
    ``seed`` None or negative draws a random seed (kept in ``self.seed``).
    ``context_size`` is what ``repeat_last_n = -1`` means.
    """

    def __init__(
        self,
        model: Model,
        *,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.9,
        min_p: float = 0.0,
        typical_p: float = 1.0,
        repeat_penalty: float = 1.1,
        repeat_last_n: int = 64,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        mirostat: int = 0,
        mirostat_tau: float = 5.0,
        mirostat_eta: float = 0.1,
        seed: int | None = None,
        context_size: int = 4096,
    ) -> None:
        if mirostat not in (0, 1, 2):
            raise InvalidOption(f"mirostat must be 0, 1 or 2, not {mirostat}")
        temperature = _finite("temperature", temperature)
        repeat_penalty = _finite("repeat_penalty", repeat_penalty)
        presence_penalty = _finite("presence_penalty", presence_penalty)
        frequency_penalty = _finite("frequency_penalty", frequency_penalty)
        top_p, min_p = _finite("top_p", top_p), _finite("min_p", min_p)
        typical_p = _finite("typical_p", typical_p)
        tau, eta = _finite("mirostat_tau", mirostat_tau), _finite("mirostat_eta", mirostat_eta)
        if repeat_penalty <= 0:
            raise InvalidOption(f"repeat_penalty must be above 0, not {repeat_penalty}")
        self.seed = _RANDOM.randrange(0xFFFFFFFF) if seed is None or seed < 0 else seed & 0xFFFFFFFF
        last_n = context_size if repeat_last_n < 0 else repeat_last_n
        self.penalized = last_n > 0 and (repeat_penalty != 1.0 or presence_penalty or frequency_penalty)
        self.penalty_last_n = last_n if self.penalized else 0
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        chain = llama_cpp.llama_sampler_chain_init(params)
        self._chain = chain
        add = llama_cpp.llama_sampler_chain_add

        if mirostat == 0:
            if self.penalized:
                add(
                    chain,
                    llama_cpp.llama_sampler_init_penalties(
                        model.n_vocab, last_n, repeat_penalty, frequency_penalty, presence_penalty
                    ),
                )
            if temperature <= 0:
                add(chain, llama_cpp.llama_sampler_init_greedy())
            else:
                if top_k > 0:
                    add(chain, llama_cpp.llama_sampler_init_top_k(top_k))
                if 0 < typical_p < 1:
                    add(chain, llama_cpp.llama_sampler_init_typical(typical_p, 1))
                if 0 < top_p < 1:
                    add(chain, llama_cpp.llama_sampler_init_top_p(top_p, 1))
                if min_p > 0:
                    add(chain, llama_cpp.llama_sampler_init_min_p(min_p, 1))
                add(chain, llama_cpp.llama_sampler_init_temp(temperature))
                add(chain, llama_cpp.llama_sampler_init_dist(self.seed))
        else:
            add(chain, llama_cpp.llama_sampler_init_temp(temperature))
            if mirostat == 1:
                add(chain, llama_cpp.llama_sampler_init_mirostat(model.n_vocab, self.seed, tau, eta, 100))
            else:
                add(chain, llama_cpp.llama_sampler_init_mirostat_v2(self.seed, tau, eta))
        self._sample = llama_cpp.llama_sampler_sample

    # Ollama's option names, for building from a dataclass of them with ``from_options``
    OPTIONS: ClassVar[tuple[str, ...]] = (
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "repeat_last_n",
        "presence_penalty",
        "frequency_penalty",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "seed",
    )

    @classmethod
    def from_options(cls, model: Model, options: Any, *, context_size: int = 4096) -> Sampler:
        """A sampler from any object with Ollama's sampling option names as attributes."""
        values = {name: getattr(options, name) for name in cls.OPTIONS if hasattr(options, name)}
        return cls(model, context_size=context_size, **values)

    def sample(self, ctx: Context, index: int) -> int:
        """Sample (and accept) a token from the logits of batch entry ``index`` of the last decode."""
        return int(self._sample(self._chain, ctx._ctx, index))

    def accept(self, tokens: Sequence[int]) -> None:
        """Feed tokens the sampler did not pick (a prompt) into its history, for the penalties."""
        for token in tokens:
            llama_cpp.llama_sampler_accept(self._chain, token)

    def reset(self) -> None:
        llama_cpp.llama_sampler_reset(self._chain)

    def free(self) -> None:
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None


# -- embeddings ------------------------------------------------------------------------------------

_POOLING_NAMES = {
    llama_cpp.LLAMA_POOLING_TYPE_MEAN: "mean",
    llama_cpp.LLAMA_POOLING_TYPE_CLS: "cls",
    llama_cpp.LLAMA_POOLING_TYPE_LAST: "last",
}


def normalize(vector: Sequence[float]) -> list[float]:
    """Scale to unit length (L2), as Ollama's embed handler does; a zero vector stays zero."""
    total = math.fsum(v * v for v in vector)
    scale = 1.0 / math.sqrt(total) if total > 0 else 0.0
    return [v * scale for v in vector]


class Embedder:
    """Sentence embeddings from a second context with embeddings on and the GGUF's pooling.

    Its compute runs on ``COMPUTE`` (one batch of texts per call, so running
    streams keep flowing between batches); ``embed`` blocks the caller.

    A model without a pooling type in its GGUF (a text-generation model) or
    a reranker cannot embed: that is an InvalidInput naming the model.
    Texts longer than the context are cut to it (``truncate``, Ollama's
    default) or refused with PromptTooLong.
    """

    def __init__(
        self, model: Model, *, n_ctx: int | None = None, n_seq_max: int = 8, n_threads: int | None = None
    ) -> None:
        if model.has_encoder and model.has_decoder:
            raise InvalidInput(f"{model.label} is an encoder-decoder model: it cannot make embeddings")
        n_ctx = n_ctx or min(model.n_ctx_train or 2048, 8192)
        self.model = model
        self.ctx = COMPUTE.call(
            lambda: Context(
                model,
                n_ctx=n_ctx,
                n_seq_max=n_seq_max,
                n_batch=n_ctx,
                n_ubatch=n_ctx,  # a non-causal model must see a whole text in one ubatch
                n_threads=n_threads,
                kv_unified=True,  # every text may use the whole context
                embeddings=True,
            )
        )
        pooling = llama_cpp.llama_pooling_type(self.ctx.ptr)
        if pooling not in _POOLING_NAMES:
            COMPUTE.call(self.ctx.free)
            what = "a reranker" if pooling == llama_cpp.LLAMA_POOLING_TYPE_RANK else "a text-generation model"
            raise InvalidInput(
                f"{model.label} cannot make embeddings: it is {what} (its GGUF declares no pooling type)"
            )
        self.pooling = _POOLING_NAMES[pooling]
        self.n_ctx = self.ctx.n_ctx
        self.dimensions: int = llama_cpp.llama_model_n_embd_out(model._model) or model.n_embd
        self._batch = Batch(self.n_ctx, 1)

    def embed(self, texts: Sequence[str], *, truncate: bool = True) -> list[list[float]]:
        """One unit-length vector per text, in order."""
        encoded: list[list[int]] = []
        for text in texts:
            tokens = self.model.tokenize(text, add_special=True, parse_special=False)
            if len(tokens) > self.n_ctx:
                if not truncate:
                    raise PromptTooLong(
                        f"a text is {len(tokens)} tokens but {self.model.label} embeds at most {self.n_ctx}"
                    )
                tokens = tokens[: self.n_ctx]
            encoded.append(tokens or [self.model.bos if self.model.bos >= 0 else 0])
        out: list[list[float]] = []
        start = 0
        while start < len(encoded):
            group: list[list[int]] = []
            used = 0
            while (
                start + len(group) < len(encoded)
                and len(group) < self.ctx.n_seq_max
                and used + len(encoded[start + len(group)]) <= self.n_ctx
            ):
                used += len(encoded[start + len(group)])
                group.append(encoded[start + len(group)])
            # one batch at a time: the schedulers on the compute thread step in between
            out.extend(COMPUTE.call(functools.partial(self._run, group)))
            start += len(group)
        return out

    def _run(self, group: list[list[int]]) -> list[list[float]]:
        batch = self._batch
        batch.clear()
        for seq, tokens in enumerate(group):
            for pos, token in enumerate(tokens):
                batch.add(token, pos, seq, True)
        self.ctx.clear()
        self.ctx.decode(batch)
        vectors = []
        for seq in range(len(group)):
            pointer = llama_cpp.llama_get_embeddings_seq(self.ctx.ptr, seq)
            if not pointer:
                raise InvalidInput(f"{self.model.label} returned no embedding")
            vectors.append(normalize(pointer[: self.dimensions]))
        self.ctx.clear()
        return vectors

    def free(self) -> None:
        self._batch.free()
        COMPUTE.call(self.ctx.free)
