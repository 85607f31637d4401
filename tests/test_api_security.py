"""Who may drive the API: Host and Origin checks, the API key, and the rules for listening."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import anthropic
import httpx
import ollama
import pytest

from api import security
from api.server import ServeError, address, allowed_hosts, bind, check_exposure
from engine import Engine
from tests.support.api_server import running_api

ROOT = Path(__file__).resolve().parent.parent
KEY = "s3cret-key"


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine()
    yield engine
    engine.close()


@pytest.fixture
def base_url(engine: Engine) -> Iterator[str]:
    with running_api(engine) as url:
        yield url


@pytest.fixture
def keyed_url(engine: Engine) -> Iterator[str]:
    with running_api(engine, api_key=KEY) as url:
        yield url


# Host: DNS rebinding -----------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:11434", "192.0.2.7", "localhost.evil.example"]
)
def test_a_foreign_host_header_is_403(base_url: str, host: str) -> None:
    response = httpx.get(f"{base_url}/api/tags", headers={"Host": host})
    assert response.status_code == 403 and "host" in response.json()["error"]


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:11434", "127.0.0.1:8", "[::1]:11434", "app.localhost"]
)
def test_loopback_host_headers_are_served(base_url: str, host: str) -> None:
    assert httpx.get(f"{base_url}/api/tags", headers={"Host": host}).status_code == 200


def test_the_bound_host_is_allowed_and_any_host_when_bound_to_every_interface(engine: Engine) -> None:
    with running_api(engine, allowed_hosts=["box.lan"]) as url:
        assert httpx.get(f"{url}/api/tags", headers={"Host": "box.lan:11434"}).status_code == 200
        assert httpx.get(f"{url}/api/tags", headers={"Host": "other.lan"}).status_code == 403
    assert allowed_hosts("0.0.0.0") == ["*"] and allowed_hosts("::") == ["*"]
    assert allowed_hosts("192.168.1.5") == ["192.168.1.5"]


# Origin: web pages ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "OPTIONS"])
def test_a_foreign_origin_is_403_on_every_method(base_url: str, method: str) -> None:
    headers = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
    response = httpx.request(method, f"{base_url}/api/pull", headers=headers, content=b'{"model": "x"}')
    assert response.status_code == 403 and "origin" in response.json()["error"]
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "http://localhost:1@evil.example",
        "http://localhost:3000.evil.example",
        "ftp://localhost",
    ],
)
def test_lookalike_and_null_origins_are_403(base_url: str, origin: str) -> None:
    assert httpx.get(f"{base_url}/api/tags", headers={"Origin": origin}).status_code == 403


@pytest.mark.parametrize(
    "origin",
    ["http://localhost", "http://localhost:3000", "https://127.0.0.1:8080", "app://x", "tauri://localhost"],
)
def test_local_origins_are_served_with_their_own_cors_header(base_url: str, origin: str) -> None:
    response = httpx.get(f"{base_url}/api/tags", headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin  # never a wildcard


def test_a_preflight_from_a_local_origin_is_answered(base_url: str) -> None:
    headers = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    response = httpx.options(f"{base_url}/api/chat", headers=headers)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "POST" in response.headers["access-control-allow-methods"]


def test_llamadeck_origins_extends_the_allowed_origins(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMADECK_ORIGINS", "https://webui.example, chrome-extension://*")
    with running_api(engine) as url:
        for origin in ("https://webui.example", "chrome-extension://abc"):
            assert httpx.get(f"{url}/api/tags", headers={"Origin": origin}).status_code == 200
        assert httpx.get(f"{url}/api/tags", headers={"Origin": "https://evil.example"}).status_code == 403


def test_no_response_carries_a_wildcard_cors_header(base_url: str) -> None:
    for headers in ({}, {"Origin": "http://localhost"}):
        response = httpx.get(f"{base_url}/api/version", headers=headers)
        assert response.headers.get("access-control-allow-origin") != "*"


# API key -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer wrong", f"Basic {KEY}", f"Bearer {KEY}x", KEY]
)
def test_a_missing_or_wrong_key_is_401(keyed_url: str, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in (("GET", "/"), ("GET", "/api/tags"), ("POST", "/api/show")):
        response = httpx.request(method, f"{keyed_url}{path}", headers=headers, json={"model": "x"})
        assert response.status_code == 401, (method, path)
        assert response.json()["error"].startswith("unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_right_key_is_served_by_the_real_client(keyed_url: str) -> None:
    client = ollama.Client(host=keyed_url, headers={"Authorization": f"Bearer {KEY}"})
    assert client.list().models == []
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=keyed_url).list()
    assert caught.value.status_code == 401


def test_anthropic_clients_send_the_key_as_x_api_key(keyed_url: str) -> None:
    anthropic_headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "x"}
    assert httpx.get(f"{keyed_url}/api/tags", headers=anthropic_headers).status_code == 200
    for headers in ({"x-api-key": "wrong"}, {"x-api-key": ""}, {"x-api-key": f"Bearer {KEY}"}, {}):
        refused = httpx.post(f"{keyed_url}/v1/messages", headers=headers, json={})
        assert refused.status_code == 401, headers
        assert refused.json()["type"] == "error"  # in the shape of the path's API: Anthropic's here
        assert refused.json()["error"]["type"] == "authentication_error"
        assert "x-api-key" in refused.json()["error"]["message"]
    ask: object = [{"role": "user", "content": "hi"}]
    by_header = anthropic.Anthropic(base_url=keyed_url, default_headers={"x-api-key": KEY}, max_retries=0)
    by_bearer = anthropic.Anthropic(base_url=keyed_url, api_key=KEY, max_retries=0)
    for client in (by_header, by_bearer):
        with pytest.raises(anthropic.NotFoundError):  # past the guard: the store holds no such model
            client.messages.create(model="nothing", max_tokens=1, messages=ask)  # type: ignore[arg-type]
    with pytest.raises(anthropic.AuthenticationError):
        wrong = anthropic.Anthropic(base_url=keyed_url, default_headers={"x-api-key": "guess"}, max_retries=0)
        wrong.messages.create(model="nothing", max_tokens=1, messages=ask)  # type: ignore[arg-type]


def test_the_key_is_compared_in_constant_time(keyed_url: str) -> None:
    with mock.patch.object(security.hmac, "compare_digest", wraps=security.hmac.compare_digest) as compare:
        httpx.get(f"{keyed_url}/api/tags", headers={"Authorization": "Bearer guess"})
        httpx.get(f"{keyed_url}/api/tags", headers={"Authorization": f"Bearer {KEY}"})
    assert compare.call_count == 2


def test_without_a_key_no_authorization_is_needed(base_url: str) -> None:
    assert httpx.get(f"{base_url}/api/tags").status_code == 200
    assert httpx.get(f"{base_url}/api/tags", headers={"Authorization": "Bearer anything"}).status_code == 200


# listening -------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "box.lan"])
def test_listening_beyond_loopback_needs_a_key(host: str) -> None:
    with pytest.raises(ServeError, match="API key"):
        check_exposure(host, None)
    with pytest.raises(ServeError, match="API key"):
        bind(host, 0, api_key=None)  # refused before any socket is bound
    check_exposure(host, KEY)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_key(host: str) -> None:
    check_exposure(host, None)


def test_flags_win_over_llamadeck_host_and_the_default_is_loopback_11434() -> None:
    assert address(None, None, {}) == ("127.0.0.1", 11434)
    env = {"LLAMADECK_HOST": "0.0.0.0:9000"}
    assert address(None, None, env) == ("0.0.0.0", 9000)
    assert address("127.0.0.1", None, env) == ("127.0.0.1", 11434)
    assert address(None, 1234, env) == ("0.0.0.0", 1234)
    assert address("::", None, env) == ("::", 11434)  # a bare IPv6 host, as Ollama takes it
    with pytest.raises(ServeError, match="address"):
        address("host:notaport", None, {})
    with pytest.raises(ServeError, match="address"):
        address(None, None, {"LLAMADECK_HOST": "ftp://x"})


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError) as caught:
            bind("127.0.0.1", port, api_key=None)
    message = str(caught.value)
    assert f"port {port}" in message and "in use" in message and "\n" not in message


def test_serve_refuses_a_port_in_use_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert "in use" in err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serve_refuses_every_interface_without_a_key(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import main

    assert main(["serve", "--host", host, "--port", "0"]) == 1
    assert "API key" in capsys.readouterr().err


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_prints_its_address_serves_and_stops_cleanly(stop: signal.Signals) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys; from tui.cli import main; sys.exit(main(['serve', '--port', '0']))"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("llamadeck API on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert httpx.get(url, timeout=10).text == "Ollama is running"
        process.send_signal(stop)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None and "Traceback" not in process.stderr.read()


def test_the_command_line_does_not_import_fastapi_until_it_serves() -> None:
    code = (
        "import sys, tui.cli; tui.cli.build_parser(); "
        "print('fastapi' in sys.modules, 'uvicorn' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False False"
