"""The tokenizer of a Hugging Face model folder, as GGUF's ``tokenizer.ggml.*`` keys.

Two kinds, as llama.cpp's converter and Ollama's read them:

- ``tokenizer.model`` (SentencePiece, ``tokenizer.ggml.model = llama``): the
  pieces, scores and types read straight from its protobuf (a few fields of
  one message: no ``sentencepiece`` package needed), added tokens from
  ``tokenizer_config.json``.
- ``tokenizer.json`` with a BPE model (``gpt2``): the vocabulary by id, added
  tokens (special ones as CONTROL), and ``tokenizer.ggml.pre`` decided from the
  pre-tokenizer's definition (``pretokenizer``: Ollama's table, then the
  regexes llama.cpp names; llama.cpp's converter instead tokenizes a test
  text through ``transformers``, which llamadeck does not run).

Merges, special token ids, ``add_bos``/``add_eos`` and the chat template
come from ``gguf.vocab.SpecialVocab``, which reads the same files.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.convert.pretokenizer import pre_tokenizer
from engine.errors import IntegrityError, InvalidInput
from engine.text import one_line

MAX_TOKENIZER_FILE = 64 * 1024 * 1024
MAX_VOCAB = 1_000_000
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class Vocab:
    model: str  # "llama" (SentencePiece) or "gpt2" (BPE)
    pre: str | None
    tokens: list[str]
    scores: list[float] | None
    types: list[int]
    add_space_prefix: bool | None = None


def read_json(path: Path) -> Any:
    """A tokenizer or config JSON file, bounded in size; None when absent."""
    if not path.is_file():
        return None
    size = path.stat().st_size
    if size > MAX_TOKENIZER_FILE:
        raise InvalidInput(f"{path.name} is {size:,} bytes; at most {MAX_TOKENIZER_FILE:,} are read")
    try:
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidInput(f"{path.name} is not valid JSON") from None


def load_vocab(folder: Path, vocab_size: int | None) -> Vocab:
    """The model's vocabulary; InvalidInput when the folder has no tokenizer llamadeck reads."""
    if (folder / "tokenizer.model").is_file():
        return _sentencepiece(folder, vocab_size)
    tokenizer = read_json(folder / "tokenizer.json")
    if isinstance(tokenizer, dict):
        model = tokenizer.get("model")
        if isinstance(model, dict) and model.get("type") == "BPE":
            return _bpe(tokenizer, vocab_size)
        kind = model.get("type") if isinstance(model, dict) else None
        raise InvalidInput(
            f"tokenizer.json has a {one_line(str(kind), 20)} model: llamadeck converts BPE ones"
        )
    raise InvalidInput("the folder has no tokenizer.json or tokenizer.model: cannot convert its tokenizer")


def _bpe(tokenizer: dict[str, Any], vocab_size: int | None) -> Vocab:
    model = tokenizer["model"]
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        raise InvalidInput("tokenizer.json's BPE model has no vocab")
    by_id: dict[int, tuple[str, int]] = {}
    for text, index in vocab.items():
        if isinstance(index, int) and 0 <= index < MAX_VOCAB:
            by_id[index] = (text, NORMAL)
    added = tokenizer.get("added_tokens")
    for token in added if isinstance(added, list) else []:
        if not isinstance(token, dict) or not isinstance(token.get("content"), str):
            continue
        if isinstance(token.get("id"), int) and 0 <= token["id"] < MAX_VOCAB:
            by_id[token["id"]] = (token["content"], CONTROL if token.get("special") else USER_DEFINED)
    size = _size(by_id.keys(), vocab_size)
    tokens, types = [], []
    for i in range(size):
        text, kind = by_id.get(i, (f"[PAD{i}]", UNUSED))
        tokens.append(text)
        types.append(kind)
    return Vocab("gpt2", pre_tokenizer(tokenizer), tokens, None, types)


def _size(ids: Any, vocab_size: int | None) -> int:
    largest = max(ids, default=-1) + 1
    if largest == 0:
        raise InvalidInput("the tokenizer has no tokens")
    if vocab_size is not None and vocab_size > MAX_VOCAB:
        raise InvalidInput(
            f"config.json's vocab_size is {vocab_size:,}; llamadeck converts at most {MAX_VOCAB:,}"
        )
    if vocab_size is not None and largest > vocab_size:
        raise InvalidInput(
            f"the tokenizer has token id {largest - 1} but config.json's vocab_size is {vocab_size}"
        )
    return vocab_size or largest


def _sentencepiece(folder: Path, vocab_size: int | None) -> Vocab:
    path = folder / "tokenizer.model"
    size = path.stat().st_size
    if size > MAX_TOKENIZER_FILE:
        raise InvalidInput(f"tokenizer.model is {size:,} bytes; at most {MAX_TOKENIZER_FILE:,} are read")
    pieces, add_dummy_prefix = _parse_model_proto(path.read_bytes())
    by_id = {i: piece for i, piece in enumerate(pieces)}
    config = read_json(folder / "tokenizer_config.json")
    decoder = config.get("added_tokens_decoder") if isinstance(config, dict) else None
    for key, token in decoder.items() if isinstance(decoder, dict) else []:
        if key.isdigit() and int(key) < MAX_VOCAB and isinstance(token, dict):
            content = token.get("content")
            if isinstance(content, str):
                kind = CONTROL if token.get("special") else USER_DEFINED
                old = by_id.get(int(key))
                by_id[int(key)] = (content, old[1] if old else 0.0, kind)
    size = _size(by_id.keys(), vocab_size)
    tokens, scores, types = [], [], []
    for i in range(size):
        text, score, kind = by_id.get(i, (f"[PAD{i}]", -1000.0, UNUSED))
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    return Vocab("llama", "default", tokens, scores, types, add_space_prefix=add_dummy_prefix)


def _parse_model_proto(data: bytes) -> tuple[list[tuple[str, float, int]], bool]:
    """Each SentencePiece's (piece, score, type) and normalizer_spec.add_dummy_prefix, from ModelProto."""
    pieces: list[tuple[str, float, int]] = []
    add_dummy_prefix = True
    try:
        for field, _, value in _fields(data):
            if field == 1 and isinstance(value, bytes):  # repeated SentencePiece pieces
                piece, score, kind = "", 0.0, NORMAL
                for f, wire, v in _fields(value):
                    if f == 1 and isinstance(v, bytes):
                        piece = v.decode("utf-8")
                    elif f == 2 and wire == 5 and isinstance(v, bytes):
                        (score,) = struct.unpack("<f", v)
                    elif f == 3 and isinstance(v, int):
                        kind = v if 1 <= v <= 6 else NORMAL
                pieces.append((piece, score, kind))
                if len(pieces) > MAX_VOCAB:
                    raise InvalidInput(f"tokenizer.model has more than {MAX_VOCAB:,} pieces")
            elif field == 3 and isinstance(value, bytes):  # NormalizerSpec
                for f, _, v in _fields(value):
                    if f == 3 and isinstance(v, int):
                        add_dummy_prefix = bool(v)
    except (UnicodeDecodeError, IndexError, struct.error, ValueError):
        raise IntegrityError(
            "tokenizer.model is not a SentencePiece model (its protobuf does not parse)"
        ) from None
    if not pieces:
        raise IntegrityError("tokenizer.model holds no pieces")
    return pieces, add_dummy_prefix


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """The (field number, wire type, value) of one protobuf message: varints, fixed and length-delimited."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield field, wire, value
        elif wire == 1:
            yield field, wire, data[at : at + 8]
            at += 8
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("truncated")
            yield field, wire, data[at : at + length]
            at += length
        elif wire == 5:
            yield field, wire, data[at : at + 4]
            at += 4
        else:
            raise ValueError(f"wire type {wire}")
    if at != len(data):
        raise ValueError("truncated")


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def add_vocab(writer: Any, folder: Path, vocab: Vocab) -> None:
    """Write the vocabulary and the special tokens, merges and chat template to ``writer``."""
    import logging

    import gguf

    writer.add_tokenizer_model(vocab.model)
    if vocab.pre is not None:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    logging.getLogger("gguf.vocab").setLevel(logging.ERROR)  # it warns on stderr about what it skips
    try:  # gguf reads these files trusting their shapes: a list of ints for added tokens raises anything
        special = gguf.SpecialVocab(folder, load_merges=vocab.model == "gpt2", n_vocab=len(vocab.tokens))
        special.add_to_gguf(writer, quiet=True)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as error:  # JSONDecodeError too
        raise InvalidInput(
            "the tokenizer's special tokens, merges or chat template (tokenizer.json, tokenizer_config.json) "
            f"cannot be read: {one_line(str(error) or type(error).__name__, 120)}"
        ) from None
