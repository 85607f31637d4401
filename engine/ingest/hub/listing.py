"""A repository's GGUF variants, pinned to one commit: ``fetch_listing``.

Split parts are grouped, projectors set apart, and every variant's quant read
from the file name or, failing that, the remote header; with the sizes and
the Hub's LFS sha256 of every file. Each quant is a valid reference tag,
unique in the listing.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from engine.cancel import NEVER, CancelToken
from engine.errors import HubUnreachable, IntegrityError
from engine.ingest.hub.client import open_session, quiet_hub, shown_endpoint
from engine.ingest.hub.errors import (
    NOT_THE_API_ERRORS,
    NOTHING_CHANGED,
    check_cancel,
    hub_errors,
    not_the_api,
    parse_failure,
)
from engine.ingest.hub.header import read_remote_info
from engine.ingest.hub.quoting import clean
from engine.ingest.hub.remote import HfFile, RemoteFile, RemoteVariant, RepoListing
from engine.ingest.hub.tokens import resolve_token
from engine.machine.quant import quality_rank, quant_from_file_type, quant_from_filename

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_LICENSE_LIMIT = 64 * 1024  # bytes of licence text recorded (UTF-8); a card may paste a whole licence
_TAG_LIMIT = 40  # a HubRef quant: [A-Za-z0-9][A-Za-z0-9_-]*, at most 40 characters, upper-cased
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_HF_FILES = (
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
    "special_tokens_map.json", "chat_template.jinja", "chat_template.json", "model.safetensors.index.json",
)  # fmt: skip
_PICKLED = (".bin", ".pt", ".pth")


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
            incomplete.append(f"{clean(PurePosixPath(stem).name)}: {why}")
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
        raise not_the_api(repo, "its file list is not a list")
    files = []
    for sibling in siblings:
        name = getattr(sibling, "rfilename", None)
        if not isinstance(name, str):
            raise not_the_api(repo, "a file without a name")
        if not name.lower().endswith(".gguf") or not name.isprintable():
            continue  # a name with control characters could rewrite the user's terminal
        lfs = sibling.lfs
        if lfs is None:
            continue  # no LFS sha256 on the Hub: nothing to verify the download against
        size, sha256 = getattr(lfs, "size", None), getattr(lfs, "sha256", None)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise not_the_api(repo, f"the size of {clean(name)} is not a byte count")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
            raise not_the_api(repo, f"the sha256 of {clean(name)} is not one")
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
    quiet_hub()
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.repocard_data import CardData

    check_cancel(cancel, NOTHING_CHANGED)
    with hub_errors(repo):
        token = resolve_token(token)
        open_session()
        try:
            info = HfApi(token=token).model_info(
                repo, files_metadata=True, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT
            )
        except HFValidationError:
            raise  # the name, not the answer: hub_errors says so
        except NOT_THE_API_ERRORS as error:
            raise not_the_api(repo, parse_failure(error)) from error
    check_cancel(cancel, NOTHING_CHANGED)
    if not info.sha:  # the Hub always names the commit; without one the pull could not be pinned
        raise HubUnreachable(f"Hugging Face at {shown_endpoint()} named no commit for {clean(repo)}")
    if not isinstance(info.sha, str) or not _COMMIT.fullmatch(info.sha):
        raise not_the_api(repo, "its commit is not a git sha")
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
    hf_files, pickled = _hf_files(repo, info.siblings) if not ordered else ((), False)
    return RepoListing(
        repo, commit, tuple(ordered), tuple(projectors), license_, tuple(incomplete), hf_files, pickled
    )


def _hf_files(repo: str, siblings: object) -> tuple[tuple[HfFile, ...], bool]:
    """The top-level files a conversion reads (weights, config, tokenizer); whether pickles are there."""
    files, pickled = [], False
    for sibling in siblings if isinstance(siblings, list) else []:
        name = getattr(sibling, "rfilename", None)
        if not isinstance(name, str) or "/" in name or not name.isprintable():
            continue
        pickled = pickled or name.endswith(_PICKLED)
        if not (name.endswith(".safetensors") or name in _HF_FILES):
            continue
        lfs, size = sibling.lfs, getattr(sibling, "size", None)
        if lfs is not None:
            size, sha256 = getattr(lfs, "size", None), getattr(lfs, "sha256", None)
            if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
                raise not_the_api(repo, f"the sha256 of {clean(name)} is not one")
            digest, sha1 = sha256.lower(), None
        else:
            blob = getattr(sibling, "blob_id", None)
            if not isinstance(blob, str) or not _SHA1.fullmatch(blob.lower()):
                continue  # nothing to verify it against
            digest, sha1 = None, blob.lower()
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise not_the_api(repo, f"the size of {clean(name)} is not a byte count")
        files.append(HfFile(name, size, digest, sha1))
    return tuple(files), pickled


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
