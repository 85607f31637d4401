"""Holding the locks of several blobs at once, in an order every llamadeck process agrees on.

Whatever writes blobs and then names them in a manifest (a pull, an import,
a create, a copy) holds the lock of each of those blobs from the first byte
until the manifest is written: a second process wanting the same blob waits
and then finds it in place, and garbage collection never takes a blob about
to be named.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from engine.cancel import CancelToken
from engine.events import EventSink, Waiting
from engine.store.model_store import Store


@contextmanager
def blob_locks(store: Store, shas: list[str], sink: EventSink, cancel: CancelToken) -> Iterator[None]:
    """Hold every blob's lock (in sorted order, so two pulls cannot deadlock); the wait can be cancelled."""
    with ExitStack() as stack:
        for sha in sorted(set(shas)):
            lock = store.blob_lock(sha)

            def waiting(sha: str = sha) -> None:
                sink(Waiting(f"another llamadeck process is fetching {sha[:12]}; waiting for it"))

            lock.acquire(cancel=cancel, on_wait=waiting)
            stack.callback(lock.release)
        yield
