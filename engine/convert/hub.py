"""Pulling a Hub repository that has safetensors and no GGUF: download its files, verify, convert.

Each file is downloaded into a scratch folder inside the store and checked
against what the Hub says it is (the LFS sha256, or the git blob sha1 of a
small file kept in git), then the folder is converted; a quant in the
reference (``hf.co/org/repo:Q4_K_M``) is made from the converted GGUF by
llama.cpp's quantizer. ``engine.ingest.pull`` then puts the result into the
store like any pulled GGUF. Nothing here is resumable: a cut pull starts again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine.cancel import NEVER, CancelToken
from engine.errors import IntegrityError
from engine.events import EventSink, Status
from engine.ingest.hub.download import download
from engine.ingest.hub.remote import HfFile, RemoteFile, RepoListing
from engine.store.transfer import ProgressMeter, hash_file

_NATIVE = ("F16", "BF16")


def fetch_and_convert(
    repo: str,
    listing: RepoListing,
    scratch: Path,
    sink: EventSink,
    *,
    quant: str | None = None,
    token: str | None = None,
    cancel: CancelToken = NEVER,
) -> tuple[Path, str]:
    """Download ``listing``'s Hugging Face files into ``scratch``, convert them; (GGUF path, its sha256)."""
    from engine.convert.writer import convert_folder

    folder = scratch / "hf"
    folder.mkdir()
    for file in listing.hf_files:
        _fetch(repo, listing.commit, file, folder / file.path, sink, token=token, cancel=cancel)
    stem = repo.rsplit("/", 1)[-1]
    converted = convert_folder(folder, scratch / f"{stem}.gguf", name=stem, on_event=sink, cancel=cancel)
    kind = "BF16" if converted.file_type == 32 else "F16"
    if quant is None or quant.upper() in _NATIVE:
        final = converted.path.with_name(f"{stem}-{kind}.gguf")
        converted.path.rename(final)
        return final, converted.sha256
    from engine.runtime.quantizer import quantize

    sink(Status(f"quantizing to {quant.upper()}"))
    target = scratch / f"{stem}-{quant.upper()}.gguf"
    quantize(converted.path, target, quant, on_event=sink, cancel=cancel)
    converted.path.unlink()
    meter = ProgressMeter(sink, "hashing", target.name, target.stat().st_size)
    return target, hash_file(target, meter, cancel)


def _fetch(
    repo: str,
    commit: str,
    file: HfFile,
    target: Path,
    sink: EventSink,
    *,
    token: str | None,
    cancel: CancelToken,
) -> None:
    meter = ProgressMeter(sink, "downloading", file.path, file.size)
    sha256 = download(
        repo,
        commit,
        RemoteFile(file.path, file.size, file.sha256 or ""),
        target,
        meter,
        token=token,
        cancel=cancel,
    )
    if file.sha256 is not None and sha256 != file.sha256:
        raise IntegrityError(f"sha256 mismatch for {file.path}: the download is damaged; pull again")
    if file.git_sha1 is not None and _git_blob_sha1(target) != file.git_sha1:
        raise IntegrityError(f"{file.path} is not the file the Hub lists (git sha1 mismatch); pull again")
    if target.stat().st_size != file.size:
        raise IntegrityError(f"{file.path} is {target.stat().st_size:,} bytes, not the {file.size:,} listed")


def _git_blob_sha1(path: Path) -> str:
    """git's object id of a file's bytes: sha1 of ``blob <size>\\0`` and the bytes."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
