"""Finding GGUF files in folders of files: the Hugging Face hub cache and LM Studio's models folder.

Layouts, as the tools write them:

* Hugging Face hub cache: ``models--<org>--<repo>/snapshots/<revision>/<path>``,
  symlinks to ``../../blobs/<etag>``; ``refs/main`` names the current revision;
  a download in progress is ``blobs/<etag>.incomplete``. Symlinks are followed
  only from ``snapshots/`` into the repository's own ``blobs/``.
* LM Studio: ``<publisher>/<repo>/<file>.gguf``.

Both group the files of one repository the same way: split parts together, a
vision projector (mmproj) beside the models it serves.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.ingest.foreign_files import gguf_problem, inside, is_dir, listing, read_small, total_size
from engine.ingest.found import GGUF_SUFFIX, HUGGINGFACE, LMSTUDIO, FoundModel, suggest
from engine.ingest.local_source import SPLIT_NAME
from engine.machine.quant import quant_from_filename
from engine.store.projector import precision_rank
from engine.text import one_line

_MAX_DEPTH = 8  # folders below a Hugging Face snapshot


@dataclass(frozen=True)
class _File:
    relative: str  # as the tool names it, "/"-separated
    real: Path | None  # the regular file; None when unusable
    problem: str | None = None


def _group(tool: str, prefix: str, files: list[_File], suggest_name: str) -> Iterator[FoundModel]:
    """Turn the GGUF files of one repository into models: split parts together, projectors noted."""
    splits: dict[tuple[str, int], dict[int, _File]] = {}
    beside = [f for f in files if "mmproj" in f.relative.rsplit("/", 1)[-1].lower() and f.real is not None]
    best = min(beside, key=lambda f: (precision_rank(f.relative), f.relative), default=None)
    projector = best.real if best is not None and not gguf_problem(best.real or Path()) else None
    for file in files:
        base = file.relative.rsplit("/", 1)[-1]
        name = one_line(f"{prefix}/{file.relative}", None)
        quant = quant_from_filename(file.relative)
        suggested = suggest(suggest_name, quant)
        if "mmproj" in base.lower():
            yield _found(tool, name, suggested, [file], "a vision projector (mmproj), not a model on its own")
            continue
        match = SPLIT_NAME.match(base)
        if match and int(match["count"]) > 1:
            stem = file.relative[: len(file.relative) - len(base)] + match["stem"]
            splits.setdefault((stem, int(match["count"])), {})[int(match["part"])] = file
            continue
        yield _found(tool, name, suggested, [file], None, projector)
    for (_stem, count), parts in splits.items():
        first = parts.get(1) or parts[min(parts)]
        name = one_line(f"{prefix}/{first.relative}", None)
        suggested = suggest(suggest_name, quant_from_filename(first.relative))
        missing = [str(n) for n in range(1, count + 1) if n not in parts]
        ordered = [parts[n] for n in sorted(parts)]
        if missing:
            which = f"{'parts' if len(missing) > 1 else 'part'} {', '.join(missing[:8])}"
            note = f"split part missing: {which} of {count}"
            yield _found(tool, name, suggested, ordered, note)
        elif len(parts) != count:
            yield _found(tool, name, suggested, ordered, f"parts numbered outside 1 to {count}")
        else:
            yield _found(tool, name, suggested, ordered, None, projector)


def _found(
    tool: str, name: str, suggested: str, files: list[_File], problem: str | None, mmproj: Path | None = None
) -> FoundModel:
    paths = tuple(f.real for f in files if f.real is not None)
    problem = problem or next((f.problem for f in files if f.problem), None)
    if problem is None:
        problem = next((p for f in paths if (p := gguf_problem(f))), None)
    size = total_size(paths)
    return FoundModel(tool, name, suggested, paths, size, None, problem, problem is None, None, mmproj)


def _repo_name(text: str) -> str:
    return GGUF_SUFFIX.sub("", text.lower())


def scan_lmstudio(root: Path) -> Iterator[FoundModel]:
    for publisher in listing(root):
        if not is_dir(publisher) or publisher.name.startswith("."):
            continue
        for repo in listing(Path(publisher.path)):
            if not is_dir(repo) or repo.name.startswith("."):
                continue
            files = []
            for entry in listing(Path(repo.path)):
                if entry.name.startswith(".") or not entry.name.lower().endswith(".gguf"):
                    continue
                real = inside(Path(entry.path), root)
                files.append(
                    _File(entry.name, None, real) if isinstance(real, str) else _File(entry.name, real)
                )
            yield from _group(LMSTUDIO, f"{publisher.name}/{repo.name}", files, _repo_name(repo.name))


def scan_huggingface(root: Path) -> Iterator[FoundModel]:
    for repo in listing(root):
        if not repo.name.startswith("models--") or not is_dir(repo):
            continue
        repo_id = "/".join(repo.name.removeprefix("models--").split("--"))
        files = _hf_files(Path(repo.path))
        yield from _group(HUGGINGFACE, repo_id, files, _repo_name(repo_id.rsplit("/", 1)[-1]))


def _hf_files(repo: Path) -> list[_File]:
    """The GGUF files of a cached repository: the current revision first, each path once."""
    blobs = repo / "blobs"
    snapshots = [e for e in listing(repo / "snapshots") if is_dir(e)]
    current = None
    with contextlib.suppress(OSError, ValueError):
        current = read_small(repo / "refs" / "main", 256).decode().strip()
    snapshots.sort(key=lambda e: (e.name != current, -_mtime(e)))
    seen: dict[str, _File] = {}
    for snapshot in snapshots:
        for relative, path in _walk(Path(snapshot.path)):
            if relative in seen:
                continue
            seen[relative] = _hf_file(relative, path, blobs, Path(snapshot.path))
    return [seen[k] for k in sorted(seen)]


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return 0.0


def _walk(top: Path) -> Iterator[tuple[str, Path]]:
    """``(relative path, path)`` of every ``*.gguf`` under ``top``, never through a symlinked folder."""
    pending = [(top, "", 0)]
    while pending:
        directory, prefix, depth = pending.pop()
        for entry in listing(directory):
            if entry.name.startswith("."):
                continue
            if is_dir(entry):
                if depth < _MAX_DEPTH:
                    pending.append((Path(entry.path), f"{prefix}{entry.name}/", depth + 1))
            elif entry.name.lower().endswith(".gguf"):
                yield f"{prefix}{entry.name}", Path(entry.path)


def _hf_file(relative: str, path: Path, blobs: Path, snapshot: Path) -> _File:
    """A snapshot entry: a symlink into the repository's ``blobs/`` (or a plain file in the snapshot)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return _File(relative, None, "file missing")
    if not stat.S_ISLNK(mode):
        real = inside(path, snapshot)
        return _File(relative, None, real) if isinstance(real, str) else _File(relative, real)
    try:
        real_blobs = Path(os.path.realpath(blobs))
        target = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        return _File(relative, None, "its blob is missing (an interrupted download?)")
    except (OSError, RuntimeError):
        return _File(relative, None, "a symlink that cannot be followed")
    if target.parent != real_blobs or target.name.endswith(".incomplete"):
        return _File(relative, None, "a symlink out of the cache's blobs: not followed")
    try:
        if not stat.S_ISREG(os.stat(target).st_mode):
            return _File(relative, None, "its blob is not a regular file")
    except OSError:
        return _File(relative, None, "its blob is missing")
    return _File(relative, target)


__all__ = ["scan_huggingface", "scan_lmstudio"]
