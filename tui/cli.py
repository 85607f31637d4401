"""The ``llamadeck`` command line: parse, call the engine, print.

Docker- and Ollama-like verbs. Every failure is one line on stderr and a
non-zero exit; ``--debug`` adds the traceback. Imports stay lazy so that
``--help``, ``list`` and ``show`` start fast (no llama_cpp, no textual).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from tui.progress import ProgressView
from tui.tables import ago, format_count, printable, render_table


def _engine():  # noqa: ANN202 - lazy import keeps --help fast
    from engine import Engine

    return Engine()


def cmd_pull(args: argparse.Namespace) -> int:
    if args.list:
        return list_variants(args.model)
    view = ProgressView(sys.stderr)
    try:
        manifest = _engine().pull(args.model, quant=args.quant, on_event=view)
    finally:
        view.close()
    print(f"pulled {manifest.reference} ({manifest.id})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from engine.events import Done, Token

    prompt = args.prompt if args.prompt is not None else ("" if sys.stdin.isatty() else sys.stdin.read())
    if not prompt.strip():
        print('Error: give a prompt: llamadeck run MODEL "PROMPT" (or pipe one in)', file=sys.stderr)
        return 1
    view = ProgressView(sys.stderr)
    raw = True if args.raw else None
    events = _engine().generate(
        args.model, prompt, raw=raw, max_tokens=args.max_tokens, temperature=args.temperature, on_event=view
    )
    for event in events:
        if isinstance(event, Token):
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, Done):
            sys.stdout.write("\n")
            if args.verbose:
                print(
                    f"load {event.load_seconds:.2f}s, prompt {event.prompt_tokens} tokens in "
                    f"{event.prompt_seconds:.2f}s, {event.completion_tokens} tokens in "
                    f"{event.generate_seconds:.2f}s ({event.tokens_per_second:.1f} tokens/s)",
                    file=sys.stderr,
                )
    return 0


def list_variants(reference: str) -> int:
    from engine.units import format_gib, format_size

    rows = [
        [
            fit.quant + (" *" if fit.recommended else ""),
            format_size(fit.size),
            format_gib(fit.need),
            fit.fits_in.value or "does not fit",
        ]
        for fit in _engine().variants(reference)
    ]
    print(render_table(["QUANT", "SIZE", "NEEDS", "FITS IN"], rows))
    print("* what pull takes without a quant")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from engine.units import format_size

    rows = [
        [m.reference, m.id, format_size(m.size), m.quant or "-", ago(m.created)]
        for m in _engine().list_models()
    ]
    print(render_table(["NAME", "ID", "SIZE", "QUANT", "MODIFIED"], rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from engine.units import format_size

    details = _engine().show(args.model)
    m = details.manifest
    if args.template:
        print(printable(m.template or "(none: plain completion)"))
        return 0
    if args.license:
        print(printable(m.license or "(none recorded)"))
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
    template = m.template.strip().splitlines()[0][:70] + " …" if m.template else "(none: plain completion)"
    sections = [
        ("Model", model),
        ("Source", source),
        ("License", [("", (m.license or "(none recorded)").splitlines()[0][:100])]),
        ("Template", [("", template + (f"  [{m.template_source}]" if m.template_source else ""))]),
    ]
    for title, pairs in sections:
        print(f"  {title}")
        for key, value in pairs:  # values come from GGUF headers: strings a stranger wrote
            print(printable(f"    {key:<20}{value}" if key else f"    {value}"))
        print()
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    from engine.errors import LlamadeckError
    from engine.units import format_size

    engine, status = _engine(), 0
    for name in args.models:
        try:
            removal = engine.remove(name)
        except LlamadeckError as error:
            print(f"Error: {error}", file=sys.stderr)
            status = 1
            continue
        freed = f" (freed {format_size(removal.freed)})" if removal.freed else ""
        print(f"deleted {removal.reference}{freed}")
    return status


def cmd_cp(args: argparse.Namespace) -> int:
    copied = _engine().copy(args.source, args.destination)
    print(f"copied {args.source} to {copied.reference}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    view = ProgressView(sys.stderr, transient=True)
    try:
        reports = _engine().verify(args.models or None, on_event=view)
    finally:
        view.close()
    if not reports:
        print("no models to verify")
        return 0
    for report in reports:
        if report.ok:
            print(f"ok      {report.reference}")
        for problem in report.problems:
            print(f"CORRUPT {report.reference}: {problem}")
    if all(r.ok for r in reports):
        return 0
    print(
        "to repair a model, pull it again: pull re-checks stored files and fetches damaged ones",
        file=sys.stderr,
    )
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamadeck",
        description="A terminal workstation for local LLMs: pull GGUF models from Hugging Face and run them.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_: str, **kw
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_, **kw)
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
    run.add_argument("prompt", nargs="?", help="the prompt (read from stdin when omitted)")
    run.add_argument("--raw", action="store_true", help="continue the text as is, without the chat template")
    run.add_argument("--max-tokens", "-n", type=int, default=256, help="stop after this many tokens")
    run.add_argument("--temperature", "-t", type=float, default=0.8)
    run.add_argument("--verbose", "-v", action="store_true", help="print load time and tokens per second")
    add("list", cmd_list, "list the models in the store", aliases=["ls"])
    show = add("show", cmd_show, "show a model's details")
    show.add_argument("model")
    show.add_argument("--template", action="store_true", help="print the whole chat template")
    show.add_argument("--license", action="store_true", help="print the license")
    rm = add("rm", cmd_rm, "remove models (blobs no other model uses are deleted)")
    rm.add_argument("models", nargs="+", metavar="MODEL")
    cp = add("cp", cmd_cp, "give a model a second (local) name; no bytes are copied")
    cp.add_argument("source")
    cp.add_argument("destination")
    verify = add("verify", cmd_verify, "re-hash models and check their GGUF structure (exit 1 on corruption)")
    verify.add_argument("models", nargs="*", metavar="MODEL")
    return parser


def _one_line(error: Exception) -> str:
    """Our errors say it all; for the disk and permissions, the OS's words and the path."""
    if isinstance(error, OSError):
        return f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
    return str(error)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    from engine.errors import LlamadeckError

    try:
        return args.handler(args)
    except (LlamadeckError, OSError) as error:
        if args.debug:
            traceback.print_exc()
        print(f"Error: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        resume = (
            ": the partial download is kept, run the same pull to resume" if args.command == "pull" else ""
        )
        print(f"\ninterrupted{resume}", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: still one line, unless asked for more
        if args.debug:
            raise
        print(f"Error: internal error: {type(error).__name__}: {error} (rerun with --debug)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
