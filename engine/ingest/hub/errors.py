"""huggingface_hub's and the network's exceptions as one-line user errors, and the cancel check.

Metadata calls fail fast, without retries: a refused connection or a failed
DNS lookup is one ``HubUnreachable`` at once. Every message names the
configured endpoint (``HF_ENDPOINT``) and says what was left behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from engine.cancel import CancelToken
from engine.errors import Cancelled, GatedRepo, HubUnreachable, InvalidReference, RepoNotFound
from engine.ingest.hub.client import shown_endpoint
from engine.ingest.hub.quoting import clean, error_reason, server_reason

CANCEL_GRAIN = 1024 * 1024  # bytes between two cancel checks while bytes flow
NOTHING_CHANGED = "pull cancelled; nothing changed"
# What a Hub call raises when the answer is not the Hub's JSON (HTML, an array, a missing key, a
# wrong type): json's errors are ValueErrors; ModelInfo(**data) raises the rest.
NOT_THE_API_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)


@contextmanager
def hub_errors(
    repo: str, *, file: str | None = None, after: Callable[[], str] = lambda: "nothing changed"
) -> Iterator[None]:
    """Turn huggingface_hub and network exceptions into one-line user errors.

    ``after`` says what is left behind; it is asked when an error happens.
    """
    import httpx2
    from huggingface_hub import errors as hf

    where = shown_endpoint()
    name = clean(repo)
    what = f"{clean(file)} of {name}" if file else f"a file of {name}"
    try:
        yield
    except hf.HFValidationError as error:  # engine.store.refs refuses these first; a caller here may not have
        raise InvalidReference(
            f"{name} is not a Hugging Face repository name ({error_reason(error)})"
        ) from error
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
        reason = server_reason(error)
        if status in (401, 403):
            raise GatedRepo(
                f"Hugging Face at {where} refused access to {name} ({status}){reason}: set HF_TOKEN "
                f"(and accept the licence on {where}/{name} if it is gated)"
            ) from error
        answered = f"Hugging Face at {where} answered {status}{reason}"
        raise HubUnreachable(f"{answered} for {name}; {after()}") from error
    except (httpx2.RequestError, ConnectionError, TimeoutError) as error:
        raise HubUnreachable(
            f"cannot reach Hugging Face at {where} ({error_reason(error)}); {after()}"
        ) from error


def not_the_api(repo: str, why: str, after: str = "nothing changed") -> HubUnreachable:
    """The endpoint answered, but not as the Hub does (a captive portal's HTML, a broken mirror)."""
    return HubUnreachable(
        f"the server at {shown_endpoint()} answered with something that is not the Hugging Face API "
        f"({why}) for {clean(repo)}; check HF_ENDPOINT and any proxy; {after}"
    )


def parse_failure(error: BaseException) -> str:
    """What a parse of the server's answer tripped on, for ``not_the_api``."""
    if isinstance(error, KeyError):
        return f"no {clean(str(error))} in it"
    return f"{type(error).__name__}: {error_reason(error)}"


def check_cancel(cancel: CancelToken, message: str) -> None:
    if cancel.cancelled:
        raise Cancelled(message)
