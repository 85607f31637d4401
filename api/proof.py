"""The store proof: how ``llamadeck run`` tells a ``serve`` on its own store from a stranger on the port.

``run`` finds a server on the default address by itself, so it must make sure
that what answers there is a llamadeck serving its own store before it sends
anything of value (the API key, the prompt). It asks first, with nothing but a
random challenge::

    GET /api/proof                      x-llamadeck-challenge: <32 to 128 hex digits>
    204 No Content                      x-llamadeck-proof: HMAC(store key, signed_text(challenge, address))

Only a process that can read the store's secret key (``Engine.store_proof``)
can answer. The address signed is the one the connection reached: the server
takes it from its own socket (never from the Host header) and the client from
the peer of its connection, so a stranger who relays the challenge to the real
server on another port gets an answer for that port, which the client refuses.
The guard (``api.security``) answers the proof after its Host and Origin checks
and before the key check: the client has not sent its key yet, and a request
the guard refuses carries no proof. A server the user names (``LLAMADECK_HOST``)
is trusted as named and is not asked.

Standard library only: the command line's client imports it without FastAPI.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

PATH = "/api/proof"
CHALLENGE = "x-llamadeck-challenge"
PROOF = "x-llamadeck-proof"
_CHALLENGE = re.compile(r"[0-9a-f]{32,128}")


def is_challenge(text: str) -> bool:
    """Whether ``text`` is a challenge the server answers: 32 to 128 lowercase hex digits."""
    return _CHALLENGE.fullmatch(text) is not None


def address_text(host: str, port: int) -> str:
    """``host:port`` in one spelling for both ends: ``[v6]:port``, an IPv4-mapped IPv6 address as IPv4."""
    name = host.strip("[]").lower()
    try:
        ip = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return f"{name.rstrip('.')}:{port}"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return f"[{ip.compressed}]:{port}" if ip.version == 6 else f"{ip.compressed}:{port}"


def signed_text(challenge: str, host: str, port: int) -> str:
    """What the store key signs: the challenge and the address it is answered on (no space in either)."""
    return f"llamadeck-proof {challenge} {address_text(host, port)}"


def answer(
    challenge: str | None, server: tuple[str, int | None] | None, prove: Callable[[str], str]
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The response to a proof request: ``(status, body, headers)``.

    ``server``: the address of the socket the request came in on (ASGI's
    ``scope["server"]``). Without an address to sign or a readable store key
    the answer carries no proof, and the client then works on its own.
    """
    if challenge is None or not is_challenge(challenge):
        body = b'{"error": "send x-llamadeck-challenge: 32 to 128 lowercase hex digits"}'
        return 400, body, [(b"content-type", b"application/json")]
    if server is None or server[1] is None:
        return 204, b"", []
    try:
        proof = prove(signed_text(challenge, server[0], server[1]))
    except Exception:  # noqa: BLE001 - the store's key unreadable: no proof, the client works on its own
        return 204, b"", []
    return 204, b"", [(PROOF.encode(), proof.encode())]
