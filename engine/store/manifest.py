"""What the store knows of one model name: its files, its facts and its configuration.

Manifests are JSON files written by us but read back from a disk anyone can
edit, so reading validates every field (type, range, format) and turns any
fault into ``ManifestError`` with a one-line reason: one bad file never breaks
``list`` for the whole store. Versions and migrations live in
``engine.store.migrations``.

A manifest an older llamadeck saved may hold more MESSAGE turns than ``create``
now accepts (``MAX_TURNS``; one had 500,000, and every chat with it failed).
It is read keeping the last ``MAX_TURNS`` (a chat drops the oldest first, as
Ollama's does to fit the context), parsed once per process (``_Trimmed``: the
parse alone takes a second), and logged once with how to store it in bounds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from engine.errors import InvalidReference
from engine.shape import ModelShape
from engine.store.migrations import SCHEMA, BadSchema, NewerSchema, upgrade
from engine.store.refs import HUB_HOST, HubRef, LocalRef, ModelRef

SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_TEXT = 1 << 20  # a chat template or licence longer than 1 MiB is not one
MAX_COUNT = (1 << 63) - 1  # sizes and counts beyond int64 are not real (and overflow float formatting)
MAX_MANIFEST_BYTES = 32 << 20  # refused before reading: a manifest is a few KiB, 1 MiB texts included
MAX_TURNS = 1_000  # a model's MESSAGE turns (create's bound); an older manifest's last MAX_TURNS are kept
MAX_OPTIONS = 1_000  # config.parameters holds ~40 option names at most; thousands were never a Modelfile's
_MAX_PARAMETER_DEPTH = 16  # option values are scalars or short lists; deeper nesting is hostile
_LARGE = 1 << 20  # a manifest past this parses one at a time: its parse may hold hundreds of MB for a while

log = logging.getLogger("llamadeck.engine")


class ManifestError(Exception):
    """A manifest that cannot be used; ``newer`` when a newer llamadeck wrote it."""

    def __init__(self, reason: str, *, newer: bool = False) -> None:
        super().__init__(reason)
        self.newer = newer


@dataclass(frozen=True)
class ModelFile:
    """One GGUF file of a model (several for a split model, in part order)."""

    path: str  # the file's name at its source, e.g. "Q8_0/Model-Q8_0-00001-of-00002.gguf"
    sha256: str
    size: int


@dataclass(frozen=True)
class DraftModel:
    """A smaller model of the same vocabulary that proposes tokens for its target to check (Modelfile DRAFT).

    Its blobs are named by the manifest (GC, ``rm``, ``cp`` and ``verify``
    count them), so removing the model it was taken from keeps it.
    """

    files: tuple[ModelFile, ...]  # its GGUF (split parts in order)
    source: str  # what DRAFT named: a model reference, or the file's name
    architecture: str
    parameters: int
    quant: str | None = None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class ModelConfig:
    """How the model is run: what a Modelfile can set on top of the weights."""

    template: str | None = None  # Jinja chat template; None means plain completion
    template_source: str | None = None  # "gguf" or why we recorded one ourselves
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # option name -> value
    parent: str | None = None  # the model this one was made from
    adapters: tuple[ModelFile, ...] = ()  # LoRA adapters (Modelfile ADAPTER), applied at scale 1 in order
    projector: ModelFile | None = None  # the vision projector (mmproj GGUF) that lets it see images
    messages: tuple[
        tuple[str, str], ...
    ] = ()  # a Modelfile's MESSAGE turns (role, content), before every chat
    draft: DraftModel | None = None  # a draft model for speculative decoding (Modelfile DRAFT)


@dataclass(frozen=True)
class Manifest:
    """Everything the store knows of one model name."""

    name: str  # "hf.co/org/repo" or a local name such as "gemma3"
    tag: str  # "Q4_K_M", "270m", "latest"
    source: str  # where the bytes came from: a Hub repo or a package
    revision: str | None  # the Hub commit the files were taken from
    files: tuple[ModelFile, ...]
    quant: str | None
    architecture: str
    parameters: int
    context_length: int
    created: str  # ISO 8601, UTC
    shape: ModelShape | None = None  # from the header at pull time, so show needs no GGUF parse
    size_label: str | None = None
    license: str | None = None
    config: ModelConfig = field(default_factory=ModelConfig)

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def ref(self) -> ModelRef:
        """The typed reference this manifest is stored under."""
        return ref_of(self.name, self.tag)

    @property
    def id(self) -> str:
        """Short id of the weights, like Docker's image id: two names of one file share it."""
        return self.files[0].sha256[:12]

    @property
    def load_id(self) -> str:
        """What a loaded model is matched by: the weights' id, plus its adapters', draft's and projector's.

        Two names of one file with other LoRA adapters must not share a loaded model.
        """
        draft = self.config.draft
        projector = self.config.projector
        return "+".join(
            [
                self.id,
                *(a.sha256[:12] for a in self.config.adapters),
                *([f"draft-{draft.files[0].sha256[:12]}"] if draft is not None else []),
                *([f"mmproj-{projector.sha256[:12]}"] if projector is not None else []),
            ]
        )

    @property
    def blob_files(self) -> tuple[ModelFile, ...]:
        """Every blob this model needs: weights, LoRA adapters, draft model files and vision projector.

        The one place that rule lives: GC, rm, cp, verify and create all count blobs through it.
        """
        draft = self.config.draft.files if self.config.draft is not None else ()
        projector = (self.config.projector,) if self.config.projector is not None else ()
        return (*self.files, *self.config.adapters, *draft, *projector)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def template(self) -> str | None:
        return self.config.template

    @property
    def template_source(self) -> str | None:
        return self.config.template_source

    def to_json(self) -> bytes:
        data = {"schema": SCHEMA, **asdict(self)}
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse, upgrade and validate; raises ManifestError with the reason.

        Hostile JSON (nested a hundred thousand levels deep, or too large to
        hold) is a damaged manifest like any other, never a crash. One with
        more than ``MAX_TURNS`` MESSAGE turns keeps its last ``MAX_TURNS``.
        """
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"larger than {MAX_MANIFEST_BYTES >> 20} MiB: not a manifest")
        key = hashlib.sha256(raw).digest()
        if (known := _TRIMMED.get(key)) is not None:
            return known
        with _ONE_LARGE_PARSE if len(raw) > _LARGE else nullcontext():
            if (known := _TRIMMED.get(key)) is not None:  # parsed while this one waited
                return known
            try:
                manifest, turns = cls._parse(raw)
            except RecursionError as error:
                raise ManifestError("nested too deeply to be a manifest") from error
            except MemoryError as error:
                raise ManifestError("too large to read") from error
            if turns > MAX_TURNS:
                _TRIMMED.put(key, manifest)
                _warn_trimmed(manifest.reference, turns)
        return manifest

    @classmethod
    def _parse(cls, raw: bytes) -> tuple[Manifest, int]:
        """The manifest, and how many MESSAGE turns its file holds (it keeps ``MAX_TURNS`` at most)."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise ManifestError(f"not JSON ({str(error)[:200]})") from error
        if not isinstance(data, dict):
            raise ManifestError("not a JSON object")
        try:
            data = upgrade(data)
        except NewerSchema as newer:
            raise ManifestError(
                f"written by a newer llamadeck (manifest schema {newer.version}, this one reads up to "
                f"{SCHEMA}): upgrade llamadeck to use it",
                newer=True,
            ) from newer
        except BadSchema as error:
            raise ManifestError(str(error)) from error
        config = data.get("config")
        messages = config.get("messages") if isinstance(config, dict) else None
        return _build(data), len(messages) if isinstance(messages, list) else 0


def _warn_trimmed(reference: str, turns: int) -> None:
    fix = f"llamadeck show --modelfile {reference} | llamadeck create {reference} -f -"
    log.warning(
        "%s has %s MESSAGE turns, more than the %s a model may have: only the last %s are used; "
        "re-create it to store only those: %s",
        reference,
        f"{turns:,}",
        f"{MAX_TURNS:,}",
        f"{MAX_TURNS:,}",
        fix,
    )


class _Trimmed:
    """The manifests read with turns dropped, by the sha256 of their bytes: each is parsed once per process.

    Keyed by content, never by path or time, so a file saved again is read
    again. A few at most: each holds up to ``MAX_TURNS`` turns.
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._manifests: OrderedDict[bytes, Manifest] = OrderedDict()

    def get(self, key: bytes) -> Manifest | None:
        with self._lock:
            if (manifest := self._manifests.get(key)) is not None:
                self._manifests.move_to_end(key)
            return manifest

    def put(self, key: bytes, manifest: Manifest) -> None:
        with self._lock:
            self._manifests[key] = manifest
            while len(self._manifests) > self._size:
                self._manifests.popitem(last=False)


_TRIMMED = _Trimmed()
_ONE_LARGE_PARSE = threading.Lock()  # concurrent first reads of a 32 MiB manifest would each hold its parse


def ref_of(name: str, tag: str) -> ModelRef:
    """The typed reference for a stored name and tag (refused if it could leave the store)."""
    host, _, repo = name.partition("/")
    if host == HUB_HOST:
        return HubRef(repo, tag)
    return LocalRef(name, tag)


# -- validation ----------------------------------------------------------------


def _text(data: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not optional and not value):
        raise ManifestError(f"{key} must be a {'string' if optional else 'non-empty string'}")
    if len(value) > MAX_TEXT:
        raise ManifestError(f"{key} is longer than {MAX_TEXT} characters")
    return value


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        shown = f"a {len(str(value))}-digit number" if isinstance(value, int) else f"{value!r:.40}"
        raise ManifestError(f"{key} must be a whole number from 0 to 2**63 - 1, not {shown}")
    return value


def _files(raw: Any, key: str = "files", *, empty: bool = False) -> tuple[ModelFile, ...]:
    if not isinstance(raw, list) or not (raw or empty):
        raise ManifestError(f"{key} must be a {'list' if empty else 'non-empty list'}")
    files = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise ManifestError(f"each entry of {key} must be an object")
        path = _text(entry, "path")
        sha = _text(entry, "sha256")
        if not SHA256.fullmatch(sha or ""):
            raise ManifestError(f"file {path!r:.60} has no valid sha256")
        files.append(ModelFile(path or "", sha or "", _count(entry, "size")))
    return tuple(files)


def _created(value: Any) -> str:
    if not isinstance(value, str):
        raise ManifestError("created must be an ISO 8601 time")
    try:
        when = datetime.fromisoformat(value)
    except ValueError as error:
        raise ManifestError(f"created is not an ISO 8601 time: {value!r:.40}") from error
    if when.tzinfo is None:
        raise ManifestError(f"created has no time zone: {value!r:.40}")
    return value


def _shape(raw: Any) -> ModelShape | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ManifestError("shape must be an object")
    names = ModelShape.__dataclass_fields__
    if set(raw) != set(names):
        raise ManifestError("shape has missing or unknown fields")
    return ModelShape(**{name: _count(raw, name) for name in names})


def _config(raw: Any) -> ModelConfig:
    if not isinstance(raw, dict):
        raise ManifestError("config must be an object")
    parameters = raw.get("parameters", {})
    if not isinstance(parameters, dict) or not all(isinstance(k, str) for k in parameters):
        raise ManifestError("config.parameters must be an object")
    if len(parameters) > MAX_OPTIONS:
        raise ManifestError(
            f"config.parameters has {len(parameters):,} options, more than the {MAX_OPTIONS:,} "
            "a model may have: re-create the model from a Modelfile"
        )
    if _depth(parameters) > _MAX_PARAMETER_DEPTH:
        raise ManifestError(f"config.parameters is nested more than {_MAX_PARAMETER_DEPTH} levels deep")
    return ModelConfig(
        template=_text(raw, "template", optional=True),
        template_source=_text(raw, "template_source", optional=True),
        system=_text(raw, "system", optional=True),
        parameters=parameters,
        parent=_text(raw, "parent", optional=True),
        adapters=_files(raw.get("adapters", []), "config.adapters", empty=True),
        projector=_projector(raw.get("projector")),
        messages=_messages(raw.get("messages", [])),
        draft=_draft(raw.get("draft")),
    )


def _draft(raw: Any) -> DraftModel | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ManifestError("config.draft must be an object or null")
    return DraftModel(
        files=_files(raw.get("files"), "config.draft.files"),
        source=_text(raw, "source") or "",
        architecture=_text(raw, "architecture") or "",
        parameters=_count(raw, "parameters"),
        quant=_text(raw, "quant", optional=True),
    )


def _projector(raw: Any) -> ModelFile | None:
    if raw is None:
        return None
    return _files([raw], "config.projector")[0]


_ROLES = frozenset({"system", "user", "assistant"})


def _messages(raw: Any) -> tuple[tuple[str, str], ...]:
    """The last ``MAX_TURNS`` turns, each checked (the ones dropped are not looked at)."""
    if not isinstance(raw, list):
        raise ManifestError("config.messages must be a list")
    turns = []
    for entry in raw[-MAX_TURNS:]:
        if (
            not isinstance(entry, list | tuple)
            or len(entry) != 2
            or entry[0] not in _ROLES
            or not isinstance(entry[1], str)
            or len(entry[1]) > MAX_TEXT
        ):
            raise ManifestError(
                "each of config.messages must be [role, text] with role system, user or assistant"
            )
        turns.append((entry[0], entry[1]))
    return tuple(turns)


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (without recursion: it may be hostile)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            if depth <= _MAX_PARAMETER_DEPTH:
                stack.extend((child, depth + 1) for child in children)
    return deepest


def _build(data: dict[str, Any]) -> Manifest:
    name = _text(data, "name") or ""
    tag = _text(data, "tag") or ""
    try:
        ref_of(name, tag)
    except InvalidReference as error:
        raise ManifestError(f"its name is not valid: {error}") from error
    return Manifest(
        name=name,
        tag=tag,
        source=_text(data, "source") or "",
        revision=_text(data, "revision", optional=True),
        files=_files(data.get("files")),
        quant=_text(data, "quant", optional=True),
        architecture=_text(data, "architecture", optional=True) or "",
        parameters=_count(data, "parameters"),
        context_length=_count(data, "context_length"),
        created=_created(data.get("created")),
        shape=_shape(data.get("shape")),
        size_label=_text(data, "size_label", optional=True),
        license=_text(data, "license", optional=True),
        config=_config(data.get("config", {})),
    )
