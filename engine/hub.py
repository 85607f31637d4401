"""Everything that talks to Hugging Face, through huggingface_hub.

- ``fetch_listing``: a repo's GGUF variants (split parts grouped, quant read
  from the file name or, failing that, the remote header), with sizes and the
  Hub's LFS sha256 of every file, pinned to one commit.
- ``read_remote_info``: a variant's GGUF header, read into memory by ranged
  GETs that grow until ``gguf_io.scan_header`` has it all; no weights, no
  temp files.
- ``download``: one file into a resumable partial, hashed as it arrives.

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
one line with control characters escaped (``_clean``), and names the
configured endpoint (``HF_ENDPOINT``), not huggingface.co.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol, TextIO

from engine.cancel import NEVER, CancelToken
from engine.errors import (
    Cancelled,
    DiskFull,
    GatedRepo,
    HubUnreachable,
    IntegrityError,
    LlamadeckError,
    RepoNotFound,
)
from engine.quant import quality_rank, quant_from_file_type, quant_from_filename
from engine.transfer import PULL_CANCELLED, HashingFile, ProgressMeter
from engine.units import format_size

if TYPE_CHECKING:
    from engine.gguf_io import GGUFInfo

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_FIRST_HEADER_READ = 1024 * 1024
_MAX_HEADER_READ = 64 * 1024 * 1024  # the largest vocabularies need ~15 MB
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_QUOTE_LIMIT = 160  # characters of network text quoted in a message
_CANCEL_GRAIN = 1024 * 1024  # bytes between two cancel checks while bytes flow
_RETRY_STATUSES = (429, 500, 502, 503, 504)  # a header read tries once more after these
_NOTHING_CHANGED = "pull cancelled; nothing changed"

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
    variants: tuple[RemoteVariant, ...]  # best quality first
    projectors: tuple[RemoteFile, ...]  # mmproj files: not chat models on their own
    license: str | None

    def variant(self, quant: str) -> RemoteVariant:
        return next(v for v in self.variants if v.quant == quant)


def endpoint() -> str:
    """The Hub this process talks to (``HF_ENDPOINT``, read by huggingface_hub at import)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


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
            HUB_LOG.append(_clean(f"{category.__name__}: {message}", limit=500))
        else:
            self.previous(message, category, filename, lineno, file, line)


_quiet_lock = threading.Lock()


def _quiet_hub() -> None:
    """Route huggingface_hub's logging and warnings into ``HUB_LOG``; cheap and idempotent.

    huggingface_hub gives its ``huggingface_hub`` logger a stderr handler at
    import: that handler goes, ours comes, and nothing propagates to the root
    logger. Checked on every call rather than once, because something (a test
    runner's ``catch_warnings``) may have put ``warnings.showwarning`` back.
    """
    import huggingface_hub.utils.logging  # noqa: F401 - importing it adds its stderr handler: import first

    with _quiet_lock:
        library = logging.getLogger("huggingface_hub")
        if not any(isinstance(h, _RingHandler) for h in library.handlers):
            for handler in list(library.handlers):
                if type(handler) is logging.StreamHandler:  # huggingface_hub's own, to stderr
                    library.removeHandler(handler)
            library.addHandler(_RingHandler())
        library.propagate = False
        if not isinstance(warnings.showwarning, _WarningRouter):
            warnings.showwarning = _WarningRouter(warnings.showwarning)


# -- messages ----------------------------------------------------------------------


def _clean(text: str, *, limit: int = _QUOTE_LIMIT) -> str:
    """``text`` fit to quote in a one-line message: non-printables escaped as ``ascii()`` does, cut."""
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

    where = _clean(endpoint())
    name = _clean(repo)
    what = f"{_clean(file)} of {name}" if file else f"a file of {name}"
    try:
        yield
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


# -- the listing -------------------------------------------------------------------


def _group_variants(files: list[RemoteFile]) -> tuple[dict[str, list[RemoteFile]], list[RemoteFile]]:
    """Group GGUF files into variants (split parts together) and set projectors apart."""
    groups: dict[str, list[RemoteFile]] = {}
    projectors = []
    for file in sorted(files, key=lambda f: f.path):
        name = PurePosixPath(file.path).name
        if "mmproj" in name.lower():
            projectors.append(file)
            continue
        split = _SPLIT.match(file.path)
        key = split["stem"] if split else file.path
        groups.setdefault(key, []).append(file)
    complete = {}
    for key, parts in groups.items():
        split = _SPLIT.match(parts[0].path)
        if split and len(parts) != int(split["count"]):
            continue  # a split with missing parts cannot be loaded
        complete[key] = parts
    return complete, projectors


def fetch_listing(repo: str, *, token: str | None = None, cancel: CancelToken = NEVER) -> RepoListing:
    """The repo's GGUF variants at its current commit.

    One metadata call, without retries: an unreachable Hub fails at once. The
    call itself cannot be interrupted; ``cancel`` is checked around it (and
    inside any header read a file without a quant in its name needs).
    """
    from huggingface_hub import HfApi, constants

    _quiet_hub()
    _check(cancel, _NOTHING_CHANGED)
    with hub_errors(repo):
        info = HfApi(token=token).model_info(
            repo, files_metadata=True, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT
        )
    _check(cancel, _NOTHING_CHANGED)
    if not info.sha:  # the Hub always names the commit; without one the pull could not be pinned
        raise HubUnreachable(f"Hugging Face at {_clean(endpoint())} named no commit for {_clean(repo)}")
    commit = info.sha
    files = []
    for sibling in info.siblings or []:
        if not sibling.rfilename.lower().endswith(".gguf") or not sibling.rfilename.isprintable():
            continue  # a name with control characters could rewrite the user's terminal
        if sibling.lfs is None:
            continue  # no LFS sha256 on the Hub: nothing to verify the download against
        files.append(RemoteFile(sibling.rfilename, sibling.lfs.size, sibling.lfs.sha256))
    groups, projectors = _group_variants(files)
    variants: dict[str, RemoteVariant] = {}
    for parts in groups.values():
        quant = quant_from_filename(parts[0].path)
        if quant is None:
            header = read_remote_info(repo, commit, parts[0], token=token, cancel=cancel)
            quant = quant_from_file_type(header.file_type) if header.file_type is not None else None
        quant = quant or _tag_from_stem(PurePosixPath(parts[0].path).stem)
        variants.setdefault(quant, RemoteVariant(quant, tuple(parts)))
    ordered = sorted(variants.values(), key=lambda v: (quality_rank(v.quant), v.quant))
    card = info.card_data
    license_ = card.get("license") if card is not None else None
    return RepoListing(repo, commit, tuple(ordered), tuple(projectors), license_)


def _tag_from_stem(stem: str) -> str:
    """A usable tag for a file that names no quant and whose header has no file type."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80] or "GGUF"


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
        return _read_header(repo, commit, file, label, token, cancel)


def _read_header(
    repo: str, commit: str, file: RemoteFile, label: str, token: str | None, cancel: CancelToken
) -> GGUFInfo:
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    from engine.gguf_io import HeaderIncomplete, scan_header

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
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    _quiet_hub()
    label = _clean(file.path)
    existed = os.path.lexists(partial)
    try:
        sink = _open_partial(partial, file, meter, cancel)
    except OSError as error:
        raise _write_error(error, partial, label, kept=0) from error

    def after() -> str:
        if sink.size == 0:
            return "nothing was downloaded"
        return f"the partial download ({format_size(sink.size)}) is kept: run pull again to resume"

    try:
        with hub_errors(repo, file=file.path, after=after):
            _check(cancel, PULL_CANCELLED)
            _downloader()(
                hf_hub_url(repo, file.path, revision=commit),
                file,
                sink,
                resume_size=sink.size,
                headers=build_hf_headers(token=token),
                cancel=cancel,
            )
        meter.finish()
        return sink.finish()
    except BaseException as error:
        sink.close()
        kept = partial.stat().st_size if partial.is_file() else 0
        dropped = kept == 0 and not existed and _remove_empty(partial)
        if isinstance(error, OSError):
            raise _write_error(error, partial, label, kept=kept, after=after()) from error
        if isinstance(error, Cancelled) and dropped:
            raise Cancelled("pull cancelled before any byte arrived; nothing changed") from error
        raise


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
        where = _clean(str(partial), limit=500)
        return DiskFull(
            f"disk full while downloading {label}: {format_size(kept)} kept in {where}; "
            "free some space and run pull again to resume"
        )
    if error.errno is None:  # http_get's "Consistency check failed": the server sent a different length
        return HubUnreachable(
            f"Hugging Face at {_clean(endpoint())} sent a wrong number of bytes for {label}; {after}"
        )
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
