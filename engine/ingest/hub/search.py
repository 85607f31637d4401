"""GGUF repositories on the Hub by name, the most downloaded first: ``search_models``."""

from __future__ import annotations

from dataclasses import dataclass

from engine.cancel import NEVER, CancelToken
from engine.errors import AccessDenied, InvalidInput, InvalidReference
from engine.ingest.hub.client import open_session, quiet_hub, shown_endpoint
from engine.ingest.hub.errors import NOT_THE_API_ERRORS, check_cancel, hub_errors, not_the_api, parse_failure
from engine.ingest.hub.quoting import clean, server_reason
from engine.ingest.hub.tokens import resolve_token
from engine.store.refs import HubRef

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
    quiet_hub()
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    check_cancel(cancel, "search cancelled")
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
        token = resolve_token(token)
        open_session()
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
                f"Hugging Face at {shown_endpoint()} refused the search ({response.status_code})"
                f"{server_reason(error)}: check HF_TOKEN"
            ) from error
        try:
            data = response.json()
        except NOT_THE_API_ERRORS as error:
            raise not_the_api(label, parse_failure(error), "try again later") from error
    check_cancel(cancel, "search cancelled")
    if not isinstance(data, list):
        raise not_the_api(label, "not a list of models", "try again later")
    found = [repo for repo in map(_hub_repo, data) if repo is not None]
    return sorted(found, key=lambda r: -r.downloads)[:limit]


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _is_repo_name(repo: str) -> bool:
    """Whether ``repo`` is a valid ``ORG/REPO``, as a Hub reference checks it."""
    try:
        HubRef(repo)
    except InvalidReference:
        return False
    return True


def _hub_repo(item: object) -> HubRepo | None:
    """A search result from one item of the Hub's JSON; None when its id is no repository name."""
    if not isinstance(item, dict):
        return None
    repo = item.get("id")
    if not isinstance(repo, str) or not _is_repo_name(repo):
        return None
    updated = item.get("lastModified")
    return HubRepo(
        repo=repo,
        downloads=_count(item.get("downloads")),
        likes=_count(item.get("likes")),
        updated=clean(updated, limit=40) if isinstance(updated, str) and updated else None,
        gated=item.get("gated") not in (None, False, "false"),
    )
