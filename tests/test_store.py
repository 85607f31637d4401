"""The store on a real file system: manifests by path, hostile names, GC that never loses weights."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from engine.errors import IntegrityError, InvalidInput, NewerStore
from engine.store.manifest import Manifest, ModelFile
from engine.store.migrations import SCHEMA
from engine.store.model_store import Store
from engine.store.refs import HubRef, LocalRef


def manifest(name: str, tag: str, *shas: str) -> Manifest:
    return Manifest(
        name=name,
        tag=tag,
        source="test",
        revision=None,
        files=tuple(ModelFile(f"{sha[:6]}.gguf", sha, 1) for sha in shas),
        quant="Q8_0",
        architecture="llama",
        parameters=1,
        context_length=2048,
        created="2026-01-01T00:00:00+00:00",
    )


def blob(store: Store, content: bytes) -> str:
    sha = hashlib.sha256(content).hexdigest()
    store.blob_path(sha).write_bytes(content)
    return sha


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "home")
    s.ensure()
    return s


def edit(store: Store, ref: LocalRef | HubRef, change) -> None:
    """Rewrite a stored manifest's JSON by hand, as a user with an editor would."""
    path = store.manifest_path(ref)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_manifest_round_trips_and_leaves_no_temp_files(store: Store) -> None:
    original = manifest("hf.co/acme/Tiny-GGUF", "Q8_0", "a" * 64)
    store.save(original)
    ref = HubRef("acme/Tiny-GGUF", "Q8_0")
    assert store.load(ref) == original
    directory = store.manifest_path(ref).parent
    assert [p.name for p in directory.iterdir()] == ["Q8_0.json"]
    assert json.loads(store.manifest_path(ref).read_text())["schema"] == SCHEMA


def test_a_hub_name_without_quant_has_no_single_manifest(store: Store) -> None:
    with pytest.raises(InvalidInput):
        store.manifest_path(HubRef("acme/Tiny-GGUF"))


def test_a_damaged_manifest_is_named_not_crashed_on(store: Store) -> None:
    path = store.manifest_path(LocalRef("broken"))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(IntegrityError, match="broken:latest is damaged"):
        store.load(LocalRef("broken"))
    assert list(store.manifests()) == []
    [problem] = store.problems()
    assert problem.path == path and problem.ref == LocalRef("broken") and not problem.newer


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d.update(files=[]), "files"),
        (lambda d: d.update(created="yesterday"), "created"),
        (lambda d: d.update(created="2026-01-01T00:00:00"), "time zone"),
        (lambda d: d.update(parameters="many"), "parameters"),
        (lambda d: d.update(parameters=True), "parameters"),
        (lambda d: d["files"][0].update(sha256="../../etc/passwd"), "sha256"),
        (lambda d: d["files"][0].update(size=-1), "size"),
        (lambda d: d.update(shape={"n_layers": 1}), "shape"),
        (lambda d: d.update(config={"parameters": []}), "parameters"),
        (lambda d: d.update(name=None), "name"),
        (lambda d: d.pop("schema"), "schema"),
        (lambda d: d.update(schema="2"), "schema"),
    ],
)
def test_every_field_is_validated_on_read(store: Store, change, why: str) -> None:
    store.save(manifest("good", "latest", "a" * 64))
    store.save(manifest("bad", "latest", "b" * 64))
    edit(store, LocalRef("bad"), change)
    assert [m.reference for m in store.manifests()] == ["good:latest"]  # one bad file breaks nothing else
    [problem] = store.problems()
    assert problem.ref == LocalRef("bad") and why in (problem.problem or "")
    with pytest.raises(IntegrityError, match="bad:latest is damaged"):
        store.load(LocalRef("bad"))


def test_a_newer_schema_is_reported_as_newer_not_damaged(store: Store) -> None:
    store.save(manifest("future", "latest", "a" * 64))
    edit(store, LocalRef("future"), lambda d: d.update(schema=99))
    [problem] = store.problems()
    assert problem.newer and "newer llamadeck" in (problem.problem or "")
    with pytest.raises(NewerStore, match="newer llamadeck"):
        store.load(LocalRef("future"))


def test_the_path_is_the_name_whatever_the_file_says(store: Store) -> None:
    store.save(manifest("tiny", "latest", "a" * 64))
    copied = store.manifest_path(LocalRef("tiny2"))
    copied.parent.mkdir(parents=True)
    copied.write_bytes(store.manifest_path(LocalRef("tiny")).read_bytes())  # a folder copied by hand
    assert [m.reference for m in store.manifests()] == ["tiny:latest"]  # listed once, not twice
    [problem] = store.problems()
    assert problem.ref == LocalRef("tiny2") and "names tiny:latest" in (problem.problem or "")
    with pytest.raises(IntegrityError):
        store.load(LocalRef("tiny2"))
    assert store.remove_manifest(LocalRef("tiny2"))
    assert store.load(LocalRef("tiny")) is not None  # the right file went


def test_files_where_no_manifest_belongs_are_problems_with_their_path(store: Store) -> None:
    stray = store.manifests_dir / "library" / "x" / "deep" / "latest.json"
    stray.parent.mkdir(parents=True)
    stray.write_text("{}")
    [problem] = store.problems()
    assert problem.ref is None and problem.reference == str(stray)


def test_garbage_collection_keeps_named_and_locked_blobs(store: Store) -> None:
    named, orphan, in_flight = blob(store, b"named"), blob(store, b"orphan"), blob(store, b"in flight")
    store.save(manifest("keep", "latest", named))
    lock = store.blob_lock(in_flight)  # a pull that has not written its manifest yet
    with lock:
        collection = store.collect_garbage()
    assert collection.removed == (orphan,) and collection.blocked_by is None
    assert store.has_blob(named) and store.has_blob(in_flight) and not store.has_blob(orphan)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(schema=2_000),  # a newer llamadeck
        lambda d: d.update(created="yesterday"),  # damaged but parseable JSON
        lambda d: d.update(files=[{"sha256": d["files"][0]["sha256"].upper()}]),  # odd spelling
    ],
)
def test_gc_never_deletes_a_blob_an_unusable_manifest_may_name(store: Store, damage) -> None:
    """The reported repro: give model A's manifest a newer schema, rm model B, and A's blob was gone."""
    a, b = blob(store, b"weights of A"), blob(store, b"weights of B")
    store.save(manifest("a", "latest", a))
    store.save(manifest("b", "latest", b))
    edit(store, LocalRef("a"), damage)
    store.remove_manifest(LocalRef("b"))
    assert store.collect_garbage().removed == (b,)
    assert store.has_blob(a)


def test_gc_counts_digests_in_torn_manifests_and_stray_files(store: Store) -> None:
    a, b = blob(store, b"A"), blob(store, b"B")
    torn = store.manifest_path(LocalRef("torn"))
    torn.parent.mkdir(parents=True)
    torn.write_bytes(manifest("torn", "latest", a).to_json()[:-40])  # cut short: not JSON any more
    backup = store.manifests_dir / "library" / "b" / "latest.json.bak"
    backup.parent.mkdir(parents=True)
    backup.write_bytes(manifest("b", "latest", b).to_json())
    assert store.collect_garbage().removed == ()
    assert store.has_blob(a) and store.has_blob(b)


def test_an_unreadable_manifest_stops_gc_and_says_which(store: Store) -> None:
    """A file under manifests/ that cannot be read might name any blob: GC deletes nothing.

    A symlink loop fails to read for root too (a chmod 000 file would not, and CI runs as root).
    """
    orphan = blob(store, b"orphan")
    fifo = store.manifests_dir / "library" / "odd" / "latest.json.bak"
    fifo.parent.mkdir(parents=True)
    fifo.symlink_to(fifo)  # a symlink loop: reading it fails with ELOOP, for root too
    collection = store.collect_garbage()
    assert collection.blocked_by == fifo and store.has_blob(orphan)


def test_prune_removes_abandoned_partials_and_free_locks_only(store: Store) -> None:
    held, abandoned = "d" * 64, "e" * 64
    store.partial_path(held).write_bytes(b"half")
    store.partial_path(abandoned).write_bytes(b"halfway")
    left_behind = store.blob_lock(abandoned)  # a lock file a crashed pull left behind
    assert left_behind.try_acquire()
    left_behind.release()
    lock = store.blob_lock(held)
    assert lock.try_acquire()
    try:
        report = store.prune()
    finally:
        lock.release()
    assert store.partial_path(held).exists() and not store.partial_path(abandoned).exists()
    assert report.partials == 1 and report.freed == len(b"halfway")
    assert (store.locks / f"sha256-{held}.lock").exists()
    assert report.locks == 1 and not (store.locks / f"sha256-{abandoned}.lock").exists()


def test_prune_spares_recent_partials_when_asked(store: Store) -> None:
    recent = "f" * 64
    store.partial_path(recent).write_bytes(b"resume me")
    assert store.prune(older_than=3600).partials == 0
    assert store.partial_path(recent).exists()
    two_hours_ago = os.stat(store.partial_path(recent)).st_mtime - 7200
    os.utime(store.partial_path(recent), (two_hours_ago, two_hours_ago))
    assert store.prune(older_than=3600).partials == 1


def test_a_pruned_lock_file_is_not_a_second_lock(store: Store) -> None:
    """A lock file deleted while free: whoever opened the old one must not hold a lock beside a newcomer."""
    sha = "1" * 64
    first = store.blob_lock(sha)
    assert first.try_acquire()
    first.release()
    assert store.prune().locks == 1
    a, b = store.blob_lock(sha), store.blob_lock(sha)
    assert a.try_acquire() and not b.try_acquire()
    a.release()


def test_a_store_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory")
    with pytest.raises(InvalidInput, match="not a directory"):
        list(Store(home).manifests())


def test_blob_names_must_be_sha256(store: Store) -> None:
    with pytest.raises(IntegrityError):
        store.blob_path("../../etc/passwd")
