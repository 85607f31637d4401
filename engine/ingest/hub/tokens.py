"""The Hugging Face token a request carries: cleaned, checked, and hidden from messages."""

from __future__ import annotations

import os

from engine.errors import AccessDenied, InvalidInput
from engine.ingest.hub.quoting import clean, error_reason, keep_secret


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
    keep_secret(token)
    return token


def resolve_token(token: str | None) -> str | None:
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
            f"cannot get a Hugging Face token through HF_OIDC_RESOURCE: {error_reason(error)}"
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        if isinstance(error, ConnectionError):
            raise  # an OIDC exchange that could not reach the Hub: hub_errors says so
        where = clean(str(constants.HF_TOKEN_PATH), limit=500)
        why = clean(error.strerror or str(error)) if isinstance(error, OSError) else "it is not UTF-8 text"
        raise InvalidInput(f"cannot read the Hugging Face token file {where}: {why}") from error
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        source = "HF_TOKEN" if os.environ.get("HF_TOKEN") else "HUGGING_FACE_HUB_TOKEN"
    else:
        source = f"the token file {clean(str(constants.HF_TOKEN_PATH), limit=500)}"
    return clean_token(implicit, source=source)
