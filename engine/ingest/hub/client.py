"""The one gate before huggingface_hub is used: its settings, its output, its HTTP client.

huggingface_hub reads its settings from the environment once, at import, and
some bad values break that import (a print on stdout, then a ``ValueError``)
or warn on stderr. ``quiet_hub`` is the one gate before anything of it is
used: it checks those variables (``check_environment``), imports it with its
warnings caught, and routes its logging. Every public function of the hub
package passes through it first.

The engine never prints: huggingface_hub's log records and warnings are
routed into ``HUB_LOG`` (a ring buffer of recent lines a front end may show,
e.g. under ``--debug``) before the first call to the Hub.

``open_session`` builds the HTTP client early, so a proxy or certificate
setting it cannot use is named in the error.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import TextIO
from urllib.parse import urlsplit

from engine.errors import HubUnreachable, InvalidInput, LlamadeckError
from engine.ingest.hub.quoting import clean, error_reason, keep_secret
from engine.text import quoted

_TIMEOUT_VARIABLES = ("HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT")
_VERBOSITIES = ("debug", "info", "warning", "error", "critical")  # huggingface_hub.utils.logging.log_levels
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
_CERT_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")

_PACKAGE_DIR = os.path.dirname(__file__) + os.sep  # the hub package's modules

HUB_LOG: collections.deque[str] = collections.deque(maxlen=200)
"""The latest lines huggingface_hub logged or warned, oldest first; nothing of it reaches the terminal."""


def endpoint() -> str:
    """The Hub this process talks to (``HF_ENDPOINT``, read by huggingface_hub at import)."""
    quiet_hub()
    from huggingface_hub import constants

    return constants.ENDPOINT


def shown_endpoint() -> str:
    """The endpoint as messages name it: escaped, with any password in it hidden."""
    url = endpoint()
    password = urlsplit(url).password
    if not password:
        return clean(url)
    keep_secret(password)  # hidden in HUB_LOG's lines too, from now on
    return clean(url.replace(f":{password}@", ":***@", 1))


# -- the environment huggingface_hub reads at import ---------------------------------


def _endpoint_problem(value: str) -> str | None:
    """Why ``value`` cannot serve as ``HF_ENDPOINT``, or None."""
    if value != value.strip():
        return "it has spaces or a line break around it"
    if not value:
        return "it is empty"
    if any(c.isspace() or not c.isprintable() for c in value):
        return "it contains whitespace or control characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as error:
        return clean(str(error)) or "it does not parse as a URL"
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    if parts.query or parts.fragment:
        return "a Hub address has no '?' or '#' part"
    return None


def check_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Refuse the settings huggingface_hub would break on, before it is imported.

    At import it parses ``HF_ENDPOINT`` (a bad URL: "Error importing ..." on
    stdout, then a ``ValueError``), ``HF_HUB_DOWNLOAD_TIMEOUT`` and
    ``HF_HUB_ETAG_TIMEOUT`` (``int()``: ``abc`` breaks the import, ``-1``
    every request) and ``HF_HUB_VERBOSITY`` (an unknown level: a warning on
    stderr); ``HF_HUB_USER_AGENT_ORIGIN`` goes into every request's headers,
    which only carry printable ASCII. Raises ``InvalidInput`` naming the
    variable.

    >>> check_environment({"HF_HUB_DOWNLOAD_TIMEOUT": "30"})
    """
    raw = environ.get("HF_ENDPOINT")
    if raw is not None and (why := _endpoint_problem(raw)):
        raise InvalidInput(f"HF_ENDPOINT is not a usable URL: {quoted(raw, ascii_only=True)} ({why})")
    for name in _TIMEOUT_VARIABLES:
        value = environ.get(name)
        if value is None:
            continue
        try:
            seconds = int(value)  # what huggingface_hub does with it: "1.5" breaks its import too
        except ValueError:
            seconds = 0
        if seconds <= 0:
            raise InvalidInput(
                f"{name} must be a whole number of seconds above 0, not {quoted(value, ascii_only=True)}"
            )
    verbosity = environ.get("HF_HUB_VERBOSITY")
    if verbosity and verbosity not in _VERBOSITIES:
        raise InvalidInput(
            f"HF_HUB_VERBOSITY must be one of {', '.join(_VERBOSITIES)}, "
            f"not {quoted(verbosity, ascii_only=True)}"
        )
    origin = environ.get("HF_HUB_USER_AGENT_ORIGIN")
    if origin is not None and not (origin.isascii() and origin.isprintable()):
        raise InvalidInput(
            "HF_HUB_USER_AGENT_ORIGIN holds characters an HTTP header cannot carry: "
            f"{quoted(origin, ascii_only=True)}"
        )


# -- keeping huggingface_hub quiet -----------------------------------------------


class _RingHandler(logging.Handler):
    """Collects huggingface_hub's log records into ``HUB_LOG`` as escaped one-liners."""

    def emit(self, record: logging.LogRecord) -> None:
        with suppress(Exception):  # not handleError: that would print
            HUB_LOG.append(clean(f"{record.levelname} {record.name}: {record.getMessage()}", limit=500))


class _WarningRouter:
    """``warnings.showwarning`` that sends huggingface_hub's warnings to ``HUB_LOG``, the rest on."""

    def __init__(self, previous: Callable[..., None]) -> None:
        import huggingface_hub

        self.previous = previous
        self._hub_dir = os.path.dirname(huggingface_hub.__file__) + os.sep

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        ours = (
            category.__module__.startswith("huggingface_hub")
            or filename.startswith(self._hub_dir)
            or filename.startswith(_PACKAGE_DIR)  # a warning raised with stacklevel pointing at our call
        )
        if ours:
            _log_warning(message, category)
        else:
            self.previous(message, category, filename, lineno, file, line)


def _log_warning(message: Warning | str, category: type[Warning]) -> None:
    HUB_LOG.append(clean(f"{category.__name__}: {message}", limit=500))


_quiet_lock = threading.Lock()
_imported = False


def _import_hub() -> None:
    """Import the parts of huggingface_hub we use, with the warnings its import gives caught.

    ``constants`` warns at import (a ``FutureWarning`` for
    ``HF_HUB_ENABLE_HF_TRANSFER``), before any handler of ours could be in
    place: those go to ``HUB_LOG``. The submodules are imported by name, not
    through the package's lazy ``__getattr__``, which prints import errors.
    """
    global _imported
    if _imported:
        return
    # The user's filters decide what is recorded. No simplefilter("always") here: with it, the CLI's
    # exit went on to print llama_cpp's ResourceWarnings (observed with CPython 3.11, cause not traced).
    with warnings.catch_warnings(record=True) as caught:
        try:
            import huggingface_hub.constants
            import huggingface_hub.errors
            import huggingface_hub.file_download
            import huggingface_hub.hf_api
            import huggingface_hub.utils  # noqa: F401 - imported for what importing them does
        except Exception as error:  # a setting check_environment does not know, a broken install
            raise LlamadeckError(
                f"cannot load huggingface_hub ({error_reason(error)}): check the HF_* environment variables"
            ) from error
    for warning in caught:
        _log_warning(warning.message, warning.category)
    _imported = True


def quiet_hub() -> None:
    """The gate before any use of huggingface_hub; cheap and idempotent.

    Checks the environment huggingface_hub reads at import, imports it with
    its warnings caught, and routes its logging and warnings into
    ``HUB_LOG``. huggingface_hub gives its ``huggingface_hub`` logger a stderr
    handler at import: that handler goes, ours comes, and nothing propagates
    to the root logger. Checked on every call rather than once, because
    something (a test runner's ``catch_warnings``) may have put
    ``warnings.showwarning`` back.
    """
    check_environment()
    with _quiet_lock:
        _import_hub()
        library = logging.getLogger("huggingface_hub")
        if not any(isinstance(h, _RingHandler) for h in library.handlers):
            for handler in list(library.handlers):
                if type(handler) is logging.StreamHandler:  # huggingface_hub's own, to stderr
                    library.removeHandler(handler)
            library.addHandler(_RingHandler())
        library.propagate = False
        if not isinstance(warnings.showwarning, _WarningRouter):
            warnings.showwarning = _WarningRouter(warnings.showwarning)


def open_session() -> None:
    """Build huggingface_hub's HTTP client now, where a bad proxy or CA setting can be named.

    The client is built once, from ``http_proxy``/``https_proxy``/``ALL_PROXY``
    and ``SSL_CERT_FILE``/``SSL_CERT_DIR``; a value it cannot use fails there
    (an unknown scheme, a SOCKS proxy without ``socksio``, a missing CA file).
    """
    import httpx2
    from huggingface_hub.utils import get_session

    try:
        get_session()
    except (ImportError, ValueError, httpx2.InvalidURL) as error:
        socks = isinstance(error, ImportError)
        why = (
            "a SOCKS proxy needs the socksio package (pip install socksio)" if socks else error_reason(error)
        )
        raise HubUnreachable(f"cannot use the proxy from {_proxy_culprits(socks=socks)}: {why}") from error
    except OSError as error:  # ssl.SSLError is one
        used = next((n for n in _CERT_VARIABLES if os.environ.get(n)), None)  # httpx2's order
        source = f"{used} ({clean(os.environ[used], limit=500)})" if used else "the system's CA store"
        why = clean(error.strerror or str(error))
        raise InvalidInput(f"cannot use the certificates from {source}: {why}") from error


def _proxy_culprits(*, socks: bool) -> str:
    """The proxy variables the client could not use ("http_proxy/ALL_PROXY"), for a message."""
    import httpx2

    named = [n for n in sorted(os.environ) if n.lower() in _PROXY_VARIABLES and os.environ[n]]
    culprits = []
    for name in named:
        value = os.environ[name]
        if name.lower() == "no_proxy":
            continue
        try:
            url = httpx2.Proxy(url=value if "://" in value else f"http://{value}").url
        except (ValueError, httpx2.InvalidURL):
            culprits.append(name)
            continue
        if socks and url.scheme.startswith("socks"):
            culprits.append(name)
    return "/".join(culprits or named) or "the environment"
