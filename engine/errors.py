"""One exception hierarchy for the engine.

Every message is written for the person at the keyboard: one line that says
what went wrong and, where there is one, what to do next. Front ends print
``str(error)`` (escaped: messages may quote downloaded text) and exit
non-zero; they never show a traceback for these.

Each family has a stable meaning and one HTTP status, so the API can map an
error without knowing every class and the TUI can word its notices:

=================  ======  =====================================================
family             status  meaning
=================  ======  =====================================================
InvalidInput       400     what was asked is malformed or out of range
NotFound           404     no such model, repository, quant or file
AccessDenied       403     the Hub wants a token or an accepted licence
Busy               409     another process holds what this needs, past the wait
TooLarge           413     what was sent is past a size limit; nothing was stored
IntegrityError     422     a stored or downloaded file is damaged
NewerStore         422     written by a newer llamadeck: left alone, never removed
Cancelled          499     the caller cancelled; the store is as it was
NetworkError       502     Hugging Face could not be reached or answered badly
DiskFull           507     no space left; partial downloads are kept
ShutDown           503     the engine was closed
QueueFull          503     too many requests wait for one model (OLLAMA_MAX_QUEUE)
LoadError          500     llama.cpp refused a model, or its worker process crashed
=================  ======  =====================================================
"""

from __future__ import annotations

from typing import ClassVar

# Ollama's ErrMaxQueue (server/sched.go), word for word (two spaces included): clients may match on it
QUEUE_FULL_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"


class LlamadeckError(Exception):
    """Base of every error the engine raises on purpose."""

    status: ClassVar[int] = 500
    kind: ClassVar[str] = "error"


# -- invalid input (400) -------------------------------------------------------


class InvalidInput(LlamadeckError):
    """What was asked is malformed or out of range; nothing was changed."""

    status = 400
    kind = "invalid"


class InvalidReference(InvalidInput):
    """A model name or Hub reference that is malformed or could escape the store."""


class InvalidOption(InvalidInput):
    """A generation or load option with a wrong value (``-n 0``, ``-t nan``)."""


class PromptTooLong(InvalidInput):
    """The prompt does not fit the model's context."""

    needed: int | None = None  # tokens the whole prompt takes, when it was counted (an app offers a context)


class TemplateError(InvalidInput):
    """The model's chat template does not compile, refused the conversation or ran past its limits."""


class InvalidSetting(InvalidInput):
    """A server setting (``OLLAMA_NUM_PARALLEL``, ``keep_alive`` in config.toml, ...) that cannot be used."""


class UnsupportedSchema(InvalidInput):
    """A JSON schema (``format``, ``response_format``, a forced tool's parameters) llamadeck cannot enforce.

    The message names the construct and where it is; a reply that ignored it is never given instead.
    """


# -- not found (404) -----------------------------------------------------------


class NotFound(LlamadeckError):
    status = 404
    kind = "not_found"


class ModelNotFound(NotFound):
    """No model of that name in the local store."""


class RepoNotFound(NotFound):
    """The Hugging Face repository does not exist (or is private without a token)."""


class NoGGUFInRepo(NotFound):
    """The repository holds no GGUF chat model."""


class UnknownQuant(NotFound):
    """The requested quantization does not exist in the repository."""


class DemoPackageMissing(NotFound):
    """The embedded default model's package is not installed (or is damaged)."""


# -- the rest ------------------------------------------------------------------


class AccessDenied(LlamadeckError):
    status = 403
    kind = "access_denied"


class GatedRepo(AccessDenied):
    """The repository needs an accepted licence and an HF_TOKEN."""


class Busy(LlamadeckError):
    """Another process holds a lock this needs (only raised when a wait is bounded)."""

    status = 409
    kind = "busy"


class TooLarge(LlamadeckError):
    """What was sent (an uploaded blob) is larger than its limit allows; nothing was stored."""

    status = 413
    kind = "too_large"


class IntegrityError(LlamadeckError):
    """A file's sha256, GGUF structure or manifest is wrong."""

    status = 422
    kind = "integrity"


class NewerStore(LlamadeckError):
    """A manifest written by a newer llamadeck: not damaged, just not ours to read or delete."""

    status = 422
    kind = "newer_store"


class Cancelled(LlamadeckError):
    """The caller cancelled; whatever was downloaded is kept for a later resume."""

    status = 499
    kind = "cancelled"


class NetworkError(LlamadeckError):
    status = 502
    kind = "network"


class HubUnreachable(NetworkError):
    """Hugging Face could not be reached or answered with an error; nothing in the store changed."""


class DiskFull(LlamadeckError):
    """The disk filled up; the partial download is kept for a later resume."""

    status = 507
    kind = "disk_full"


class ShutDown(LlamadeckError):
    """The engine was closed: it loads and runs nothing more."""

    status = 503
    kind = "shut_down"


class QueueFull(LlamadeckError):
    """As many requests wait for a slot of this model as ``max_queue`` allows; Ollama's words, and its 503."""

    status = 503
    kind = "queue_full"

    def __init__(self, message: str = QUEUE_FULL_MESSAGE) -> None:
        super().__init__(message)


class LoadError(LlamadeckError):
    """llama.cpp could not load the model."""

    status = 500
    kind = "load"


class ModelCrashed(LoadError):
    """A model's llama.cpp worker process died (an abort, a segfault, the OOM killer); nothing else did."""

    kind = "crashed"

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause or message  # how it died, without the model's name: "killed by SIGABRT: ..."


def check_unicode(text: str, what: str) -> None:
    """Text llama.cpp and files get as UTF-8: a lone surrogate (JSON can carry one) cannot be."""
    if any("\ud800" <= c <= "\udfff" for c in text):
        raise InvalidInput(f"{what} is not valid Unicode text (it holds a lone surrogate)")
