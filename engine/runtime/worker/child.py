"""The worker process: one model's llama.cpp, its scheduler, and the messages to and from the engine.

``python -m engine.runtime.worker.child FD``: FD is this end of the socket
pair the engine made. The first message is the ``LoadSpec``; the answer is
``("ready", ModelFacts)`` or ``("failed", error)``. Then, until ``close`` or
the engine is gone:

=========================================  ==============================================
engine → worker                            worker → engine
=========================================  ==============================================
``("submit", rid, Request)``               ``("event", rid, Token | Done, error | None)``
``("cancel", rid)``                        (the request's Done "cancelled" follows)
``("forget", conversation)``
``("call", cid, name, args)``              ``("reply", cid, ok, value or error)``
``("abort", cid)``                         (the call raises Cancelled)
``("close",)``                             ``("closed",)``, then the process exits
=========================================  ==============================================

Events are sent by the compute thread as the scheduler makes them (one
message per token: a few microseconds); embeddings run on a thread of
their own so the next message is read meanwhile. llama.cpp's log goes to
the log file and, line by line, to stderr, which the engine reads: the last
lines before an abort say why. SIGINT is ignored: Ctrl+C is the engine's to
handle, and it closes its workers. When the engine dies, the socket ends
and so does this process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.cancel import CancelToken
from engine.events import Done, Token
from engine.runtime.request import Handle, Request
from engine.runtime.worker.wire import Writer, portable, read_message

_WATCH_EVERY = 0.5  # seconds between looks at whether the engine still lives (during a load)


class _Server:
    """Serves one loaded model's messages; the main thread reads, the compute thread sends events."""

    def __init__(self, loaded: Any, writer: Writer) -> None:
        self.loaded = loaded
        self.writer = writer
        self.handles: dict[int, Handle] = {}
        self.calls: dict[int, CancelToken] = {}
        self.calls_lock = threading.Lock()

    def serve(self, stream: Any) -> None:
        while (message := read_message(stream)) is not None:
            kind = message[0]
            if kind == "submit":
                self._submit(message[1], message[2])
            elif kind == "cancel":
                handle = self.handles.get(message[1])
                if handle is not None:
                    handle.cancel()
            elif kind == "forget":
                self.loaded.scheduler.forget(message[1])
            elif kind == "call":
                self._call(message[1], message[2], message[3])
            elif kind == "abort":
                with self.calls_lock:
                    token = self.calls.get(message[1])
                if token is not None:
                    token.cancel("the caller left")
            elif kind == "close":
                self.loaded.close()
                self._send(("closed",))
                return

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self.writer.send(message)
        except OSError:  # the engine is gone: nobody to serve
            os._exit(0)

    def _submit(self, rid: int, request: Request) -> None:
        handle = self.loaded.scheduler.submit(request)
        self.handles[rid] = handle
        handle.forward(self._sink(rid, handle))

    def _sink(self, rid: int, handle: Handle) -> Callable[[Token | Done], None]:
        def send(event: Token | Done) -> None:
            error = None
            if isinstance(event, Done):
                self.handles.pop(rid, None)
                if event.reason == "error" and handle.error is not None:
                    error = portable(handle.error)
            self._send(("event", rid, event, error))

        return send

    def _call(self, cid: int, name: str, args: tuple[Any, ...]) -> None:
        if name == "embed":  # long: on a thread of its own, cancellable with "abort"
            token = CancelToken()
            with self.calls_lock:
                self.calls[cid] = token
            texts, truncate = args
            work = lambda: self.loaded.embed(texts, truncate=truncate, cancel=token)  # noqa: E731
            threading.Thread(target=self._answer, args=(cid, work), daemon=True).start()
            return
        if name == "tokenize":
            text, add_special, parse_special = args
            model = self.loaded.model
            self._answer(
                cid, lambda: model.tokenize(text, add_special=add_special, parse_special=parse_special)
            )
        elif name == "tokenize_within":
            text, limit, add_special, parse_special = args
            model = self.loaded.model
            self._answer(
                cid,
                lambda: model.tokenize_within(
                    text, limit, add_special=add_special, parse_special=parse_special
                ),
            )
        elif name == "image_tokens":
            self._answer(cid, lambda: self.loaded.image_tokens(args[0]))
        elif name == "image_wrap":
            self._answer(cid, self.loaded.image_wrap)
        elif name == "stats":
            self._answer(cid, self.loaded.scheduler.stats)
        elif name == "embed_batches":
            self._answer(cid, lambda: self.loaded.embed_batches)
        else:
            self._send(("reply", cid, False, portable(ValueError(f"no such call: {name}"))))

    def _answer(self, cid: int, work: Callable[[], Any]) -> None:
        try:
            reply: tuple[Any, ...] = ("reply", cid, True, work())
        except BaseException as error:  # noqa: BLE001 (the caller gets it)
            reply = ("reply", cid, False, portable(error))
        finally:
            with self.calls_lock:
                self.calls.pop(cid, None)
        self._send(reply)


def _exit_with_parent() -> None:
    """Stop when the engine dies, also while a load keeps the main thread busy."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_WATCH_EVERY)
        os._exit(0)

    threading.Thread(target=watch, name="engine watch", daemon=True).start()


def _echo(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    sock = socket.socket(fileno=int(argv[0]))
    stream = sock.makefile("rb", buffering=1 << 16)
    writer = Writer(sock)
    message = read_message(stream)
    if message is None or message[0] != "load":
        return 2
    spec = message[1]
    from engine.runtime.llama import log

    if spec.log_path is not None:
        log.set_log_file(spec.log_path)
    log.echo_llama_log(_echo)
    from engine.runtime.worker.loaded import LoadedModel  # llama.cpp is loaded here, in the worker only

    reported = [0.0]

    def progress(fraction: float) -> None:  # llama.cpp calls this often: send a change of 1% or more
        if fraction - reported[0] >= 0.01 or (fraction >= 1.0 > reported[0]):
            reported[0] = fraction
            writer.send(("progress", fraction))

    try:
        loaded = LoadedModel.load(spec, progress=progress)
    except BaseException as error:  # noqa: BLE001 (the engine words it)
        writer.send(("failed", portable(error)))
        return 1
    writer.send(("ready", loaded.facts()))
    _Server(loaded, writer).serve(stream)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown: llama.cpp's threads and atexit hooks have nothing to add
