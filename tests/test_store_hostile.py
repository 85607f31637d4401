"""The store against a hostile or broken file system: symlinks, FIFOs, directories where files belong,
full disks, immutable directories and manifests built to crash the reader.

Every case runs on the real file system (tmp_path). The rules under test:
nothing outside the store is ever written or deleted, nothing is followed
that the store did not make, and every failure is one LlamadeckError naming
the path at fault.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import DiskFull, IntegrityError, InvalidInput, LlamadeckError
from engine.runtime.loader import model_path
from engine.store.locks import FileLock
from engine.store.manifest import MAX_MANIFEST_BYTES, Manifest, ManifestError, ModelFile
from engine.store.model_store import Store
from engine.store.refs import HubRef, LocalRef
from engine.store.split_views import view_id


def manifest(name: str, tag: str, *files: tuple[str, str], **changes: object) -> Manifest:
    """A manifest of ``(part path, sha256)`` files."""
    fields: dict[str, object] = {
        "name": name,
        "tag": tag,
        "source": "test",
        "revision": None,
        "files": tuple(ModelFile(path, sha, 1) for path, sha in files),
        "quant": "Q8_0",
        "architecture": "llama",
        "parameters": 1,
        "context_length": 2048,
        "created": "2026-01-01T00:00:00+00:00",
    }
    return Manifest(**{**fields, **changes})  # type: ignore[arg-type]


def blob(store: Store, content: bytes) -> str:
    sha = hashlib.sha256(content).hexdigest()
    store.blob_path(sha).write_bytes(content)
    return sha


def split(store: Store, prefix: str, *contents: bytes) -> list[tuple[str, str]]:
    n = len(contents)
    return [(f"{prefix}-{i:05d}-of-{n:05d}.gguf", blob(store, c)) for i, c in enumerate(contents, 1)]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "home")
    s.ensure()
    return s


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A user's files beside the store: no test may change them."""
    victim = tmp_path / "victim"
    (victim / "photos").mkdir(parents=True)
    (victim / "photos" / "cat.jpg").write_bytes(b"meow")
    (victim / "notes.txt").write_text("keep me")
    return victim


def untouched(victim: Path) -> bool:
    return (victim / "photos" / "cat.jpg").read_bytes() == b"meow" and (victim / "notes.txt").read_text() == (
        "keep me"
    )


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i`` (root on ext4 and friends); the test is skipped where it is not possible."""
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode
    ):
        pytest.skip("chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail with EFBIG, as on a full disk (no root or tmpfs needed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@contextlib.contextmanager
def within(seconds: int) -> Iterator[None]:
    """Fail instead of hanging when a FIFO blocks a read."""

    def hung(*_: object) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# 1. views: only what the store made is removed, nothing is followed ------------------------------------


def test_gc_leaves_a_users_directories_in_views_alone(store: Store, outside: Path) -> None:
    store.views.mkdir()
    photos = store.views / "my-photos"
    photos.mkdir()
    (photos / "cat.jpg").write_bytes(b"meow")
    lookalike = store.views / ("a" * 24)  # named like a view, but holds a real file
    lookalike.mkdir()
    (lookalike / "data.bin").write_bytes(b"mine")
    (store.views / ("b" * 24)).symlink_to(outside)  # a symlink named like a view
    stale = store.split_view([ModelFile(p, s, 1) for p, s in split(store, "Old", b"1", b"2")]).parent
    store.collect_garbage()
    assert (photos / "cat.jpg").read_bytes() == b"meow" and (lookalike / "data.bin").read_bytes() == b"mine"
    assert (store.views / ("b" * 24)).is_symlink() and untouched(outside)
    assert not stale.exists()  # the view the store made for weights nobody names went


def test_a_view_named_the_old_way_is_collected(store: Store) -> None:
    """Views used to be named by the first part's short id: such a directory of blob links goes."""
    parts = split(store, "L", b"l1", b"l2")
    store.save(manifest("l", "latest", *parts))
    legacy = store.views / parts[0][1][:12]
    legacy.mkdir(parents=True)
    for name, sha in parts:
        (legacy / name).symlink_to(store.blob_path(sha))
    store.collect_garbage()
    assert not legacy.exists() and store.has_blob(parts[1][1])


def test_a_symlinked_views_directory_is_never_followed_nor_used(store: Store, tmp_path: Path) -> None:
    victim = tmp_path / "victim-views"
    fake_view = victim / ("c" * 24)  # looks exactly like a stale view through the link
    fake_view.mkdir(parents=True)
    (fake_view / "part.gguf").symlink_to(tmp_path / "blobs" / f"sha256-{'d' * 64}")
    store.views.symlink_to(victim)
    parts = split(store, "M", b"one", b"two")
    store.save(manifest("m", "latest", *parts))
    store.collect_garbage()
    assert (fake_view / "part.gguf").is_symlink()
    with pytest.raises(IntegrityError, match=f"{store.views} is a symlink"):
        model_path(store, store.load(LocalRef("m")))  # type: ignore[arg-type]
    assert [p.name for p in victim.iterdir()] == ["c" * 24]


# 2. partial downloads and blobs are never written through a symlink -----------------------------------


def test_a_symlinked_partial_is_removed_not_appended_to(store: Store, outside: Path) -> None:
    sha = "1" * 64
    store.partial_path(sha).symlink_to(outside / "notes.txt")
    path = store.prepare_partial(sha)
    assert path == store.partial_path(sha) and not os.path.lexists(path)
    with open(path, "ab") as f:  # what the download then does
        f.write(b"model bytes")
    assert untouched(outside)


def test_a_fifo_partial_is_removed_and_a_directory_is_named(store: Store) -> None:
    fifo, directory = "2" * 64, "3" * 64
    os.mkfifo(store.partial_path(fifo))
    assert not os.path.lexists(store.prepare_partial(fifo))
    store.partial_path(directory).mkdir()
    with pytest.raises(IntegrityError, match=f"{store.partial_path(directory)}: a directory"):
        store.prepare_partial(directory)


def test_a_partial_to_resume_is_kept(store: Store) -> None:
    sha = "4" * 64
    store.partial_path(sha).write_bytes(b"half")
    assert store.prepare_partial(sha).read_bytes() == b"half"


def test_commit_refuses_a_symlinked_source(store: Store, outside: Path) -> None:
    sha = hashlib.sha256(b"keep me").hexdigest()
    store.partial_path(sha).symlink_to(outside / "notes.txt")
    with pytest.raises(IntegrityError, match=f"{store.partial_path(sha)}: a symlink"):
        store.commit_blob(store.partial_path(sha), sha)
    assert not os.path.lexists(store.blob_path(sha)) and untouched(outside)


def test_commit_replaces_a_symlink_at_the_blob_path_without_following_it(store: Store, outside: Path) -> None:
    sha = hashlib.sha256(b"weights").hexdigest()
    store.blob_path(sha).symlink_to(outside / "notes.txt")
    store.partial_path(sha).write_bytes(b"weights")
    target = store.commit_blob(store.partial_path(sha), sha)
    assert not target.is_symlink() and target.read_bytes() == b"weights" and untouched(outside)


# 3. split-model views follow the manifest ---------------------------------------------------------------


def parts_of(store: Store, path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir()) if not p.name.startswith(".")}


def test_a_re_pulled_split_model_runs_its_new_parts(store: Store) -> None:
    old = split(store, "X", b"first", b"old second", b"old third")
    store.save(manifest("x", "latest", *old))
    first = model_path(store, store.load(LocalRef("x")))  # type: ignore[arg-type]
    new = split(store, "X", b"first", b"new second", b"new third")
    store.save(manifest("x", "latest", *new))
    again = model_path(store, store.load(LocalRef("x")))  # type: ignore[arg-type]
    assert again != first and again.name == "X-00001-of-00003.gguf"
    assert parts_of(store, again) == {
        "X-00001-of-00003.gguf": b"first",
        "X-00002-of-00003.gguf": b"new second",
        "X-00003-of-00003.gguf": b"new third",
    }
    store.collect_garbage()
    assert not first.parent.exists() and again.exists()  # the old view went with the old weights


def test_two_models_sharing_a_first_part_get_their_own_views(store: Store) -> None:
    a = split(store, "S", b"shared", b"a2")
    b = split(store, "S", b"shared", b"b2")
    store.save(manifest("hf.co/one/S-GGUF", "Q8_0", *a))
    store.save(manifest("hf.co/two/S-GGUF", "Q8_0", *b))
    path_a = model_path(store, store.load(HubRef("one/S-GGUF", "Q8_0")))  # type: ignore[arg-type]
    path_b = model_path(store, store.load(HubRef("two/S-GGUF", "Q8_0")))  # type: ignore[arg-type]
    assert parts_of(store, path_a)["S-00002-of-00002.gguf"] == b"a2"
    assert parts_of(store, path_b)["S-00002-of-00002.gguf"] == b"b2"
    store.collect_garbage()
    assert path_a.exists() and path_b.exists()  # both are live


def test_a_view_removed_or_damaged_is_made_again(store: Store, outside: Path) -> None:
    parts = split(store, "Y", b"y1", b"y2")
    store.save(manifest("y", "latest", *parts))
    loaded = store.load(LocalRef("y"))
    assert loaded is not None
    path = model_path(store, loaded)
    shutil.rmtree(path.parent)  # what an old prune did
    assert model_path(store, loaded) == path and parts_of(store, path)["Y-00002-of-00002.gguf"] == b"y2"
    second = path.parent / "Y-00002-of-00002.gguf"
    second.unlink()
    second.symlink_to(outside / "notes.txt")  # points elsewhere: replaced
    model_path(store, loaded)
    assert os.readlink(second) == os.path.abspath(store.blob_path(parts[1][1])) and untouched(outside)
    assert path.parent.name == view_id(loaded.files)


def test_a_part_name_that_is_not_a_file_name_is_refused(store: Store) -> None:
    parts = split(store, "Z", b"z1", b"z2")
    bad = manifest("z", "latest", parts[0], ("..", parts[1][1]))
    with pytest.raises(IntegrityError, match="no usable file name"):
        store.split_view(bad.files)


# 4. save refuses what load would call damaged ------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [{"license": "x" * ((1 << 20) + 1)}, {"parameters": 2**63}, {"architecture": "y" * ((1 << 20) + 1)}],
)
def test_save_refuses_a_manifest_it_would_call_damaged(store: Store, changes: dict[str, object]) -> None:
    sha = blob(store, b"w")
    with pytest.raises(IntegrityError, match=r"cannot record hf\.co/acme/T-GGUF:Q8_0: "):
        store.save(manifest("hf.co/acme/T-GGUF", "Q8_0", ("T.gguf", sha), **changes))
    assert list(store.manifests_dir.iterdir()) == []  # nothing written, no directory left behind


# 11, 12. counts, nesting and size that used to crash the reader ------------------------------------------


def write_raw(store: Store, ref: LocalRef, raw: bytes) -> Path:
    path = store.manifest_path(ref)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def test_a_count_past_int64_is_damage_not_overflow(store: Store) -> None:
    data = json.loads(manifest("big", "latest", ("b.gguf", "a" * 64)).to_json())
    data["parameters"] = 10**400
    write_raw(store, LocalRef("big"), json.dumps(data).encode())
    [problem] = store.problems()
    assert "parameters must be a whole number from 0 to 2**63 - 1, not a 401-digit number" in (
        problem.problem or ""
    )
    with pytest.raises(IntegrityError, match="big:latest is damaged"):
        store.load(LocalRef("big"))


def test_a_deeply_nested_manifest_is_damage_not_recursion(store: Store) -> None:
    write_raw(store, LocalRef("deep"), b"[" * 100_000 + b"]" * 100_000)
    [problem] = store.problems()
    assert problem.problem == "nested too deeply to be a manifest"
    data = json.loads(manifest("deep2", "latest", ("d.gguf", "a" * 64)).to_json())
    nested: object = 1
    for _ in range(500):
        nested = [nested]
    data["config"]["parameters"] = {"stop": nested}
    write_raw(store, LocalRef("deep2"), json.dumps(data).encode())
    assert any("nested more than" in (p.problem or "") for p in store.problems())


def test_a_huge_manifest_is_refused_without_reading_it(store: Store) -> None:
    path = write_raw(store, LocalRef("huge"), b"")
    os.truncate(path, 1 << 40)  # a sparse terabyte: reading it whole would never end
    [problem] = store.problems()
    assert f"larger than {MAX_MANIFEST_BYTES >> 20} MiB" in (problem.problem or "")
    with pytest.raises(ManifestError, match="larger than"):
        Manifest.from_json(b" " * (MAX_MANIFEST_BYTES + 1))


# 18, 20, 21. FIFOs, symlinks and directories where manifests belong ---------------------------------------


def test_a_fifo_manifest_never_blocks(store: Store) -> None:
    orphan = blob(store, b"orphan")
    fifo = store.manifest_path(LocalRef("pipe"))
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    with within(10):
        [problem] = store.problems()
        assert problem.path == fifo and "a FIFO, not a regular file" in (problem.problem or "")
        assert store.collect_garbage().removed == (orphan,)
        assert store.remove_manifest(LocalRef("pipe")) and not os.path.lexists(fifo)


def test_a_symlinked_manifest_is_a_problem_removable_without_touching_its_target(
    store: Store, tmp_path: Path
) -> None:
    kept = blob(store, b"weights")
    elsewhere = tmp_path / "other.json"
    elsewhere.write_bytes(manifest("other", "latest", ("o.gguf", kept)).to_json())
    link = store.manifest_path(LocalRef("other"))
    link.parent.mkdir(parents=True)
    link.symlink_to(elsewhere)
    [problem] = store.problems()
    assert problem.ref == LocalRef("other") and problem.removable_as == "other:latest"
    assert problem.problem == f"{link} is a symlink, not a manifest llamadeck wrote"
    with pytest.raises(IntegrityError, match=f"{link} is a symlink"):
        store.load(LocalRef("other"))
    collection = store.collect_garbage()  # a link it may not follow might name any blob
    assert collection.blocked_by == link and "symlink" in (collection.blocked_because or "")
    assert store.has_blob(kept)
    assert store.remove_manifest(LocalRef("other"))
    assert not os.path.lexists(link) and Manifest.from_json(elsewhere.read_bytes()).tag == "latest"


def test_a_symlinked_directory_under_manifests_is_never_written_through(store: Store, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (store.manifests_dir / "library").mkdir()
    (store.manifests_dir / "library" / "mine").symlink_to(elsewhere)
    sha = blob(store, b"w")
    with pytest.raises(IntegrityError, match="is a symlink, not a directory llamadeck made"):
        store.save(manifest("mine", "latest", ("m.gguf", sha)))
    with pytest.raises(IntegrityError, match="delete it by hand"):
        store.remove_manifest(LocalRef("mine"))
    assert list(elsewhere.iterdir()) == []
    [problem] = store.problems()
    assert problem.ref is None and problem.removable_as is None and "symlink" in (problem.problem or "")


def test_a_directory_in_a_manifests_place_is_removable_by_its_name(store: Store, outside: Path) -> None:
    directory = store.manifest_path(LocalRef("mine"))
    directory.mkdir(parents=True)
    (directory / "inside").symlink_to(outside)  # removed as a link, never followed
    problem, inside = store.problems()
    assert inside.removable_as is None and "symlink" in (inside.problem or "")
    assert problem.removable_as == "mine:latest" and "a directory" in (problem.problem or "")
    assert problem.repair == "remove it with llamadeck rm mine:latest"
    assert store.remove_manifest(LocalRef("mine"))
    assert not directory.exists() and not (store.manifests_dir / "library").exists() and untouched(outside)


# 22. stray files: advice that works --------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    ["library/mine/Latest.json", "stray.json", "hf.co/acme/x/q8_0.json", "library/my model/latest.json"],
)
def test_a_stray_file_is_to_be_deleted_by_hand(store: Store, where: str) -> None:
    stray = store.manifests_dir / where
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("{}")
    [problem] = store.problems()
    assert problem.removable_as is None
    assert problem.repair == f"delete {stray} by hand: no model name stands for it, so llamadeck rm cannot"


def test_a_misnamed_manifest_is_removable_by_its_path_name(store: Store) -> None:
    copied = write_raw(store, LocalRef("tiny2"), manifest("tiny", "latest", ("t.gguf", "a" * 64)).to_json())
    [problem] = store.problems()
    assert problem.path == copied and problem.removable_as == "tiny2:latest"


# 23. removing with an immutable manifests/ ---------------------------------------------------------------


def test_rm_with_an_immutable_manifests_dir_still_collects(store: Store) -> None:
    orphan = blob(store, b"mine")
    store.save(manifest("mine", "latest", ("m.gguf", orphan)))
    with immutable(store.manifests_dir):
        assert store.remove_manifest(LocalRef("mine"))  # library/ cannot go: that is fine
        assert store.collect_garbage().removed == (orphan,)
    assert (store.manifests_dir / "library").is_dir()


# 30, 31, 32. space and layout errors name the path ----------------------------------------------------------


def test_a_full_disk_during_a_manifest_write_names_it_and_leaves_no_directory(store: Store) -> None:
    sha = blob(store, b"w")
    copy = manifest("copy1", "latest", ("c.gguf", sha), license="x" * 100_000)
    with (
        file_size_limit(4096),
        pytest.raises(DiskFull, match=f"cannot write {store.manifest_path(copy.ref)}"),
    ):
        store.save(copy)
    assert not (store.manifests_dir / "library").exists()


def test_a_directory_at_the_blob_path_is_named(store: Store) -> None:
    sha = hashlib.sha256(b"w").hexdigest()
    store.blob_path(sha).mkdir()
    store.partial_path(sha).write_bytes(b"w")
    with pytest.raises(IntegrityError, match=f"cannot store the blob {store.blob_path(sha)}: a directory"):
        store.commit_blob(store.partial_path(sha), sha)
    assert store.partial_path(sha).exists()  # the download is kept


def test_an_immutable_blobs_dir_names_the_blob(store: Store) -> None:
    sha = hashlib.sha256(b"w").hexdigest()
    store.partial_path(sha).write_bytes(b"w")
    with (
        immutable(store.blobs),
        pytest.raises(LlamadeckError, match=f"cannot store the blob {store.blob_path(sha)}"),
    ):
        store.commit_blob(store.partial_path(sha), sha)


@pytest.mark.parametrize("name", ["partial", "locks", "blobs", "manifests"])
def test_a_file_where_a_store_directory_belongs_is_named(tmp_path: Path, name: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / name).write_text("in the way")
    with pytest.raises(InvalidInput, match=f"{home / name} is a file, not a directory"):
        Store(home).ensure()
    with pytest.raises(InvalidInput, match=f"{home / name} is a file"):
        Store(home).load(LocalRef("mine"))  # show and run, not just pull


def test_a_dangling_or_looping_home_is_named(tmp_path: Path) -> None:
    dangling = tmp_path / "home"
    dangling.symlink_to(tmp_path / "gone")
    with pytest.raises(InvalidInput, match=f"{dangling} is a symlink to .*gone.*, which does not exist"):
        Store(dangling).ensure()
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(InvalidInput, match=f"{loop} is a symlink loop"):
        list(Store(loop).manifests())


def test_a_file_in_the_way_of_a_manifest_directory_is_named(store: Store) -> None:
    (store.manifests_dir / "library").write_text("in the way")
    sha = blob(store, b"w")
    with pytest.raises(LlamadeckError, match=f"{store.manifests_dir / 'library'} is a file, not a directory"):
        store.save(manifest("mine", "latest", ("m.gguf", sha)))


# locks -------------------------------------------------------------------------------------------------


def test_a_symlinked_lock_file_is_replaced_not_followed(store: Store, outside: Path) -> None:
    path = store.locks / f"sha256-{'5' * 64}.lock"
    path.symlink_to(outside / "notes.txt")
    lock = FileLock(path)
    assert lock.try_acquire()
    lock.release()
    assert not path.is_symlink() and untouched(outside)


def test_a_directory_in_a_locks_place_is_named(store: Store) -> None:
    path = store.locks / "store.lock"
    path.mkdir()
    with pytest.raises(LlamadeckError, match=f"cannot take the lock {path}: a directory"):
        store.store_lock().try_acquire()
    store.prune()  # and prune steps over it
