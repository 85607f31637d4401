"""Model references: what the user typed, as a Hub repo + quant or a local name + tag.

Every reference later becomes a path in the store, so parsing is also the
guard: anything that could climb out of a directory, smuggle a control
character onto the terminal or pass for another name with look-alike letters
is refused here, once, with a message that says what is accepted.

Accepted forms::

    hf.co/ORG/REPO[:QUANT]   huggingface.co/ORG/REPO[:QUANT]   (https:// optional)
    ORG/REPO[:QUANT]         NAME[:TAG]                        (TAG defaults to latest)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import InvalidReference
from engine.text import quoted

HUB_HOST = "hf.co"
_HUB_HOSTS = frozenset({"hf.co", "huggingface.co"})
_URL_SCHEMES = ("https://", "http://")
DEFAULT_TAG = "latest"

# Hub names, after huggingface_hub's validate_repo_id: ASCII letters, digits,
# ".", "_", "-"; start with a letter or digit, do not end in "." or "-".
_HUB_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?")
_HUB_PART_MAX = 96
_QUANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_QUANT_MAX = 40
# Local names, after Ollama's rules; checked after lower-casing.
_LOCAL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_LOCAL_TAG = re.compile(r"[a-z0-9_][a-z0-9._-]*")
_LOCAL_MAX = 80
_QUOTE_MAX = 60

_FORMS = "use NAME[:TAG], ORG/REPO[:QUANT] or hf.co/ORG/REPO[:QUANT]"
_LOCAL_FORMS = "a local model name is NAME[:TAG], e.g. my-model:latest"


def _invalid(text: str, why: str, forms: str = _FORMS) -> InvalidReference:
    """One-line error naming the text, the problem and the accepted forms.

    The text is quoted in ASCII, so a Cyrillic "а" posing as a Latin "a"
    shows up as ``\\u0430`` instead of looking right.
    """
    shown = quoted(text, _QUOTE_MAX, ascii_only=True)
    if shown.endswith("..."):  # cut: whole, it ends in its closing quote
        shown += f" ({len(text)} characters)"
    return InvalidReference(f"invalid model reference {shown}: {why}; {forms}")


def _text_problem(text: str) -> str | None:
    """Problems any part of a reference can have, worst first."""
    if not text:
        return "it is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "it contains a control character"
    if any(c.isspace() for c in text):
        return "it contains whitespace"
    if not text.isascii():
        return "it contains non-ASCII characters"
    if "\\" in text:
        return "it contains a backslash"
    if text.startswith("/"):
        return "absolute paths are not allowed"
    if ".." in text:
        return "'..' is not allowed"
    return None


def _repo_problem(repo: str) -> str | None:
    """Why ``repo`` is not a valid Hugging Face ``ORG/REPO``, or None."""
    if why := _text_problem(repo):
        return why
    parts = repo.split("/")
    if "" in parts:
        return "it has an empty path segment"
    if len(parts) != 2:
        return "a Hugging Face repository is ORG/REPO"
    if any(len(p) > _HUB_PART_MAX for p in parts):
        return f"ORG and REPO are at most {_HUB_PART_MAX} characters each"
    if not all(_HUB_PART.fullmatch(p) for p in parts):
        return (
            "ORG and REPO use letters, digits, '.', '_' and '-',"
            " start with a letter or digit and do not end in '.' or '-'"
        )
    if "--" in repo:
        return "'--' is not allowed"
    if repo.lower().endswith(".git"):
        return "REPO cannot end in '.git'"
    return None


def _quant_problem(quant: str) -> str | None:
    """Why ``quant`` is not a valid quantization name, or None."""
    if why := _text_problem(quant):
        return "the quant is empty" if not quant else why
    if len(quant) > _QUANT_MAX:
        return f"the quant is longer than {_QUANT_MAX} characters"
    if not _QUANT.fullmatch(quant):
        return "a quant uses letters, digits, '_' and '-', e.g. Q4_K_M"
    return None


def _local_problem(raw: str, pattern: re.Pattern[str], what: str) -> str | None:
    """Why a local name or tag is not valid, or None."""
    if not raw:
        return f"the {what} is empty"
    # Check before lower-casing: the Kelvin sign lower-cases to an ASCII "k".
    if why := _text_problem(raw):
        return why
    text = raw.lower()
    if len(text) > _LOCAL_MAX:
        return f"the {what} is longer than {_LOCAL_MAX} characters"
    if not pattern.fullmatch(text):
        first = "a letter or digit" if what == "name" else "a letter, digit or '_'"
        return f"a {what} uses letters, digits, '.', '_' and '-' and starts with {first}"
    if text.endswith("."):
        return f"a {what} cannot end in '.'"
    if what == "name" and text in _HUB_HOSTS:
        return f"{text} is the Hugging Face host; write {text}/ORG/REPO"
    return None


def _hub_fields_problem(repo: str, quant: str | None) -> str | None:
    """Why ``repo`` and ``quant`` do not make a valid Hub reference, or None."""
    return _repo_problem(repo) or (None if quant is None else _quant_problem(quant))


def _local_fields_problem(name: str, tag: str) -> str | None:
    """Why ``name`` and ``tag`` do not make a valid local reference, or None."""
    return _local_problem(name, _LOCAL_NAME, "name") or _local_problem(tag, _LOCAL_TAG, "tag")


@dataclass(frozen=True)
class HubRef:
    """A GGUF repository on Hugging Face, optionally with the quant to pull.

    Built only valid: the fields are checked and normalized on creation, so
    a HubRef anywhere in the program is safe to turn into a path.
    """

    repo: str  # "ORG/REPO", case preserved
    quant: str | None = None  # upper-case, e.g. "Q4_K_M"; None when not given

    def __post_init__(self) -> None:
        if why := _hub_fields_problem(self.repo, self.quant):
            shown = self.repo if self.quant is None else f"{self.repo}:{self.quant}"
            raise _invalid(shown, why)
        if self.quant is None:
            return
        quant = self.quant.upper()
        # Ollama reads hf.co/ORG/REPO:latest as "no quant given"; so do we.
        object.__setattr__(self, "quant", None if quant == "LATEST" else quant)

    @property
    def name(self) -> str:
        """The model's name as the store and ``list`` show it: ``hf.co/ORG/REPO``."""
        return f"{HUB_HOST}/{self.repo}"

    @property
    def tag(self) -> str | None:
        """The quant, playing the role a tag plays for local names."""
        return self.quant

    def __str__(self) -> str:
        return self.name if self.quant is None else f"{self.name}:{self.quant}"


@dataclass(frozen=True)
class LocalRef:
    """A model known only locally (made by ``cp`` or ``create``): ``name:tag``.

    Names and tags are lower-cased on creation, as Ollama does, so
    ``Gemma3`` and ``gemma3`` are the same model.
    """

    name: str
    tag: str = DEFAULT_TAG

    def __post_init__(self) -> None:
        if why := _local_fields_problem(self.name, self.tag):
            raise _invalid(f"{self.name}:{self.tag}", why, _LOCAL_FORMS)
        object.__setattr__(self, "name", self.name.lower())
        object.__setattr__(self, "tag", self.tag.lower())

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


ModelRef = HubRef | LocalRef


def parse_ref(text: str) -> ModelRef:
    """Turn what the user typed into a reference, or raise InvalidReference.

    >>> parse_ref("hf.co/unsloth/gemma-3-270m-it-GGUF:q4_k_m")
    HubRef(repo='unsloth/gemma-3-270m-it-GGUF', quant='Q4_K_M')
    >>> parse_ref("gemma3")
    LocalRef(name='gemma3', tag='latest')
    """
    return _parse(text, _FORMS)


def parse_local_name(text: str) -> LocalRef:
    """Parse a destination name (``cp SRC DST``, ``create NAME``): local names only.

    Hub names belong to what was pulled from the Hub; letting a copy take one
    would make the store lie about where a model came from.
    """
    ref = _parse(text, _LOCAL_FORMS)
    if isinstance(ref, HubRef):
        raise _invalid(text.strip(" \t"), "that is a Hugging Face reference", _LOCAL_FORMS)
    return ref


def _parse(text: str, forms: str) -> ModelRef:
    """Split the text into host, path and tag, then check every part."""
    text = text.strip(" \t")
    if why := _text_problem(text):
        raise _invalid(text, why, forms)
    rest = text
    is_url = False
    for scheme in _URL_SCHEMES:
        if rest.lower().startswith(scheme):
            rest, is_url = rest[len(scheme) :], True
            break
    path, colon, tag = rest.partition(":")
    if ":" in tag:
        raise _invalid(text, "it has more than one ':'", forms)
    if colon and not tag:
        raise _invalid(text, "the tag after ':' is empty", forms)
    if not path:
        raise _invalid(text, "the name before ':' is empty" if colon else "the name is empty", forms)
    if path.startswith("/"):
        raise _invalid(text, "absolute paths are not allowed", forms)
    parts = path.split("/")
    if "" in parts:
        raise _invalid(text, "it has an empty path segment", forms)

    if parts[0].lower() in _HUB_HOSTS:
        parts = parts[1:]
        if len(parts) != 2:
            raise _invalid(text, "a Hugging Face reference is hf.co/ORG/REPO", forms)
    elif is_url:
        raise _invalid(text, "a URL must point at hf.co or huggingface.co", forms)
    elif len(parts) > 2:
        raise _invalid(text, "too many '/' segments", forms)

    # Check here too, so the message quotes everything the user typed.
    if len(parts) == 2:
        repo, quant = "/".join(parts), (tag if colon else None)
        if why := _hub_fields_problem(repo, quant):
            raise _invalid(text, why, forms)
        return HubRef(repo, quant)
    name, tag = parts[0], (tag if colon else DEFAULT_TAG)
    if why := _local_fields_problem(name, tag):
        raise _invalid(text, why, forms)
    return LocalRef(name, tag)
