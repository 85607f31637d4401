"""The manifest files under ``manifests/``: where a name's file lives, writing it, reading and judging it.

A manifest's *path* is its name: ``rm tiny2`` removes the file at tiny2's
path, whatever name is written inside it. Everything under ``manifests/`` is
read without following a symlink and without blocking: a symlink, directory,
FIFO or damaged file where a manifest belongs is a problem entry
(:class:`StoreEntry`), so one bad file never breaks ``list`` for the store.
The data a manifest holds, and its validation, live in ``engine.store.manifest``.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import IntegrityError, InvalidInput, LlamadeckError, NewerStore
from engine.store.files import atomic_write, file_kind, os_error, read_regular
from engine.store.manifest import MAX_MANIFEST_BYTES, MAX_TURNS, Manifest, ManifestError
from engine.store.refs import HUB_HOST, HubRef, LocalRef, ModelRef

if TYPE_CHECKING:
    from engine.store.model_store import Store

LOCAL_NAMESPACE = "library"


@dataclass(frozen=True)
class StoreEntry:
    """One file under ``manifests/``: the model it stands for, or why it cannot be used."""

    path: Path
    ref: ModelRef | None  # what the path names; None for a file where no manifest belongs
    manifest: Manifest | None  # None when damaged, newer or misnamed
    problem: str | None = None
    newer: bool = False  # written by a newer llamadeck: left alone
    removable: bool = True  # False when ``rm`` cannot remove it (it lies behind a symlinked directory)

    @property
    def reference(self) -> str:
        return str(self.ref) if self.ref is not None else str(self.path)

    @property
    def removable_as(self) -> str | None:
        """The reference ``llamadeck rm`` takes to remove this entry; None when only deleting it by hand can.

        A file whose path names no model (``Latest.json``, ``stray.json``, a
        name with spaces) has no reference: ``rm`` refuses any path.
        """
        return str(self.ref) if self.ref is not None and self.removable else None

    @property
    def repair(self) -> str | None:
        """What to do about a problem entry, in one phrase; None for a newer llamadeck's (not ours)."""
        if self.manifest is not None or self.newer:
            return None
        if self.removable_as is not None:
            return f"remove it with llamadeck rm {self.removable_as}"
        return f"delete {self.path} by hand: no model name stands for it, so llamadeck rm cannot"


@dataclass(frozen=True)
class Found:
    """One thing under ``manifests/``, as ``lstat`` sees it (never through a symlink)."""

    path: Path
    mode: int
    error: OSError | None = None  # a directory that could not be listed, or an lstat that failed


def manifest_path(store: Store, ref: ModelRef) -> Path:
    """Where a reference's manifest lives. Refs are valid by construction; the check is a backstop.

    The check is on the text of the path: symlinks are not resolved (they
    are judged where the file is read or written).
    """
    if isinstance(ref, HubRef):
        if ref.quant is None:
            raise InvalidInput(f"{ref} names no quant, so no single manifest")
        org, repo = ref.repo.split("/")
        path = store.manifests_dir / HUB_HOST / org / repo / f"{ref.quant}.json"
    else:
        path = store.manifests_dir / LOCAL_NAMESPACE / ref.name / f"{ref.tag}.json"
    if not Path(os.path.normpath(path)).is_relative_to(os.path.normpath(store.manifests_dir)):
        raise InvalidInput(f"not a storable model name: {str(ref)[:100]!r}")
    return path


def ref_for_path(store: Store, path: Path) -> ModelRef | None:
    """The reference a manifest path stands for; None for a file where no manifest belongs."""
    try:
        parts = path.relative_to(store.manifests_dir).parts
    except ValueError:
        return None
    if path.suffix != ".json":
        return None
    tag = path.stem
    ref: ModelRef
    try:
        if len(parts) == 4 and parts[0] == HUB_HOST:
            ref = HubRef(f"{parts[1]}/{parts[2]}", tag)
        elif len(parts) == 3 and parts[0] == LOCAL_NAMESPACE:
            ref = LocalRef(parts[1], tag)
        else:
            return None
        return ref if manifest_path(store, ref) == path else None
    except LlamadeckError:
        return None


def symlinked_parent(store: Store, path: Path) -> Path | None:
    """The first directory between ``manifests/`` and ``path`` that is a symlink, if any."""
    try:
        parts = path.relative_to(store.manifests_dir).parts
    except ValueError:
        return None
    current = store.manifests_dir
    for part in parts[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return current
    return None


def save(store: Store, manifest: Manifest) -> None:
    """Record a manifest, after checking that reading it back will accept it.

    Raises IntegrityError ("cannot record …") for a manifest ``load`` would
    call damaged (a licence over 1 MiB, a count past 2**63 - 1, …), and
    DiskFull or LlamadeckError naming the path when the write fails.
    """
    path = manifest_path(store, manifest.ref)
    if (turns := len(manifest.config.messages)) > MAX_TURNS:  # reading it back would drop turns, not refuse
        raise IntegrityError(
            f"cannot record {manifest.reference}: it has {turns:,} MESSAGE turns, more than {MAX_TURNS:,}"
        )
    try:
        data = manifest.to_json()
        Manifest.from_json(data)
    except ManifestError as error:
        raise IntegrityError(f"cannot record {manifest.reference}: {error}") from error
    except (TypeError, ValueError, RecursionError) as error:
        why = f"not storable as JSON ({error})"
        raise IntegrityError(f"cannot record {manifest.reference}: {why}") from error
    if ref_for_path(store, path) != manifest.ref:
        raise IntegrityError(f"cannot record {manifest.reference}: {path} would not read back as it")
    if (link := symlinked_parent(store, path)) is not None:
        raise IntegrityError(
            f"cannot record {manifest.reference} at {path}: {link} is a symlink, "
            "not a directory llamadeck made; delete it by hand"
        )
    atomic_write(path, data)


def load(store: Store, ref: ModelRef) -> Manifest | None:
    """The manifest stored under ``ref``; None when there is none.

    Raises NewerStore for a manifest a newer llamadeck wrote and
    IntegrityError for a damaged one or one whose inner name is not ``ref``.
    """
    store.check_home()
    entry = read_entry(store, manifest_path(store, ref))
    if entry is None:
        return None
    if entry.manifest is not None:
        return entry.manifest
    if entry.newer:
        raise NewerStore(f"{ref} was {entry.problem}")
    problem = entry.problem or "unusable"
    where = "" if str(entry.path) in problem else f" ({entry.path})"
    raise IntegrityError(f"the manifest of {ref} is damaged{where}: {problem}")


def read_entry(store: Store, path: Path) -> StoreEntry | None:
    """Read and judge one manifest file; None when it does not exist.

    Only a regular file is read, never through a symlink and never
    blocking: a symlink, directory, FIFO or device in a manifest's place
    is a problem entry.
    """
    ref = ref_for_path(store, path)
    if (link := symlinked_parent(store, path)) is not None:
        problem = f"it lies behind {link}, a symlink, not a directory llamadeck made"
        return StoreEntry(path, ref, None, problem, removable=False)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        return StoreEntry(path, ref, None, f"cannot be read ({error.strerror})")
    here = f"{path} is" if ref is not None else "it is"
    if stat.S_ISLNK(mode):
        return StoreEntry(path, ref, None, f"{here} a symlink, not a manifest llamadeck wrote")
    if stat.S_ISDIR(mode):
        return StoreEntry(path, ref, None, f"{here} a directory, not a manifest llamadeck wrote")
    if not stat.S_ISREG(mode):
        return StoreEntry(path, ref, None, f"{here} a {file_kind(mode)}, not a regular file")
    if ref is None:
        return StoreEntry(path, None, None, "a file where no manifest belongs")
    try:
        raw = read_regular(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        return None
    except OSError as error:
        return StoreEntry(path, ref, None, f"cannot be read ({error.strerror})")
    except ValueError as error:
        return StoreEntry(path, ref, None, f"{here} {error}: not a manifest")
    try:
        manifest = Manifest.from_json(raw)
    except ManifestError as error:
        return StoreEntry(path, ref, None, str(error), newer=error.newer)
    if manifest.ref != ref:
        return StoreEntry(path, ref, None, f"it names {manifest.reference} but is stored as {ref}")
    return StoreEntry(path, ref, manifest)


def walk(store: Store) -> list[Found]:
    """Everything under ``manifests/``, sorted, never descending into a symlink."""
    found: list[Found] = []
    pending = [store.manifests_dir]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                children = list(listing)
        except FileNotFoundError:
            continue
        except OSError as error:
            found.append(Found(directory, stat.S_IFDIR, error))
            continue
        for child in children:
            path = Path(child.path)
            try:
                mode = child.stat(follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            except OSError as error:
                found.append(Found(path, 0, error))
                continue
            found.append(Found(path, mode))
            if stat.S_ISDIR(mode):
                pending.append(path)
    return sorted(found, key=lambda f: f.path)


def entries(store: Store) -> list[StoreEntry]:
    """Every manifest-like thing under ``manifests/``, usable or not.

    That is every ``*.json`` (file, directory, FIFO …), every symlink and
    every directory that cannot be listed; other files (backups, temp
    files) are not entries, though garbage collection reads them.
    """
    store.check_home()
    result = []
    for found in walk(store):
        name = found.path.name
        if found.error is not None:
            ref = ref_for_path(store, found.path)
            result.append(StoreEntry(found.path, ref, None, f"cannot be read ({found.error.strerror})"))
        elif (stat.S_ISLNK(found.mode) or (name.endswith(".json") and not name.startswith("."))) and (
            entry := read_entry(store, found.path)
        ) is not None:
            result.append(entry)
    return result


def manifests(store: Store) -> Iterator[Manifest]:
    """Every usable manifest; the others are in ``problems()``."""
    for entry in entries(store):
        if entry.manifest is not None:
            yield entry.manifest


def problems(store: Store) -> list[StoreEntry]:
    """Manifests that are damaged, misnamed, unreadable or written by a newer llamadeck."""
    return [e for e in entries(store) if e.manifest is None]


def remove_manifest(store: Store, ref: ModelRef) -> bool:
    """Remove whatever is at ``ref``'s manifest path; False when nothing is.

    A symlink there is removed, never its target; a directory is removed
    with what is in it (symlinks inside are removed, not followed). A
    manifest behind a symlinked directory is refused (IntegrityError).
    """
    path = manifest_path(store, ref)
    if (link := symlinked_parent(store, path)) is not None:
        raise IntegrityError(
            f"cannot remove {ref}: {link} is a symlink, not a directory llamadeck made; delete it by hand"
        )
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as error:
        raise os_error(error, f"cannot remove {ref}:", path) from error
    try:
        if stat.S_ISDIR(mode):
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    except OSError as error:
        where = Path(error.filename) if error.filename else path
        raise os_error(error, f"cannot remove {ref}:", where) from error
    _prune_empty_dirs(store, path.parent)
    return True


def _prune_empty_dirs(store: Store, directory: Path) -> None:
    """Remove the now empty directories above a removed manifest; best effort, never an error."""
    while directory != store.manifests_dir and directory.is_relative_to(store.manifests_dir):
        try:
            directory.rmdir()  # fails on a directory that is not empty, a symlink or immutable
        except OSError:
            return
        directory = directory.parent
