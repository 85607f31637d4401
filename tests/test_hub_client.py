"""engine.ingest.hub.client, .tokens and .errors: settings, logs, tokens, proxies, what messages show."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants

from engine.errors import (
    AccessDenied,
    HubUnreachable,
    IntegrityError,
    InvalidInput,
    InvalidReference,
    RepoNotFound,
)
from engine.ingest.hub.client import HUB_LOG, check_environment, quiet_hub
from engine.ingest.hub.download import download
from engine.ingest.hub.header import read_remote_info
from engine.ingest.hub.listing import fetch_listing
from engine.ingest.hub.remote import RemoteFile
from engine.ingest.hub.tokens import clean_token
from tests.support.fake_hub import FakeHub
from tests.support.hub_checks import (
    MIB,
    REPO,
    RETRY_LINES,
    RootRecords,
    closed_port_url,
    meter,
    one_line,
    remote,
    served,
)
from tests.support.tiny_gguf import write_tiny_gguf


@pytest.fixture
def fake() -> Iterator[FakeHub]:
    with FakeHub() as server, server.patch_endpoint():
        yield server


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
    file = RemoteFile("Tiny-Q8_0.gguf", 10 * MIB, "0" * 64)
    partial = tmp_path / "partial" / "x.partial"
    logged = len(HUB_LOG)
    calls = {
        "listing": lambda: fetch_listing(REPO),
        "header": lambda: read_remote_info(REPO, "a" * 40, file),
        "download": lambda: download(REPO, "a" * 40, file, partial, meter()),
    }
    for what, call in calls.items():
        HUB_LOG.clear()
        with at_root, pytest.raises(HubUnreachable) as caught:
            call()
        logged = list(HUB_LOG)
        # one attempt: huggingface_hub logs every retry it makes (24 s of them on a dead Hub)
        assert not [line for line in logged if any(r in line for r in RETRY_LINES)], (what, logged)
        if what == "download":
            assert sum("Max retries exceeded" in line for line in logged) == 1, logged  # it went somewhere
        message = str(caught.value)
        assert message.startswith(f"cannot reach Hugging Face at {url} (") and one_line(message), message
    assert "nothing was downloaded" in message
    assert not partial.exists()  # no empty partial left behind
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert [r for r in at_root.records if r.name.startswith("huggingface_hub")] == []


def test_a_hub_that_hangs_up_is_asked_once(
    fake: FakeHub, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The Hub closes every connection unanswered: one request and one error, not 24 s of retries."""
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    commit = fake.add_repo(REPO, {path.name: path})
    file = remote(path.name, path.read_bytes())
    fake.fault("*", "refuse")
    calls = {
        "listing": (lambda: fetch_listing(REPO), "nothing changed"),
        "header": (lambda: read_remote_info(REPO, commit, file), "nothing changed"),
        "download": (lambda: download(REPO, commit, file, tmp_path / "x.partial", meter()), "nothing was"),
    }
    for what, (call, after) in calls.items():
        fake.reset_counts()
        with pytest.raises(HubUnreachable, match=f"cannot reach Hugging Face at {fake.url} .*; {after}"):
            call()
        assert len(fake.requests) == 1, (what, fake.requests)  # the server logs a request before hanging up
    assert capfd.readouterr() == ("", "")


def test_a_resumed_download_logs_to_the_ring_buffer_not_the_terminal(
    fake: FakeHub, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = os.urandom(6 * MIB)
    commit = fake.add_repo(REPO, {"cut.gguf": data})
    fake.fault("cut.gguf", "cut", at=2 * MIB, times=1)
    digest = download(REPO, commit, remote("cut.gguf", data), tmp_path / "cut.partial", meter())
    assert digest == hashlib.sha256(data).hexdigest()
    assert served(fake, "cut.gguf") < len(data) + MIB  # resumed with a Range, not restarted
    assert any("Error while downloading" in line for line in HUB_LOG)
    assert capfd.readouterr() == ("", "")


def test_huggingface_hub_warnings_go_to_the_ring_buffer_and_others_pass() -> None:
    import huggingface_hub.file_download

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_hub()
        warnings.warn_explicit(
            "from the hub\x1b[2J", UserWarning, huggingface_hub.file_download.__file__, 1, module="x"
        )
        warnings.warn("from elsewhere", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["from elsewhere"]
    assert HUB_LOG[-1] == "UserWarning: from the hub\\x1b[2J"


def test_hostile_file_names_and_server_reasons_are_escaped(fake: FakeHub, tmp_path: Path) -> None:
    name = "evil\x1b[2J\n\u202e.gguf"
    data = b"not a gguf at all" * 100
    commit = fake.add_repo(REPO, {name: data, "ok.gguf": data})
    with pytest.raises(IntegrityError) as header:
        read_remote_info(REPO, commit, remote(name, data))
    assert str(header.value).startswith("evil\\x1b[2J\\n\\u202e.gguf in acme/Hub-GGUF is not a GGUF file")

    fake.fault("ok.gguf", "status", code=500, message="boom\x1b]0;pwned\x07\nsecond line " + "y" * 500)
    with pytest.raises(HubUnreachable) as reason:
        read_remote_info(REPO, commit, remote("ok.gguf", data))
    message = str(reason.value)
    assert "answered 500 (boom\\x1b]0;pwned\\x07" in message and one_line(message), message
    assert len(message) < 400  # the reason is cut

    fake.fault(name, "status", code=404)
    with pytest.raises(RepoNotFound) as gone:
        download(REPO, commit, remote(name, data), tmp_path / "evil.partial", meter())
    assert str(gone.value).startswith("evil\\x1b[2J\\n\\u202e.gguf of acme/Hub-GGUF disappeared from")
    assert one_line(str(gone.value))


# -- tokens --------------------------------------------------------------------------

SECRET = "hf_SECRETsecret0123456789"


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [(None, None), ("", None), ("  \n", None), (f"{SECRET}\n", SECRET), (f"\t{SECRET} ", SECRET)],
)
def test_clean_token_drops_surrounding_whitespace(raw: str | None, cleaned: str | None) -> None:
    assert clean_token(raw) == cleaned


@pytest.mark.parametrize("raw", [f"{SECRET}é", f"hf_SECRET {SECRET}", f"{SECRET}\x00", f"{SECRET}\u200b"])
def test_clean_token_refuses_what_no_token_holds_and_never_echoes_it(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        clean_token(raw)
    assert str(caught.value) == "HF_TOKEN holds characters a Hugging Face token never has"


def test_a_token_with_a_newline_is_sent_clean_and_never_shown(fake: FakeHub, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    commit = fake.add_repo("acme/Gated-GGUF", {path.name: path}, gated=True)
    file = remote(path.name, path.read_bytes())
    assert read_remote_info("acme/Gated-GGUF", commit, file, token=f"{SECRET}\n").architecture == "llama"

    fake.fault(path.name, "status", code=500, message=f"bad token {SECRET}")  # a server that echoes it
    with pytest.raises(HubUnreachable) as caught:
        read_remote_info("acme/Gated-GGUF", commit, file, token=SECRET)
    assert "answered 500 (bad token ***)" in str(caught.value) and SECRET not in str(caught.value)


def test_a_non_ascii_token_is_refused_before_any_request(fake: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="^HF_TOKEN holds characters a Hugging Face token never has$"):
        fetch_listing(REPO, token="hf_é")
    with pytest.raises(InvalidInput, match="^HF_TOKEN holds"):
        download(REPO, "a" * 40, remote("x.gguf", b"x"), tmp_path / "x.partial", meter(), token="hf_é")
    assert fake.requests == []
    assert not (tmp_path / "x.partial").exists()


def test_the_token_huggingface_hub_finds_itself_is_checked_too(
    fake: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    token_file.write_text("hf_é\n")
    with pytest.raises(InvalidInput, match=f"^the token file {token_file} holds characters"):
        fetch_listing(REPO)
    token_file.unlink()
    token_file.mkdir()
    with pytest.raises(InvalidInput, match=f"^cannot read the Hugging Face token file {token_file}: "):
        fetch_listing(REPO)
    monkeypatch.setenv("HF_OIDC_RESOURCE", "acme/Hub-GGUF")
    monkeypatch.delenv("HF_OIDC_ID_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    with pytest.raises(AccessDenied, match="^cannot get a Hugging Face token through HF_OIDC_RESOURCE: "):
        fetch_listing(REPO)
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
        check_environment(environ)
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
    check_environment(environ)


def test_a_bad_setting_is_refused_before_any_request(fake: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "-1")
    with pytest.raises(InvalidInput, match="^HF_HUB_DOWNLOAD_TIMEOUT must be"):
        fetch_listing(REPO)
    assert fake.requests == []


_CHILD = """
import json, sys
from engine.ingest.hub.client import HUB_LOG
from engine.ingest.hub.listing import fetch_listing
from engine.errors import LlamadeckError
try:
    listing = fetch_listing("acme/Hub-GGUF")
    print(json.dumps({"quants": [v.quant for v in listing.variants], "log": list(HUB_LOG)}))
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
        fetch_listing(REPO)
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
        fetch_listing(REPO)


def test_a_name_huggingface_hub_refuses_is_invalid_input(fake: FakeHub, tmp_path: Path) -> None:
    file = remote("x.gguf", b"GGUF")
    calls = {
        "listing": lambda: fetch_listing("a b/c"),
        "header": lambda: read_remote_info("a b/c", "a" * 40, file),
        "download": lambda: download("a b/c", "a" * 40, file, tmp_path / "x.partial", meter()),
    }
    for call in calls.values():
        with pytest.raises(InvalidReference, match="^a b/c is not a Hugging Face repository name "):
            call()
    assert fake.requests == []


def test_a_password_in_the_endpoint_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    url = closed_port_url().replace("http://", "http://mirror:pw-SECRET-42@")
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    with pytest.raises(HubUnreachable) as caught:
        fetch_listing(REPO)
    assert "pw-SECRET-42" not in str(caught.value)
    assert str(caught.value).startswith(
        f"cannot reach Hugging Face at {url.replace('pw-SECRET-42', '***')} ("
    )
