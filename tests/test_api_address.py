"""``LLAMADECK_HOST``, read once for the server and its clients, row by row beside Ollama's reading.

The rows marked "Ollama" are cases of the ``TestHost`` table of Ollama's
``envconfig.Host`` (``envconfig/config_test.go``) and give what it gives. The others pin where
llamadeck reads differently on purpose, or where ``serve`` and ``ps`` used to
disagree (``http://host``: the server took port 80, the client 11434; a path:
the server refused it, the client dropped it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from api.address import AddressError, HostAddress, parse_host
from tui.client import ServerError, server_url

ROOT = Path(__file__).resolve().parent.parent

# value -> where serve listens (host, port), where a client sends its requests
READINGS = [
    ("", ("127.0.0.1", 11434), "http://127.0.0.1:11434"),  # Ollama: empty
    ("1.2.3.4", ("1.2.3.4", 11434), "http://1.2.3.4:11434"),  # Ollama: only address
    ("1.2.3.4:1234", ("1.2.3.4", 1234), "http://1.2.3.4:1234"),  # Ollama: address and port
    ("example.com", ("example.com", 11434), "http://example.com:11434"),  # Ollama: hostname
    ("example.com:1234", ("example.com", 1234), "http://example.com:1234"),  # Ollama: hostname and port
    ("[::1]", ("::1", 11434), "http://[::1]:11434"),  # Ollama: ipv6 localhost
    ("::1", ("::1", 11434), "http://[::1]:11434"),  # Ollama: ipv6 no brackets
    ("[::1]:1337", ("::1", 1337), "http://[::1]:1337"),  # Ollama: ipv6 + port
    (" 1.2.3.4 ", ("1.2.3.4", 11434), "http://1.2.3.4:11434"),  # Ollama: extra space
    ('"1.2.3.4"', ("1.2.3.4", 11434), "http://1.2.3.4:11434"),  # Ollama: extra quotes
    (' " 1.2.3.4 " ', ("1.2.3.4", 11434), "http://1.2.3.4:11434"),  # Ollama: extra space+quotes
    ("'1.2.3.4'", ("1.2.3.4", 11434), "http://1.2.3.4:11434"),  # Ollama: extra single quotes
    ("http://1.2.3.4", ("1.2.3.4", 80), "http://1.2.3.4:80"),  # Ollama: http (the client took 11434)
    ("http://1.2.3.4:4321", ("1.2.3.4", 4321), "http://1.2.3.4:4321"),  # Ollama: http port
    ("https://1.2.3.4", ("1.2.3.4", 443), "https://1.2.3.4:443"),  # Ollama: https
    ("https://1.2.3.4:4321", ("1.2.3.4", 4321), "https://1.2.3.4:4321"),  # Ollama: https port
    # Ollama: proxy path (the server refused a path, the client dropped it)
    ("https://example.com/ollama", ("example.com", 443), "https://example.com:443/ollama"),
    ("http://box.lan:8080/deck/", ("box.lan", 8080), "http://box.lan:8080/deck"),
    # Ollama listens on every interface for [::] and reaches it there; a client here goes to loopback
    ("[::]", ("::", 11434), "http://127.0.0.1:11434"),
    ("::", ("::", 11434), "http://127.0.0.1:11434"),  # serve --host ::
    ("0.0.0.0", ("0.0.0.0", 11434), "http://127.0.0.1:11434"),
    ("0.0.0.0:8080", ("0.0.0.0", 8080), "http://127.0.0.1:8080"),
    # Ollama: ":1234" is every interface; here loopback, as serve and ps both read it before
    (":8080", ("127.0.0.1", 8080), "http://127.0.0.1:8080"),
    (":0", ("127.0.0.1", 0), "http://127.0.0.1:0"),  # Ollama: zero port
    ("localhost:", ("localhost", 11434), "http://localhost:11434"),  # an empty port is the default
    ("http://localhost:9000", ("localhost", 9000), "http://localhost:9000"),
    ("HTTP://Example.LAN", ("example.lan", 80), "http://example.lan:80"),
]

# Ollama reads these too (a bad port becomes the default with a warning, any scheme is kept, the rest
# ends in a host no one can reach); here each is one line saying what to write instead
UNREADABLE = [
    "host:notaport",
    "host:99999",
    ":66000",  # Ollama: too large port
    ":-1",  # Ollama: too small port
    "ftp://x",
    "://x",
    "http://user@x",
    "http://x:1?q=1",
    "http://x#top",
    "1:2:3",
    "[::1",
    "[box]:80",
    "[::1]80",
]


@pytest.mark.parametrize(("value", "listen", "url"), READINGS, ids=[repr(r[0]) for r in READINGS])
def test_llamadeck_host_reads_like_ollama_host(value: str, listen: tuple[str, int], url: str) -> None:
    address = parse_host(value)
    assert (address.host, address.port) == listen
    assert address.client_url == url
    assert server_url({"LLAMADECK_HOST": value}) == url  # the client reads it as the server does


@pytest.mark.parametrize("value", UNREADABLE)
def test_an_unreadable_llamadeck_host_is_one_clear_line_for_server_and_client(value: str) -> None:
    with pytest.raises(AddressError, match="cannot read the address") as caught:
        parse_host(value)
    assert "\n" not in str(caught.value)
    with pytest.raises(ServerError, match="LLAMADECK_HOST: cannot read the address"):
        server_url({"LLAMADECK_HOST": value})


def test_the_address_keeps_its_scheme_and_path() -> None:
    assert parse_host("https://box.lan/deck") == HostAddress("https", "box.lan", 443, "deck")
    assert server_url({}) == "http://127.0.0.1:11434"


def test_the_client_reads_the_address_without_fastapi() -> None:
    code = "import sys, tui.client; print('fastapi' in sys.modules, 'starlette' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False False"
