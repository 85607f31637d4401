"""Blobs uploaded by a client (``POST /api/blobs/sha256:…``), then named in ``/api/create``.

An upload is written to a private file in the store's ``partial/`` folder,
hashed as it arrives and moved into ``blobs/`` only when its sha256 is the one
the client named, so a wrong, cut or hostile upload never becomes a blob. A
client names a blob only by its digest, never by a server path.

An upload is at most ``LLAMADECK_MAX_BLOB_BYTES`` (default 2 TiB: the
largest single-file models fit), refused when its declared size is past that
or past the free disk, and again as soon as what arrives is.

An uploaded blob no manifest names yet is never collected by another
model's ``rm``: only ``prune`` (or the server's start) takes it, once a day
has passed since it was uploaded, uploaded again or asked for with ``HEAD``
(``UNUSED_BLOB_GRACE``), so a client's upload-then-create is never cut.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from engine.errors import DiskFull, IntegrityError, InvalidInput, LlamadeckError, TooLarge
from engine.store.files import os_error
from engine.store.model_store import Store
from engine.units import format_size

DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")  # Ollama accepts either case
MAX_BLOB_BYTES = 2 << 40  # the default limit of one upload: 2 TiB
LIMIT_VARIABLE = "LLAMADECK_MAX_BLOB_BYTES"
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?) *([KMGT]I?)?B?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}
_UNITS |= {"KI": 1 << 10, "MI": 1 << 20, "GI": 1 << 30, "TI": 1 << 40}


def max_blob_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The largest upload accepted: ``LLAMADECK_MAX_BLOB_BYTES`` (bytes, ``300GB``, ``1.5TiB``), else 2 TiB.

    Raises LlamadeckError naming the variable when its value is not a size.
    """
    raw = (os.environ if environ is None else environ).get(LIMIT_VARIABLE, "").strip()
    if not raw:
        return MAX_BLOB_BYTES
    match = _SIZE.fullmatch(raw)
    if not match:
        raise LlamadeckError(
            f"{LIMIT_VARIABLE}={raw[:40]!r} is not a size: write bytes, or e.g. 300GB or 1TiB"
        )
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


def parse_digest(text: object) -> str:
    """The hex of ``sha256:<64 hex>`` (Ollama's form; ``sha256-`` accepted too)."""
    if isinstance(text, str) and (match := DIGEST.fullmatch(text)):
        return match.group(1).lower()
    shown = f"{text!r:.80}" if isinstance(text, str) else type(text).__name__
    raise InvalidInput(f"not a blob digest: {shown} (expected sha256:<64 hex digits>)")


class BlobUpload:
    """One upload: ``write`` the chunks, then ``finish`` (or leave the ``with`` on failure to discard it)."""

    def __init__(self, store: Store, sha256: str) -> None:
        self.limit = max_blob_bytes()
        self._store = store
        self.sha256 = sha256
        self._hash = hashlib.sha256()
        self.size = 0
        store.ensure()
        try:
            fd, name = tempfile.mkstemp(prefix=f"upload-{sha256[:12]}-", suffix=".partial", dir=store.partial)
        except OSError as error:
            raise os_error(error, "cannot start the upload in", store.partial) from error
        self._path = Path(name)
        self._file = os.fdopen(fd, "wb")

    def check_size(self, size: int) -> None:
        """Refuse (TooLarge) an upload of ``size`` bytes, declared or received so far, past the limit."""
        if size > self.limit:
            raise TooLarge(
                f"the upload is larger than the blob limit of {self.limit:,} bytes ({LIMIT_VARIABLE})"
            )

    def check_space(self, size: int) -> None:
        """Refuse (DiskFull) an upload of ``size`` bytes that the store's disk has no room for."""
        free = shutil.disk_usage(self._path.parent).free
        if size > free:
            raise DiskFull(
                f"the upload of {format_size(size)} does not fit: {format_size(free)} free "
                f"in {self._path.parent}; free some space and try again"
            )

    def write(self, chunk: bytes) -> None:
        self.check_size(self.size + len(chunk))
        try:
            self._file.write(chunk)
        except OSError as error:
            raise os_error(error, "cannot write the upload", self._path) from error
        self._hash.update(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        """Check the digest and store the blob; raises IntegrityError when it is not the one named."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as error:
            raise os_error(error, "cannot write the upload", self._path) from error
        got = self._hash.hexdigest()
        if got != self.sha256:
            raise IntegrityError(f"digest mismatch, expected sha256:{self.sha256}, got sha256:{got}")
        with self._store.blob_lock(self.sha256):
            if not self._store.has_blob(self.sha256):
                self._store.commit_blob(self._path, self.sha256)
            else:  # here already: its grace period restarts, as a fresh upload's would
                with contextlib.suppress(OSError):
                    os.utime(self._store.blob_path(self.sha256), follow_symlinks=False)

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        with contextlib.suppress(OSError):
            self._path.unlink()

    def __enter__(self) -> BlobUpload:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.discard()  # after finish the file has been moved: nothing is left to remove
