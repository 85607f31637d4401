"""The store proof against a stranger on the port, and a blank API key (issue 18: finding 4 and a minor one).

The proof is what ``llamadeck run`` asks before it sends a key or a prompt.
It must be answered to a request that passes the Host and Origin checks,
without the key, and on no request the guard refuses; it binds the address
the server itself listens on, so that a relay on another port cannot pass
the real server's answer on. Real uvicorn, real sockets, a real relay.
"""

from __future__ import annotations

import http.client
import secrets
from collections.abc import Iterator

import pytest

from api import proof
from api.app import create_app
from api.server import ServeError, bind
from engine import Engine
from tests.support.api_server import running_api
from tests.support.relay import Relay

KEY = "s3cret-key"
CHALLENGE_HEADER = "x-llamadeck-challenge"
PROOF_HEADER = "x-llamadeck-proof"


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine()
    yield engine
    engine.close()


@pytest.fixture
def port(engine: Engine) -> Iterator[int]:
    """A real uvicorn serving ``engine`` with an API key on 127.0.0.1; its port."""
    with running_api(engine, api_key=KEY) as url:
        yield int(url.rsplit(":", 1)[1])


def ask(port: int, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/proof", {"Host": "evil.example"}, 403),  # a rebound name: the guard refuses before all
        ("/api/proof", {"Origin": "http://evil.example"}, 403),  # a foreign page
        ("/api/version", {}, 401),  # a route without the key
        ("/api/tags", {"Authorization": "Bearer wrong"}, 401),
    ],
)
def test_no_proof_on_a_request_the_guard_refuses(
    port: int, path: str, headers: dict[str, str], status: int
) -> None:
    """Finding 4: the proof was added by a middleware outside the guard, so 401 and 403 carried it too."""
    response = ask(port, path, {CHALLENGE_HEADER: secrets.token_hex(16), **headers})
    assert response.status == status
    assert response.getheader(PROOF_HEADER) is None


def test_the_proof_is_answered_without_the_key_and_signs_the_servers_own_address(
    engine: Engine, port: int
) -> None:
    challenge = secrets.token_hex(16)
    expected = engine.store_proof(proof.signed_text(challenge, "127.0.0.1", port))
    response = ask(port, proof.PATH, {CHALLENGE_HEADER: challenge})  # no Authorization
    assert response.status == 204 and response.getheader(PROOF_HEADER) == expected
    # the Host header names another port: the proof still signs the socket's address, not the header
    elsewhere = ask(port, proof.PATH, {CHALLENGE_HEADER: challenge, "Host": "localhost:9"})
    assert elsewhere.status == 204 and elsewhere.getheader(PROOF_HEADER) == expected


def test_a_relay_on_another_port_cannot_pass_the_proof_on(engine: Engine, port: int) -> None:
    """A stranger relaying a client's challenge gets the real server's proof, for the real server's port."""
    challenge = secrets.token_hex(16)
    with Relay(port) as relay:
        relayed = ask(relay.port, proof.PATH, {CHALLENGE_HEADER: challenge})
    given = relayed.getheader(PROOF_HEADER)
    assert relayed.status == 204 and given == engine.store_proof(
        proof.signed_text(challenge, "127.0.0.1", port)
    )
    assert given != engine.store_proof(proof.signed_text(challenge, "127.0.0.1", relay.port))  # what run asks


@pytest.mark.parametrize("challenge", ["", "short", "G" * 32, "a" * 129, "A" * 32, "a" * 32 + " 1.2.3.4:5"])
def test_an_unreadable_challenge_is_400_and_no_proof(port: int, challenge: str) -> None:
    response = ask(port, proof.PATH, {CHALLENGE_HEADER: challenge})
    assert response.status == 400 and response.getheader(PROOF_HEADER) is None


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [
        ("127.0.0.1", 11434, "127.0.0.1:11434"),
        ("::ffff:127.0.0.1", 11434, "127.0.0.1:11434"),  # a dual-stack socket's view of an IPv4 client
        ("[::1]", 8, "[::1]:8"),
        ("0:0:0:0:0:0:0:1", 8, "[::1]:8"),
        ("LocalHost.", 1, "localhost:1"),
    ],
)
def test_both_ends_spell_an_address_alike(host: str, port: int, text: str) -> None:
    assert proof.address_text(host, port) == text


@pytest.mark.parametrize("key", [" ", "  \t ", "\n"])
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_a_blank_api_key_is_no_key(engine: Engine, key: str, host: str) -> None:
    """Minor finding: a key of spaces passed the "key required" check, yet no client could ever send it."""
    with pytest.raises(ServeError, match="API key is blank"):
        bind(host, 0, api_key=key)
    with pytest.raises(ValueError, match="API key is blank"):
        create_app(engine, api_key=key)
