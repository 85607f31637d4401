"""One file from the Hub into a resumable partial, hashed as it arrives: ``download``.

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
``httpx2``; this package speaks ``httpx2``, so it needs huggingface_hub 2.x.

What that costs: on the real Hub most large GGUF repos are Xet-backed, and
``hf_hub_download`` fetches those with ``hf_xet`` (chunk-deduplicated,
parallel). ``http_get`` bypasses it and takes the resolve redirect's plain
HTTPS stream, one connection per file. Nothing in this project's tests can
measure the real Hub (they run against a loopback stand-in that never
advertises Xet), so the gap is unmeasured. ``_downloader()`` is the one place
a Xet path would be chosen; anything that fills a ``HashingFile`` from a byte
offset fits the ``Downloader`` protocol.

Downloads retry, resuming with Range, only once bytes have flowed.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from engine.cancel import NEVER, CancelToken
from engine.errors import Cancelled, DiskFull, HubUnreachable, LlamadeckError, NetworkError
from engine.ingest.hub.client import open_session, quiet_hub, shown_endpoint
from engine.ingest.hub.errors import CANCEL_GRAIN, check_cancel, hub_errors, not_the_api, parse_failure
from engine.ingest.hub.quoting import clean
from engine.ingest.hub.remote import RemoteFile
from engine.ingest.hub.tokens import resolve_token
from engine.store.transfer import PULL_CANCELLED, HashingFile, ProgressMeter
from engine.units import format_size

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


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
        check_cancel(self._cancel, PULL_CANCELLED)
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


_fine_reads = _ReadGrain(CANCEL_GRAIN)


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
    quiet_hub()
    from huggingface_hub import constants, hf_hub_url
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import build_hf_headers

    label = clean(file.path)
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
            check_cancel(cancel, PULL_CANCELLED)
            token = resolve_token(token)
            open_session()
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
                raise not_the_api(repo, parse_failure(error), after()) from error
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
        where = clean(str(partial), limit=500)
        return DiskFull(
            f"disk full while downloading {label}: {format_size(kept)} kept in {where}; "
            "free some space and run pull again to resume"
        )
    if error.errno is None:  # http_get's "Consistency check failed": the server sent a different length
        return HubUnreachable(
            f"Hugging Face at {shown_endpoint()} sent a wrong number of bytes for {label}; {after}"
        )
    reason = clean(error.strerror or str(error))
    return LlamadeckError(f"cannot write the partial download {clean(str(partial), limit=500)}: {reason}")


def _silent_bar_class() -> type:
    from huggingface_hub.utils import tqdm

    class SilentBar(tqdm):
        """huggingface_hub's bar with output off: progress reaches us as Progress events."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentBar
