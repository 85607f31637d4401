"""engine.ingest.hub against the real huggingface_hub client and the loopback fake Hub: no mocks."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gguf
import numpy as np
import pytest
from huggingface_hub import constants

from engine.ingest import hub
from engine.cancel import CancelToken
from engine.errors import (
    AccessDenied,
    Cancelled,
    DiskFull,
    GatedRepo,
    HubUnreachable,
    IntegrityError,
    InvalidInput,
    InvalidReference,
    LlamadeckError,
    NetworkError,
    RepoNotFound,
)
from engine.events import Progress
from engine.store.refs import HubRef
from engine.store.transfer import HashingFile, ProgressMeter, hash_file
from engine.units import format_size
from tests.support.fake_hub import FakeHub
from tests.support.tiny_gguf import write_tiny_gguf

REPO = "acme/Hub-GGUF"
MIB = 1024 * 1024
BIG_VOCAB = 150_000


@pytest.fixture
def fake() -> Iterator[FakeHub]:
    with FakeHub() as server, server.patch_endpoint():
        yield server


@pytest.fixture(scope="module")
def big_vocab_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GGUF whose header (150k tokens, ~4 MB) is far bigger than the first 1 MiB read; 8 MiB of data."""
    path = tmp_path_factory.mktemp("big-vocab") / "Big-Vocab-Q8_0.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("Big Vocab")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q8_0))
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"token-{i:08d}" for i in range(BIG_VOCAB)])
    writer.add_token_scores([0.0] * BIG_VOCAB)
    writer.add_token_types([int(gguf.TokenType.NORMAL)] * BIG_VOCAB)
    writer.add_tensor("token_embd.weight", np.zeros((8, 64), dtype=np.float32))
    writer.add_tensor("llamadeck.pad", np.zeros(8 * MIB, dtype=np.int8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def remote(path: str, data: bytes) -> hub.RemoteFile:
    return hub.RemoteFile(path, len(data), hashlib.sha256(data).hexdigest())


def meter(events: list[Progress] | None = None, total: int = 0) -> ProgressMeter:
    return ProgressMeter((events if events is not None else []).append, "downloading", "f", total)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens once the socket is closed


def served(fake: FakeHub, path: str, settle: float = 0.3) -> int:
    """Body bytes served for ``path``, once the server has counted them (it counts after sending)."""
    last, deadline = -1, time.monotonic() + 5
    while time.monotonic() < deadline:
        now = fake.bytes_served[path]
        if now == last:
            return now
        last = now
        time.sleep(settle)
    return last


class RootRecords(logging.Handler):
    """What reaches the root logger (and so a front end's logging setup), while in a ``with`` block.

    Not caplog: pytest attaches caplog's handler to non-propagating loggers too.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> RootRecords:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger().removeHandler(self)


def one_line(message: str) -> bool:
    return message.isprintable()


# -- the remote header ---------------------------------------------------------------


def test_a_header_bigger_than_the_first_read_is_read_into_memory(
    fake: FakeHub, big_vocab_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_tmp = tmp_path / "tmpdir"
    empty_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(empty_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches the directory: make it look again
    commit = fake.add_repo(REPO, {big_vocab_gguf.name: big_vocab_gguf})
    data = big_vocab_gguf.read_bytes()

    info = hub.read_remote_info(REPO, commit, remote(big_vocab_gguf.name, data))

    assert info.shape.n_vocab == BIG_VOCAB and info.header_end > 3 * MIB
    assert list(empty_tmp.iterdir()) == []
    gets = [r for r in fake.requests if r == ("GET", f"/{REPO}/resolve/{commit}/{big_vocab_gguf.name}")]
    assert len(gets) >= 2  # the first 1 MiB was not enough: it grew
    read = served(fake, big_vocab_gguf.name)
    assert read < info.header_end * 1.3 < len(data), f"{read} bytes read for a {info.header_end}-byte header"


def test_a_file_that_is_not_gguf_is_refused_after_one_small_read(fake: FakeHub) -> None:
    data = os.urandom(3 * MIB)
    commit = fake.add_repo(REPO, {"noise.gguf": data})
    with pytest.raises(IntegrityError, match=r"noise\.gguf in acme/Hub-GGUF is not a GGUF file"):
        hub.read_remote_info(REPO, commit, remote("noise.gguf", data))
    assert served(fake, "noise.gguf") <= MIB


def test_a_small_file_is_read_whole_in_one_request(fake: FakeHub, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    data = path.read_bytes()
    commit = fake.add_repo(REPO, {path.name: path})
    info = hub.read_remote_info(REPO, commit, remote(path.name, data))
    assert info.architecture == "llama" and info.shape.n_vocab == 512
    assert served(fake, path.name) == len(data) < MIB


# -- an unreachable Hub --------------------------------------------------------------


def test_an_unreachable_hub_fails_fast_in_one_line_and_prints_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    url = closed_port_url()
    monkeypatch.setattr(constants, "ENDPOINT", url)
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    at_root = RootRecords()
    file = hub.RemoteFile("Tiny-Q8_0.gguf", 10 * MIB, "0" * 64)
    partial = tmp_path / "partial" / "x.partial"
    logged = len(hub.HUB_LOG)
    calls = {
        "listing": lambda: hub.fetch_listing(REPO),
        "header": lambda: hub.read_remote_info(REPO, "a" * 40, file),
        "download": lambda: hub.download(REPO, "a" * 40, file, partial, meter()),
    }
    for what, call in calls.items():
        began = time.monotonic()
        with at_root, pytest.raises(HubUnreachable) as caught:
            call()
        took = time.monotonic() - began
        assert took < 3, f"{what}: {took:.1f} s"
        message = str(caught.value)
        assert message.startswith(f"cannot reach Hugging Face at {url} (") and one_line(message), message
    assert "nothing was downloaded" in message
    assert not partial.exists()  # no empty partial left behind
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert [r for r in at_root.records if r.name.startswith("huggingface_hub")] == []
    assert any("Max retries exceeded" in line for line in list(hub.HUB_LOG)[logged:])  # it went somewhere


def test_a_refused_header_read_fails_at_once(
    fake: FakeHub, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The listing worked, then the Hub closes connections: one error now, not 24 s of retries."""
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    commit = fake.add_repo(REPO, {path.name: path})
    fake.fault(path.name, "refuse")
    began = time.monotonic()
    with pytest.raises(HubUnreachable, match=f"cannot reach Hugging Face at {fake.url} .*; nothing changed"):
        hub.read_remote_info(REPO, commit, remote(path.name, path.read_bytes()))
    assert time.monotonic() - began < 3
    assert capfd.readouterr() == ("", "")


def test_a_resumed_download_logs_to_the_ring_buffer_not_the_terminal(
    fake: FakeHub, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = os.urandom(6 * MIB)
    commit = fake.add_repo(REPO, {"cut.gguf": data})
    fake.fault("cut.gguf", "cut", at=2 * MIB, times=1)
    digest = hub.download(REPO, commit, remote("cut.gguf", data), tmp_path / "cut.partial", meter())
    assert digest == hashlib.sha256(data).hexdigest()
    assert served(fake, "cut.gguf") < len(data) + MIB  # resumed with a Range, not restarted
    assert any("Error while downloading" in line for line in hub.HUB_LOG)
    assert capfd.readouterr() == ("", "")


def test_huggingface_hub_warnings_go_to_the_ring_buffer_and_others_pass() -> None:
    import huggingface_hub.file_download

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        hub._quiet_hub()
        warnings.warn_explicit(
            "from the hub\x1b[2J", UserWarning, huggingface_hub.file_download.__file__, 1, module="x"
        )
        warnings.warn("from elsewhere", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["from elsewhere"]
    assert hub.HUB_LOG[-1] == "UserWarning: from the hub\\x1b[2J"


# -- cancelling ----------------------------------------------------------------------


def _download_in_thread(
    commit: str, file: hub.RemoteFile, partial: Path, cancel: CancelToken
) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def run() -> None:
        try:
            hub.download(REPO, commit, file, partial, meter(), cancel=cancel)
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


def test_cancel_during_a_slow_download_lands_within_a_second_and_the_next_pull_resumes(
    fake: FakeHub, tmp_path: Path
) -> None:
    data = os.urandom(24 * MIB)
    commit = fake.add_repo(REPO, {"slow.gguf": data})
    fake.fault("slow.gguf", "slow", rate=4 * MIB, times=1)
    file, partial, cancel = remote("slow.gguf", data), tmp_path / "slow.partial", CancelToken()

    thread, failures = _download_in_thread(commit, file, partial, cancel)
    _wait_for_size(partial, 2 * MIB)
    cancelled_at = time.monotonic()
    cancel.cancel()
    thread.join(timeout=10)
    took = time.monotonic() - cancelled_at

    assert not thread.is_alive() and took < 1.5, f"the cancel took {took:.2f} s"
    assert len(failures) == 1 and isinstance(failures[0], Cancelled), failures
    assert str(failures[0]) == "pull cancelled: the partial download is kept; pull again to resume"
    kept = partial.read_bytes()
    assert 2 * MIB <= len(kept) < len(data) and data.startswith(kept)
    assert not [t for t in threading.enumerate() if t.name == "sha256"]  # the hash thread stopped

    fake.reset_counts()
    assert hub.download(REPO, commit, file, partial, meter()) == file.sha256
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
    cancelled_at = time.monotonic()
    cancel.cancel()
    thread.join(timeout=10)
    took = time.monotonic() - cancelled_at

    # the read timeout (1 s) and http_get's pause before resuming (1 s), not five more tries of both
    assert not thread.is_alive() and took < 3, f"the cancel took {took:.2f} s with a 1 s read timeout"
    assert len(failures) == 1 and isinstance(failures[0], Cancelled), failures
    assert partial.read_bytes() == data[:MIB]


def test_a_cancelled_token_stops_a_download_before_it_starts(fake: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(MIB)
    commit = fake.add_repo(REPO, {"x.gguf": data})
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled, match="nothing changed"):
        hub.download(REPO, commit, remote("x.gguf", data), tmp_path / "x.partial", meter(), cancel=cancel)
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
    began = time.monotonic()
    with pytest.raises(HubUnreachable, match=f"Hugging Face at {fake.url} answered 503") as caught:
        hub.download(REPO, commit, remote("x.gguf", data), partial, meter())
    assert time.monotonic() - began < 3
    assert "nothing was downloaded" in str(caught.value) and one_line(str(caught.value))
    assert not partial.exists()


def test_a_503_keeps_a_partial_that_was_there(fake: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(MIB)
    commit = fake.add_repo(REPO, {"x.gguf": data})
    partial = tmp_path / "x.partial"
    partial.write_bytes(data[:1000])
    fake.fault("x.gguf", "status", code=503)
    with pytest.raises(HubUnreachable, match="partial download .* is kept: run pull again to resume"):
        hub.download(REPO, commit, remote("x.gguf", data), partial, meter())
    assert partial.read_bytes() == data[:1000]


def test_gated_and_missing_repos_name_the_configured_endpoint(fake: FakeHub, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    data = path.read_bytes()
    commit = fake.add_repo("acme/Gated-GGUF", {path.name: path}, gated=True)
    with pytest.raises(GatedRepo) as gated:
        hub.read_remote_info("acme/Gated-GGUF", commit, remote(path.name, data))
    assert str(gated.value) == (
        f"acme/Gated-GGUF is gated: accept its licence on {fake.url}/acme/Gated-GGUF and set HF_TOKEN"
    )
    with pytest.raises(RepoNotFound) as missing:
        hub.fetch_listing("acme/Nope")
    assert f"on Hugging Face at {fake.url}" in str(missing.value)
    assert "huggingface.co" not in str(gated.value) + str(missing.value)


def test_hostile_file_names_and_server_reasons_are_escaped(fake: FakeHub, tmp_path: Path) -> None:
    name = "evil\x1b[2J\n\u202e.gguf"
    data = b"not a gguf at all" * 100
    commit = fake.add_repo(REPO, {name: data, "ok.gguf": data})
    with pytest.raises(IntegrityError) as header:
        hub.read_remote_info(REPO, commit, remote(name, data))
    assert str(header.value).startswith("evil\\x1b[2J\\n\\u202e.gguf in acme/Hub-GGUF is not a GGUF file")

    fake.fault("ok.gguf", "status", code=500, message="boom\x1b]0;pwned\x07\nsecond line " + "y" * 500)
    with pytest.raises(HubUnreachable) as reason:
        hub.read_remote_info(REPO, commit, remote("ok.gguf", data))
    message = str(reason.value)
    assert "answered 500 (boom\\x1b]0;pwned\\x07" in message and one_line(message), message
    assert len(message) < 400  # the reason is cut

    fake.fault(name, "status", code=404)
    with pytest.raises(RepoNotFound) as gone:
        hub.download(REPO, commit, remote(name, data), tmp_path / "evil.partial", meter())
    assert str(gone.value).startswith("evil\\x1b[2J\\n\\u202e.gguf of acme/Hub-GGUF disappeared from")
    assert one_line(str(gone.value))


# -- local failures ------------------------------------------------------------------


def test_a_directory_in_place_of_the_partial_is_named_in_the_error(fake: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(MIB)
    commit = fake.add_repo(REPO, {"x.gguf": data})
    partial = tmp_path / "x.partial"
    partial.mkdir()
    with pytest.raises(LlamadeckError) as caught:
        hub.download(REPO, commit, remote("x.gguf", data), partial, meter())
    assert str(caught.value).startswith(f"cannot write the partial download {partial}: ")
    assert partial.is_dir()
    assert fake.requests == []


# -- tokens --------------------------------------------------------------------------

SECRET = "hf_SECRETsecret0123456789"


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [(None, None), ("", None), ("  \n", None), (f"{SECRET}\n", SECRET), (f"\t{SECRET} ", SECRET)],
)
def test_clean_token_drops_surrounding_whitespace(raw: str | None, cleaned: str | None) -> None:
    assert hub.clean_token(raw) == cleaned


@pytest.mark.parametrize("raw", [f"{SECRET}é", f"hf_SECRET {SECRET}", f"{SECRET}\x00", f"{SECRET}\u200b"])
def test_clean_token_refuses_what_no_token_holds_and_never_echoes_it(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        hub.clean_token(raw)
    assert str(caught.value) == "HF_TOKEN holds characters a Hugging Face token never has"


def test_a_token_with_a_newline_is_sent_clean_and_never_shown(fake: FakeHub, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    commit = fake.add_repo("acme/Gated-GGUF", {path.name: path}, gated=True)
    file = remote(path.name, path.read_bytes())
    assert hub.read_remote_info("acme/Gated-GGUF", commit, file, token=f"{SECRET}\n").architecture == "llama"

    fake.fault(path.name, "status", code=500, message=f"bad token {SECRET}")  # a server that echoes it
    with pytest.raises(HubUnreachable) as caught:
        hub.read_remote_info("acme/Gated-GGUF", commit, file, token=SECRET)
    assert "answered 500 (bad token ***)" in str(caught.value) and SECRET not in str(caught.value)


def test_a_non_ascii_token_is_refused_before_any_request(fake: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="^HF_TOKEN holds characters a Hugging Face token never has$"):
        hub.fetch_listing(REPO, token="hf_é")
    with pytest.raises(InvalidInput, match="^HF_TOKEN holds"):
        hub.download(REPO, "a" * 40, remote("x.gguf", b"x"), tmp_path / "x.partial", meter(), token="hf_é")
    assert fake.requests == []
    assert not (tmp_path / "x.partial").exists()


def test_the_token_huggingface_hub_finds_itself_is_checked_too(
    fake: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    token_file.write_text("hf_é\n")
    with pytest.raises(InvalidInput, match=f"^the token file {token_file} holds characters"):
        hub.fetch_listing(REPO)
    token_file.unlink()
    token_file.mkdir()
    with pytest.raises(InvalidInput, match=f"^cannot read the Hugging Face token file {token_file}: "):
        hub.fetch_listing(REPO)
    monkeypatch.setenv("HF_OIDC_RESOURCE", "acme/Hub-GGUF")
    monkeypatch.delenv("HF_OIDC_ID_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    with pytest.raises(AccessDenied, match="^cannot get a Hugging Face token through HF_OIDC_RESOURCE: "):
        hub.fetch_listing(REPO)
    assert fake.requests == []


# -- the environment huggingface_hub reads at import ---------------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"HF_ENDPOINT": "http://[::1"},
            r"HF_ENDPOINT is not a usable URL: 'http://\[::1' \(Invalid IPv6 URL\)",
        ),
        ({"HF_ENDPOINT": " https://hub.example "}, "HF_ENDPOINT .* ' https://hub.example ' .*spaces"),
        ({"HF_ENDPOINT": "https://hub.example\n"}, r"HF_ENDPOINT .* 'https://hub.example\\n' .*line break"),
        (
            {"HF_ENDPOINT": "https://hub\x1b[2J.example"},
            r"HF_ENDPOINT .* 'https://hub\\x1b\[2J.example' .*control",
        ),
        ({"HF_ENDPOINT": "ftp://hub.example"}, "HF_ENDPOINT .* http:// or https://"),
        ({"HF_ENDPOINT": "hub.example"}, "HF_ENDPOINT .* http:// or https://"),
        ({"HF_ENDPOINT": "https://"}, "HF_ENDPOINT .* no host"),
        ({"HF_ENDPOINT": "https://hub.example:99999"}, "HF_ENDPOINT .*Port out of range"),
        ({"HF_ENDPOINT": ""}, "HF_ENDPOINT .* empty"),
        ({"HF_HUB_DOWNLOAD_TIMEOUT": "abc"}, "HF_HUB_DOWNLOAD_TIMEOUT must be a whole number .* not 'abc'"),
        ({"HF_HUB_DOWNLOAD_TIMEOUT": "-1"}, "HF_HUB_DOWNLOAD_TIMEOUT must be .* above 0, not '-1'"),
        ({"HF_HUB_DOWNLOAD_TIMEOUT": "1.5"}, "HF_HUB_DOWNLOAD_TIMEOUT must be a whole number"),
        ({"HF_HUB_DOWNLOAD_TIMEOUT": "nan"}, "HF_HUB_DOWNLOAD_TIMEOUT must be"),
        ({"HF_HUB_ETAG_TIMEOUT": ""}, "HF_HUB_ETAG_TIMEOUT must be"),
        ({"HF_HUB_VERBOSITY": "loud"}, "HF_HUB_VERBOSITY must be one of debug, info, .* not 'loud'"),
        ({"HF_HUB_USER_AGENT_ORIGIN": "caf\u00e9"}, r"HF_HUB_USER_AGENT_ORIGIN .* 'caf\\xe9'"),
    ],
)
def test_settings_huggingface_hub_would_break_on_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{message}") as caught:
        hub.check_environment(environ)
    assert one_line(str(caught.value))


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"HF_ENDPOINT": "https://huggingface.co/"},
        {"HF_ENDPOINT": "http://[::1]:8080/mirror"},
        {"HF_HUB_DOWNLOAD_TIMEOUT": "30", "HF_HUB_ETAG_TIMEOUT": " 5 "},
        {"HF_HUB_VERBOSITY": "debug", "HF_HUB_USER_AGENT_ORIGIN": "acme deploy/1.0"},
    ],
)
def test_usable_settings_pass(environ: dict[str, str]) -> None:
    hub.check_environment(environ)


def test_a_bad_setting_is_refused_before_any_request(fake: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "-1")
    with pytest.raises(InvalidInput, match="^HF_HUB_DOWNLOAD_TIMEOUT must be"):
        hub.fetch_listing(REPO)
    assert fake.requests == []


_CHILD = """
import json, sys
from engine.ingest import hub
from engine.errors import LlamadeckError
try:
    listing = hub.fetch_listing("acme/Hub-GGUF")
    print(json.dumps({"quants": [v.quant for v in listing.variants], "log": list(hub.HUB_LOG)}))
except LlamadeckError as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}))
"""


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("HF_ENDPOINT", "http://[::1", "HF_ENDPOINT is not a usable URL: 'http://[::1' (Invalid IPv6 URL)"),
        ("HF_HUB_DOWNLOAD_TIMEOUT", "abc", "HF_HUB_DOWNLOAD_TIMEOUT must be a whole number of seconds"),
        ("HF_HUB_ETAG_TIMEOUT", "x", "HF_HUB_ETAG_TIMEOUT must be a whole number of seconds"),
        ("HF_HUB_VERBOSITY", "loud", "HF_HUB_VERBOSITY must be one of"),
        ("HF_HUB_ENABLE_HF_TRANSFER", "1", None),
    ],
)
def test_settings_are_checked_before_huggingface_hub_is_imported_and_nothing_is_printed(
    fake: FakeHub, tmp_path: Path, name: str, value: str, error: str | None
) -> None:
    """A fresh process: huggingface_hub reads these once, at its import, and prints when they are bad."""
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    fake.add_repo(REPO, {path.name: path})
    env = {**os.environ, "HF_ENDPOINT": fake.url, name: value, "PYTHONWARNINGS": "default"}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 0 and child.stderr == "", child.stderr
    answer = json.loads(child.stdout)  # one JSON line: nothing else reached stdout
    if error is None:
        assert answer["quants"] == ["Q8_0"]
        assert any("FutureWarning" in line and "HF_HUB_ENABLE_HF_TRANSFER" in line for line in answer["log"])
    else:
        assert answer["error"] == "InvalidInput" and answer["message"].startswith(error), answer


# -- proxies and certificates --------------------------------------------------------


@pytest.fixture
def fresh_session() -> Iterator[None]:
    """huggingface_hub builds its HTTP client once, from the environment: build it anew, before and after."""
    from huggingface_hub.utils import close_session

    close_session()
    yield
    close_session()


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("http_proxy", "garbage://x", "Unknown scheme for proxy URL"),
        ("https_proxy", "http://[::1", "Invalid port"),
        ("ALL_PROXY", "socks5://127.0.0.1:1080", "a SOCKS proxy needs the socksio package"),
    ],
)
def test_a_proxy_the_client_cannot_use_is_named(
    fake: FakeHub, fresh_session: None, monkeypatch: pytest.MonkeyPatch, name: str, value: str, why: str
) -> None:
    if name == "ALL_PROXY" and importlib.util.find_spec("socksio") is not None:
        pytest.skip("socksio is installed: SOCKS proxies work")
    for variable in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_PROXY", "")
    with pytest.raises(HubUnreachable) as caught:
        hub.fetch_listing(REPO)
    message = str(caught.value)
    assert message.startswith(f"cannot use the proxy from {name}: {why}") and one_line(message), message


def test_a_missing_ca_file_is_named(
    fresh_session: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    monkeypatch.setenv("SSL_CERT_FILE", str(missing))
    with pytest.raises(
        InvalidInput, match=f"^cannot use the certificates from SSL_CERT_FILE \\({missing}\\): "
    ):
        hub.fetch_listing(REPO)


# -- a server that is not the Hub ----------------------------------------------------


def test_html_everywhere_is_not_the_hub(
    fake: FakeHub, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    fake.add_repo(REPO, {path.name: path})
    fake.fault("*", "answer", body=b"<html><body>Welcome to the captive portal</body></html>")
    with pytest.raises(HubUnreachable) as caught:
        hub.fetch_listing(REPO)
    message = str(caught.value)
    not_the_api = "answered with something that is not the Hugging Face API"
    assert message.startswith(f"the server at {fake.url} {not_the_api} (JSONDecodeError: "), message
    assert message.endswith("for acme/Hub-GGUF; check HF_ENDPOINT and any proxy; nothing changed")
    assert capfd.readouterr() == ("", "")


def _sibling(info: dict, **changes: object) -> dict:
    gguf_entry = next(s for s in info["siblings"] if s["rfilename"].endswith(".gguf"))
    for key, value in changes.items():
        if key == "lfs_size":
            gguf_entry["lfs"]["size"] = value
        elif key == "no_pointer_size":
            del gguf_entry["lfs"]["pointerSize"]
        else:
            gguf_entry[key] = value
    return info


@pytest.mark.parametrize(
    ("rewrite", "why"),
    [
        (lambda info: [info], "TypeError: "),
        (lambda info: b"{not json", "JSONDecodeError: "),
        (lambda info: b"\xff\xfe garbage", "JSONDecodeError: "),
        (lambda info: b"[" * 100_000 + b"]" * 100_000, "RecursionError: "),
        (lambda info: {k: v for k, v in info.items() if k != "id"}, "no 'id' in it"),
        (lambda info: _sibling(info, no_pointer_size=True), "no 'pointerSize' in it"),
        (lambda info: _sibling(info, lfs_size="big"), "the size of Tiny-Q8_0.gguf is not a byte count"),
        (lambda info: _sibling(info, lfs_size=-1), "the size of Tiny-Q8_0.gguf is not a byte count"),
        (lambda info: _sibling(info, lfs_size=True), "the size of Tiny-Q8_0.gguf is not a byte count"),
        (lambda info: _sibling(info, rfilename=7), "a file without a name"),
        (lambda info: info | {"siblings": "Tiny-Q8_0.gguf"}, "TypeError: "),
        (lambda info: info | {"siblings": {"rfilename": "x"}}, "TypeError: "),
        (lambda info: info | {"sha": 12345}, "its commit is not a git sha"),
        (lambda info: info | {"sha": "../../etc"}, "its commit is not a git sha"),
        (lambda info: info | {"lastModified": "yesterday"}, "ValueError: "),
    ],
)
def test_malformed_api_answers_are_not_the_hub(
    fake: FakeHub, tmp_path: Path, rewrite: Callable[[dict], object], why: str
) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    fake.add_repo(REPO, {path.name: path, "README.md": b"hi"})
    fake.rewrite_info(REPO, rewrite)
    with pytest.raises(HubUnreachable) as caught:
        hub.fetch_listing(REPO)
    message = str(caught.value)
    assert f"answered with something that is not the Hugging Face API ({why}" in message, message
    assert one_line(message) and len(message) < 500


@pytest.mark.parametrize(
    ("card", "license_"),
    [
        ({"license": "mit"}, "mit"),
        ({"license": ["mit", "apache-2.0"]}, "mit, apache-2.0"),
        ({"license": ["mit", 3]}, None),
        ({"license": {"name": "mit"}}, None),
        ({"license": 7}, None),
        ({"license": ""}, None),
        ({"license": "x" * 70_000}, "x" * 65_536),
    ],
)
def test_the_card_license_is_text_or_nothing(
    fake: FakeHub, tmp_path: Path, card: dict, license_: str | None
) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    fake.add_repo(REPO, {path.name: path}, card_data=card)
    assert hub.fetch_listing(REPO).license == license_


def test_a_card_that_is_not_an_object_has_no_license(fake: FakeHub, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    fake.add_repo(REPO, {path.name: path})
    fake.rewrite_info(REPO, lambda info: info | {"cardData": "license: mit"})
    assert hub.fetch_listing(REPO).license is None


def test_a_content_range_that_is_not_a_number_is_not_the_hub(fake: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(MIB)
    commit = fake.add_repo(REPO, {"x.gguf": data})
    partial = tmp_path / "x.partial"
    partial.write_bytes(data[:1000])
    fake.fault("x.gguf", "headers", headers={"Content-Range": "bytes 1000-1048575/*"})
    with pytest.raises(HubUnreachable) as caught:
        hub.download(REPO, commit, remote("x.gguf", data), partial, meter())
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
        hub.download(REPO, commit, remote("x.gguf", data), tmp_path / "x.partial", meter())
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
        hub.download(REPO, commit, remote("small.gguf", small), partial, meter())
    assert (
        str(nothing.value)
        == "disk full while downloading small.gguf: nothing kept; free some space and pull again"
    )
    assert not partial.exists()

    partial = tmp_path / "large.partial"
    with file_size_limit(MIB), pytest.raises(DiskFull) as some:
        hub.download(REPO, commit, remote("large.gguf", large), partial, meter())
    kept = partial.stat().st_size
    assert 0 < kept <= MIB and large.startswith(partial.read_bytes())
    assert str(some.value) == (
        f"disk full while downloading large.gguf: {format_size(kept)} kept in {partial}; "
        "free some space and run pull again to resume"
    )


def test_a_name_huggingface_hub_refuses_is_invalid_input(fake: FakeHub, tmp_path: Path) -> None:
    file = remote("x.gguf", b"GGUF")
    calls = {
        "listing": lambda: hub.fetch_listing("a b/c"),
        "header": lambda: hub.read_remote_info("a b/c", "a" * 40, file),
        "download": lambda: hub.download("a b/c", "a" * 40, file, tmp_path / "x.partial", meter()),
    }
    for call in calls.values():
        with pytest.raises(InvalidReference, match="^a b/c is not a Hugging Face repository name "):
            call()
    assert fake.requests == []


# -- quant tags ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("Q4_K_M", "Q4_K_M"),
        ("UD-Q4_K_XL", "UD-Q4_K_XL"),
        ("my.model.v2", "MY_MODEL_V2"),
        ("Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III_JJJ", "Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III_J"),
        ("__-x", "X"),
        ("...", "GGUF"),
        ("", "GGUF"),
        ("модель", "GGUF"),
        ("latest", "GGUF"),
        ("a\x1b[2Jb", "A_2JB"),
        ("x" * 300, "X" * 40),
    ],
)
def test_quant_tags_are_valid_references(text: str, tag: str) -> None:
    assert hub.quant_tag(text) == tag
    assert HubRef("acme/Hub-GGUF", tag).quant == tag  # typed after the colon, it names this variant


def test_colliding_tags_get_a_number_that_still_fits(fake: FakeHub, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    long = "Model-Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III_JJJ"
    names = [f"{long}.gguf", f"a/{long}.gguf", f"b/{long}.gguf", "a/Tiny-Q8_0.gguf", "b/Tiny-Q8_0.gguf"]
    fake.add_repo(REPO, dict.fromkeys(names, path))
    tags = sorted(v.quant for v in hub.fetch_listing(REPO).variants)
    assert tags == sorted(
        [
            "Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III_J",
            "Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III-2",
            "Q4_AAA_BBB_CCC_DDD_EEE_FFF_GGG_HHH_III-3",
            "Q8_0",
            "Q8_0-2",
        ]
    )
    assert all(HubRef(REPO, tag).quant == tag for tag in tags)


def test_a_password_in_the_endpoint_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    url = closed_port_url().replace("http://", "http://mirror:pw-SECRET-42@")
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    with pytest.raises(HubUnreachable) as caught:
        hub.fetch_listing(REPO)
    assert "pw-SECRET-42" not in str(caught.value)
    assert str(caught.value).startswith(
        f"cannot reach Hugging Face at {url.replace('pw-SECRET-42', '***')} ("
    )
