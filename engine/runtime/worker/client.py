"""The engine's side of a worker process: start it, talk to it, notice when it dies.

A ``Worker`` stands for one loaded model. ``submit`` returns a ``Handle``
fed by the reader thread as the worker's events arrive, so everything above
(``Reply``, the HTTP streams) reads tokens exactly as it did when llama.cpp
ran in this process. ``tokenize``, ``stats`` and ``embed`` are calls that
block their caller until the worker answers.

When the worker dies (llama.cpp's ``GGML_ASSERT``, a segfault, the OOM
killer), every request it was serving ends with a Done "error" and a
``ModelCrashed`` naming the model and llama.cpp's last words; later calls
raise the same at once. ``on_crash`` tells the engine (``residency``) which
requests were in flight, so it can drop the model and refuse what crashed it.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.cancel import NEVER, CancelToken
from engine.errors import Cancelled, LlamadeckError, ModelCrashed, QueueFull
from engine.events import Done, Token
from engine.runtime.request import Handle, Request
from engine.runtime.stats import SchedulerStats
from engine.runtime.worker.spec import LoadSpec, ModelFacts
from engine.runtime.worker.wire import Writer, read_message

WORKER_LOG: collections.deque[str] = collections.deque(maxlen=200)  # every worker's latest log lines
CLOSE_WAIT = 10.0  # seconds a worker gets to free its model before it is killed
_TAIL = 40  # a worker's own last lines, kept for the reason it died


class _Call:
    __slots__ = ("name", "args", "done", "ok", "value")

    def __init__(self, name: str, args: tuple[Any, ...]) -> None:
        self.name = name
        self.args = args
        self.done = threading.Event()
        self.ok = False
        self.value: Any = None


# (the worker, how it died, the requests it was serving, the embeddings: (texts, truncate))
CrashHook = Callable[["Worker", str, list[Request], list[tuple[list[str], bool]]], None]


class Worker:
    """One model's worker process, seen from the engine. Thread-safe."""

    def __init__(self, label: str, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.label = label
        self.facts: ModelFacts | None = None
        self.on_crash: CrashHook | None = None
        self.on_progress: Callable[[float], None] | None = None
        self._process = process
        self._sock = sock
        self._writer = Writer(sock)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._handles: dict[int, Handle] = {}
        self._calls: dict[int, _Call] = {}
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL)
        self._loaded = threading.Event()  # "ready", "failed" or death came
        self._load_error: BaseException | None = None
        self._closing = False
        self._closed = threading.Event()  # the reader thread has ended
        self.broken: str | None = None  # why it stopped serving, once it has
        self.cause = ""  # how it died, without the model's name (for the crash ledger)
        self._log_thread = threading.Thread(target=self._read_log, name=f"worker log {label}", daemon=True)
        self._reader = threading.Thread(target=self._read, name=f"worker {label}", daemon=True)

    # starting ------------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        spec: LoadSpec,
        cancel: CancelToken = NEVER,
        *,
        on_crash: CrashHook | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> Worker:
        """Start a worker and load ``spec`` in it; returns once it is ready.

        Raises what the load raised there (IntegrityError, LoadError),
        ModelCrashed when llama.cpp took the worker down while loading, or
        Cancelled (the worker is killed at once: no waiting for llama.cpp).
        ``on_crash(worker, reason, requests, embeds)`` is called (on the
        reader thread) if the worker dies after it was ready, with the
        requests and embedding inputs it was serving. ``on_progress(fraction)``
        hears llama.cpp's load progress (on the reader thread).
        """
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "engine.runtime.worker.child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl+C in a terminal reaches the engine, which closes its workers
                env=_child_environment(),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        worker = cls(spec.label, process, ours)
        worker.on_crash = on_crash
        worker.on_progress = on_progress
        worker._log_thread.start()
        worker._reader.start()
        forget = cancel.on_cancel(worker.kill)
        try:
            worker._post(("load", spec))
            worker._loaded.wait()
        except BaseException:  # Ctrl+C (KeyboardInterrupt) while it loads: no worker is left behind
            worker.kill()
            raise
        finally:
            forget()
        if worker._load_error is not None:
            worker.kill()
            if cancel.cancelled:
                raise Cancelled(f"loading {spec.label} was cancelled")
            raise worker._load_error
        return worker

    # serving -------------------------------------------------------------------------------------

    def submit(self, request: Request, *, limit: int | None = None) -> Handle:
        """Send a request; its events come back on the handle (an error as its final Done).

        ``limit``: the most requests this worker may hold, running and
        waiting together; one more is refused with QueueFull (nothing is sent).
        """
        rid = next(self._ids)
        handle = Handle(request, lambda: self._post(("cancel", rid)))
        with self._lock:
            broken = self.broken
            if broken is None:
                if limit is not None and len(self._handles) >= limit:
                    raise QueueFull()
                self._handles[rid] = handle
        if broken is not None:
            _fail(handle, ModelCrashed(broken, self.cause))
            return handle
        self._post(("submit", rid, request))
        return handle

    @property
    def in_flight(self) -> int:
        """Requests submitted and not yet done: those in a slot and those waiting for one."""
        with self._lock:
            return len(self._handles)

    def forget(self, conversation: str) -> None:
        self._post(("forget", conversation))

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        tokens: list[int] = self._call("tokenize", (text, add_special, parse_special))
        return tokens

    def tokenize_within(
        self, text: str, limit: int, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int] | int:
        """``tokenize``, or only the count past ``limit`` tokens (the list is never made, nor sent)."""
        tokens: list[int] | int = self._call("tokenize_within", (text, limit, add_special, parse_special))
        return tokens

    def image_tokens(self, images: list[bytes]) -> list[int]:
        """How many prompt tokens each image takes (InvalidInput when the model has no projector)."""
        counts: list[int] = self._call("image_tokens", (images,))
        return counts

    def image_wrap(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The tokens the model's projector puts before and after each image (none for some)."""
        wrap: tuple[tuple[int, ...], tuple[int, ...]] = self._call("image_wrap", ())
        return wrap

    def stats(self) -> SchedulerStats | None:
        """The scheduler's snapshot; None once the worker has stopped."""
        try:
            stats: SchedulerStats = self._call("stats", ())
        except ModelCrashed:
            return None
        return stats

    def embed(self, texts: list[str], *, truncate: bool = True, cancel: CancelToken = NEVER) -> Any:
        """Embeddings of ``texts`` (see ``LoadedModel.embed``); ``cancel`` stops them between batches."""
        return self._call("embed", (texts, truncate), cancel=cancel)

    def embed_batches(self) -> int:
        """Embedding batches the worker has decoded (for tests that watch turn-taking)."""
        batches: int = self._call("embed_batches", ())
        return batches

    def _call(self, name: str, args: tuple[Any, ...], *, cancel: CancelToken = NEVER) -> Any:
        cid = next(self._ids)
        call = _Call(name, args)
        with self._lock:
            if self.broken is not None:
                raise ModelCrashed(self.broken, self.cause)
            self._calls[cid] = call
        self._post(("call", cid, name, args))
        forget = cancel.on_cancel(lambda: self._post(("abort", cid)))
        try:
            call.done.wait()
        finally:
            forget()
        if not call.ok:
            raise call.value
        return call.value

    def _post(self, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError):  # a dead worker: the reader thread ends what was waiting
            self._writer.send(message)

    # the vocabulary, known since the load -----------------------------------------------------------

    @property
    def _facts(self) -> ModelFacts:
        if self.facts is None:
            raise ModelCrashed(self.broken or f"{self.label} is not loaded", self.cause)
        return self.facts

    @property
    def bos_text(self) -> str:
        return self._facts.bos_text

    @property
    def eos_text(self) -> str:
        return self._facts.eos_text

    @property
    def bos(self) -> int:
        return self._facts.bos

    @property
    def add_bos(self) -> bool:
        return self._facts.add_bos

    @property
    def fim(self) -> tuple[int, int, int] | None:
        return self._facts.fim

    @property
    def n_vocab(self) -> int:
        return self._facts.n_vocab

    # closing -------------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._process.pid

    def close(self) -> None:
        """Unload: the worker cancels what runs (each handle gets its Done) and exits; killed if it hangs."""
        with self._lock:
            self._closing = True
        self._post(("close",))
        try:
            self._process.wait(CLOSE_WAIT)
        except subprocess.TimeoutExpired:
            self.kill()
        self._closed.wait()
        self._sock.close()

    def kill(self) -> None:
        """Stop the worker now (a cancelled load, a hung worker); what it served ends as after a crash."""
        with self._lock:
            self._closing = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()

    # the reader threads --------------------------------------------------------------------------

    def _read(self) -> None:
        stream = self._sock.makefile("rb", buffering=1 << 16)
        try:
            while (message := read_message(stream)) is not None:
                kind = message[0]
                if kind == "event":
                    self._event(message[1], message[2], message[3])
                elif kind == "reply":
                    with self._lock:
                        call = self._calls.pop(message[1], None)
                    if call is not None:
                        call.ok, call.value = message[2], message[3]
                        call.done.set()
                elif kind == "progress":
                    if self.on_progress is not None:
                        self.on_progress(message[1])
                elif kind == "ready":
                    self.facts = message[1]
                    self._loaded.set()
                elif kind == "failed":
                    self._load_error = message[1]
                    self._loaded.set()
                elif kind == "closed":
                    break
        except (OSError, EOFError, ValueError, TypeError, AttributeError, ImportError):
            pass  # a torn message from a dying worker: it ends as a crash below
        finally:
            stream.close()
            self._ended()

    def _event(self, rid: int, event: Token | Done, error: LlamadeckError | None) -> None:
        with self._lock:
            handle = self._handles.get(rid) if not isinstance(event, Done) else self._handles.pop(rid, None)
        if handle is None:
            return
        if error is not None:
            handle.error = error
        handle._push(event)

    def _ended(self) -> None:
        """The worker's socket closed: a clean close, or a crash to report to everyone waiting."""
        loading = not self._loaded.is_set()
        with self._lock:
            closing = self._closing
        code = self._process.poll()
        if code is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._process.wait(2.0)  # its last words arrive on the log pipe meanwhile
        cause = self._cause(code)
        with self._lock:
            closing = self._closing
            reason = (
                f"{self.label} was unloaded"
                if closing
                else f"{self.label}'s llama.cpp worker crashed ({cause})"
            )
            self.broken, self.cause = reason, cause
            handles = list(self._handles.values())
            calls = list(self._calls.values())
            self._handles.clear()
            self._calls.clear()
        crashed = ModelCrashed(reason, cause)
        for handle in handles:
            _fail(handle, crashed if not closing else None)
        for call in calls:
            call.ok, call.value = False, crashed
            call.done.set()
        if loading:
            self._load_error = crashed
            self._loaded.set()
        self._closed.set()
        if not closing and not loading and self.on_crash is not None:
            embeds = [(list(call.args[0]), bool(call.args[1])) for call in calls if call.name == "embed"]
            self.on_crash(self, cause, [handle.request for handle in handles], embeds)

    def _cause(self, code: int | None) -> str:
        """How the worker died, with llama.cpp's last words when it had any: one line."""
        self._log_thread.join(1.0)
        said = _last_words(list(self._tail))
        if code is not None and code < 0:
            how = f"killed by {signal.Signals(-code).name}" if -code in signal.valid_signals() else "killed"
        else:
            how = f"exited with code {code}" if code is not None else "stopped answering"
        return f"{how}: {said}" if said else how

    def _read_log(self) -> None:
        stream = self._process.stdout
        if stream is None:
            return
        with contextlib.suppress(OSError, ValueError):
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    self._tail.append(line)
                    WORKER_LOG.append(line)
        with contextlib.suppress(OSError):
            stream.close()


def _fail(handle: Handle, error: LlamadeckError | None) -> None:
    """End a handle the worker will never answer: an error, or cancelled (the model was unloaded)."""
    if handle.done is not None:
        return
    if error is not None:
        handle.error = error
    handle._push(
        Done(
            reason="error" if error is not None else "cancelled",
            prompt_tokens=len(handle.request.tokens),
            completion_tokens=0,
            load_seconds=0.0,
            prompt_seconds=0.0,
            generate_seconds=0.0,
            error=None if error is None else str(error),
        )
    )


def _last_words(lines: list[str]) -> str:
    """The line that says why llama.cpp stopped (``GGML_ASSERT(...) failed``, an error), one line."""
    from engine.text import one_line

    for marker in ("GGML_ASSERT", "GGML_ABORT", "error", "Error", "terminate", "Segmentation"):
        for line in reversed(lines):
            if marker in line:
                return one_line(line, 300)
    return ""


def _child_environment() -> dict[str, str]:
    """The engine's environment, with this copy of ``engine`` first on the path and no ggml backtraces
    (ggml would run gdb on an abort: seconds, and pages of output)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])  # the directory that holds engine/
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH", "")])])
    env["GGML_NO_BACKTRACE"] = "1"
    env.pop("PYTHONSTARTUP", None)
    return env
