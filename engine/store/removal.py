"""Taking models out of the store: forget a name, then delete the blobs nothing else names.

``rm`` removes the manifest at the name's path, whatever it says inside (so a
damaged or misnamed manifest is removable too), then collects garbage and
prunes abandoned partial downloads, all under the store's lock so that a
pull or another ``rm`` in another process never sees half of it. A manifest
from a newer llamadeck is refused: it is not ours to judge. ``prune`` takes
every partial and lock file no live process holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import InvalidInput, LlamadeckError, NewerStore
from engine.store.cleanup import PruneReport
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
        files = (*entry.manifest.files, *entry.manifest.config.adapters) if entry.manifest is not None else ()
        store.remove_manifest(ref)
        collection = store.collect_garbage()
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


def prune_store(store: Store) -> PruneReport:
    """Remove every partial download and lock file that no live process holds, then unneeded blobs."""
    store.ensure()
    with store.store_lock():
        report = store.prune()
        store.collect_garbage()
    return report
