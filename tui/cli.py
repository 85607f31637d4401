"""The ``llamadeck`` command line: parse, call the engine, print.

Docker- and Ollama-like verbs. Every failure is one line on stderr and a
non-zero exit: 1 for an error, 130 for Ctrl+C, 2 for a bug (``--debug``, given
anywhere on the line, adds the traceback). Long engine calls run through
``tui.interrupt`` so Ctrl+C always works; everything printed goes through
``tui.terminal``. Imports stay lazy so that ``--help``, ``list`` and ``show``
start fast (no llama_cpp, no textual).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any, NoReturn

from tui.tables import ago, ago_until, format_count, printable, render_table
from tui.terminal import (
    error,
    escape,
    flush_all,
    guard_standard_fds,
    harden_streams,
    out,
    silence_stdout,
    warn,
)

if TYPE_CHECKING:
    from engine import CancelToken, Engine, EventSink, FoundModel, Manifest
    from tui.progress import ProgressView

RESUME_NOTE = ": the partial download is kept; run the same pull to resume"
MAX_SEED = 2**32 - 2  # as the engine: 0xFFFFFFFF is llama.cpp's own "random"


class CliError(Exception):
    """A mistake on the command line or its streams, found before the engine is asked anything."""


def _engine() -> Engine:  # lazy import keeps --help fast
    from engine import Engine
    from tui.config import Config

    return Engine(home=Config.load().store_home())  # the store chosen in the app's settings, if any


def _view(transient: bool = False) -> ProgressView:
    from tui.progress import ProgressView

    return ProgressView(sys.stderr, transient=transient)


# commands --------------------------------------------------------------------


def cmd_pull(args: argparse.Namespace) -> int:
    from tui.interrupt import run_cancellable

    if args.list:
        return list_variants(args.model)
    engine, view = _engine(), _view()
    try:
        manifest = run_cancellable(
            lambda cancel, emit: engine.pull(args.model, quant=args.quant, on_event=emit, cancel=cancel),
            view,
            note=RESUME_NOTE,
        )
    finally:
        view.close()
    out(f"pulled {escape(manifest.reference)} ({escape(manifest.id)})")
    return 0


def list_variants(reference: str) -> int:
    from engine import format_gib, format_size
    from tui.interrupt import run_cancellable

    engine, view = _engine(), _view(transient=True)
    try:
        fits = run_cancellable(
            lambda cancel, emit: engine.variants(reference, on_event=emit, cancel=cancel), view
        )
    finally:
        view.close()
    rows = [
        [
            fit.quant + (" *" if fit.recommended else ""),
            format_size(fit.size),
            format_gib(fit.need),
            fit.fits_in.value or "does not fit",
        ]
        for fit in fits
    ]
    out(render_table(["QUANT", "SIZE", "NEEDS", "FITS IN"], rows))
    out("* what pull takes without a quant")
    return 0


def read_prompt(given: str | None) -> str:
    """The prompt from the command line, else all of stdin (which must be UTF-8 text)."""
    if given is not None:
        prompt = given
        if any("\udc80" <= c <= "\udcff" for c in prompt):  # argv bytes the locale could not decode
            try:  # under LANG=C a UTF-8 argument arrives as escaped bytes: it is still UTF-8 text
                prompt = os.fsencode(prompt).decode("utf-8")
            except UnicodeDecodeError:
                raise CliError("the prompt is not valid UTF-8 text") from None
    elif sys.stdin is None:
        raise CliError('give a prompt: llamadeck run MODEL "PROMPT" (stdin is closed)')
    elif sys.stdin.isatty():
        raise CliError('give a prompt: llamadeck run MODEL "PROMPT" (or pipe one in)')
    else:
        data = sys.stdin.buffer.read()
        try:
            prompt = data.decode("utf-8-sig")
        except UnicodeDecodeError as bad:
            raise CliError(f"stdin is not valid UTF-8 text (a bad byte at offset {bad.start})") from None
    if not prompt.strip():
        raise CliError('give a prompt: llamadeck run MODEL "PROMPT" (or pipe one in)')
    return prompt


def _interactive() -> bool:
    """Both ends are a terminal that can draw the app: ``run MODEL`` without a prompt opens its Chat tab.

    ``TERM=dumb`` (an editor's shell buffer, a plain serial console) cannot draw it: there the
    command line answers as it does when piped.
    """
    if os.environ.get("TERM", "") == "dumb":
        return False
    return sys.stdin is not None and sys.stdout is not None and sys.stdin.isatty() and sys.stdout.isatty()


def cmd_run(args: argparse.Namespace) -> int:
    from tui.interrupt import run_cancellable

    chat = args.prompt is None and _interactive()
    prompt = "" if chat else read_prompt(args.prompt)
    engine, view = _engine(), _view()
    try:  # generation never pulls: a missing model is fetched here first, with its progress shown
        run_cancellable(lambda cancel, emit: engine.ensure(args.model, on_event=emit, cancel=cancel), view)
    finally:
        view.close()
    if chat:
        from tui.app import run_app  # textual is imported only here

        return run_app(engine, chat_model=args.model)

    from tui.client import server_for_store

    server = server_for_store(engine.store_proof)  # a serve on this store may have the model loaded already

    def generate(cancel: Any, emit: Callable[[object], None]) -> None:
        if server is not None:
            _generate_on_server(server, args, prompt, cancel, emit)
            return
        events = engine.generate(
            args.model,
            prompt,
            raw=True if args.raw else None,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            seed=args.seed,
            cancel=cancel,
        )
        for event in events:
            emit(event)

    from tui.progress import ReplyView

    reply = ReplyView(verbose=args.verbose)
    try:
        run_cancellable(generate, reply)
    finally:
        reply.close()
    return 0


_NS = 1e-9


def _generate_on_server(
    base: str, args: argparse.Namespace, prompt: str, cancel: Any, emit: Callable[[object], None]
) -> None:
    """``run`` through a running ``llamadeck serve`` (Ollama's /api/generate), events as the engine's."""
    from engine import Cancelled, Done, LlamadeckError, Token
    from tui.client import ServerError, stream

    options: dict[str, object] = {"num_predict": args.max_tokens, "temperature": args.temperature}
    if args.seed is not None:
        options["seed"] = args.seed
    body = {"model": args.model, "prompt": prompt, "options": options, "stream": True}
    if args.raw:
        body["raw"] = True
    opened: list[Any] = []
    remove = cancel.on_cancel(lambda: [response.close() for response in opened])
    try:
        for line in stream(base, "/api/generate", body, on_open=opened.append):
            if "error" in line:
                raise LlamadeckError(str(line["error"]))
            if line.get("response"):
                emit(Token(str(line["response"])))
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
    except ServerError as failure:
        if cancel.cancelled:
            raise Cancelled("stopped") from failure
        where = "" if base in str(failure) else f" (the llamadeck server at {base})"
        raise LlamadeckError(f"{failure}{where}") from failure
    finally:
        remove()


def cmd_list(args: argparse.Namespace) -> int:
    from engine import format_size

    engine = _engine()
    models = engine.list_models()
    problems = engine.store_problems()
    rows = [[m.reference, m.id, format_size(m.size), m.quant or "-", ago(m.created)] for m in models]
    rows += [[p.reference, "newer llamadeck" if p.newer else "damaged", "-", "-", "-"] for p in problems]
    out(render_table(["NAME", "ID", "SIZE", "QUANT", "MODIFIED"], rows))
    for problem in problems:
        warn(f"{escape(problem.reference)}: {escape(problem.problem)}")
    return 0


def _first_line(text: str | None, limit: int, empty: str) -> str:
    lines = (text or "").strip().splitlines()
    if not lines:
        return empty
    line = lines[0]
    return line[:limit] + " …" if len(line) > limit or len(lines) > 1 else line


def cmd_show(args: argparse.Namespace) -> int:
    from engine import format_size

    engine = _engine()
    if args.modelfile:
        out(printable(engine.modelfile(args.model)))
        return 0
    m = engine.show(args.model).manifest
    if args.template:
        out(printable(m.template or "(none: plain completion)"))
        return 0
    if args.license:
        out(printable(m.license or "(none recorded)"))
        return 0
    if args.system:
        out(printable(m.config.system or "(none)"))
        return 0
    if args.parameters:
        from engine import parameter_pairs as parameter_lines

        lines = parameter_lines(m.config.parameters)
        out("\n".join(escape(f"{name:<20}{value}") for name, value in lines) if lines else "(none)")
        return 0
    model = [
        ("architecture", m.architecture),
        ("parameters", m.size_label or format_count(m.parameters)),
        ("context length", str(m.context_length)),
        *([("embedding length", str(m.shape.n_embd)), ("layers", str(m.shape.n_layers))] if m.shape else []),
        ("quantization", m.quant or "-"),
        ("size", format_size(m.size)),
        ("id", m.id),
    ]
    source = [("from", m.source)] + ([("revision", m.revision)] if m.revision else [])
    source += [("files", ", ".join(f.path for f in m.files))]
    template = _first_line(m.template, 70, "(none: plain completion)")
    sections = [
        ("Model", model),
        ("Source", source),
        ("License", [("", _first_line(m.license, 100, "(none recorded)"))]),
        ("Template", [("", template + (f"  [{m.template_source}]" if m.template_source else ""))]),
    ]
    for title, pairs in sections:
        out(f"  {title}")
        for key, value in pairs:  # values come from GGUF headers: strings a stranger wrote
            out(escape(f"    {key:<20}{value}" if key else f"    {value}"))
        out()
    return 0


MAX_MODELFILE_BYTES = 16 << 20  # as the parser's own limit: a Modelfile is a few KiB


def read_modelfile(name: str) -> tuple[bytes, str]:
    """The Modelfile's bytes and the folder its relative paths start from."""
    if name == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise CliError("create -f - reads the Modelfile from stdin: pipe one in")
        return sys.stdin.buffer.read(MAX_MODELFILE_BYTES + 1), os.getcwd()
    try:
        if os.path.exists(name) and not os.path.isdir(name) and not os.path.isfile(name):
            raise CliError(f"{escape(name)} is not a regular file: give a Modelfile with -f (- reads stdin)")
        with open(name, "rb") as file:  # checked first: opening a FIFO would wait for a writer
            return file.read(MAX_MODELFILE_BYTES + 1), os.path.dirname(os.path.abspath(name))
    except FileNotFoundError:
        hint = " (no Modelfile in this folder: give one with -f)" if name == "Modelfile" else ""
        raise CliError(f"cannot read {escape(name)}: no such file{hint}") from None
    except IsADirectoryError:
        raise CliError(f"{escape(name)} is a folder: give a Modelfile with -f") from None
    except OSError as failure:
        raise CliError(f"cannot read {escape(name)}: {failure.strerror or failure}") from None


def cmd_create(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tui.interrupt import run_cancellable

    data, base_dir = read_modelfile(args.file)
    engine, view = _engine(), _view()
    try:
        manifest = run_cancellable(
            lambda cancel, emit: engine.create(
                args.model,
                data,
                base_dir=Path(base_dir),
                quantize=args.quantize,
                on_event=emit,
                cancel=cancel,
            ),
            view,
        )
    finally:
        view.close()
    out(f"created {escape(manifest.reference)} ({escape(manifest.id)})")
    return 0


def _open_app(*, serve: bool) -> int:
    """The full-screen app; with ``serve``, its engine also answers the HTTP API while it runs."""
    if not serve:
        from tui.app import run_app  # textual is imported only here

        return run_app(_engine())
    from api.server import BackgroundServer, ServeError, address, bind

    api_key = os.environ.get("LLAMADECK_API_KEY") or None
    try:
        listener = bind(*address(None, None), api_key=api_key)
    except ServeError as failure:
        raise CliError(f"--serve: {failure}") from None
    from tui.app import LlamadeckApp

    engine = _engine()
    server = BackgroundServer(engine, listener, api_key=api_key)
    try:
        return LlamadeckApp(engine, serve_url=server.url).run() or 0
    finally:
        server.stop()  # before the engine closes: no request may find it gone
        engine.close()


def cmd_import(args: argparse.Namespace) -> int:
    """Register models Ollama, the Hugging Face cache or LM Studio already downloaded: no second copy."""
    from engine import LlamadeckError, format_size
    from tui.interrupt import run_cancellable

    engine = _engine()
    found = engine.discover(args.tools or None)
    stored = {m.source for m in engine.list_models()}
    if not args.models and not args.all:
        rows = [
            [
                f.tool,
                f.name,
                format_size(f.size),
                f.suggested if f.importable else "-",
                _import_note(f, stored),
            ]
            for f in found
        ]
        out(render_table(["FROM", "MODEL", "SIZE", "IMPORT AS", "NOTE"], rows) if rows else "no models found")
        if any(f.importable and f.origin not in stored for f in found):
            out("import them with: llamadeck import NAME... (or --all); --dry-run shows what would be done")
        return 0
    chosen = [f for f in found if f.importable and f.origin not in stored] if args.all else []
    for wanted in args.models:
        matches = [f for f in found if wanted in (f.name, f.suggested, f.origin)]
        if not matches:
            raise CliError(f"no model {escape(wanted)} found: llamadeck import lists what there is")
        chosen.extend(m for m in matches if m not in chosen)
    status = 0
    for model in chosen:
        if args.dry_run:
            out(
                escape(
                    f"would import {model.origin} as {model.suggested} ({format_size(model.size)}, hard link)"
                )
            )
            continue
        view = _view()

        def register(cancel: CancelToken, emit: EventSink, model: FoundModel = model) -> Manifest:
            return engine.import_found(model, on_event=emit, cancel=cancel)

        try:
            made = run_cancellable(register, view)
        except LlamadeckError as failure:
            error(escape(f"{model.origin}: {failure}"))
            status = 1
            continue
        finally:
            view.close()
        out(escape(f"imported {model.origin} as {made.reference}"))
    return status


def _import_note(found: FoundModel, stored: set[str]) -> str:
    if found.origin in stored:
        return "already imported"
    return printable(found.note or "")


def cmd_rm(args: argparse.Namespace) -> int:
    from engine import LlamadeckError, format_size

    engine, status = _engine(), 0
    for name in args.models:
        try:
            removal = engine.remove(name)
        except LlamadeckError as failure:
            error(str(failure))
            status = 1
            continue
        freed = f" (freed {format_size(removal.freed)})" if removal.freed else ""
        out(f"deleted {escape(removal.reference)}{freed}")
        if removal.kept_because:
            warn(escape(f"{removal.reference}: {removal.kept_because}"))
    return status


def cmd_prune(args: argparse.Namespace) -> int:
    from engine import format_size

    report = _engine().prune()
    parts = []
    if report.partials:
        parts.append(f"{report.partials} abandoned partial download{'s' if report.partials > 1 else ''}")
    if report.locks:
        parts.append(f"{report.locks} stale lock file{'s' if report.locks > 1 else ''}")
    freed = f" (freed {format_size(report.freed)})" if report.freed else ""
    out(f"removed {' and '.join(parts)}{freed}" if parts else "nothing to prune")
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    """The models a running ``llamadeck serve`` holds, as ``ollama ps`` shows them."""
    from engine import format_size
    from tui.client import ServerError, call

    try:
        models = (call("GET", "/api/ps") or {}).get("models", [])
    except ServerError as error:
        raise CliError(str(error)) from None
    rows = []
    for m in models:
        size, vram = int(m.get("size") or 0), int(m.get("size_vram") or 0)
        gpu = round(100 * vram / size) if size else 0
        processor = "100% GPU" if gpu >= 100 else "100% CPU" if gpu <= 0 else f"{100 - gpu}%/{gpu}% CPU/GPU"
        until = str(m.get("expires_at") or "forever")
        rows.append(
            [
                str(m.get("name", "")),
                str(m.get("digest", ""))[:12],
                format_size(size),
                processor,
                str(m.get("context_length") or "-"),
                ago_until(until),
            ]
        )
    out(render_table(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], rows))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Unload a model from a running server now (Ollama's stop: a generate with keep_alive 0)."""
    from tui.client import ServerError, call

    try:
        call("POST", "/api/generate", {"model": args.model, "keep_alive": 0})
    except ServerError as error:
        raise CliError(str(error)) from None
    return 0


def cmd_cp(args: argparse.Namespace) -> int:
    copied = _engine().copy(args.source, args.destination)
    out(f"copied {escape(args.source)} to {escape(copied.reference)}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from tui.interrupt import run_cancellable

    engine, view = _engine(), _view(transient=True)
    try:
        reports = run_cancellable(
            lambda cancel, emit: engine.verify(args.models or None, on_event=emit, cancel=cancel), view
        )
    finally:
        view.close()
    if not reports:
        out("no models to verify")
        return 0
    for report in reports:
        if report.ok:
            out(f"ok      {escape(report.reference)}")
        for problem in report.problems:
            out(f"FAILED  {escape(report.reference)}: {escape(problem)}")
    failed = [r for r in reports if not r.ok]
    if not failed:
        return 0
    flush_all()  # the report first, then what to do about it
    advice = [f"{r.reference}: {r.repair}" for r in failed if r.repair]
    for line in dict.fromkeys(advice):
        warn(escape(line))
    return 1


# parsing ---------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in the house style: one line, exit 1 (2 means a bug here)."""

    def error(self, message: str) -> NoReturn:
        error(f"{message} (see {self.prog} --help)")
        raise SystemExit(1)


def cmd_serve(args: argparse.Namespace) -> int:
    from api.server import ServeError, address, bind, serve  # FastAPI only when serving: --help stays fast

    api_key = args.api_key or os.environ.get("LLAMADECK_API_KEY") or None
    try:
        listener = bind(*address(args.host, args.port), api_key=api_key)
    except ServeError as failure:
        raise CliError(str(failure)) from None
    try:
        engine = _engine()
    except BaseException:
        listener.close()
        raise
    out(f"llamadeck API on {listener.url}")
    flush_all()
    serve(engine, listener, api_key=api_key)
    return 0


def port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def positive_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, not {text}")
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_SEED}, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="llamadeck",
        description="A terminal workstation for local LLMs: pull GGUF models from Hugging Face and run them.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="open the app and serve its engine's API too, so other tools share its loaded models "
        "(address as for serve: LLAMADECK_HOST, LLAMADECK_API_KEY)",
    )
    # --debug after the command too: SUPPRESS keeps a subcommand from resetting one given before it
    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_: str, **kw: Any
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_, parents=[common], **kw)
        sub.set_defaults(handler=handler)
        return sub

    pull = add("pull", cmd_pull, "download a model from Hugging Face (or import the embedded default)")
    pull.add_argument("model", help="hf.co/ORG/REPO[:QUANT], ORG/REPO[:QUANT] or gemma3:270m")
    pull.add_argument("--quant", "-q", help="quantization to pull, e.g. Q4_K_M (overrides :QUANT)")
    pull.add_argument(
        "--list", "-l", action="store_true", help="list the quantizations and what fits; pull nothing"
    )
    run = add("run", cmd_run, "generate text with a model (pulls it first when it is not here yet)")
    run.add_argument("model", help="a pulled model, or gemma3:270m")
    run.add_argument(
        "prompt", nargs="?", help="the prompt (omitted: chat in the app on a terminal, else read from stdin)"
    )
    run.add_argument("--raw", action="store_true", help="continue the text as is, without the chat template")
    run.add_argument(
        "--max-tokens",
        "-n",
        type=positive_count,
        default=256,
        help="stop after this many tokens (default 256)",
    )
    run.add_argument(
        "--temperature", "-t", type=temperature, default=0.8, help="0 for the likeliest text (default 0.8)"
    )
    run.add_argument(
        "--seed",
        type=seed,
        default=None,
        help="the same seed and prompt give the same text (default: random)",
    )
    run.add_argument("--verbose", "-v", action="store_true", help="print load time and tokens per second")
    add("list", cmd_list, "list the models in the store", aliases=["ls"])
    show = add("show", cmd_show, "show a model's details")
    show.add_argument("model")
    only = show.add_mutually_exclusive_group()
    only.add_argument("--modelfile", action="store_true", help="print a Modelfile that makes it again")
    only.add_argument("--parameters", action="store_true", help="print the model's parameters")
    only.add_argument("--template", action="store_true", help="print the whole chat template")
    only.add_argument("--system", action="store_true", help="print the system prompt")
    only.add_argument("--license", action="store_true", help="print the license")
    create = add("create", cmd_create, "make a model from a Modelfile")
    create.add_argument("model", help="the new model's name, e.g. mymodel or mymodel:v2")
    create.add_argument(
        "--file", "-f", default="Modelfile", help="the Modelfile (default: ./Modelfile; - reads stdin)"
    )
    create.add_argument(
        "--quantize", "-q", help="quantize an F16/F32 model first, e.g. Q4_K_M (see create --help-quantize)"
    )
    imports = add(
        "import", cmd_import, "find models Ollama, Hugging Face or LM Studio downloaded and register them"
    )
    imports.add_argument("models", nargs="*", metavar="NAME", help="what to import (as listed); none: list")
    imports.add_argument("--all", action="store_true", help="import every model found that is not here yet")
    imports.add_argument(
        "--dry-run", "-n", action="store_true", help="say what would be imported; do nothing"
    )
    imports.add_argument(
        "--from",
        dest="tools",
        action="append",
        choices=("ollama", "huggingface", "lmstudio"),
        help="look only there (repeatable)",
    )
    rm = add("rm", cmd_rm, "remove models (blobs no other model uses are deleted)")
    rm.add_argument("models", nargs="+", metavar="MODEL")
    add("prune", cmd_prune, "remove abandoned partial downloads and stale locks")
    add("ps", cmd_ps, "list the models a running llamadeck serve has loaded")
    stop = add("stop", cmd_stop, "unload a model from a running llamadeck serve")
    stop.add_argument("model")
    cp = add("cp", cmd_cp, "give a model a second (local) name; no bytes are copied")
    cp.add_argument("source")
    cp.add_argument("destination")
    verify = add("verify", cmd_verify, "re-hash models and check their GGUF structure (exit 1 on a problem)")
    verify.add_argument("models", nargs="*", metavar="MODEL")
    serve = add("serve", cmd_serve, "serve the Ollama-compatible HTTP API (127.0.0.1:11434 by default)")
    serve.add_argument(
        "--host", help="address to listen on, host[:port] (default: LLAMADECK_HOST or 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=port_number, help="port to listen on (default 11434; 0 picks a free one)"
    )
    serve.add_argument(
        "--api-key",
        help="require Authorization: Bearer KEY on every request (needed beyond loopback; "
        "LLAMADECK_API_KEY keeps it out of the process list)",
    )
    return parser


# running ---------------------------------------------------------------------


def _one_line(failure: BaseException) -> str:
    """Our errors say it all; for the disk and permissions, the OS's words and the path."""
    if isinstance(failure, OSError):
        return f"{failure.strerror or failure}" + (f": {failure.filename}" if failure.filename else "")
    return str(failure)


def _leave(status: int) -> NoReturn:
    """End now, without waiting for a worker thread stuck in llama.cpp (it cannot be cancelled)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a further Ctrl+C must not interrupt the way out
    with suppress(OSError, ValueError, KeyboardInterrupt):
        flush_all()
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    from tui.interrupt import worker_running

    try:
        try:
            status = _main(argv)
        except KeyboardInterrupt:  # before or after a command: during one, _main says it
            warn("interrupted")
            status = 130
    except KeyboardInterrupt:  # a second Ctrl+C while the first was being reported
        status = 130
    if status == 130 or worker_running():
        # Interrupted: llama.cpp may still be inside a decode on the engine's compute thread, and
        # tearing the interpreter down under it crashes; nothing is left to save, so leave now.
        _leave(status)
    return status


def _main(argv: Sequence[str] | None) -> int:
    guard_standard_fds()
    harden_streams()
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras[:1] == ["--"] and args.command == "run" and args.prompt is None and len(extras) > 1:
        args.prompt, extras = extras[1], extras[2:]  # run MODEL -n 2 -- "-a prompt that starts with a dash"
    if extras[:1] and args.command == "run" and args.prompt is None and not extras[0].startswith("-"):
        # argparse gives an optional positional up once an option comes between (run MODEL --raw "PROMPT")
        args.prompt, extras = extras[0], extras[1:]
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if getattr(args, "handler", None) is None:
        if not _interactive():
            if args.serve:
                error("--serve opens the app, which needs a terminal: use llamadeck serve here")
                return 1
            parser.print_help()  # not a terminal: the app cannot run, the help is what helps
            return 0
        args.handler = lambda args: _open_app(serve=args.serve)  # errors reported as any command's
    if sys.stdout is None:
        error("standard output is closed, so nothing could be shown: nothing was done")
        return 1
    from engine import Cancelled, LlamadeckError
    from tui.interrupt import Interrupted

    try:
        status = args.handler(args)
        flush_all()  # a broken pipe shows up here, inside the try, not in Python's exit-time flush
        return int(status)
    except (Interrupted, KeyboardInterrupt, Cancelled) as stop:
        warn("interrupted" + getattr(stop, "note", ""))
        return 130
    except BrokenPipeError:  # the reader of stdout went away (llamadeck ls | head -1): leave quietly
        silence_stdout()
        return 1
    except (LlamadeckError, OSError, CliError) as failure:
        if args.debug:
            warn(escape(traceback.format_exc().rstrip(), keep="\n"))
        error(_one_line(failure))
        return 1
    except Exception as failure:  # a bug: still one line, unless asked for more
        if args.debug:
            warn(escape(traceback.format_exc().rstrip(), keep="\n"))
        error(f"internal error: {type(failure).__name__}: {failure} (rerun with --debug)")
        return 2


if __name__ == "__main__":
    sys.exit(main())
