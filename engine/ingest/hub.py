"""Everything that talks to Hugging Face, through huggingface_hub.

- ``fetch_listing``: a repo's GGUF variants (split parts grouped, quant read
  from the file name or, failing that, the remote header), with sizes and the
  Hub's LFS sha256 of every file, pinned to one commit.
- ``read_remote_info``: a variant's GGUF header, read into memory by ranged
  GETs that grow until ``gguf_io.scan_header`` has it all; no weights, no
  temp files.
- ``download``: one file into a resumable partial, hashed as it arrives.
- ``search_models``: GGUF repositories by name, the most downloaded first.

Downloads go through one small function, ``_http_get_once``, around
huggingface_hub's ``file_download.http_get`` (auth from ``HF_TOKEN``, proxies,
the resolve redirect, Range resumes) writing into a partial file that *we*
own. ``hf_hub_download`` would be the obvious call, but it deletes its
``.incomplete`` file on any failure, so an interrupted or disk-full pull could
never resume in a later run. ``http_get`` is internal (not exported at the
package's top level). What we lean on is the same in huggingface_hub 1.33.0,
2.0.0 and 2.4.0: its signature (with ``_nb_retries``, which it resets to 5
once bytes flow), that it deep-copies ``headers`` at every attempt (where a
cancel is checked between its own resumes) and that it reads the stream in
``constants.DOWNLOAD_CHUNK_SIZE`` pieces. 1.x raises ``httpx`` errors, 2.x
``httpx2``; this module speaks ``httpx2``, so it needs huggingface_hub 2.x.

What that costs: on the real Hub most large GGUF repos are Xet-backed, and
``hf_hub_download`` fetches those with ``hf_xet`` (chunk-deduplicated,
parallel). ``http_get`` bypasses it and takes the resolve redirect's plain
HTTPS stream, one connection per file. Nothing in this project's tests can
measure the real Hub (they run against a loopback stand-in that never
advertises Xet), so the gap is unmeasured. ``_downloader()`` is the one place
a Xet path would be chosen; anything that fills a ``HashingFile`` from a byte
offset fits the ``Downloader`` protocol.

The engine never prints: huggingface_hub's log records and warnings are
routed into ``HUB_LOG`` (a ring buffer of recent lines a front end may show,
e.g. under ``--debug``) before the first call to the Hub. Metadata calls fail
fast, without retries (a refused connection or a failed DNS lookup is one
``HubUnreachable`` at once); downloads retry, resuming with Range, only once
bytes have flowed.

Every message that quotes the network (file names, the server's reasons) is
one line with control characters escaped (``_clean``), never shows the token,
and names the configured endpoint (``HF_ENDPOINT``), not huggingface.co.

huggingface_hub reads its settings from the environment once, at import, and
some bad values break that import (a print on stdout, then a ``ValueError``)
or warn on stderr. ``_quiet_hub`` is the one gate before anything of it is
used: it checks those variables (``check_environment``), imports it with its
warnings caught, and routes its logging. Every public function here passes
through it first.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol, TextIO
from urllib.parse import urlsplit

from engine.cancel import NEVER, CancelToken
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
from engine.machine.quant import quality_rank, quant_from_file_type, quant_from_filename
from engine.store.transfer import PULL_CANCELLED, HashingFile, ProgressMeter
from engine.units import format_size

if TYPE_CHECKING:
    from engine.store.gguf_io import GGUFInfo

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_FIRST_HEADER_READ = 1024 * 1024
_MAX_HEADER_READ = 64 * 1024 * 1024  # the largest vocabularies need ~15 MB
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_QUOTE_LIMIT = 160  # characters of network text quoted in a message
_CANCEL_GRAIN = 1024 * 1024  # bytes between two cancel checks while bytes flow
_RETRY_STATUSES = (429, 500, 502, 503, 504)  # a header read tries once more after these
_NOTHING_CHANGED = "pull cancelled; nothing changed"
_LICENSE_LIMIT = 64 * 1024  # bytes of licence text recorded (UTF-8); a card may paste a whole licence
_TAG_LIMIT = 40  # a HubRef quant: [A-Za-z0-9][A-Za-z0-9_-]*, at most 40 characters, upper-cased
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SECRET_MIN = 8  # shorter "tokens" are not scrubbed from messages: they would eat ordinary words
_TIMEOUT_VARIABLES = ("HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT")
_VERBOSITIES = ("debug", "info", "warning", "error", "critical")  # huggingface_hub.utils.logging.log_levels
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
_CERT_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")
# What a Hub call raises when the answer is not the Hub's JSON (HTML, an array, a missing key, a
# wrong type): json's errors are ValueErrors; ModelInfo(**data) raises the rest.
_NOT_THE_API = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)

HUB_LOG: collections.deque[str] = collections.deque(maxlen=200)
"""The latest lines huggingface_hub logged or warned, oldest first; nothing of it reaches the terminal."""


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class RemoteVariant:
    """One quantization of a model: a single file or the ordered parts of a split."""

    quant: str
    files: tuple[RemoteFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class RepoListing:
    repo: str
    commit: str
    variants: tuple[RemoteVariant, ...]  # best quality first; every quant a valid reference tag
    projectors: tuple[RemoteFile, ...]  # mmproj files: not chat models on their own
    license: str | None
    incomplete: tuple[str, ...] = ()  # split models with parts missing: "Model-Q8_0: part 2 of 3 missing"

    def variant(self, quant: str) -> RemoteVariant:
        return next(v for v in self.variants if v.quant == quant)


def endpoint() -> str:
    """The Hub this process talks to (``HF_ENDPOINT``, read by huggingface_hub at import)."""
    _quiet_hub()
    from huggingface_hub import constants

    return constants.ENDPOINT


def _where() -> str:
    """The endpoint as messages name it: escaped, with any password in it hidden."""
    url = endpoint()
    password = urlsplit(url).password
    if not password:
        return _clean(url)
    _keep_secret(password)  # hidden in HUB_LOG's lines too, from now on
    return _clean(url.replace(f":{password}@", ":***@", 1))


# -- the environment huggingface_hub reads at import ---------------------------------


def _quote_env(value: str) -> str:
    """An environment value quoted for a message: escaped (``ascii``), cut."""
    shown = ascii(value)
    return shown if len(shown) <= 80 else shown[:79] + "…"


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
        return _clean(str(error)) or "it does not parse as a URL"
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
        raise InvalidInput(f"HF_ENDPOINT is not a usable URL: {_quote_env(raw)} ({why})")
    for name in _TIMEOUT_VARIABLES:
        value = environ.get(name)
        if value is None:
            continue
        try:
            seconds = int(value)  # what huggingface_hub does with it: "1.5" breaks its import too
        except ValueError:
            seconds = 0
        if seconds <= 0:
            raise InvalidInput(f"{name} must be a whole number of seconds above 0, not {_quote_env(value)}")
    verbosity = environ.get("HF_HUB_VERBOSITY")
    if verbosity and verbosity not in _VERBOSITIES:
        raise InvalidInput(
            f"HF_HUB_VERBOSITY must be one of {', '.join(_VERBOSITIES)}, not {_quote_env(verbosity)}"
        )
    origin = environ.get("HF_HUB_USER_AGENT_ORIGIN")
    if origin is not None and not (origin.isascii() and origin.isprintable()):
        raise InvalidInput(
            f"HF_HUB_USER_AGENT_ORIGIN holds characters an HTTP header cannot carry: {_quote_env(origin)}"
        )


# -- tokens --------------------------------------------------------------------------

_secrets: frozenset[str] = frozenset()  # every token we send: scrubbed from any message (copied on add)
_secrets_lock = threading.Lock()


def clean_token(raw: str | None, *, source: str = "HF_TOKEN") -> str | None:
    """A Hugging Face token fit for an ``Authorization`` header, or None when there is none.

    Surrounding whitespace (the newline ``echo`` or a secrets file leaves) is
    dropped and an empty token is no token. Anything else that is not
    printable ASCII without spaces raises ``InvalidInput``; the message names
    where the token came from (``source``), never the token.

    >>> clean_token("  hf_abc\\n")
    'hf_abc'
    >>> clean_token("") is None
    True
    """
    if raw is None:
        return None
    token = raw.strip()
    if not token:
        return None
    if not all("!" <= c <= "~" for c in token):
        raise InvalidInput(f"{source} holds characters a Hugging Face token never has")
    _keep_secret(token)
    return token


def _keep_secret(secret: str) -> None:
    """Have ``_clean`` hide ``secret`` from now on (not when it is so short it would eat words)."""
    global _secrets
    if len(secret) >= _SECRET_MIN and secret not in _secrets:
        with _secrets_lock:
            _secrets = _secrets | {secret}


def _token(token: str | None) -> str | None:
    """The token to send: ``token`` cleaned, else the one huggingface_hub would find itself, checked.

    huggingface_hub's own lookup (``HF_TOKEN``, the token file, an OIDC
    exchange) runs here, once, so its failures become one-line errors and
    its token is checked and scrubbed like one passed in.
    """
    cleaned = clean_token(token)
    if cleaned is not None:
        return cleaned
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import OIDCError

    if constants.HF_HUB_DISABLE_IMPLICIT_TOKEN:
        return None
    try:
        implicit = get_token()
    except OIDCError as error:
        raise AccessDenied(
            f"cannot get a Hugging Face token through HF_OIDC_RESOURCE: {_reason(error)}"
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        if isinstance(error, ConnectionError):
            raise  # an OIDC exchange that could not reach the Hub: hub_errors says so
        where = _clean(str(constants.HF_TOKEN_PATH), limit=500)
        why = _clean(error.strerror or str(error)) if isinstance(error, OSError) else "it is not UTF-8 text"
        raise InvalidInput(f"cannot read the Hugging Face token file {where}: {why}") from error
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        source = "HF_TOKEN" if os.environ.get("HF_TOKEN") else "HUGGING_FACE_HUB_TOKEN"
    else:
        source = f"the token file {_clean(str(constants.HF_TOKEN_PATH), limit=500)}"
    return clean_token(implicit, source=source)


# -- keeping huggingface_hub quiet -----------------------------------------------


class _RingHandler(logging.Handler):
    """Collects huggingface_hub's log records into ``HUB_LOG`` as escaped one-liners."""

    def emit(self, record: logging.LogRecord) -> None:
        with suppress(Exception):  # not handleError: that would print
            HUB_LOG.append(_clean(f"{record.levelname} {record.name}: {record.getMessage()}", limit=500))


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
            or filename == __file__  # a warning raised with stacklevel pointing at our call
        )
        if ours:
            _log_warning(message, category)
        else:
            self.previous(message, category, filename, lineno, file, line)


def _log_warning(message: Warning | str, category: type[Warning]) -> None:
    HUB_LOG.append(_clean(f"{category.__name__}: {message}", limit=500))


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
                f"cannot load huggingface_hub ({_reason(error)}): check the HF_* environment variables"
            ) from error
    for warning in caught:
        _log_warning(warning.message, warning.category)
    _imported = True


def _quiet_hub() -> None:
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


def _open_session() -> None:
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
        why = "a SOCKS proxy needs the socksio package (pip install socksio)" if socks else _reason(error)
        raise HubUnreachable(f"cannot use the proxy from {_proxy_culprits(socks=socks)}: {why}") from error
    except OSError as error:  # ssl.SSLError is one
        used = next((n for n in _CERT_VARIABLES if os.environ.get(n)), None)  # httpx2's order
        source = f"{used} ({_clean(os.environ[used], limit=500)})" if used else "the system's CA store"
        why = _clean(error.strerror or str(error))
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


# -- messages ----------------------------------------------------------------------


def _clean(text: str, *, limit: int = _QUOTE_LIMIT) -> str:
    """``text`` fit to quote in a one-line message: tokens hidden, non-printables escaped, cut."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    escaped = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def _reason(error: BaseException) -> str:
    """The first line of what went wrong, escaped: often text the server sent."""
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return _clean(text or type(error).__name__)


def _server_reason(error: BaseException) -> str:
    """`` (the server's reason)`` of an HTTP error answer, or nothing."""
    message = getattr(error, "server_message", None)
    if not message:
        response = getattr(error, "response", None)
        message = getattr(response, "reason_phrase", None)
    if not message:
        return ""
    first = next((line.strip() for line in str(message).splitlines() if line.strip()), "")
    return f" ({_clean(first)})" if first else ""


@contextmanager
def hub_errors(
    repo: str, *, file: str | None = None, after: Callable[[], str] = lambda: "nothing changed"
) -> Iterator[None]:
    """Turn huggingface_hub and network exceptions into one-line user errors.

    ``after`` says what is left behind; it is asked when an error happens.
    """
    import httpx2
    from huggingface_hub import errors as hf

    where = _where()
    name = _clean(repo)
    what = f"{_clean(file)} of {name}" if file else f"a file of {name}"
    try:
        yield
    except hf.HFValidationError as error:  # engine.store.refs refuses these first; a caller here may not have
        raise InvalidReference(f"{name} is not a Hugging Face repository name ({_reason(error)})") from error
    except hf.GatedRepoError as error:
        raise GatedRepo(f"{name} is gated: accept its licence on {where}/{name} and set HF_TOKEN") from error
    except hf.RepositoryNotFoundError as error:
        raise RepoNotFound(
            f"no repository {name} on Hugging Face at {where} (check the name; a private repo needs HF_TOKEN)"
        ) from error
    except hf.RevisionNotFoundError as error:
        raise RepoNotFound(f"{name} has no such revision on Hugging Face at {where}") from error
    except hf.RemoteEntryNotFoundError as error:
        raise RepoNotFound(
            f"{what} disappeared from Hugging Face at {where} while pulling; {after()}"
        ) from error
    except hf.HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "an error"
        reason = _server_reason(error)
        if status in (401, 403):
            raise GatedRepo(
                f"Hugging Face at {where} refused access to {name} ({status}){reason}: set HF_TOKEN "
                f"(and accept the licence on {where}/{name} if it is gated)"
            ) from error
        answered = f"Hugging Face at {where} answered {status}{reason}"
        raise HubUnreachable(f"{answered} for {name}; {after()}") from error
    except (httpx2.RequestError, ConnectionError, TimeoutError) as error:
        raise HubUnreachable(f"cannot reach Hugging Face at {where} ({_reason(error)}); {after()}") from error


def _not_the_api(repo: str, why: str, after: str = "nothing changed") -> HubUnreachable:
    """The endpoint answered, but not as the Hub does (a captive portal's HTML, a broken mirror)."""
    return HubUnreachable(
        f"the server at {_where()} answered with something that is not the Hugging Face API "
        f"({why}) for {_clean(repo)}; check HF_ENDPOINT and any proxy; {after}"
    )


def _parse_failure(error: BaseException) -> str:
    """What a parse of the server's answer tripped on, for ``_not_the_api``."""
    if isinstance(error, KeyError):
        return f"no {_clean(str(error))} in it"
    return f"{type(error).__name__}: {_reason(error)}"


# -- the listing -------------------------------------------------------------------


def _group_variants(
    files: list[RemoteFile],
) -> tuple[dict[str, list[RemoteFile]], list[RemoteFile], list[str]]:
    """Group GGUF files into variants (split parts together) and set projectors apart.

    Returns the variants (file lists in part order), the projectors, and a
    line per split model with parts missing ("Model-Q8_0: part 2 of 3 missing").
    """
    groups: dict[tuple[str, int], dict[int, RemoteFile]] = {}
    projectors = []
    for file in sorted(files, key=lambda f: f.path):
        name = PurePosixPath(file.path).name
        if "mmproj" in name.lower():
            projectors.append(file)
            continue
        split = _SPLIT.match(file.path)
        if split and int(split["count"]) > 0:
            groups.setdefault((split["stem"], int(split["count"])), {})[int(split["part"])] = file
        else:
            groups[(file.path, 0)] = {0: file}
    complete: dict[str, list[RemoteFile]] = {}
    incomplete = []
    for (stem, count), parts in groups.items():
        if count == 0:
            complete[stem] = list(parts.values())
            continue
        missing = [n for n in range(1, count + 1) if n not in parts]
        if missing or len(parts) != count:  # a split with missing parts cannot be loaded
            if missing:
                numbers = ", ".join(map(str, missing))
                why = f"{'part' if len(missing) == 1 else 'parts'} {numbers} of {count} missing"
            else:
                why = f"parts numbered outside 1 to {count}"
            incomplete.append(f"{_clean(PurePosixPath(stem).name)}: {why}")
            continue
        complete[f"{stem}-of-{count}"] = [parts[n] for n in range(1, count + 1)]
    return complete, projectors, incomplete


def quant_tag(text: str) -> str:
    """``text`` as a valid reference quant: ``[A-Z0-9][A-Z0-9_-]*``, at most 40 characters.

    File names and folders can hold anything; the tag must be something a user
    can type after the colon (``engine.store.refs.HubRef``) and get this variant back.

    >>> quant_tag("my.model.v2")
    'MY_MODEL_V2'
    """
    tag = _TAG_UNSAFE.sub("_", text).lstrip("_-")[:_TAG_LIMIT].upper()
    return tag if tag and tag != "LATEST" else "GGUF"  # a reference reads ":latest" as no quant


def _unique_tag(tag: str, taken: set[str]) -> str:
    """``tag``, or ``tag-2``, ``tag-3``... (cut to fit 40 characters) if already taken."""
    unique, n = tag, 1
    while unique in taken:
        n += 1
        suffix = f"-{n}"
        unique = tag[: _TAG_LIMIT - len(suffix)] + suffix
    return unique


def license_text(raw: object) -> str | None:
    """A licence as the store records it: text up to 64 KiB, or None.

    A model card's ``license`` may be a list (``license: [mit, apache-2.0]``):
    joined with ", ". Anything else that is not text is no licence.

    >>> license_text(["mit", "apache-2.0"])
    'mit, apache-2.0'
    """
    if isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        raw = ", ".join(raw)
    if not isinstance(raw, str) or not raw.strip():
        return None
    encoded = raw.encode("utf-8", errors="replace")
    if len(encoded) <= _LICENSE_LIMIT:
        return raw
    return encoded[:_LICENSE_LIMIT].decode("utf-8", errors="ignore")


def _remote_files(repo: str, siblings: object) -> list[RemoteFile]:
    """The repo's GGUF files with their LFS size and sha256; a malformed entry is not the Hub's."""
    if siblings is None:
        return []
    if not isinstance(siblings, list):
        raise _not_the_api(repo, "its file list is not a list")
    files = []
    for sibling in siblings:
        name = getattr(sibling, "rfilename", None)
        if not isinstance(name, str):
            raise _not_the_api(repo, "a file without a name")
        if not name.lower().endswith(".gguf") or not name.isprintable():
            continue  # a name with control characters could rewrite the user's terminal
        lfs = sibling.lfs
        if lfs is None:
            continue  # no LFS sha256 on the Hub: nothing to verify the download against
        size, sha256 = getattr(lfs, "size", None), getattr(lfs, "sha256", None)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _not_the_api(repo, f"the size of {_clean(name)} is not a byte count")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
            raise _not_the_api(repo, f"the sha256 of {_clean(name)} is not one")
        files.append(RemoteFile(name, size, sha256.lower()))
    return files


def fetch_listing(repo: str, *, token: str | None = None, cancel: CancelToken = NEVER) -> RepoListing:
    """The repo's GGUF variants at its current commit.

    One metadata call, without retries: an unreachable Hub fails at once. The
    call itself cannot be interrupted; ``cancel`` is checked around it (and
    inside any header read a file without a quant in its name needs).

    Every variant's quant is a valid reference tag (``quant_tag``), unique in
    the listing, so each can be pulled by the name ``pull --list`` shows.
    """
    _quiet_hub()
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.repocard_data import CardData

    _check(cancel, _NOTHING_CHANGED)
    with hub_errors(repo):
        token = _token(token)
        _open_session()
        try:
            info = HfApi(token=token).model_info(
                repo, files_metadata=True, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT
            )
        except HFValidationError:
            raise  # the name, not the answer: hub_errors says so
        except _NOT_THE_API as error:
            raise _not_the_api(repo, _parse_failure(error)) from error
    _check(cancel, _NOTHING_CHANGED)
    if not info.sha:  # the Hub always names the commit; without one the pull could not be pinned
        raise HubUnreachable(f"Hugging Face at {_where()} named no commit for {_clean(repo)}")
    if not isinstance(info.sha, str) or not _COMMIT.fullmatch(info.sha):
        raise _not_the_api(repo, "its commit is not a git sha")
    commit = info.sha
    groups, projectors, incomplete = _group_variants(_remote_files(repo, info.siblings))
    variants: list[RemoteVariant] = []
    taken: set[str] = set()
    for parts in groups.values():
        tag = _unique_tag(quant_tag(_quant_of(repo, commit, parts[0], token, cancel)), taken)
        taken.add(tag)
        variants.append(RemoteVariant(tag, tuple(parts)))
    ordered = sorted(variants, key=lambda v: (quality_rank(v.quant), v.quant))
    card: object = info.card_data  # a ModelCardData when the Hub sent an object, else what it sent
    license_ = license_text(card.get("license") if isinstance(card, CardData) else None)
    return RepoListing(repo, commit, tuple(ordered), tuple(projectors), license_, tuple(incomplete))


# -- searching -----------------------------------------------------------------------

_SEARCH_MAX = 100  # results one search may ask for (the Hub's own page size is 1000)
_QUERY_MAX = 200  # characters in a search
_SEARCH_FIELDS = ("downloads", "likes", "lastModified", "gated")


@dataclass(frozen=True)
class HubRepo:
    """One search result: a repository on the Hub that holds GGUF files."""

    repo: str  # ORG/REPO, a valid reference once prefixed with hf.co/
    downloads: int  # the Hub's count (the last 30 days)
    likes: int
    updated: str | None  # the last commit's time, ISO 8601 as the Hub sends it
    gated: bool  # pulling it needs HF_TOKEN and its licence accepted


def search_models(
    query: str, *, limit: int = 30, token: str | None = None, cancel: CancelToken = NEVER
) -> list[HubRepo]:
    """GGUF repositories whose name contains ``query``, the most downloaded first.

    One GET of the Hub's model list (what ``HfApi.list_models(search=query,
    filter="gguf", sort="downloads", limit=limit)`` asks, descending), made
    with huggingface_hub's session but without ``list_models``' retries
    (``http_backoff``: up to five, with waits of up to 8 s each), so an
    unreachable Hub is one ``HubUnreachable`` at once, as for ``fetch_listing``.
    Results whose id is not a valid ``ORG/REPO`` are left out.

    >>> [r.repo for r in search_models("llama-3.2-1b", limit=2)]  # doctest: +SKIP
    ['bartowski/Llama-3.2-1B-Instruct-GGUF', 'unsloth/Llama-3.2-1B-Instruct-GGUF']
    """
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("type part of a model's name to search Hugging Face")
    query = query.strip()
    if len(query) > _QUERY_MAX or not query.isprintable():
        raise InvalidInput(f"a search is at most {_QUERY_MAX} printable characters on one line")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _SEARCH_MAX:
        raise InvalidInput(f"a search returns 1 to {_SEARCH_MAX} results, not {limit!r:.20}")
    _quiet_hub()
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    _check(cancel, "search cancelled")
    label = f"the search {query!r}"
    params: dict[str, str | int | list[str]] = {
        "search": query,
        "filter": "gguf",
        "sort": "downloads",
        "direction": -1,  # most first (the Hub's default for sort, said outright)
        "limit": limit,
        "expand": list(_SEARCH_FIELDS),  # these fields only, not the default set
    }
    with hub_errors(label, after=lambda: "try again when it answers"):
        token = _token(token)
        _open_session()
        response = get_session().get(
            f"{constants.ENDPOINT}/api/models",
            params=params,
            headers=build_hf_headers(token=token or False),
            timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
        )
        try:
            hf_raise_for_status(response)
        except HfHubHTTPError as error:
            if response.status_code not in (401, 403):
                raise  # hub_errors says what the Hub answered
            raise AccessDenied(
                f"Hugging Face at {_where()} refused the search ({response.status_code})"
                f"{_server_reason(error)}: check HF_TOKEN"
            ) from error
        try:
            data = response.json()
        except _NOT_THE_API as error:
            raise _not_the_api(label, _parse_failure(error), "try again later") from error
    _check(cancel, "search cancelled")
    if not isinstance(data, list):
        raise _not_the_api(label, "not a list of models", "try again later")
    found = [repo for repo in map(_hub_repo, data) if repo is not None]
    return sorted(found, key=lambda r: -r.downloads)[:limit]


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _hub_repo(item: object) -> HubRepo | None:
    """A search result from one item of the Hub's JSON; None when its id is no repository name."""
    from engine.store.refs import _repo_problem

    if not isinstance(item, dict):
        return None
    repo = item.get("id")
    if not isinstance(repo, str) or _repo_problem(repo) is not None:
        return None
    updated = item.get("lastModified")
    return HubRepo(
        repo=repo,
        downloads=_count(item.get("downloads")),
        likes=_count(item.get("likes")),
        updated=_clean(updated, limit=40) if isinstance(updated, str) and updated else None,
        gated=item.get("gated") not in (None, False, "false"),
    )


def _quant_of(repo: str, commit: str, first: RemoteFile, token: str | None, cancel: CancelToken) -> str:
    """The quant a file's name announces, else its header's file type, else its name."""
    quant = quant_from_filename(first.path)
    if quant is None:
        try:
            header = read_remote_info(repo, commit, first, token=token, cancel=cancel)
        except IntegrityError:
            header = None  # named by its file; pulling it will say what is wrong with it
        if header is not None and header.file_type is not None:
            quant = quant_from_file_type(header.file_type)
    split = _SPLIT.match(first.path)
    return quant or PurePosixPath(split["stem"] if split else first.path).name.removesuffix(".gguf")


def _check(cancel: CancelToken, message: str) -> None:
    if cancel.cancelled:
        raise Cancelled(message)


# -- the remote header -------------------------------------------------------------


def read_remote_info(
    repo: str, commit: str, file: RemoteFile, *, token: str | None = None, cancel: CancelToken = NEVER
) -> GGUFInfo:
    """Read a remote GGUF header into memory with ranged GETs, growing the read until it parses.

    The first read is 1 MiB (less for a smaller file); while
    ``gguf_io.scan_header`` says the header goes on, only the missing bytes
    are fetched (as many as the scan estimates it still needs), up to 64 MiB.
    Nothing touches the disk. No retries on a refused or broken connection
    (the Hub is unreachable: say so now); one more try after a 429 or 5xx.
    ``cancel`` is checked per MiB received.
    """
    _quiet_hub()
    label = f"{_clean(file.path)} in {_clean(repo)}"
    with hub_errors(repo, file=file.path):
        token = _token(token)
        _open_session()
        return _read_header(repo, commit, file, label, token, cancel)


def _read_header(
    repo: str, commit: str, file: RemoteFile, label: str, token: str | None, cancel: CancelToken
) -> GGUFInfo:
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    from engine.store.gguf_io import HeaderIncomplete, scan_header

    if file.size < 4:
        raise IntegrityError(f"{label} is not a GGUF file ({file.size} bytes)")
    url = hf_hub_url(repo, file.path, revision=commit)
    headers = build_hf_headers(token=token)
    limit = min(file.size, _MAX_HEADER_READ)
    buffer = bytearray()
    want = min(_FIRST_HEADER_READ, limit)
    while True:
        held = len(buffer)
        _read_range(url, headers, buffer, want, cancel)
        if not buffer.startswith(b"GGUF"):
            raise IntegrityError(f"{label} is not a GGUF file (bad magic)")
        try:
            # a copy: the scan may keep slices, and the bytearray must stay free to grow
            return scan_header(bytes(buffer), label=label, file_size=file.size)
        except HeaderIncomplete as incomplete:
            needed, estimate = incomplete.needed, incomplete.estimate
        if needed > limit or len(buffer) >= limit or len(buffer) <= held:
            beyond = f" within its first {format_size(limit)}" if needed > limit else ""
            raise IntegrityError(f"{label} has no readable GGUF header{beyond}")
        # the scan's estimate usually ends it in one more read; growing by a quarter at least bounds rounds
        want = min(max(needed, estimate, len(buffer) * 5 // 4), limit)


def _read_range(url: str, headers: dict[str, str], buffer: bytearray, want: int, cancel: CancelToken) -> None:
    """Append bytes ``len(buffer)`` to ``want - 1`` of ``url`` to ``buffer``."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import hf_raise_for_status, http_stream_backoff

    for attempt in range(2):
        _check(cancel, _NOTHING_CHANGED)
        start = len(buffer)
        try:
            with http_stream_backoff(
                "GET",
                url,
                headers=headers | {"Range": f"bytes={start}-{want - 1}"},
                timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
                retry_on_exceptions=(),  # metadata fails fast: no 24 s of backoff on a dead Hub
                retry_on_status_codes=(),  # retried here, where the wait can be cancelled
            ) as response:
                hf_raise_for_status(response)
                if response.status_code != 206:
                    del buffer[:]  # the server ignored the Range: its body starts at byte 0
                for chunk in response.iter_bytes(chunk_size=_CANCEL_GRAIN):
                    _check(cancel, _NOTHING_CHANGED)
                    buffer += chunk[: want - len(buffer)]
                    if len(buffer) >= want:
                        break  # leaving the block closes the stream: no more of the weights
                return
        except HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else None
            if status not in _RETRY_STATUSES or attempt == 1:
                raise
        if cancel.wait(1.0):
            raise Cancelled(_NOTHING_CHANGED)


# -- downloads ---------------------------------------------------------------------


class Downloader(Protocol):
    """Fills ``sink`` with ``file`` from byte ``resume_size`` on, resuming by itself once bytes flow.

    Raises the transport's errors (``httpx2``) or huggingface_hub's HTTP
    errors; writes only through ``sink``, whose ``write`` raises ``Cancelled``
    once ``cancel`` is set. Between its own attempts it checks ``cancel`` too.
    """

    def __call__(
        self,
        url: str,
        file: RemoteFile,
        sink: HashingFile,
        *,
        resume_size: int,
        headers: dict[str, str],
        cancel: CancelToken,
    ) -> None: ...


class _CancellableHeaders(dict[str, str]):
    """Request headers that check a cancel token each time ``http_get`` copies them.

    ``http_get`` deep-copies its headers at the start of every attempt,
    including the resumes it makes on its own after a read timeout or a reset:
    the one point between those attempts where control passes through our
    code, so a cancel during a stall is not left waiting for five more tries.
    """

    def __init__(self, headers: dict[str, str], cancel: CancelToken) -> None:
        super().__init__(headers)
        self._cancel = cancel

    def __deepcopy__(self, memo: dict[int, object]) -> dict[str, str]:
        _check(self._cancel, PULL_CANCELLED)
        return dict(self)


class _ReadGrain:
    """Lowers ``constants.DOWNLOAD_CHUNK_SIZE`` while any of our downloads runs, then puts it back.

    ``http_get`` reads the stream in pieces of that size (10 MiB) and writes
    each piece whole, so it sets how often a write (and the cancel check in
    it) happens, and how much a broken stream loses. It is module state, read
    on every chunk loop: changed only while our downloads run (counted, for
    downloads on several threads) and restored after the last one ends.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        from huggingface_hub import constants

        with self._lock:
            if self._users == 0:
                self._saved = constants.DOWNLOAD_CHUNK_SIZE
                constants.DOWNLOAD_CHUNK_SIZE = min(self._saved, self._size)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    constants.DOWNLOAD_CHUNK_SIZE = self._saved


_fine_reads = _ReadGrain(_CANCEL_GRAIN)


def _http_get_once(
    url: str,
    file: RemoteFile,
    sink: HashingFile,
    *,
    resume_size: int,
    headers: dict[str, str],
    cancel: CancelToken,
) -> None:
    """Plain HTTPS through huggingface_hub's internal ``http_get`` (see the module docstring).

    ``_nb_retries=0``: no retry before the first byte, so a Hub that cannot be
    reached fails at once. Once bytes flow, ``http_get`` resets its count and
    resumes by itself with a Range request after a broken or stalled
    connection (up to 5 tries in a row without a new byte, 1 s apart). The
    stream is read in 1 MiB pieces (huggingface_hub's default: 10 MiB), so a
    cancel, checked on every write, lands within a second at 1 MB/s and up,
    and a broken stream loses at most 1 MiB of what had arrived.
    """
    from huggingface_hub.file_download import http_get

    with _fine_reads():
        http_get(
            url,
            sink,  # type: ignore[arg-type]  # file-like enough: write, tell, seek, truncate
            resume_size=resume_size,
            headers=_CancellableHeaders(headers, cancel),
            expected_size=file.size,
            displayed_filename=file.path,
            tqdm_class=_silent_bar_class(),
            _nb_retries=0,
        )


def _downloader() -> Downloader:
    """The one place the transfer is chosen; a Xet (``hf_xet``) path would be picked here."""
    return _http_get_once


def download(
    repo: str,
    commit: str,
    file: RemoteFile,
    partial: Path,
    meter: ProgressMeter,
    *,
    token: str | None = None,
    cancel: CancelToken = NEVER,
) -> str:
    """Download ``file`` into ``partial`` (resuming what is there); returns its sha256.

    Once bytes have flowed, a broken or stalled connection is resumed with a
    Range request (up to 5 tries in a row without a new byte, 1 s apart); a
    connection that never delivered fails at once with ``HubUnreachable``.

    ``cancel`` is checked on every write, so while bytes flow ``Cancelled``
    is raised within a second, with the partial flushed and kept for the
    next pull. On a stalled connection nothing is written: the cancel is
    noticed when the read times out (``HF_HUB_DOWNLOAD_TIMEOUT``, 10 s by
    default), plus the 1 s pause before a resume, at worst. A download that
    wrote nothing leaves no empty partial behind.
    """
    _quiet_hub()
    from huggingface_hub import constants, hf_hub_url
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import build_hf_headers

    label = _clean(file.path)
    existed = os.path.lexists(partial)
    try:
        sink = _open_partial(partial, file, meter, cancel)
    except OSError as error:
        raise _write_error(error, partial, label, kept=_kept(partial)) from error

    def after() -> str:
        if sink.size == 0:
            return "nothing was downloaded"
        return f"the partial download ({format_size(sink.size)}) is kept: run pull again to resume"

    try:
        with hub_errors(repo, file=file.path, after=after):
            _check(cancel, PULL_CANCELLED)
            token = _token(token)
            _open_session()
            if sink.size == 0 and file.size > constants.MAX_HTTP_DOWNLOAD_SIZE:
                raise NetworkError(
                    f"{label} is {format_size(file.size)}: huggingface_hub fetches files over "
                    f"{format_size(constants.MAX_HTTP_DOWNLOAD_SIZE)} only through hf_xet, which llamadeck "
                    "does not use yet; nothing was downloaded"
                )
            try:
                _downloader()(
                    hf_hub_url(repo, file.path, revision=commit),
                    file,
                    sink,
                    resume_size=sink.size,
                    headers=build_hf_headers(token=token),
                    cancel=cancel,
                )
            except HFValidationError:
                raise  # the name, not the answer: hub_errors says so
            except (ValueError, TypeError, KeyError) as error:  # e.g. a Content-Range of "bytes 0-9/*"
                raise _not_the_api(repo, _parse_failure(error), after()) from error
        meter.finish()
        return sink.finish()
    except BaseException as error:
        sink.close()
        dropped = not existed and _remove_empty(partial)
        if isinstance(error, OSError):
            raise _write_error(error, partial, label, kept=_kept(partial), after=after()) from error
        if isinstance(error, Cancelled) and dropped:
            raise Cancelled("pull cancelled before any byte arrived; nothing changed") from error
        raise


def _kept(partial: Path) -> int:
    """Bytes of ``partial`` on disk (0 when there is no such file)."""
    try:
        return partial.stat().st_size if partial.is_file() else 0
    except OSError:
        return 0


def _open_partial(partial: Path, file: RemoteFile, meter: ProgressMeter, cancel: CancelToken) -> HashingFile:
    partial.parent.mkdir(parents=True, exist_ok=True)
    if partial.is_file() and partial.stat().st_size > file.size:
        partial.unlink()  # longer than the file: not a prefix of it
    sink = HashingFile(partial, meter, cancel=cancel)
    meter.completed = sink.size
    return sink


def _remove_empty(partial: Path) -> bool:
    """Remove ``partial`` if it is an empty file; True when it did."""
    try:
        if partial.is_file() and partial.stat().st_size == 0:
            partial.unlink()
            return True
    except OSError:
        pass
    return False


def _write_error(error: OSError, partial: Path, label: str, *, kept: int, after: str = "") -> LlamadeckError:
    """A local write failure (or huggingface_hub's size check) as a one-line error naming ``partial``."""
    if error.errno in _NO_SPACE:
        if kept == 0:  # an empty partial was removed, or the disk took none of it
            return DiskFull(
                f"disk full while downloading {label}: nothing kept; free some space and pull again"
            )
        where = _clean(str(partial), limit=500)
        return DiskFull(
            f"disk full while downloading {label}: {format_size(kept)} kept in {where}; "
            "free some space and run pull again to resume"
        )
    if error.errno is None:  # http_get's "Consistency check failed": the server sent a different length
        return HubUnreachable(f"Hugging Face at {_where()} sent a wrong number of bytes for {label}; {after}")
    reason = _clean(error.strerror or str(error))
    return LlamadeckError(f"cannot write the partial download {_clean(str(partial), limit=500)}: {reason}")


def _silent_bar_class() -> type:
    from huggingface_hub.utils import tqdm

    class SilentBar(tqdm):
        """huggingface_hub's bar with output off: progress reaches us as Progress events."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentBar
