"""The commands on the store's models: pull, list, show, create, import, rm, prune, cp, verify."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from engine import visible
from tui.cli.common import CliError, open_engine, progress_view
from tui.tables import ago, draft_text, format_count, printable, render_table
from tui.terminal import error, flush_all, out, warn

if TYPE_CHECKING:
    from engine import CancelToken, EventSink, FoundModel, Manifest

RESUME_NOTE = ": the partial download is kept; run the same pull to resume"


def cmd_pull(args: argparse.Namespace) -> int:
    from tui.cli.interrupt import run_cancellable

    if args.list:
        return list_variants(args.model)
    engine, view = open_engine(), progress_view()
    try:
        manifest = run_cancellable(
            lambda cancel, emit: engine.pull(args.model, quant=args.quant, on_event=emit, cancel=cancel),
            view,
            note=RESUME_NOTE,
        )
    finally:
        view.close()
    out(f"pulled {visible(manifest.reference)} ({visible(manifest.id)})")
    return 0


def list_variants(reference: str) -> int:
    from engine import format_gib, format_size
    from tui.cli.interrupt import run_cancellable

    engine, view = open_engine(), progress_view(transient=True)
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
    if not rows:
        out("no GGUF files: pull converts the safetensors weights (to F16/BF16, or the quant its tag names)")
        return 0
    out(render_table(["QUANT", "SIZE", "NEEDS", "FITS IN"], rows))
    out("* what pull takes without a quant")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from engine import format_size

    engine = open_engine()
    models = engine.list_models()
    problems = engine.store_problems()
    rows = [[m.reference, m.id, format_size(m.size), m.quant or "-", ago(m.created)] for m in models]
    rows += [[p.reference, "newer llamadeck" if p.newer else "damaged", "-", "-", "-"] for p in problems]
    out(render_table(["NAME", "ID", "SIZE", "QUANT", "MODIFIED"], rows))
    for problem in problems:
        warn(f"{visible(problem.reference)}: {visible(problem.problem)}")
    return 0


def _first_line(text: str | None, limit: int, empty: str) -> str:
    lines = (text or "").strip().splitlines()
    if not lines:
        return empty
    line = lines[0]
    return line[:limit] + " …" if len(line) > limit or len(lines) > 1 else line


def cmd_show(args: argparse.Namespace) -> int:
    from engine import format_size

    engine = open_engine()
    if args.modelfile:
        out(printable(engine.modelfile(args.model)))
        return 0
    shown = engine.show(args.model)
    m = shown.manifest
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
        from engine import parameter_pairs

        lines = parameter_pairs(m.config.parameters)
        out("\n".join(visible(f"{name:<20}{value}") for name, value in lines) if lines else "(none)")
        return 0
    model = [
        ("architecture", m.architecture),
        ("parameters", m.size_label or format_count(m.parameters)),
        ("context length", str(m.context_length)),
        *([("embedding length", str(m.shape.n_embd)), ("layers", str(m.shape.n_layers))] if m.shape else []),
        ("quantization", m.quant or "-"),
        ("size", format_size(m.size)),
        ("id", m.id),
        ("capabilities", ", ".join(shown.capabilities) or "-"),
        *([("draft", draft_text(m.config.draft))] if m.config.draft is not None else []),
    ]
    source = [("from", m.source)] + ([("revision", m.revision)] if m.revision else [])
    source += [("files", ", ".join(f.path for f in m.files))]
    if (projector := m.config.projector) is not None:
        source += [("projector", f"{projector.path} ({format_size(projector.size)})")]
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
            out(visible(f"    {key:<20}{value}" if key else f"    {value}"))
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
            raise CliError(f"{visible(name)} is not a regular file: give a Modelfile with -f (- reads stdin)")
        with open(name, "rb") as file:  # checked first: opening a FIFO would wait for a writer
            return file.read(MAX_MODELFILE_BYTES + 1), os.path.dirname(os.path.abspath(name))
    except FileNotFoundError:
        hint = " (no Modelfile in this folder: give one with -f)" if name == "Modelfile" else ""
        raise CliError(f"cannot read {visible(name)}: no such file{hint}") from None
    except IsADirectoryError:
        raise CliError(f"{visible(name)} is a folder: give a Modelfile with -f") from None
    except OSError as failure:
        raise CliError(f"cannot read {visible(name)}: {failure.strerror or failure}") from None


def cmd_create(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tui.cli.interrupt import run_cancellable

    data, base_dir = read_modelfile(args.file)
    engine, view = open_engine(), progress_view()
    try:
        manifest = run_cancellable(
            lambda cancel, emit: engine.create(
                args.model,
                data,
                base_dir=Path(base_dir),
                quantize=args.quantize,
                draft_quantize=args.draft_quantize,
                on_event=emit,
                cancel=cancel,
            ),
            view,
        )
    finally:
        view.close()
    out(f"created {visible(manifest.reference)} ({visible(manifest.id)})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Register models Ollama, the Hugging Face cache or LM Studio already downloaded: no second copy."""
    from engine import LlamadeckError, format_size
    from tui.cli.interrupt import run_cancellable

    engine = open_engine()
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
            raise CliError(f"no model {visible(wanted)} found: llamadeck import lists what there is")
        chosen.extend(m for m in matches if m not in chosen)
    status = 0
    for model in chosen:
        if args.dry_run:
            out(
                visible(
                    f"would import {model.origin} as {model.suggested} ({format_size(model.size)}, hard link)"
                )
            )
            continue
        view = progress_view()

        def register(cancel: CancelToken, emit: EventSink, model: FoundModel = model) -> Manifest:
            return engine.import_found(model, on_event=emit, cancel=cancel)

        try:
            made = run_cancellable(register, view)
        except LlamadeckError as failure:
            error(visible(f"{model.origin}: {failure}"))
            status = 1
            continue
        finally:
            view.close()
        out(visible(f"imported {model.origin} as {made.reference}"))
    return status


def _import_note(found: FoundModel, stored: set[str]) -> str:
    if found.origin in stored:
        return "already imported"
    return printable(found.note or "")


def cmd_rm(args: argparse.Namespace) -> int:
    from engine import LlamadeckError, format_size

    engine, status = open_engine(), 0
    for name in args.models:
        try:
            removal = engine.remove(name)
        except LlamadeckError as failure:
            error(str(failure))
            status = 1
            continue
        freed = f" (freed {format_size(removal.freed)})" if removal.freed else ""
        out(f"deleted {visible(removal.reference)}{freed}")
        if removal.kept_because:
            warn(visible(f"{removal.reference}: {removal.kept_because}"))
    return status


def cmd_prune(args: argparse.Namespace) -> int:
    from engine import format_size

    report = open_engine().prune()
    parts = []
    if report.partials:
        parts.append(f"{report.partials} abandoned partial download{'s' if report.partials > 1 else ''}")
    if report.locks:
        parts.append(f"{report.locks} stale lock file{'s' if report.locks > 1 else ''}")
    if report.blobs:
        parts.append(f"{report.blobs} unused blob{'s' if report.blobs > 1 else ''}")
    freed = f" (freed {format_size(report.freed)})" if report.freed else ""
    out(f"removed {' and '.join(parts)}{freed}" if parts else "nothing to prune")
    if report.young_blobs:
        out(prune_kept(report.young_blobs, report.young_bytes))
    return 0


def prune_kept(count: int, size: int) -> str:
    """The line on the unused blobs a prune spared for being young (``prune`` and the server's start)."""
    from engine import UNUSED_BLOB_GRACE, format_size

    hours = UNUSED_BLOB_GRACE // 3600
    return (
        f"kept {count} unused blob{'s' if count > 1 else ''} younger than {hours} h ({format_size(size)}): "
        f"a client may have uploaded them to name them next; prune takes them once {hours} h old"
    )


def cmd_cp(args: argparse.Namespace) -> int:
    copied = open_engine().copy(args.source, args.destination)
    out(f"copied {visible(args.source)} to {visible(copied.reference)}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from tui.cli.interrupt import run_cancellable

    engine, view = open_engine(), progress_view(transient=True)
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
            out(f"ok      {visible(report.reference)}")
        for problem in report.problems:
            out(f"FAILED  {visible(report.reference)}: {visible(problem)}")
    failed = [r for r in reports if not r.ok]
    if not failed:
        return 0
    flush_all()  # the report first, then what to do about it
    advice = [f"{r.reference}: {r.repair}" for r in failed if r.repair]
    for line in dict.fromkeys(advice):
        warn(visible(line))
    return 1
