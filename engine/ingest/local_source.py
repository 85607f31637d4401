"""What a local import reads: the files a path names (a file, split parts, a folder), opened and checked.

Finding the parts and checking their GGUF headers agree with their places is
its own job, apart from putting bytes into the store (``blob_import``) and
writing the manifest (``local``); discovery shares ``SPLIT_NAME`` with it.
"""

from __future__ import annotations

import errno
import mmap
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import IntegrityError, InvalidInput
from engine.store.files import file_kind
from engine.store.gguf_io import GGUFInfo, HeaderIncomplete, check_data_inside, scan_header
from engine.store.refs import LocalRef
from engine.text import one_line

SPLIT_NAME = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # follows symlinks (a user's or HF's); never blocks
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_PARTS = 9999
_EXPECTED = (
    "a .gguf file, the first part of a split model (…-00001-of-0000N.gguf) "
    "or a folder holding one model's GGUF file(s)"
)


@dataclass
class Part:
    """One file being imported: its open descriptor and what it was when opened."""

    path: Path  # as given (or found in the folder)
    name: str  # the name the store records (``ModelFile.path``)
    fd: int
    info: os.stat_result
    _header: GGUFInfo | None  # None for a file imported as bytes only (``import_file``)
    sha256: str = ""

    @property
    def header(self) -> GGUFInfo:
        assert self._header is not None
        return self._header

    @property
    def is_model(self) -> bool:
        """False for a file imported as bytes only: it has no header to verify."""
        return self._header is not None

    @property
    def label(self) -> str:
        return one_line(str(self.path), None)

    def unchanged(self) -> bool:
        now = os.fstat(self.fd)
        return (now.st_size, now.st_mtime_ns) == (self.info.st_size, self.info.st_mtime_ns)


def model_files(source: Path | Sequence[Path]) -> list[Path]:
    """The files to import, in part order; InvalidInput naming what is wrong with ``source``.

    A file, a split model's first part, a folder of one model (projectors set aside), or the parts.
    """
    if not isinstance(source, str | os.PathLike):
        paths = [Path(p) for p in source]
        if not paths:
            raise InvalidInput(f"nothing to import: give {_EXPECTED}")
        if len(paths) > _MAX_PARTS:
            raise InvalidInput(f"{len(paths)} parts: a split model has at most {_MAX_PARTS}")
        return paths
    path = Path(source)
    kind = path_kind(path)
    if kind == "directory":
        return _from_folder(path)
    if kind == "missing":
        raise InvalidInput(f"cannot import {one_line(str(path))}: it does not exist")
    if kind != "file":
        raise InvalidInput(f"cannot import {one_line(str(path))}: it is {kind}; give {_EXPECTED}")
    split = SPLIT_NAME.match(path.name)
    if split is None:
        return [path]
    part, count = int(split["part"]), int(split["count"])
    if part != 1:
        first = f"{split['stem']}-00001-of-{split['count']}.gguf"
        raise InvalidInput(
            f"{one_line(str(path))} is part {part} of {count}: give the first part ({one_line(first)})"
        )
    return _split_siblings(path.parent, split["stem"], count, path.name)


def path_kind(path: Path) -> str:
    """ "file", "directory", or what else ``path`` is (following symlinks), as a phrase."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a symlink to nothing (dangling)" if os.path.islink(path) else "missing"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symlink loop"
        if error.errno == errno.ENAMETOOLONG:
            return "a path too long for the file system"
        return f"unreadable ({error.strerror})"
    except ValueError:  # an embedded NUL
        return "not a valid path"
    kind = file_kind(mode)  # stat follows symlinks: never "symlink" here
    return kind if kind in ("file", "directory") else f"a {kind}"


def _split_siblings(folder: Path, stem: str, count: int, first: str) -> list[Path]:
    names = [
        first[: -len("00001-of-00000.gguf")] + f"{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)
    ]
    names[0] = first
    paths = [folder / name for name in names]
    missing = [str(i) for i, p in enumerate(paths, 1) if path_kind(p) != "file"]
    if missing:
        which = f"part{'s' if len(missing) > 1 else ''} {', '.join(missing[:10])}"
        raise InvalidInput(
            f"split part missing: {which} of {count} of {one_line(str(stem))} "
            f"not found beside {one_line(str(folder / first))}"
        )
    return paths


def _from_folder(folder: Path) -> list[Path]:
    """The one model in a folder: its one .gguf, or one split model's parts (projectors set aside)."""
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.name.lower().endswith(".gguf"))
    except OSError as error:
        raise InvalidInput(f"cannot list {one_line(str(folder))}: {error.strerror}") from None
    ggufs = [n for n in names if not n.startswith(".") and path_kind(folder / n) == "file"]
    models = [n for n in ggufs if "mmproj" not in n.lower()]
    if len(models) == 1 and not SPLIT_NAME.match(models[0]):
        return [folder / models[0]]
    splits = {(m["stem"], int(m["count"])) for n in models if (m := SPLIT_NAME.match(n))}
    if len(splits) == 1 and all(SPLIT_NAME.match(n) for n in models):
        stem, count = splits.pop()
        first = next((n for n in models if int(SPLIT_NAME.match(n)["part"]) == 1), None)  # type: ignore[index]
        if first is None:
            raise InvalidInput(
                f"split part missing: part 1 of {count} of {one_line(str(stem))} in {one_line(str(folder))}"
            )
        return _split_siblings(folder, stem, count, first)
    listed = ", ".join(one_line(str(n)) for n in models[:4]) + (", …" if len(models) > 4 else "")
    found = f"{len(models)} model files ({listed})" if models else "no GGUF file"
    shown = one_line(str(folder))
    raise InvalidInput(f"cannot import the folder {shown}: it holds {found}; give {_EXPECTED}")


def open_part(path: Path, index: int, *, model: bool = True) -> Part:
    """Open one file without blocking (a FIFO never hangs) and read its GGUF header from that descriptor."""
    label = one_line(str(path), None)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise InvalidInput(f"cannot import {label}: it does not exist") from None
    except OSError as error:
        kind = path_kind(path)
        why = kind if kind not in ("file", "directory") else (error.strerror or str(error))
        raise InvalidInput(f"cannot import {label}: {why}; give {_EXPECTED}") from None
    except ValueError:
        raise InvalidInput(f"cannot import {label}: not a valid path") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else path_kind(path)
            raise InvalidInput(f"cannot import {label}: it is {kind}, not a file; give {_EXPECTED}")
        if info.st_size == 0:
            raise IntegrityError(f"{label} is empty (0 bytes), not a GGUF file")
        if not model:
            if os.pread(fd, 4, 0) != b"GGUF":
                raise IntegrityError(f"{label} is not a GGUF file (it does not start with GGUF)")
            return Part(path, path.name, fd, info, None)
        header = _read_header(fd, info.st_size, label)
        if index == 0 and header.split_index == 0 and not header.architecture:
            raise IntegrityError(f"{label} has no general.architecture: not a model llama.cpp can load")
        return Part(path, path.name, fd, info, header)
    except BaseException:
        os.close(fd)
        raise


def _read_header(fd: int, size: int, label: str) -> GGUFInfo:
    """The header scanned through a memory map of ``fd``, and the tensor data checked to lie inside."""
    try:
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as view:
            info = scan_header(view, label=label, file_size=size)
    except HeaderIncomplete:
        raise IntegrityError(f"{label} is truncated inside its GGUF header ({size} bytes)") from None
    except (OSError, ValueError) as error:
        raise IntegrityError(f"cannot read {label}: {error}") from None
    check_data_inside(info, size, label=label)
    return info


def check_split(parts: list[Part]) -> None:
    """Every part's header agrees with its place: part i of N, N the number of files."""
    count = len(parts)
    first = parts[0]
    if count == 1 and first.header.split_count > 1:
        raise InvalidInput(
            f"{first.label} is part {first.header.split_index + 1} of {first.header.split_count} of a split "
            "model: give the first part (named …-00001-of-0000N.gguf) or the folder holding every part"
        )
    for i, part in enumerate(parts):
        header = part.header
        if count > 1 and (header.split_count != count or header.split_index != i):
            says = f"part {header.split_index + 1} of {header.split_count}"
            raise IntegrityError(
                f"{part.label} is not part {i + 1} of {count} of this split model (its header says {says})"
            )
    if first.header.shape.n_layers == 0:  # later parts carry no shape; the scan checks the first
        raise IntegrityError(f"{first.label} has no layers (block_count is 0 or missing)")


def clean_stem(text: str) -> str:
    stem = _UNSAFE_NAME.sub("_", text).strip("._-")[:120]
    return stem or "model"


def stored_names(parts: list[Part], ref: LocalRef) -> list[str]:
    """File names the store records: the source's, made safe; split parts named as llama.cpp wants."""
    fallback = clean_stem(f"{ref.name}-{ref.tag}")
    if len(parts) == 1:
        name = parts[0].path.name
        if name.lower().endswith(".gguf"):
            return [clean_stem(name[: -len(".gguf")]) + ".gguf"]
        return [f"{fallback}.gguf"]
    split = SPLIT_NAME.match(parts[0].path.name)
    stem = clean_stem(split["stem"]) if split else fallback
    return [f"{stem}-{i:05d}-of-{len(parts):05d}.gguf" for i in range(1, len(parts) + 1)]


__all__ = [
    "SPLIT_NAME",
    "Part",
    "check_split",
    "clean_stem",
    "model_files",
    "open_part",
    "path_kind",
    "stored_names",
]
