"""The fake Hub against the real ``huggingface_hub`` client: no mocks, loopback HTTP only."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import (
    HfApi,
    HfFileSystem,
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from huggingface_hub.hf_api import RepoFile, RepoFolder

from tests.support.fake_hub import FakeHub, isolated_hf_env

REPO = "acme/Tiny-GGUF"
MODEL = "Tiny-Q4_K_M.gguf"
SHARD = "shards/Tiny-Q8_0-00001-of-00002.gguf"
README = b"# Tiny\n"


@pytest.fixture(autouse=True)
def hf_env(tmp_path: Path) -> Iterator[Path]:
    with isolated_hf_env(tmp_path / "hf-home") as home:
        yield home


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as hub, hub.patch_endpoint():
        yield hub


@pytest.fixture
def model(tmp_path: Path) -> bytes:
    """A 3 MiB random 'GGUF', served from disk."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "model.gguf").write_bytes(data)
    return data


@pytest.fixture
def commit(hub: FakeHub, model: bytes, tmp_path: Path) -> str:
    files: dict[str, bytes | Path] = {
        "README.md": README,
        MODEL: tmp_path / "model.gguf",
        SHARD: os.urandom(4096),
        "shards/notes/about.txt": b"two shards\n",
    }
    return hub.add_repo(REPO, files)


def download(name: str, cache: Path, **kwargs: object) -> bytes:
    return Path(hf_hub_download(REPO, name, revision="main", cache_dir=cache, **kwargs)).read_bytes()


def test_patch_endpoint_points_the_client_at_the_fake(hub: FakeHub) -> None:
    assert constants.ENDPOINT == hub.url == os.environ["HF_ENDPOINT"]
    assert hf_hub_url(REPO, MODEL).startswith(hub.url + "/")


def test_model_info_with_files_metadata(hub: FakeHub, commit: str, model: bytes) -> None:
    info = HfApi().model_info(REPO, revision="main", files_metadata=True)

    assert info.id == REPO and info.sha == commit and info.gated is False and info.private is False
    siblings = {sibling.rfilename: sibling for sibling in info.siblings or []}
    assert set(siblings) == {"README.md", MODEL, SHARD, "shards/notes/about.txt"}
    lfs = siblings[MODEL].lfs
    assert lfs is not None and lfs.sha256 == hashlib.sha256(model).hexdigest() and lfs.size == len(model)
    assert siblings["README.md"].lfs is None and siblings["README.md"].size == len(README)
    assert HfApi().model_info(REPO, revision=commit).sha == commit


def test_list_repo_tree_recursive_and_one_level(hub: FakeHub, commit: str) -> None:
    entries = {entry.path: entry for entry in HfApi().list_repo_tree(REPO, recursive=True, revision="main")}

    assert isinstance(entries["shards"], RepoFolder) and isinstance(entries["shards/notes"], RepoFolder)
    shard = entries[SHARD]
    assert isinstance(shard, RepoFile) and shard.lfs is not None and shard.lfs.size == shard.size == 4096
    assert (
        isinstance(entries["shards/notes/about.txt"], RepoFile)
        and entries["shards/notes/about.txt"].lfs is None
    )
    top = {entry.path for entry in HfApi().list_repo_tree(REPO, revision=commit)}
    assert top == {"README.md", MODEL, "shards"}
    nested = {entry.path for entry in HfApi().list_repo_tree(REPO, path_in_repo="shards", revision="main")}
    assert nested == {SHARD, "shards/notes"}


def test_get_paths_info_skips_missing_paths(hub: FakeHub, commit: str) -> None:
    infos = HfApi().get_paths_info(REPO, ["README.md", "shards", "missing.bin"], revision="main")

    assert [(type(info), info.path) for info in infos] == [(RepoFile, "README.md"), (RepoFolder, "shards")]


def test_hf_hub_download_returns_the_added_bytes(
    hub: FakeHub, commit: str, model: bytes, tmp_path: Path
) -> None:
    assert download(MODEL, tmp_path / "cache") == model
    assert hub.bytes_served[MODEL] == len(model)
    assert hub.requests[-2:] == [
        ("HEAD", f"/{REPO}/resolve/main/{MODEL}"),
        ("GET", f"/{REPO}/resolve/main/{MODEL}"),
    ]


def test_get_hf_file_metadata_reports_commit_sha256_and_size(hub: FakeHub, commit: str, model: bytes) -> None:
    meta = get_hf_file_metadata(hf_hub_url(REPO, MODEL, revision=commit))

    assert (meta.commit_hash, meta.etag, meta.size) == (commit, hashlib.sha256(model).hexdigest(), len(model))
    assert meta.xet_file_data is None


def test_http_get_resume_only_fetches_the_remainder(
    hub: FakeHub, commit: str, model: bytes, tmp_path: Path
) -> None:
    have = 1_000_000
    target = tmp_path / "partial.gguf"
    target.write_bytes(model[:have])
    with target.open("ab") as handle:
        http_get(hf_hub_url(REPO, MODEL), handle, resume_size=have, expected_size=len(model))

    assert target.read_bytes() == model
    assert hub.bytes_served[MODEL] == len(model) - have


def test_cut_connection_is_resumed_by_huggingface_hub(hub: FakeHub, tmp_path: Path) -> None:
    # http_get resumes from what it wrote, and it writes in DOWNLOAD_CHUNK_SIZE (10 MiB) pieces: cut past one.
    data = os.urandom(2 * constants.DOWNLOAD_CHUNK_SIZE + 12345)
    (tmp_path / "big.gguf").write_bytes(data)
    hub.add_repo(REPO, {"big.gguf": tmp_path / "big.gguf"})
    hub.fault("big.gguf", "cut", at=constants.DOWNLOAD_CHUNK_SIZE + 4096, times=1)

    assert download("big.gguf", tmp_path / "cache") == data
    assert len(data) < hub.bytes_served["big.gguf"] < 1.1 * len(data)
    assert [method for method, path in hub.requests if path.endswith("big.gguf")] == ["HEAD", "GET", "GET"]


def test_cut_inside_the_first_download_chunk_restarts_from_zero(
    hub: FakeHub, commit: str, model: bytes, tmp_path: Path
) -> None:
    # huggingface_hub quirk: bytes buffered by iter_bytes(chunk_size=10 MiB) are lost when the stream breaks.
    hub.fault(MODEL, "cut", at=len(model) // 3, times=1)

    assert download(MODEL, tmp_path / "cache") == model
    assert hub.bytes_served[MODEL] == len(model) + len(model) // 3


def test_corrupt_fault_keeps_length_but_changes_bytes(
    hub: FakeHub, commit: str, model: bytes, tmp_path: Path
) -> None:
    hub.fault(MODEL, "corrupt", times=1)

    served = download(MODEL, tmp_path / "cache")
    assert len(served) == len(model) and served != model


def test_unknown_repo_and_revision(hub: FakeHub, commit: str, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("acme/missing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/missing", MODEL, cache_dir=tmp_path / "cache")
    with pytest.raises(RevisionNotFoundError):
        HfApi().model_info(REPO, revision="no-such-branch")


def test_missing_file_raises_entry_not_found(hub: FakeHub, commit: str, tmp_path: Path) -> None:
    with pytest.raises(EntryNotFoundError):
        download("missing.gguf", tmp_path / "cache")


def test_gated_repo_needs_a_token(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo("acme/gated", {"w.gguf": b"weights"}, gated=True)

    assert HfApi().model_info("acme/gated").gated == "auto"
    with pytest.raises(GatedRepoError):
        hf_hub_download("acme/gated", "w.gguf", cache_dir=tmp_path / "cache", token=False)
    path = hf_hub_download("acme/gated", "w.gguf", cache_dir=tmp_path / "cache", token="hf_anything")
    assert Path(path).read_bytes() == b"weights"


@pytest.mark.parametrize("form", ["{repo}@main/{name}", "{repo}/{name}"])
def test_hf_file_system_ranged_read(hub: FakeHub, commit: str, model: bytes, form: str) -> None:
    fs = HfFileSystem(skip_instance_cache=True)
    with fs.open(form.format(repo=REPO, name=MODEL), "rb", block_size=64 * 1024) as handle:
        handle.seek(100)
        assert handle.read(100) == model[100:200]

    assert 0 < hub.bytes_served[MODEL] <= 64 * 1024 + 100


def test_status_faults(hub: FakeHub, commit: str) -> None:
    url = hf_hub_url(REPO, MODEL)
    hub.fault(MODEL, "status", code=503, times=1)
    with pytest.raises(HfHubHTTPError) as raised:
        get_hf_file_metadata(url)
    assert raised.value.response.status_code == 503
    assert get_hf_file_metadata(url).commit_hash == commit

    hub.fault(MODEL, "status", code=404, times=1)
    with pytest.raises(EntryNotFoundError):
        get_hf_file_metadata(url)

    hub.fault("*", "status", code=500, times=1)
    with pytest.raises(HfHubHTTPError):
        HfApi().model_info(REPO)
    assert HfApi().model_info(REPO).sha == commit


def test_refuse_fault_is_a_connection_error(hub: FakeHub, commit: str, tmp_path: Path) -> None:
    hub.fault(MODEL, "refuse")

    with pytest.raises(httpx2.TransportError):
        get_hf_file_metadata(hf_hub_url(REPO, MODEL))
    with pytest.raises(httpx2.TransportError):
        download(MODEL, tmp_path / "cache")
    hub.clear_faults()
    assert get_hf_file_metadata(hf_hub_url(REPO, MODEL)).commit_hash == commit


def test_slow_fault_throttles_the_body(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo(REPO, {"small.bin": b"x" * 40_000})
    hub.fault("small.bin", "slow", rate=100_000)

    began = time.monotonic()
    with (tmp_path / "small.bin").open("wb") as handle:
        http_get(hf_hub_url(REPO, "small.bin"), handle)
    assert time.monotonic() - began >= 0.35
    assert (tmp_path / "small.bin").read_bytes() == b"x" * 40_000


def test_range_requests_and_counters(hub: FakeHub, commit: str, model: bytes) -> None:
    url = hf_hub_url(REPO, MODEL)
    with httpx2.Client() as client:
        middle = client.get(url, headers={"Range": "bytes=10-19"})
        tail = client.get(url, headers={"Range": "bytes=-5"})
        beyond = client.get(url, headers={"Range": f"bytes={len(model)}-"})

    assert (middle.status_code, middle.content) == (206, model[10:20])
    assert middle.headers["Content-Range"] == f"bytes 10-19/{len(model)}"
    assert (tail.status_code, tail.content) == (206, model[-5:])
    assert beyond.status_code == 416
    assert hub.bytes_served[MODEL] == 15
    hub.reset_counts()
    assert hub.bytes_served[MODEL] == 0 and hub.requests == []
