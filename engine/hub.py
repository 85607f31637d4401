"""Everything that talks to Hugging Face, through huggingface_hub.

- ``fetch_listing``: a repo's GGUF variants (split parts grouped, quant read
  from the file name or, failing that, the remote header), with sizes and the
  Hub's LFS sha256 of every file, pinned to one commit.
- ``read_remote_info``: a variant's GGUF header by ranged reads
  (``HfFileSystem``) into a sparse file, without downloading the weights.
- ``download``: one file into a resumable partial, hashed as it arrives.

Downloads use huggingface_hub's own ``http_get`` (auth from ``HF_TOKEN``,
proxies, retries and in-process resume with Range requests) writing into a
partial file that we own. ``hf_hub_download`` would be the obvious call, but
in huggingface_hub 2.x it deletes its partial on any failure, so an
interrupted or disk-full pull could never resume in a later run.
"""

from __future__ import annotations

import errno
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import (
    DiskFull,
    GatedRepo,
    HubUnreachable,
    IntegrityError,
    LlamadeckError,
    RepoNotFound,
)
from engine.gguf_io import GGUFInfo, parse_header
from engine.quant import quality_rank, quant_from_file_type, quant_from_filename
from engine.transfer import HashingFile, ProgressMeter
from engine.units import format_size

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_FIRST_HEADER_READ = 1024 * 1024
_MAX_HEADER_READ = 64 * 1024 * 1024  # the largest vocabularies need ~15 MB
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


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
    from huggingface_hub import constants

    return constants.ENDPOINT


@contextmanager
def hub_errors(repo: str, *, partial_kept: bool = False) -> Iterator[None]:
    """Turn huggingface_hub and network exceptions into one-line user errors."""
    from huggingface_hub import errors as hf

    try:
        import httpx2 as httpx
    except ImportError:  # huggingface_hub 1.x used httpx
        import httpx  # type: ignore[no-redef]

    after = "the partial download is kept: run pull again to resume" if partial_kept else "nothing changed"
    try:
        yield
    except hf.GatedRepoError as error:
        raise GatedRepo(
            f"{repo} is gated: accept its licence on https://huggingface.co/{repo} and set HF_TOKEN"
        ) from error
    except hf.RepositoryNotFoundError as error:
        raise RepoNotFound(
            f"no repository {repo} on Hugging Face (check the name; a private repo needs HF_TOKEN)"
        ) from error
    except hf.RevisionNotFoundError as error:
        raise RepoNotFound(f"{repo} has no such revision") from error
    except hf.RemoteEntryNotFoundError as error:
        raise RepoNotFound(f"a file of {repo} disappeared from the Hub while pulling; {after}") from error
    except hf.HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "an error"
        if status in (401, 403):
            raise GatedRepo(f"Hugging Face refused access to {repo} ({status}): set HF_TOKEN") from error
        raise HubUnreachable(f"Hugging Face answered {status} for {repo}; {after}") from error
    except (httpx.TransportError, ConnectionError, TimeoutError, hf.LocalEntryNotFoundError) as error:
        raise HubUnreachable(
            f"cannot reach Hugging Face at {endpoint()} ({_reason(error)}); {after}"
        ) from error


def _reason(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:160]


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


def fetch_listing(repo: str, *, token: str | None = None) -> RepoListing:
    """The repo's GGUF variants at its current commit."""
    from huggingface_hub import HfApi

    with hub_errors(repo):
        info = HfApi(token=token).model_info(repo, files_metadata=True)
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
            header = read_remote_info(repo, info.sha, parts[0], token=token)
            quant = quant_from_file_type(header.file_type) if header.file_type is not None else None
        quant = quant or _tag_from_stem(PurePosixPath(parts[0].path).stem)
        variants.setdefault(quant, RemoteVariant(quant, tuple(parts)))
    ordered = sorted(variants.values(), key=lambda v: (quality_rank(v.quant), v.quant))
    card = info.card_data
    license_ = card.get("license") if card is not None else None
    return RepoListing(repo, info.sha, tuple(ordered), tuple(projectors), license_)


def _tag_from_stem(stem: str) -> str:
    """A usable tag for a file that names no quant and whose header has no file type."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80] or "GGUF"


def read_remote_info(repo: str, commit: str, file: RemoteFile, *, token: str | None = None) -> GGUFInfo:
    """Read a remote GGUF header with ranged requests, growing the read until it parses.

    The bytes land at their offsets in a sparse file of the full size, so the
    gguf reader sees a complete file whose tensor data reads as zeros.
    """
    try:
        with tempfile.TemporaryDirectory(prefix="llamadeck-header-") as tmp, hub_errors(repo):
            return _read_header(Path(tmp) / "header.gguf", repo, commit, file, token)
    except OSError as error:
        if error.errno in _NO_SPACE:
            raise DiskFull(f"no space left to read the header of {file.path}; nothing changed") from error
        raise


def _read_header(sparse: Path, repo: str, commit: str, file: RemoteFile, token: str | None) -> GGUFInfo:
    from huggingface_hub import constants, hf_hub_url
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff

    url = hf_hub_url(repo, file.path, revision=commit)
    headers = build_hf_headers(token=token)
    limit = min(file.size, _MAX_HEADER_READ)
    with open(sparse, "wb") as out:
        out.truncate(file.size)  # a hole: no disk used, reads as zeros
        fetched, want = 0, _FIRST_HEADER_READ
        while True:
            want = min(want, limit)
            out.seek(fetched)
            range_ = {"Range": f"bytes={fetched}-{want - 1}"}
            # the same ranged GET HfFileSystem makes, without its two metadata calls first
            response = http_backoff(
                "GET", url, headers=headers | range_, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT
            )
            hf_raise_for_status(response)
            chunk = response.content
            if fetched == 0 and not chunk.startswith(b"GGUF"):
                raise IntegrityError(f"{file.path} in {repo} is not a GGUF file (bad magic)")
            out.write(chunk)
            out.flush()
            got = len(chunk)
            fetched += got
            info = parse_header(sparse, available=fetched)
            if info is not None:
                return info
            if fetched >= limit or got == 0:
                raise IntegrityError(f"{file.path} in {repo} has no readable GGUF header")
            want *= 4


def download(
    repo: str,
    commit: str,
    file: RemoteFile,
    partial: Path,
    meter: ProgressMeter,
    *,
    token: str | None = None,
) -> str:
    """Download ``file`` into ``partial`` (resuming what is there); returns its sha256."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    partial.parent.mkdir(parents=True, exist_ok=True)
    if partial.exists() and partial.stat().st_size > file.size:
        partial.unlink()  # longer than the file: not a prefix of it
    have = partial.stat().st_size if partial.exists() else 0
    meter.completed = have
    url = hf_hub_url(repo, file.path, revision=commit)
    sink = HashingFile(partial, meter)
    try:
        with hub_errors(repo, partial_kept=True):
            http_get(
                url,
                sink,  # type: ignore[arg-type]
                resume_size=have,
                headers=build_hf_headers(token=token),
                expected_size=file.size,
                displayed_filename=file.path,
                tqdm_class=_silent_bar_class(),
            )
    except OSError as error:
        sink.close()
        if error.errno in _NO_SPACE:
            kept = format_size(partial.stat().st_size)
            raise DiskFull(
                f"disk full while downloading {file.path}: {kept} kept in {partial.parent}; "
                "free some space and run pull again to resume"
            ) from error
        raise LlamadeckError(f"cannot write {partial}: {error.strerror or error}") from error
    except BaseException:
        sink.close()
        raise
    meter.finish()
    return sink.finish()


def _silent_bar_class() -> type:
    from huggingface_hub.utils import tqdm

    class SilentBar(tqdm):  # type: ignore[misc, valid-type]
        """huggingface_hub's bar with output off: progress reaches us as Progress events."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentBar
