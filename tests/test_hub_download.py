"""engine.ingest.hub.download against the fake Hub: resuming, cancelling, error answers, a full disk."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from huggingface_hub import constants

from engine.cancel import CancelToken
from engine.errors import (
    Cancelled,
    DiskFull,
    HubUnreachable,
    LlamadeckError,
    NetworkError,
)
from engine.ingest.hub.download import download
from engine.ingest.hub.remote import RemoteFile
from engine.store.transfer import HashingFile, hash_file
from engine.units import format_size
from tests.support.fake_hub import FakeHub
from tests.support.hub_checks import MIB, REPO, meter, one_line, remote, served


@pytest.fixture
def fake() -> Iterator[FakeHub]:
    with FakeHub() as server, server.patch_endpoint():
        yield server


# -- cancelling ----------------------------------------------------------------------


def _download_in_thread(
    commit: str, file: RemoteFile, partial: Path, cancel: CancelToken
) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def run() -> None:
        try:
            download(REPO, commit, file, partial, meter(), cancel=cancel)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            failures.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, failures


def _wait_for_size(path: Path, at_least: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.stat().st_size >= at_least):
        assert time.monotonic() < deadline, "the download never got going"
        time.sleep(0.02)


def test_cancel_during_a_slow_download_stops_it_and_the_next_pull_resumes(
    fake: FakeHub, tmp_path: Path
) -> None:
    data = os.urandom(24 * MIB)
    commit = fake.add_repo(REPO, {"slow.gguf": data})
    fake.fault("slow.gguf", "slow", rate=4 * MIB, times=1)
    file, partial, cancel = remote("slow.gguf", data), tmp_path / "slow.partial", CancelToken()

    thread, failures = _download_in_thread(commit, file, partial, cancel)
    _wait_for_size(partial, 2 * MIB)
    cancel.cancel()
    thread.join(timeout=60)

    # the slow file takes 6 s to serve whole: a cancel that did not land stops nothing (kept == data)
    assert not thread.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], Cancelled), failures
    assert str(failures[0]) == "pull cancelled: the partial download is kept; pull again to resume"
    kept = partial.read_bytes()
    assert 2 * MIB <= len(kept) < len(data) and data.startswith(kept)
    assert not [t for t in threading.enumerate() if t.name == "sha256"]  # the hash thread stopped

    served(fake, "slow.gguf")  # the cancelled response's last writes are counted before the reset
    fake.reset_counts()
    assert download(REPO, commit, file, partial, meter()) == file.sha256
    assert served(fake, "slow.gguf") == len(data) - len(kept)


def test_cancel_on_a_stalled_connection_is_noticed_at_the_read_timeout(
    fake: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    data = os.urandom(4 * MIB)
    commit = fake.add_repo(REPO, {"stall.gguf": data})
    fake.fault("stall.gguf", "stall", at=MIB, times=1)  # 1 MiB, then silence
    fake.fault("stall.gguf", "stall", at=0)  # and every resume http_get tries stays silent
    file, partial, cancel = remote("stall.gguf", data), tmp_path / "stall.partial", CancelToken()

    thread, failures = _download_in_thread(commit, file, partial, cancel)
    _wait_for_size(partial, MIB)
    cancel.cancel()
    thread.join(timeout=60)

    # the read timeout and at most one resume, not five more tries of both: counted, not timed
    resumes = [r for r in fake.requests if r[0] == "GET" and r[1].endswith("/stall.gguf")]
    assert not thread.is_alive() and len(resumes) <= 2, resumes
    assert len(failures) == 1 and isinstance(failures[0], Cancelled), failures
    assert partial.read_bytes() == data[:MIB]


def test_a_cancelled_token_stops_a_download_before_it_starts(fake: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(MIB)
    commit = fake.add_repo(REPO, {"x.gguf": data})
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled, match="nothing changed"):
        download(REPO, commit, remote("x.gguf", data), tmp_path / "x.partial", meter(), cancel=cancel)
    assert not (tmp_path / "x.partial").exists()
    assert fake.requests == []


def test_hashing_file_refuses_writes_once_cancelled_and_keeps_what_it_has(tmp_path: Path) -> None:
    cancel = CancelToken()
    sink = HashingFile(tmp_path / "p", meter(), cancel=cancel)
    sink.write(b"abc")
    cancel.cancel()
    with pytest.raises(Cancelled, match="partial download is kept"):
        sink.write(b"def")
    sink.close()
    sink.close()  # twice is fine
    assert (tmp_path / "p").read_bytes() == b"abc"


def test_hash_file_checks_the_token(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert hash_file(path) == hashlib.sha256(b"x" * 100).hexdigest()
    cancel = CancelToken()
    cancel.cancel("verify cancelled")
    with pytest.raises(Cancelled, match="verify cancelled"):
        hash_file(path, cancel=cancel)


# -- error answers -------------------------------------------------------------------


@pytest.mark.parametrize("bare", [False, True], ids=["json-body", "no-body"])
def test_a_503_before_any_byte_leaves_no_partial(fake: FakeHub, tmp_path: Path, bare: bool) -> None:
    data = os.urandom(MIB)
    commit = fake.add_repo(REPO, {"x.gguf": data})
    fake.fault("x.gguf", "status", code=503, bare=bare)
    partial = tmp_path / "partial" / "x.partial"
    with pytest.raises(HubUnreachable, match=f"Hugging Face at {fake.url} answered 503") as caught:
        download(REPO, commit, remote("x.gguf", data), partial, meter())
    assert fake.requests == [("GET", f"/{REPO}/resolve/{commit}/x.gguf")]  # asked once: no retries
    assert "nothing was downloaded" in str(caught.value) and one_line(str(caught.value))
    assert not partial.exists()


def test_a_503_keeps_a_partial_that_was_there(fake: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(MIB)
    commit = fake.add_repo(REPO, {"x.gguf": data})
    partial = tmp_path / "x.partial"
    partial.write_bytes(data[:1000])
    fake.fault("x.gguf", "status", code=503)
    with pytest.raises(HubUnreachable, match="partial download .* is kept: run pull again to resume"):
        download(REPO, commit, remote("x.gguf", data), partial, meter())
    assert partial.read_bytes() == data[:1000]


# -- local failures ------------------------------------------------------------------


def test_a_directory_in_place_of_the_partial_is_named_in_the_error(fake: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(MIB)
    commit = fake.add_repo(REPO, {"x.gguf": data})
    partial = tmp_path / "x.partial"
    partial.mkdir()
    with pytest.raises(LlamadeckError) as caught:
        download(REPO, commit, remote("x.gguf", data), partial, meter())
    assert str(caught.value).startswith(f"cannot write the partial download {partial}: ")
    assert partial.is_dir()
    assert fake.requests == []


def test_a_content_range_that_is_not_a_number_is_not_the_hub(fake: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(MIB)
    commit = fake.add_repo(REPO, {"x.gguf": data})
    partial = tmp_path / "x.partial"
    partial.write_bytes(data[:1000])
    fake.fault("x.gguf", "headers", headers={"Content-Range": "bytes 1000-1048575/*"})
    with pytest.raises(HubUnreachable) as caught:
        download(REPO, commit, remote("x.gguf", data), partial, meter())
    message = str(caught.value)
    assert "not the Hugging Face API (ValueError: invalid literal for int()" in message, message
    assert message.endswith(f"the partial download ({format_size(1000)}) is kept: run pull again to resume")


def test_a_file_over_huggingface_hubs_plain_http_limit_is_refused_in_one_line(
    fake: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(MIB)
    commit = fake.add_repo(REPO, {"x.gguf": data})
    monkeypatch.setattr(constants, "MAX_HTTP_DOWNLOAD_SIZE", MIB // 2)
    with pytest.raises(
        NetworkError, match=f"^x\\.gguf is {format_size(MIB)}: huggingface_hub fetches files over .* hf_xet"
    ):
        download(REPO, commit, remote("x.gguf", data), tmp_path / "x.partial", meter())
    assert fake.requests == [] and not (tmp_path / "x.partial").exists()


# -- a full disk ---------------------------------------------------------------------


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail with EFBIG, as on a full disk (RLIMIT_FSIZE, SIGXFSZ ignored)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_full_disk_says_what_is_really_kept(fake: FakeHub, tmp_path: Path) -> None:
    small, large = os.urandom(50_000), os.urandom(3 * MIB)
    commit = fake.add_repo(REPO, {"small.gguf": small, "large.gguf": large})
    partial = tmp_path / "small.partial"
    with file_size_limit(0), pytest.raises(DiskFull) as nothing:
        download(REPO, commit, remote("small.gguf", small), partial, meter())
    assert (
        str(nothing.value)
        == "disk full while downloading small.gguf: nothing kept; free some space and pull again"
    )
    assert not partial.exists()

    partial = tmp_path / "large.partial"
    with file_size_limit(MIB), pytest.raises(DiskFull) as some:
        download(REPO, commit, remote("large.gguf", large), partial, meter())
    kept = partial.stat().st_size
    assert 0 < kept <= MIB and large.startswith(partial.read_bytes())
    assert str(some.value) == (
        f"disk full while downloading large.gguf: {format_size(kept)} kept in {partial}; "
        "free some space and run pull again to resume"
    )
