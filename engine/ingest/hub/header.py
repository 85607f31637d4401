"""A variant's GGUF header, read from the Hub into memory: ``read_remote_info``.

Ranged GETs grow until ``gguf_io.scan_header`` has the whole header; no
weights, no temp files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.cancel import NEVER, CancelToken
from engine.errors import Cancelled, IntegrityError
from engine.ingest.hub.client import open_session, quiet_hub
from engine.ingest.hub.errors import CANCEL_GRAIN, NOTHING_CHANGED, check_cancel, hub_errors
from engine.ingest.hub.quoting import clean
from engine.ingest.hub.remote import RemoteFile
from engine.ingest.hub.tokens import resolve_token
from engine.units import format_size

if TYPE_CHECKING:
    from engine.store.gguf_io import GGUFInfo

_FIRST_HEADER_READ = 1024 * 1024
_MAX_HEADER_READ = 64 * 1024 * 1024  # the largest vocabularies need ~15 MB
_RETRY_STATUSES = (429, 500, 502, 503, 504)  # a header read tries once more after these


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
    quiet_hub()
    label = f"{clean(file.path)} in {clean(repo)}"
    with hub_errors(repo, file=file.path):
        token = resolve_token(token)
        open_session()
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
        check_cancel(cancel, NOTHING_CHANGED)
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
                for chunk in response.iter_bytes(chunk_size=CANCEL_GRAIN):
                    check_cancel(cancel, NOTHING_CHANGED)
                    buffer += chunk[: want - len(buffer)]
                    if len(buffer) >= want:
                        break  # leaving the block closes the stream: no more of the weights
                return
        except HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else None
            if status not in _RETRY_STATUSES or attempt == 1:
                raise
        if cancel.wait(1.0):
            raise Cancelled(NOTHING_CHANGED)
