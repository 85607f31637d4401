"""Finding GGUF models other tools already downloaded: Ollama, the Hugging Face cache, LM Studio.

    for found in discover(**default_locations()):
        if found.importable:
            import_gguf(store, found.files, ref=parse_local_name(found.suggested),
                        config=found.config, origin=found.origin, license=found.license)

Discovery only reads: directory listings, Ollama's manifest JSON and its small
text layers, and the first four bytes of each candidate file (the GGUF magic);
nothing is hashed. Everything in those folders is treated as hostile: a bad
manifest, a digest that tries to climb out (``sha256-../../x``), a name
llamadeck cannot use, a symlink out of the folder, a manifest of gigabytes.
Each becomes a ``note`` on its entry (or the entry is skipped), never an
exception. Symlinks are followed only where they stay inside the scanned
folder, and in the Hugging Face cache only from ``snapshots/`` into the
repository's own ``blobs/``.

Layouts, as the tools write them:

* Ollama (``server``/``manifest`` packages): ``manifests/<host>/<namespace>/<model>/<tag>``
  (Docker distribution manifest v2 JSON; layers with ``mediaType``
  ``application/vnd.ollama.image.{model,template,system,params,license,messages,adapter,projector}``
  and ``digest`` ``sha256:<hex>``), blobs at ``blobs/sha256-<hex>``.
* Hugging Face hub cache: ``models--<org>--<repo>/snapshots/<revision>/<path>``,
  symlinks to ``../../blobs/<etag>``; ``refs/main`` names the current revision;
  a download in progress is ``blobs/<etag>.incomplete``.
* LM Studio: ``<publisher>/<repo>/<file>.gguf``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from engine.errors import InvalidOption, InvalidReference
from engine.ingest.local import SPLIT_NAME
from engine.machine.quant import quant_from_filename
from engine.options import parse_one
from engine.store.manifest import MAX_TEXT, ModelConfig
from engine.store.projector import precision_rank
from engine.store.refs import LocalRef
from engine.text import one_line

OLLAMA = "ollama"
HUGGINGFACE = "huggingface"
LMSTUDIO = "lmstudio"

_MEDIA = "application/vnd.ollama.image."
_MAX_MANIFEST = 1 << 20  # an Ollama manifest is about 1 KiB
_MAX_ENTRIES = 10_000  # per directory listed: a folder with more is not one of these tools'
_MAX_DEPTH = 8  # folders below a Hugging Face snapshot
_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
_OLLAMA_HOST = "registry.ollama.ai"
_OLLAMA_NAMESPACE = "library"
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_GGUF_SUFFIX = re.compile(r"-gguf$")
_ROLES = ("system", "user", "assistant")  # what a manifest's preset messages may be


@dataclass(frozen=True)
class FoundModel:
    """One model another tool downloaded, and what llamadeck would import it as."""

    tool: str  # "ollama" | "huggingface" | "lmstudio"
    name: str  # what the tool calls it: "llama3.2:3b", "bartowski/Qwen2.5-0.5B-Instruct-GGUF/…Q4_K_M.gguf"
    suggested: str  # a valid llamadeck local name:tag to register it as (unique within one discover())
    files: tuple[Path, ...]  # the GGUF file(s), split parts in order: real files, symlinks resolved
    size: int
    config: ModelConfig | None  # Ollama's template / system / parameters / messages
    note: str | None = None  # why it cannot be imported, or what the import leaves behind
    importable: bool = True  # False when ``note`` says why it cannot be imported
    license: str | None = None  # Ollama's license layers, joined
    projector: Path | None = None  # its vision projector: Ollama's layer, an mmproj beside it

    @property
    def origin(self) -> str:
        """What the imported manifest records as its source: ``ollama llama3.2:3b``."""
        return f"{self.tool} {self.name}"


def default_locations() -> dict[str, Path]:
    """Where each tool keeps its models on this machine, by the tools' own rules (folders may not exist).

    Ollama: ``OLLAMA_MODELS`` or ``~/.ollama/models``. Hugging Face:
    ``HF_HUB_CACHE`` (or the older ``HUGGINGFACE_HUB_CACHE``), else
    ``HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub`` (``~/.cache``).
    LM Studio: ``~/.lmstudio/models``, or ``~/.cache/lm-studio/models`` (older
    versions) when only that one exists.
    """
    home = Path.home()
    env = os.environ
    ollama = (
        Path(env["OLLAMA_MODELS"]).expanduser() if env.get("OLLAMA_MODELS") else home / ".ollama" / "models"
    )
    if hub := env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE"):
        hf = Path(hub).expanduser()
    elif hf_home := env.get("HF_HOME"):
        hf = Path(hf_home).expanduser() / "hub"
    else:
        cache = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else home / ".cache"
        hf = cache / "huggingface" / "hub"
    lmstudio = home / ".lmstudio" / "models"
    legacy = home / ".cache" / "lm-studio" / "models"
    if not lmstudio.is_dir() and legacy.is_dir():
        lmstudio = legacy
    return {OLLAMA: ollama, HUGGINGFACE: hf, LMSTUDIO: lmstudio}


def discover(
    *,
    ollama: Path | None = None,
    huggingface: Path | None = None,
    lmstudio: Path | None = None,
    taken: Mapping[str, str] | None = None,
) -> list[FoundModel]:
    """Every model found in the folders given (a folder left out, or missing, is not scanned).

    Never raises for what is in the folders: a problem is a ``note`` on its
    entry. Suggested names are made unique across the whole list and never
    name a model ``taken`` (name:tag -> source) holds from elsewhere.
    """
    found: list[FoundModel] = []
    for root, scan in ((ollama, _scan_ollama), (huggingface, _scan_huggingface), (lmstudio, _scan_lmstudio)):
        if root is None:
            continue
        real = _real_dir(Path(root))
        if real is None:
            continue
        found.extend(sorted(scan(real), key=lambda f: f.name))
    return _unique_suggestions(found, taken)


def _real_dir(path: Path) -> Path | None:
    """The folder with symlinks resolved (a symlinked models folder is common), or None."""
    try:
        real = Path(os.path.realpath(path))
        return real if stat.S_ISDIR(os.stat(real).st_mode) else None
    except (OSError, ValueError):
        return None


def _listing(directory: Path) -> list[os.DirEntry[str]]:
    """A directory's entries, sorted, at most ``_MAX_ENTRIES``; empty when it cannot be listed."""
    entries: list[os.DirEntry[str]] = []
    try:
        with os.scandir(directory) as listing:
            for entry in listing:
                entries.append(entry)
                if len(entries) >= _MAX_ENTRIES:
                    break
    except OSError:
        return []
    return sorted(entries, key=lambda e: e.name)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """A real directory (a symlinked one is never descended into)."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _inside(path: Path, root: Path) -> Path | str:
    """The regular file ``path`` stands for, if it stays inside ``root``; else why not (a note).

    ``root`` has its symlinks resolved. The whole path is resolved, so a
    symlinked folder on the way (``blobs`` pointing elsewhere) counts as well.
    """
    try:
        os.lstat(path)
    except FileNotFoundError:
        return "file missing"
    except OSError as error:
        return f"unreadable ({error.strerror})"
    try:
        real = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        return "a symlink to a file that does not exist"
    except (OSError, RuntimeError) as error:
        return "a symlink loop" if "loop" in str(error).lower() else "a symlink that cannot be followed"
    if not real.is_relative_to(root):
        return "a symlink out of the scanned folder: not followed"
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return "file missing"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return real


def _gguf_problem(path: Path) -> str | None:
    """None when ``path`` starts with the GGUF magic; else a note. Never blocks (a FIFO is refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        return f"unreadable ({error.strerror})"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not a regular file"
        magic = os.pread(fd, 4, 0)
    except OSError as error:
        return f"unreadable ({error.strerror})"
    finally:
        os.close(fd)
    if not magic:
        return "an empty file, not a GGUF"
    return None if magic == b"GGUF" else "not a GGUF file"


def _size(paths: tuple[Path, ...]) -> int:
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except OSError:
            continue
    return total


def _read_small(path: Path, limit: int) -> bytes:
    """A small regular file's bytes, never through a symlink, never blocking; ValueError when too large."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > limit:
            raise ValueError(f"larger than {limit >> 10} KiB")
        data = os.pread(fd, limit + 1, 0)
        if len(data) > limit:
            raise ValueError(f"larger than {limit >> 10} KiB")
        return data
    finally:
        os.close(fd)


def _slug(text: str, *, first: str) -> str:
    """``text`` as a local name part: lower-case, unsafe runs as ``-``, starting as ``first`` allows."""
    slug = _UNSAFE.sub("-", text.lower()).replace("..", ".")
    while slug and not re.match(first, slug[0]):
        slug = slug[1:]
    return slug[:80].rstrip(".-") or ""


def suggest(name: str, tag: str | None) -> str:
    """A valid local ``name:tag`` from any text: ``"Qwen2.5 0.5B", "Q4_K_M"`` → ``qwen2.5-0.5b:q4_k_m``."""
    base = _GGUF_SUFFIX.sub("", _slug(name, first="[a-z0-9]")) or "imported"
    if base in ("hf.co", "huggingface.co"):
        base += "-model"
    label = _slug(tag or "", first="[a-z0-9_]") or "latest"
    try:
        return str(LocalRef(base, label))
    except InvalidReference:
        return "imported:latest"


def _unique_suggestions(
    found: list[FoundModel], taken_already: Mapping[str, str] | None = None
) -> list[FoundModel]:
    """Suggestions unique in the list and free in the store (``taken_already``: name:tag -> its source).

    A name the store holds from this very origin is kept: importing again repairs it.
    """
    store = dict(taken_already or {})
    taken: set[str] = set()
    result = []
    for model in found:
        suggested, n = model.suggested, 1
        name, _, tag = suggested.partition(":")
        while suggested in taken or store.get(suggested, model.origin) != model.origin:
            n += 1
            suffix = f"-{n}"
            suggested = f"{name}:{tag[: 80 - len(suffix)]}{suffix}"
        taken.add(suggested)
        result.append(replace(model, suggested=suggested) if suggested != model.suggested else model)
    return result


def _notes(*notes: str | None) -> str | None:
    kept = [n for n in notes if n]
    return "; ".join(kept) if kept else None


def _scan_ollama(root: Path) -> Iterator[FoundModel]:
    manifests = root / "manifests"
    for host in _listing(manifests):
        if not _is_dir(host):
            continue
        for namespace in _listing(Path(host.path)):
            if not _is_dir(namespace):
                continue
            for model in _listing(Path(namespace.path)):
                if not _is_dir(model):
                    continue
                for tag in _listing(Path(model.path)):
                    if tag.name.startswith(".") or _is_dir(tag):
                        continue
                    yield _ollama_model(root, Path(tag.path), host.name, namespace.name, model.name, tag.name)


def _ollama_name(host: str, namespace: str, model: str, tag: str) -> str:
    """Ollama's shortest display name (``DisplayShortest``): ``llama3.2:3b``, ``hf.co/org/repo:Q4_K_M``."""
    if host.lower() != _OLLAMA_HOST:
        return one_line(f"{host}/{namespace}/{model}:{tag}", None)
    if namespace.lower() != _OLLAMA_NAMESPACE:
        return one_line(f"{namespace}/{model}:{tag}", None)
    return one_line(f"{model}:{tag}", None)


def _ollama_model(root: Path, path: Path, host: str, namespace: str, model: str, tag: str) -> FoundModel:
    name = _ollama_name(host, namespace, model, tag)
    suggested = suggest(model, tag)

    def refused(note: str, files: tuple[Path, ...] = ()) -> FoundModel:
        return FoundModel(OLLAMA, name, suggested, files, _size(files), None, note, importable=False)

    try:
        data = json.loads(_read_small(path, _MAX_MANIFEST))
    except (OSError, ValueError, RecursionError) as error:
        return refused(f"the manifest cannot be read ({one_line(str(error), 120)})")
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        return refused("the manifest has no list of layers")
    models: list[Path] = []
    projectors: list[Path] = []
    notes: list[str] = []
    texts: dict[str, list[str]] = {}
    params: dict[str, object] = {}
    messages: list[tuple[str, str]] = []
    for layer in layers:
        media = layer.get("mediaType")
        kind = media.removeprefix(_MEDIA) if isinstance(media, str) and media.startswith(_MEDIA) else None
        if kind is None or kind == "embed":
            continue  # the config blob and anything else Ollama itself ignores
        blob = _ollama_blob(root, layer.get("digest"))
        if isinstance(blob, str):
            if kind == "model":
                return refused(f"its model layer's {blob}")
            notes.append(f"{kind} layer skipped: {blob}")
            continue
        if kind == "model":
            models.append(blob)
        elif kind in ("template", "prompt", "system", "license"):
            try:
                texts.setdefault(kind, []).append(_read_small(blob, MAX_TEXT).decode())
            except (OSError, ValueError) as error:
                notes.append(f"{kind} layer skipped ({one_line(str(error), 80)})")
        elif kind == "params":
            params, dropped = _ollama_params(blob, name)
            notes.extend(dropped)
        elif kind == "messages":
            messages, dropped = _ollama_messages(blob)
            notes.extend(dropped)
        elif kind == "adapter":
            notes.append("Ollama LoRA adapter not carried: imported as the base model alone")
        elif kind == "projector":
            projectors.append(blob)
        elif kind == "draft":
            notes.append("Ollama draft model not carried")
        else:
            notes.append(f"Ollama {one_line(kind, 40)} layer not carried")
    if not models:
        kinds = {str(layer.get("mediaType"))[:60] for layer in layers}
        what = "tensor layers (Ollama's own format)" if f"{_MEDIA}tensor" in kinds else "no model layer"
        return refused(f"not a GGUF model: {what}")
    if len(models) > 1:
        return refused(f"{len(models)} model layers: llamadeck imports Ollama models of one GGUF")
    if problem := _gguf_problem(models[0]):
        return refused(problem, tuple(models))
    templates = texts.get("template") or texts.get("prompt") or []
    template = templates[-1] if templates else None
    system = texts["system"][-1] if texts.get("system") else None
    config = ModelConfig(
        template=template,
        template_source="modelfile" if template else None,
        system=system,
        parameters=params,
        messages=tuple(messages),
    )
    license = "\n\n".join(texts["license"]) if texts.get("license") else None
    files = (models[0],)
    projector = projectors[0] if len(projectors) == 1 and not _gguf_problem(projectors[0]) else None
    if projectors and projector is None:
        notes.append("its vision projector layers are not one GGUF: imported for text only")
    note = _notes(*notes)
    return FoundModel(OLLAMA, name, suggested, files, _size(files), config, note, True, license, projector)


def _ollama_blob(root: Path, digest: object) -> Path | str:
    """The blob a layer's digest names, checked as Ollama's ``BlobsPath`` does; else a note."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        return f"digest {one_line(str(digest), 80)} is not a sha256 digest"
    path = root / "blobs" / f"sha256-{_DIGEST.fullmatch(digest)[1]}"  # type: ignore[index]
    found = _inside(path, root)
    return f"blob {found}" if isinstance(found, str) else found


def _ollama_params(blob: Path, name: str) -> tuple[dict[str, object], list[str]]:
    """Ollama's options JSON, each checked as llamadeck's own; unknown or bad ones dropped with a note."""
    try:
        raw = json.loads(_read_small(blob, _MAX_MANIFEST))
    except (OSError, ValueError, RecursionError) as error:
        return {}, [f"params layer skipped ({one_line(str(error), 80)})"]
    if not isinstance(raw, dict):
        return {}, ["params layer skipped: not a JSON object"]
    kept: dict[str, object] = {}
    dropped: list[str] = []
    for key, value in raw.items():
        if value is None:
            continue
        try:
            kept[key] = parse_one(key, value, source=f"Ollama's parameters of {name}")
        except InvalidOption:
            dropped.append(one_line(str(key), 40))
    notes = (
        [f"parameter{'s' if len(dropped) > 1 else ''} dropped: {', '.join(dropped[:8])}"] if dropped else []
    )
    return kept, notes


def _ollama_messages(blob: Path) -> tuple[list[tuple[str, str]], list[str]]:
    try:
        raw = json.loads(_read_small(blob, MAX_TEXT))
    except (OSError, ValueError, RecursionError) as error:
        return [], [f"messages layer skipped ({one_line(str(error), 80)})"]
    if not isinstance(raw, list):
        return [], ["messages layer skipped: not a list"]
    messages = []
    for item in raw:
        role, content = (item.get("role"), item.get("content")) if isinstance(item, dict) else (None, None)
        if role not in _ROLES or not isinstance(content, str):
            return [], ["messages layer skipped: not system/user/assistant messages"]
        messages.append((str(role), content))
    return messages, []


# -- GGUF files in folders (Hugging Face snapshots, LM Studio) ----------------------------


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
    projector = best.real if best is not None and not _gguf_problem(best.real or Path()) else None
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
        problem = next((p for f in paths if (p := _gguf_problem(f))), None)
    size = _size(paths)
    return FoundModel(tool, name, suggested, paths, size, None, problem, problem is None, None, mmproj)


def _repo_name(text: str) -> str:
    return _GGUF_SUFFIX.sub("", text.lower())


def _scan_lmstudio(root: Path) -> Iterator[FoundModel]:
    for publisher in _listing(root):
        if not _is_dir(publisher) or publisher.name.startswith("."):
            continue
        for repo in _listing(Path(publisher.path)):
            if not _is_dir(repo) or repo.name.startswith("."):
                continue
            files = []
            for entry in _listing(Path(repo.path)):
                if entry.name.startswith(".") or not entry.name.lower().endswith(".gguf"):
                    continue
                real = _inside(Path(entry.path), root)
                files.append(
                    _File(entry.name, None, real) if isinstance(real, str) else _File(entry.name, real)
                )
            yield from _group(LMSTUDIO, f"{publisher.name}/{repo.name}", files, _repo_name(repo.name))


def _scan_huggingface(root: Path) -> Iterator[FoundModel]:
    for repo in _listing(root):
        if not repo.name.startswith("models--") or not _is_dir(repo):
            continue
        repo_id = "/".join(repo.name.removeprefix("models--").split("--"))
        files = _hf_files(Path(repo.path))
        yield from _group(HUGGINGFACE, repo_id, files, _repo_name(repo_id.rsplit("/", 1)[-1]))


def _hf_files(repo: Path) -> list[_File]:
    """The GGUF files of a cached repository: the current revision first, each path once."""
    blobs = repo / "blobs"
    snapshots = [e for e in _listing(repo / "snapshots") if _is_dir(e)]
    current = None
    with contextlib.suppress(OSError, ValueError):
        current = _read_small(repo / "refs" / "main", 256).decode().strip()
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
        for entry in _listing(directory):
            if entry.name.startswith("."):
                continue
            if _is_dir(entry):
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
        real = _inside(path, snapshot)
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


__all__ = ["FoundModel", "default_locations", "discover", "suggest"]
