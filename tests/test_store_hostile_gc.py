"""Garbage collection never takes what another client is about to name (issue 18, finding 11).

The reported case: client A uploads a blob, client B deletes an unrelated
model, and A's create fails "upload it first". A delete now removes only the
blobs the deleted model alone named (as Ollama's does); a blob no manifest
names (a fresh upload, a leftover) goes only to ``prune`` or the server's
start, and then only once untouched for ``UNUSED_BLOB_GRACE`` (a day). Ages
are set with ``os.utime``: nothing here sleeps.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from engine import Engine
from engine.store.cleanup import UNUSED_BLOB_GRACE
from engine.store.manifest import Manifest, ModelFile
from engine.store.model_store import Store
from engine.store.refs import LocalRef
from tests.support.cli import llamadeck

OLD = time.time() - UNUSED_BLOB_GRACE - 3600  # past the grace period


def manifest(name: str, *shas: str) -> Manifest:
    return Manifest(
        name=name,
        tag="latest",
        source="test",
        revision=None,
        files=tuple(ModelFile(f"{name}-{i}.gguf", sha, 1) for i, sha in enumerate(shas)),
        quant="Q8_0",
        architecture="llama",
        parameters=1,
        context_length=2048,
        created="2026-01-01T00:00:00+00:00",
    )


def blob(store: Store, content: bytes, *, mtime: float | None = None) -> str:
    sha = hashlib.sha256(content).hexdigest()
    store.ensure()
    store.blob_path(sha).write_bytes(content)
    if mtime is not None:
        os.utime(store.blob_path(sha), (mtime, mtime))
    return sha


@pytest.fixture
def store(isolated_env: Path) -> Store:
    store = Store(isolated_env)
    store.ensure()
    return store


@pytest.fixture
def engine(store: Store) -> Engine:
    engine = Engine()
    assert engine.home == store.home
    return engine


def test_rm_spares_a_blob_no_manifest_names_even_an_old_one(store: Store, engine: Engine) -> None:
    """The finding: an upload nothing names yet survives another model's rm, whatever its age."""
    own, shared = blob(store, b"only b's weights"), blob(store, b"weights b and c share")
    fresh, leftover = blob(store, b"a client's fresh upload"), blob(store, b"a leftover", mtime=OLD)
    store.save(manifest("b", own, shared))
    store.save(manifest("c", shared))
    removal = engine.remove("b")
    assert not store.has_blob(own)  # what b alone used goes
    assert removal.freed == 1  # the manifest's recorded size of the one blob freed
    assert store.has_blob(shared) and store.has_blob(fresh) and store.has_blob(leftover)


def test_rm_of_a_damaged_manifest_collects_the_digests_in_its_bytes(store: Store, engine: Engine) -> None:
    own, other = blob(store, b"weights of the damaged one"), blob(store, b"an upload")
    path = store.manifest_path(LocalRef("broken"))
    path.parent.mkdir(parents=True)
    path.write_bytes(manifest("broken", own).to_json()[:-20])  # cut short: not JSON any more
    engine.remove("broken")
    assert not store.has_blob(own) and store.has_blob(other)


def test_prune_takes_unused_blobs_only_past_the_grace_period(store: Store, engine: Engine) -> None:
    named = blob(store, b"named", mtime=OLD)
    fresh, leftover = blob(store, b"fresh upload"), blob(store, b"leftover", mtime=OLD)
    store.save(manifest("keep", named))
    report = engine.prune()
    assert not store.has_blob(leftover) and store.has_blob(fresh) and store.has_blob(named)
    assert (report.blobs, report.young_blobs) == (1, 1)
    assert report.freed == len(b"leftover") and report.young_bytes == len(b"fresh upload")


def test_an_upload_of_a_blob_already_here_restarts_its_grace_period(store: Store, engine: Engine) -> None:
    """Ollama's client asks HEAD first and skips the upload when the blob is here: both count as use."""
    asked, uploaded = blob(store, b"asked for", mtime=OLD), blob(store, b"uploaded again", mtime=OLD)
    assert engine.has_blob(f"sha256:{asked}")
    with engine.upload_blob(f"sha256:{uploaded}") as upload:
        upload.write(b"uploaded again")
        upload.finish()
    report = engine.prune()
    assert store.has_blob(asked) and store.has_blob(uploaded) and report.young_blobs == 2


def test_the_start_prune_spares_young_blobs_and_partials_a_pull_may_resume(
    store: Store, engine: Engine
) -> None:
    fresh, leftover = blob(store, b"fresh"), blob(store, b"leftover", mtime=OLD)
    resumable = store.partial_path("ab" * 32)
    resumable.write_bytes(b"half a download")  # interrupted an hour ago: `pull` resumes it
    report = engine.prune(at_start=True)
    assert store.has_blob(fresh) and not store.has_blob(leftover) and resumable.exists()
    assert report.blobs == 1 and report.partials == 0


def test_cli_rm_and_prune_as_a_person_runs_them(store: Store) -> None:
    upload, leftover = blob(store, b"an upload"), blob(store, b"leftover", mtime=OLD)
    own = blob(store, b"mine")
    store.save(manifest("mine", own))
    removed = llamadeck("rm", "mine")
    assert removed.returncode == 0, removed.stderr
    assert not store.has_blob(own) and store.has_blob(upload) and store.has_blob(leftover)
    pruned = llamadeck("prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "1 unused blob" in pruned.stdout and not store.has_blob(leftover)
    assert "kept 1 unused blob younger than 24 h" in pruned.stdout and store.has_blob(upload)
