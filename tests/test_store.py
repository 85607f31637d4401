"""The store on a real file system: manifests, hostile names, garbage collection under locks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.errors import IntegrityError, InvalidReference
from engine.store import Manifest, ModelFile, Store


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


def test_manifest_round_trips_and_leaves_no_temp_files(store: Store) -> None:
    original = manifest("hf.co/acme/Tiny-GGUF", "Q8_0", "a" * 64)
    store.save(original)
    assert store.load("hf.co/acme/Tiny-GGUF", "Q8_0") == original
    directory = store.manifest_path("hf.co/acme/Tiny-GGUF", "Q8_0").parent
    assert [p.name for p in directory.iterdir()] == ["Q8_0.json"]


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("..", "x"),
        ("a/../../b", "x"),
        ("hf.co/../etc", "x"),
        ("ok", "../up"),
        ("/abs", "x"),
        ("a/b", "x"),
        ("ok", ""),
    ],
)
def test_the_store_refuses_names_that_could_escape_it(store: Store, name: str, tag: str) -> None:
    with pytest.raises(InvalidReference):
        store.manifest_path(name, tag)


def test_a_damaged_manifest_is_named_not_crashed_on(store: Store) -> None:
    path = store.manifest_path("broken", "latest")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(IntegrityError, match="broken:latest is damaged"):
        store.load("broken", "latest")
    assert list(store.manifests()) == [] and store.damaged_manifests() == [path]


def test_garbage_collection_keeps_named_and_locked_blobs(store: Store) -> None:
    named, orphan, in_flight = blob(store, b"named"), blob(store, b"orphan"), blob(store, b"in flight")
    store.save(manifest("keep", "latest", named))
    with store.blob_lock(in_flight):  # a pull that has not written its manifest yet
        removed = store.collect_garbage()
    assert removed == [orphan]
    assert store.has_blob(named) and store.has_blob(in_flight) and not store.has_blob(orphan)


def test_blob_names_must_be_sha256(store: Store) -> None:
    with pytest.raises(IntegrityError):
        store.blob_path("../../etc/passwd")
