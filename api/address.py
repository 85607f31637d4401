"""``LLAMADECK_HOST``, read once for the server and its clients, as Ollama reads ``OLLAMA_HOST``.

``serve`` listens where this says (``api.server``) and ``ps``, ``stop`` and
``run`` look for a server there (``tui.client``), as Ollama's server and
client both read ``envconfig.Host``::

    parse_host("")                        # HostAddress("http", "127.0.0.1", 11434, "")
    parse_host("0.0.0.0:8080")            # HostAddress("http", "0.0.0.0", 8080, "")
    parse_host("::")                      # a bare IPv6 host: HostAddress("http", "::", 11434, "")
    parse_host("https://box.lan/deck")    # port 443, a proxy's path: ("https", "box.lan", 443, "deck")
    parse_host("0.0.0.0").client_url      # "http://127.0.0.1:11434": a wildcard is reached on loopback

As in Ollama: a bare host takes port 11434, a URL without a port its
scheme's (80, 443); quotes and spaces around the value are dropped; a path
is for clients behind a proxy, and the server listens on host:port alone.
Where Ollama guesses, this refuses with one line instead: a port that is not
0 to 65535 (Ollama falls back to the default), a scheme other than http(s),
a user name, a query. ``:port`` alone means loopback, not every interface as
in Ollama, so that a server stays private unless an address says otherwise.

Standard library only: the command line's client imports it without FastAPI.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

ENV = "LLAMADECK_HOST"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434
_SCHEME_PORTS = {"http": 80, "https": 443}


class AddressError(ValueError):
    """An address that cannot be read; the message is one line for the user."""


@dataclass(frozen=True)
class HostAddress:
    """An address read from ``LLAMADECK_HOST`` or ``--host``: the host without brackets, always a port."""

    scheme: str  # "http" or "https"
    host: str
    port: int
    path: str = ""  # a prefix before /api/... for clients behind a proxy, without slashes around it

    @property
    def client_url(self) -> str:
        """The base URL a client sends its requests to (a wildcard host is reached on loopback)."""
        host = DEFAULT_HOST if _is_wildcard(self.host) else self.host
        shown = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{shown}:{self.port}" + (f"/{self.path}" if self.path else "")


def parse_host(value: str) -> HostAddress:
    """``host``, ``host:port``, ``:port``, ``[v6]:port``, a bare IPv6 address or a URL; else AddressError."""
    text = value.strip().strip("\"'").strip()  # as Ollama's envconfig.Var, then Host
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest, default_port = "http", text, DEFAULT_PORT
    else:
        scheme = scheme.lower()
        if scheme not in _SCHEME_PORTS:
            raise _unreadable(value, "use host:port or http://host:port")
        default_port = _SCHEME_PORTS[scheme]
    if any(c in rest for c in "?#@"):
        raise _unreadable(value, "give only a host, a port and a path")
    hostport, _, path = rest.partition("/")
    host, port = _split(hostport, value)
    if not port:
        number = default_port
    elif port.isascii() and port.isdigit() and int(port) <= 65535:
        number = int(port)
    else:
        raise _unreadable(value, f"the port must be a number from 0 to 65535, not {port[:20]!r}")
    return HostAddress(scheme, host.lower() or DEFAULT_HOST, number, path.strip("/"))


def from_environ(environ: Mapping[str, str] | None = None) -> HostAddress:
    """``LLAMADECK_HOST`` read (127.0.0.1:11434 when unset or empty); AddressError if unreadable."""
    env = os.environ if environ is None else environ
    return parse_host(env.get(ENV, ""))


def _split(hostport: str, value: str) -> tuple[str, str]:
    """Host and port text, as Go's ``net.SplitHostPort`` with Ollama's fallback for a bare address."""
    if hostport.startswith("["):
        close = hostport.find("]")
        host, after = hostport[1:close], hostport[close + 1 :]
        if close < 0 or (after and not after.startswith(":")) or not _is_ipv6(host):
            raise _unreadable(value, "write an IPv6 address as [address] or [address]:port")
        return host, after[1:]
    if hostport.count(":") > 1:  # a bare IPv6 address: Ollama reads it as the host alone
        if not _is_ipv6(hostport):
            raise _unreadable(value, "write an IPv6 address with a port as [address]:port")
        return hostport, ""
    host, _, port = hostport.partition(":")
    return host, port


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _unreadable(value: str, advice: str) -> AddressError:
    return AddressError(f"cannot read the address {value[:80]!r}: {advice}")
