"""One exception hierarchy for the engine.

Every message is written for the person at the keyboard: one line that says
what went wrong and, where there is one, what to do next. Front ends print
``str(error)`` and exit non-zero; they never show a traceback for these.
"""

from __future__ import annotations


class LlamadeckError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidReference(LlamadeckError):
    """A model name or Hub reference that is malformed or could escape the store."""


class ModelNotFound(LlamadeckError):
    """No model of that name in the local store."""


class RepoNotFound(LlamadeckError):
    """The Hugging Face repository does not exist (or is private without a token)."""


class GatedRepo(LlamadeckError):
    """The repository needs an accepted licence and an HF_TOKEN."""


class HubUnreachable(LlamadeckError):
    """Hugging Face could not be reached; nothing in the store changed."""


class NoGGUFInRepo(LlamadeckError):
    """The repository holds no GGUF chat model."""


class UnknownQuant(LlamadeckError):
    """The requested quantization does not exist in the repository."""


class DiskFull(LlamadeckError):
    """The disk filled up; the partial download is kept for a later resume."""


class IntegrityError(LlamadeckError):
    """A file's sha256 or GGUF structure is wrong."""


class DemoPackageMissing(LlamadeckError):
    """The embedded default model's package is not installed."""
