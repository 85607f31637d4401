"""Split models' views: a directory per split model whose links carry the parts' own names.

llama.cpp finds ``X-00002-of-00003.gguf`` next to the first part, but blobs are
named by their sha256, so each split model gets ``views/<view id>/`` with a
symlink per part. Only what the store made is ever cleaned up here: a view is a
real directory holding nothing but links into ``blobs/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from engine.errors import IntegrityError
from engine.store.files import file_kind, os_error
from engine.store.manifest import ModelFile

if TYPE_CHECKING:
    from engine.store.model_store import Store

_BLOB_NAME = re.compile(r"sha256-[0-9a-f]{64}")
# A view's directory name: view_id() now, the first part's short id before (still cleaned up).
_VIEW_NAME = re.compile(r"[0-9a-f]{24}|[0-9a-f]{12}")


def view_id(files: Sequence[ModelFile]) -> str:
    """The directory name of a split model's view: one digest of every part's link name and sha256.

    Two models share a view only when every part is the same file under the
    same name, so a re-pull with new later parts, or another repo sharing
    only the first part, gets a view of its own.
    """
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{PurePosixPath(file.path).name}\0{file.sha256}\n".encode(errors="surrogatepass"))
    return digest.hexdigest()[:24]


def _part_name(file: ModelFile) -> str:
    """The link name of one part of a split model; refused when it could not be a plain file name."""
    name = PurePosixPath(file.path).name
    try:
        usable = name not in ("", ".", "..") and "\\" not in name and name.isprintable()
        os.fsencode(name)
    except UnicodeError:
        usable = False
    if not usable:
        raise IntegrityError(f"the part {file.path!r:.100} has no usable file name: pull the model again")
    return name


def split_view(store: Store, files: Sequence[ModelFile]) -> Path:
    """The first part's path in a directory of links named like the parts, made fresh as needed.

    llama.cpp finds ``X-00002-of-00003.gguf`` next to the first part, so
    each part gets a symlink of its own name to its blob. A link that is
    missing or points elsewhere is replaced atomically (a new link under a
    temp name, then a rename). ``views`` must be a real directory: a
    symlink there is refused, never written through.
    """
    names = [_part_name(f) for f in files]
    if len(set(names)) != len(names):
        raise IntegrityError(f"two parts of a split model share a file name ({', '.join(names)[:200]})")
    _views_dir(store)
    view = store.view_path(files)
    try:
        view.mkdir()
    except FileExistsError:
        pass
    except OSError as error:
        raise os_error(error, "cannot create the split-model directory", view) from error
    try:
        mode = os.lstat(view).st_mode
    except OSError as error:
        raise os_error(error, "cannot use the split-model directory", view) from error
    if not stat.S_ISDIR(mode):
        raise IntegrityError(
            f"the split-model directory {view} is a {file_kind(mode)}, not a directory llamadeck made: "
            "remove it"
        )
    for file, name in zip(files, names, strict=True):
        link = view / name
        target = os.path.abspath(store.blob_path(file.sha256))
        with contextlib.suppress(OSError):
            if os.readlink(link) == target:
                continue
        tmp = view / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            os.symlink(target, tmp)
            os.replace(tmp, link)
        except OSError as error:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise os_error(error, "cannot link the split model's part", link) from error
    return view / names[0]


def _views_dir(store: Store) -> None:
    """Make ``views/`` if missing; refuse anything but a real directory there (never write through it)."""
    try:
        store.views.mkdir(exist_ok=True)
    except OSError as error:
        if not isinstance(error, FileExistsError):
            raise os_error(error, "cannot create the split-model directory", store.views) from error
    try:
        mode = os.lstat(store.views).st_mode
    except OSError as error:
        raise os_error(error, "cannot use the split-model directory", store.views) from error
    if not stat.S_ISDIR(mode):
        raise IntegrityError(
            f"the split-model directory {store.views} is a {file_kind(mode)}, "
            "not a directory llamadeck made: llamadeck does not write through it; remove it"
        )


def remove_stale_views(store: Store, live: set[str]) -> None:
    """Drop the views (split models) no usable manifest needs: only what the store made.

    That is a directory named like a view id holding nothing but symlinks
    to ``blobs/sha256-…``. A user's directory, a symlink (``views`` itself
    or one inside it) or anything else is left alone and never followed:
    everything is done through directory descriptors opened with O_NOFOLLOW.
    """
    try:
        views_fd = os.open(store.views, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # missing, a symlink or not a directory: not ours to clean
    try:
        for name in sorted(os.listdir(views_fd)):
            if name not in live and _VIEW_NAME.fullmatch(name):
                _remove_view(views_fd, name)
    finally:
        os.close(views_fd)


def _remove_view(views_fd: int, name: str) -> None:
    """Remove ``views/<name>`` if it is a real directory of symlinks into ``blobs/`` (best effort)."""
    try:
        view_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=views_fd)
    except OSError:
        return  # a symlink, a file or gone
    try:
        links = os.listdir(view_fd)
        for link in links:
            if not stat.S_ISLNK(os.lstat(link, dir_fd=view_fd).st_mode):
                return
            target = PurePosixPath(os.readlink(link, dir_fd=view_fd))
            if target.parent.name != "blobs" or not _BLOB_NAME.fullmatch(target.name):
                return
        for link in links:
            os.unlink(link, dir_fd=view_fd)
    except OSError:
        return
    finally:
        os.close(view_fd)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=views_fd)
