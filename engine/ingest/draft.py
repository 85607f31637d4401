"""A model's draft model (Modelfile ``DRAFT``, ``/api/create``'s ``draft_files``): found, checked, stored.

Speculative decoding lets a small model propose tokens that the model then
checks in one batch; a proposal is only worth checking when both models cut
text into the same tokens. So, as llama.cpp's own ``common_speculative_are_compatible``
does before it speculates, the two vocabularies are compared at create time
(same tokenizer type, BOS/EOS, sizes within 128, the same text for every
token from id 5 on) and a mismatch is refused in one line, instead of a
model that loads and then never accepts a draft.

The draft is recorded in the model's manifest (``config.draft``) with its
own blobs, whether DRAFT named a stored model (llamadeck's addition: Ollama's
client takes paths only), a GGUF file, a split model's first part or a folder:
removing the model it was taken from keeps the draft's files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.cancel import NEVER, CancelToken
from engine.errors import InvalidInput, ModelNotFound
from engine.events import EventSink, Status, ignore
from engine.store.manifest import DraftModel, Manifest, ModelFile
from engine.store.model_store import Store
from engine.store.refs import ModelRef, parse_ref
from engine.text import one_line

MAX_VOCAB_DIFFERENCE = 128  # llama.cpp's SPEC_VOCAB_MAX_SIZE_DIFFERENCE
FIRST_CHECKED_TOKEN = 5  # llama.cpp's SPEC_VOCAB_CHECK_START_TOKEN_ID: the first ids are control tokens

_SAME = (
    ("tokenizer.ggml.model", "tokenizer type"),
    ("tokenizer.ggml.add_bos_token", "add-BOS setting"),
    ("tokenizer.ggml.add_eos_token", "add-EOS setting"),
    ("tokenizer.ggml.bos_token_id", "BOS token"),
    ("tokenizer.ggml.eos_token_id", "EOS token"),
)


def draft_from_model(
    manifest: Manifest, store: Store, target: Path, *, target_label: str, named: str
) -> DraftModel:
    """A stored model as the draft of the model whose first file is ``target``."""
    first = store.blob_path(manifest.files[0].sha256)
    check_vocabulary(target, first, target_label=target_label, draft_label=f"DRAFT {named}")
    return DraftModel(
        files=manifest.files,
        source=manifest.reference,
        architecture=manifest.architecture,
        parameters=manifest.parameters,
        quant=manifest.quant,
    )


def draft_from_files(
    store: Store,
    parts: Sequence[Path],
    target: Path,
    *,
    target_label: str,
    named: str,
    on_event: EventSink = ignore,
    cancel: CancelToken = NEVER,
) -> DraftModel:
    """GGUF files (one, or a split model's parts in order) stored as blobs and described as a draft."""
    from engine.ingest.local import import_file
    from engine.machine.quant import quant_from_file_type
    from engine.store.gguf_io import read_header

    headers = [read_header(part, label=f"DRAFT {named}") for part in parts]
    first = headers[0]
    if not first.architecture:
        raise InvalidInput(f"DRAFT {named}: its first file names no architecture: not a model's GGUF")
    check_vocabulary(target, parts[0], target_label=target_label, draft_label=f"DRAFT {named}")
    on_event(Status("storing the draft model"))
    files = tuple(import_file(store, part, on_event=on_event, cancel=cancel) for part in parts)
    if len(files) > 1:  # a split draft keeps its part names, so llama.cpp finds its siblings in a view
        files = tuple(ModelFile(part.name, f.sha256, f.size) for part, f in zip(parts, files, strict=True))
    return DraftModel(
        files=files,
        source=one_line(Path(named).name or named)[:200],
        architecture=first.architecture,
        parameters=sum(h.parameter_count for h in headers),
        quant=quant_from_file_type(first.file_type) if first.file_type is not None else None,
    )


def model_named(
    keyword: str, name: str, base_model: Callable[[ModelRef], Manifest], *, quoted: str | None = None
) -> Manifest:
    """The stored model a Modelfile's ``keyword`` (FROM, DRAFT) names, an ``hf.co/`` one pulled first
    by ``base_model``; its errors quote the name as ``quoted`` (its repr unless given)."""
    quoted = repr(name) if quoted is None else quoted
    try:
        ref = parse_ref(name)
    except InvalidInput as error:
        raise InvalidInput(f"{keyword} {quoted} is neither a file nor a model name: {error}") from error
    try:
        return base_model(ref)
    except ModelNotFound as error:
        raise ModelNotFound(
            f"{keyword} {quoted} is no model here and no file "
            f"(paths start at the Modelfile's folder): {error}"
        ) from error


def draft_by_name(name: str, base_model: Callable[[ModelRef], Manifest]) -> Manifest:
    """The stored model a DRAFT name stands for (an ``hf.co/`` one pulled first, as FROM's)."""
    return model_named("DRAFT", name, base_model, quoted=f"{name!r:.100}")


def same_path(a: Path, b: Path) -> bool:
    """Whether two paths are one file or folder (Ollama refuses a DRAFT that is FROM's own path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_vocabulary(target: Path, draft: Path, *, target_label: str, draft_label: str) -> None:
    """Refuse a draft whose tokens are not the target's (llama.cpp's compatibility rule), in one line."""
    from engine.store.gguf_metadata import read_metadata

    mine = read_metadata(target, label=target_label, verbose=True)
    theirs = read_metadata(draft, label=draft_label, verbose=True)
    problem = _vocabulary_problem(mine, theirs)
    if problem is not None:
        raise InvalidInput(
            f"{draft_label} cannot draft for {target_label}: {problem}; "
            "a draft model must use the same tokenizer (e.g. a smaller model of the same family)"
        )


def _vocabulary_problem(target: dict[str, Any], draft: dict[str, Any]) -> str | None:
    for key, what in _SAME:
        if target.get(key) != draft.get(key):
            return f"its {what} is {_shown(draft.get(key))}, the model's is {_shown(target.get(key))}"
    mine, theirs = target.get("tokenizer.ggml.tokens"), draft.get("tokenizer.ggml.tokens")
    if not isinstance(mine, list) or not isinstance(theirs, list):
        return "a vocabulary is missing or too large to compare"
    if abs(len(mine) - len(theirs)) > MAX_VOCAB_DIFFERENCE:
        return f"it has {len(theirs):,} tokens, the model {len(mine):,}"
    for index in range(FIRST_CHECKED_TOKEN, min(len(mine), len(theirs))):
        if mine[index] != theirs[index]:
            return f"token {index} is {_shown(theirs[index])} in it, {_shown(mine[index])} in the model"
    return None


def _shown(value: object) -> str:
    if value is None:
        return "unset"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = [
    "check_vocabulary",
    "draft_by_name",
    "draft_from_files",
    "draft_from_model",
    "model_named",
    "same_path",
]
