"""Taking models out of the store: forget a name, then delete the blobs nothing else names.

``rm`` removes the manifest at the name's path, whatever it says inside (so a
damaged or misnamed manifest is removable too), then deletes the blobs that
manifest named and no other does (as Ollama's delete removes only the deleted
model's layers: a blob nothing names may be another client's upload about to
be named) and prunes abandoned partial downloads, all under the store's lock
so that a pull or another ``rm`` in another process never sees half of it. A
manifest from a newer llamadeck is refused: it is not ours to judge.
``prune`` takes every partial and lock file no live process holds, and the
blobs nothing names once untouched for ``UNUSED_BLOB_GRACE``; the server's
start does the same (unless ``LLAMADECK_NOPRUNE``) but spares partials a
pull may resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from engine.errors import InvalidInput, LlamadeckError, NewerStore
from engine.store.cleanup import UNUSED_BLOB_GRACE, PruneReport, digests_named_by
from engine.store.model_store import Store
from engine.store.refs import HubRef, ModelRef

PRUNE_AFTER_RM = 7 * 24 * 3600  # rm prunes partials untouched for a week; prune itself takes all


@dataclass(frozen=True)
class Removal:
    """What ``remove`` really did."""

    reference: str
    freed: int  # bytes of blobs that no other model used
    kept_because: str | None = None  # why no blob was deleted, when garbage collection was stopped


def remove_model(store: Store, ref: ModelRef, *, not_found: Callable[[ModelRef], LlamadeckError]) -> Removal:
    """Remove ``ref``'s manifest and the blobs only it named; raises ``not_found(ref)`` when it is not here.

    A Hub name without a quant is accepted only when one quant is stored
    (InvalidInput names them otherwise); NewerStore for a newer manifest.
    """
    ref = removable(store, ref, not_found=not_found)
    store.ensure()
    with store.store_lock():
        entry = store.entry(store.manifest_path(ref))
        if entry is None:
            raise not_found(ref)
        if entry.newer:
            raise NewerStore(f"{ref} was {entry.problem}; not removed")
        files = entry.manifest.blobs if entry.manifest is not None else ()
        named = digests_named_by(entry)
        store.remove_manifest(ref)
        collection = store.collect_garbage(only=named)
        store.prune(older_than=PRUNE_AFTER_RM)
    freed = sum(f.size for f in {f.sha256: f for f in files}.values() if f.sha256 in collection.removed)
    kept = None
    if collection.blocked_by is not None:
        kept = f"no files deleted: {collection.blocked_by}: {collection.blocked_because or 'cannot be read'}"
    return Removal(str(ref), freed, kept)


def removable(store: Store, ref: ModelRef, *, not_found: Callable[[ModelRef], LlamadeckError]) -> ModelRef:
    """The one stored reference ``ref`` stands for (a Hub name without quant needs exactly one)."""
    if not isinstance(ref, HubRef) or ref.quant is not None:
        return ref
    stored = sorted(
        {e.ref for e in store.entries() if isinstance(e.ref, HubRef) and e.ref.repo == ref.repo},
        key=str,
    )
    if not stored:
        raise not_found(ref)
    if len(stored) > 1:
        quants = ", ".join(r.quant or "" for r in stored)
        raise InvalidInput(f"{ref} has {len(stored)} quants here ({quants}): name one, e.g. {stored[0]}")
    return stored[0]


def prune_store(store: Store, *, at_start: bool = False) -> PruneReport:
    """Remove partial downloads and lock files no live process holds, then blobs nothing names.

    Unnamed blobs go once untouched for ``UNUSED_BLOB_GRACE`` (a client may
    name a younger one yet). ``at_start`` (the server starting) also spares
    partials a pull may resume, as ``rm`` does.
    """
    store.ensure()
    with store.store_lock():
        report = store.prune(older_than=PRUNE_AFTER_RM if at_start else 0.0)
        collection = store.collect_garbage(older_than=UNUSED_BLOB_GRACE)
    return replace(
        report,
        freed=report.freed + collection.freed,
        blobs=len(collection.removed),
        young_blobs=collection.young,
        young_bytes=collection.young_bytes,
    )
