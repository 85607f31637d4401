"""The commands that run models: run (here, in the app or on a running server), ps, stop, serve, the app."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tui.cli.common import CliError, chosen_server, interactive, open_engine, progress_view
from tui.cli.stdin import run_prompt
from tui.tables import ago_until, render_table
from tui.terminal import flush_all, out, warn

if TYPE_CHECKING:
    from engine import Engine, LoadedModel
    from tui.client import Server


THINK_VALUES: dict[str, bool | str] = {
    "true": True,
    "false": False,
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
}


def think_flag(args: argparse.Namespace) -> bool | str | None:
    """``--think``'s value as the engine takes it, as ``ollama run`` reads the flag.

    ``run MODEL --think "PROMPT"`` is ``--think`` and a prompt: argparse hands
    the prompt to the flag, so a value that is none of the flag's is given back.
    """
    value = getattr(args, "think", None)
    if value is None:
        return None
    if value not in THINK_VALUES and getattr(args, "prompt", "") is None:  # chat has no prompt to take
        args.prompt, value = value, "true"
    if value not in THINK_VALUES:
        raise CliError(
            f"invalid value for --think: {value!r} (must be true, false, high, medium, low, or max)"
        )
    return THINK_VALUES[value]


def cmd_run(args: argparse.Namespace) -> int:
    from tui.cli.interrupt import run_cancellable

    think = think_flag(args)
    chat = args.prompt is None and interactive()
    prompt = "" if chat else run_prompt(args.prompt)  # with what is piped in, as ollama run
    engine, view = open_engine(serving=True), progress_view()
    try:  # generation never pulls: a missing model is fetched here first, with its progress shown
        run_cancellable(lambda cancel, emit: engine.ensure(args.model, on_event=emit, cancel=cancel), view)
    finally:
        view.close()
    if chat:
        from tui.app import run_app  # textual is imported only here

        return run_app(engine, chat_model=args.model)

    from tui.client import server_for_store

    remote = engine.where != "local"  # a server named by the user: it is the engine here
    images: list[bytes] = []
    seeing = engine.show(args.model).capabilities  # a /v1 server does not say: it decides what it sees
    if "vision" in seeing or (remote and not seeing):  # "what is in ./photo.jpg", as ollama run
        from tui.cli.image_paths import extract_images

        prompt, images = extract_images(prompt)

    def generate(cancel: Any, emit: Callable[[object], None]) -> None:
        # a serve on this store may have the model loaded: it must prove it serves this store first
        server = None if remote else server_for_store(engine.store_proof, here())
        if server is not None:  # checked just now, on the connection the prompt goes on
            _generate_on_server(server, args, prompt, think, cancel, emit, images)
            return
        events = engine.generate(
            args.model,
            prompt,
            raw=True if args.raw else None,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            seed=args.seed,
            cancel=cancel,
            think=think,
            images=images,
        )
        for event in events:
            emit(event)

    from tui.cli.progress import ReplyView

    reply = ReplyView(verbose=args.verbose, hide_thinking=args.hidethinking)
    try:
        run_cancellable(generate, reply)
    finally:
        reply.close()
    return 0


_NS = 1e-9


def _generate_on_server(
    server: Server,
    args: argparse.Namespace,
    prompt: str,
    think: bool | str | None,
    cancel: Any,
    emit: Callable[[object], None],
    images: Sequence[bytes] = (),
) -> None:
    """``run`` through a running ``llamadeck serve`` (Ollama's /api/generate, images as base64), events
    as the engine's."""
    import base64

    from engine import Cancelled, Done, LlamadeckError, Token
    from tui.client import ServerError, stream

    options: dict[str, object] = {"num_predict": args.max_tokens, "temperature": args.temperature}
    if args.seed is not None:
        options["seed"] = args.seed
    body = {"model": args.model, "prompt": prompt, "options": options, "stream": True}
    if args.raw:
        body["raw"] = True
    if think is not None:
        body["think"] = think
    if images:
        body["images"] = [base64.b64encode(image).decode() for image in images]
    remove = cancel.on_cancel(server.interrupt)
    try:
        for line in stream(server, "/api/generate", body):
            if "error" in line:
                raise LlamadeckError(str(line["error"]))
            if line.get("response") or line.get("thinking"):
                emit(Token(str(line.get("response") or ""), str(line.get("thinking") or "")))
            if line.get("done"):
                emit(
                    Done(
                        str(line.get("done_reason") or "stop"),
                        int(line.get("prompt_eval_count") or 0),
                        int(line.get("eval_count") or 0),
                        float(line.get("load_duration") or 0) * _NS,
                        float(line.get("prompt_eval_duration") or 0) * _NS,
                        float(line.get("eval_duration") or 0) * _NS,
                        total_seconds=float(line.get("total_duration") or 0) * _NS,
                    )
                )
                return
        if cancel.cancelled:
            raise Cancelled("stopped")
        raise ServerError("the answer ended before it was done")
    except ServerError as failure:
        if cancel.cancelled:
            raise Cancelled("stopped") from failure
        where = "" if server.url in str(failure) else f" (the llamadeck server at {server.url})"
        raise LlamadeckError(f"{failure}{where}") from failure
    finally:
        remove()
        server.close()


def cmd_ps(args: argparse.Namespace) -> int:
    """The models a running ``llamadeck serve`` holds (or the named server), as ``ollama ps`` shows them."""
    if chosen_server() is not None:
        out(ps_table(open_engine().loaded()))  # through the facade over the named server
        return 0
    from engine import loaded_from_ps
    from tui.client import ServerError, call

    try:
        models = (call("GET", "/api/ps", prove=_store_proof, environ=here()) or {}).get("models", [])
    except ServerError as error:
        raise CliError(str(error)) from None
    out(ps_table([loaded_from_ps(m) for m in models if isinstance(m, dict)]))
    return 0


def ps_table(loaded: list[LoadedModel]) -> str:
    """``ps``'s table, the same from this machine's serve and from a named server: one row per model."""
    from engine import format_size

    drafts = any(m.draft for m in loaded)  # a DRAFT column only when one has one
    rows = []
    for m in loaded:
        until = "forever" if m.expires_in is None else ago_until(_at(m.expires_in))
        rows.append(
            [
                m.reference,
                *([m.draft or "-"] if drafts else []),
                m.id,
                format_size(m.memory),
                _processor(m.memory, m.vram),
                str(m.context or "-"),
                _sequences(m),
                until,
            ]
        )
    return render_table(_ps_headers(drafts), rows)


def _sequences(model: LoadedModel) -> str:
    """Sequences running/at most, KV cells held/the pool, and what waits: "2/32 · kv 310/16384 · 1 queued".
    "-" from a server that does not say (Ollama: no KV pool in its answer)."""
    if not model.kv_cells:
        return "-"
    text = f"{model.slots_busy}/{model.slots} · kv {model.kv_used}/{model.kv_cells}"
    for count, label in ((model.queued, "queued"), (model.paused, "parked")):
        if count:
            text += f" · {count} {label}"
    if model.drafted > 0:
        text += f" · drafts {100 * model.accepted // model.drafted}% taken"
    return text


def _ps_headers(drafts: bool) -> list[str]:
    """``ps``'s columns: Ollama's, a DRAFT column only when a model has a draft, and the sequences."""
    return [
        "NAME",
        *(["DRAFT"] if drafts else []),
        "ID",
        "SIZE",
        "PROCESSOR",
        "CONTEXT",
        "SEQUENCES",
        "UNTIL",
    ]


def _processor(size: int, vram: int) -> str:
    """Where a loaded model sits, as ``ollama ps`` says it: 100% CPU, 100% GPU or the split."""
    gpu = round(100 * vram / size) if size else 0
    return "100% GPU" if gpu >= 100 else "100% CPU" if gpu <= 0 else f"{100 - gpu}%/{gpu}% CPU/GPU"


def _at(seconds: float) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(seconds=seconds + 1)).isoformat()


def cmd_stop(args: argparse.Namespace) -> int:
    """Unload a model from a running server now (Ollama's stop: a generate with keep_alive 0)."""
    if chosen_server() is not None:
        open_engine().unload(args.model)
        return 0
    from tui.client import ServerError, call

    try:
        body = {"model": args.model, "keep_alive": 0}
        call("POST", "/api/generate", body, prove=_store_proof, environ=here())
    except ServerError as error:
        raise CliError(str(error)) from None
    return 0


def here() -> dict[str, str]:
    """The environment for finding this machine's own server: with ``--host local``, LLAMADECK_HOST
    (which names another server) is left out, so the default address and its store proof are used."""
    return {k: v for k, v in os.environ.items() if k != "LLAMADECK_HOST"}


def _store_proof(text: str) -> str:
    """``Engine.store_proof`` on this store, opened only when a server must prove itself (ps stays fast)."""
    engine = open_engine(local=True)
    try:
        return engine.store_proof(text)
    finally:
        engine.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from api.server import ServeError, address, bind, serve  # FastAPI only when serving: --help stays fast

    api_key = args.api_key or os.environ.get("LLAMADECK_API_KEY") or None
    engine = open_engine(serving=True, local=True)  # a bad setting stops it here, in one line
    try:
        listener = bind(*address(args.host, args.port), api_key=api_key)
    except ServeError as failure:
        engine.close()
        raise CliError(str(failure)) from None
    prune_store_at_start(engine)
    out(f"llamadeck API on {listener.url}")
    flush_all()
    serve(engine, listener, api_key=api_key)
    return 0


def prune_store_at_start(engine: Engine) -> None:
    """The server's start prune (off with ``LLAMADECK_NOPRUNE``); a store it cannot prune is one warning."""
    from api.server import prune_at_start
    from engine import LlamadeckError

    try:
        prune_at_start(engine)
    except LlamadeckError as failure:
        warn(f"the store was not pruned at start: {failure}")


def open_app(*, serve: bool) -> int:
    """The full-screen app; with ``serve``, its engine also answers the HTTP API while it runs."""
    if not serve:
        from tui.app import run_app  # textual is imported only here

        return run_app(open_engine(serving=True))
    from api.server import BackgroundServer, ServeError, address, bind

    api_key = os.environ.get("LLAMADECK_API_KEY") or None
    engine = open_engine(serving=True, local=True)  # the app's keep-alive and settings hold for API loads
    try:
        listener = bind(*address(None, None), api_key=api_key)
    except ServeError as failure:
        engine.close()
        raise CliError(f"--serve: {failure}") from None
    from tui.app import LlamadeckApp

    prune_store_at_start(engine)
    server = BackgroundServer(engine, listener, api_key=api_key)
    try:
        return LlamadeckApp(engine, serve_url=server.url).run() or 0
    finally:
        server.stop()  # before the engine closes: no request may find it gone
        engine.close()
