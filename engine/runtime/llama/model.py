"""A model in memory: its weights (checked before llama.cpp sees them), LoRA adapters and vocabulary.

``Model.load`` refuses a damaged or missing GGUF with an IntegrityError
before llama.cpp can crash on it, and loads the LoRA adapters with the
model: every ``Context`` made on it applies them. The vocabulary side turns
text into tokens and tokens into bytes (``piece``: exact, unpadded).
"""

from __future__ import annotations

import ctypes
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp

from engine.cancel import CancelToken
from engine.errors import Cancelled, IntegrityError, InvalidInput, InvalidOption, LoadError
from engine.runtime.adapters import check_adapter
from engine.runtime.llama.backend import init_backend, supports_gpu_offload
from engine.runtime.llama.log import error_mark, last_error_line
from engine.store.gguf_io import GGUFInfo, check_data_inside, verify_structure


def finite(name: str, value: float) -> float:
    """``value`` as a float; InvalidOption naming ``name`` for NaN or an infinity (a scale, an option)."""
    value = float(value)
    if not math.isfinite(value):
        raise InvalidOption(f"{name} must be a finite number, not {value}")
    return value


_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def _split_parts(path: Path, count: int) -> list[Path]:
    """Every part of a split model, from the first part's name (``X-00001-of-00003.gguf``)."""
    match = _SPLIT.search(path.name)
    if count <= 1 or match is None:
        return [path]
    stem = path.name[: match.start()]
    return [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def _check_files(path: Path, label: str, headers: Sequence[GGUFInfo]) -> None:
    """Refuse a missing or damaged file, or a missing or damaged part of a split one (llama.cpp would crash).

    A part whose header is in ``headers`` (matched by ``split.no``) is held
    against its file's size; any other is read here.
    """
    if not path.exists():
        raise IntegrityError(f"{label} is missing")
    known = {info.split_index: info for info in headers}
    info = _verified(path, label, known.get(0))
    for index, part in enumerate(_split_parts(path, info.split_count)[1:], start=1):
        if not part.exists():
            raise IntegrityError(f"{label} is split in {info.split_count} files and {part.name} is missing")
        _verified(part, part.name, known.get(index))


def _verified(path: Path, label: str, header: GGUFInfo | None) -> GGUFInfo:
    """``verify_structure`` of the file, or of its header already read: then only its size is looked at."""
    if header is None:
        return verify_structure(path, label=label)
    check_data_inside(header, path.stat().st_size, label=label)
    return header


@dataclass(frozen=True)
class AdapterSpec:
    """A LoRA adapter to load with a model: its GGUF, its scale (Ollama applies 1.0) and its name."""

    path: Path
    scale: float = 1.0
    label: str | None = None


class Model:
    """Weights and vocabulary in memory. Free it with ``free()`` after every context on it.

    ``adapters`` holds the LoRA adapters loaded with it (handle and scale):
    every ``Context`` made on the model applies them.
    """

    def __init__(self, handle: Any, *, label: str, n_gpu_layers: int) -> None:
        self._model = handle
        self.adapters: list[tuple[Any, float, str]] = []  # (llama_adapter_lora *, scale, label)
        self._vocab = llama_cpp.llama_model_get_vocab(handle)
        self.label = label
        self.n_gpu_layers = n_gpu_layers
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train: int = llama_cpp.llama_model_n_ctx_train(handle)
        self.n_layers: int = llama_cpp.llama_model_n_layer(handle)
        self.n_embd: int = llama_cpp.llama_model_n_embd(handle)
        self.size_bytes: int = llama_cpp.llama_model_size(handle)
        self.has_encoder: bool = bool(llama_cpp.llama_model_has_encoder(handle))
        self.has_decoder: bool = bool(llama_cpp.llama_model_has_decoder(handle))
        self.add_bos: bool = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self.bos: int = llama_cpp.llama_vocab_bos(self._vocab)
        self.eos: int = llama_cpp.llama_vocab_eos(self._vocab)
        fim = (
            llama_cpp.llama_vocab_fim_pre(self._vocab),
            llama_cpp.llama_vocab_fim_suf(self._vocab),
            llama_cpp.llama_vocab_fim_mid(self._vocab),
        )  # from the GGUF's keys, or found by their text (<|fim_prefix|>, <PRE>, ...) by llama.cpp
        self.fim: tuple[int, int, int] | None = fim if min(fim) >= 0 else None
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        n_gpu_layers: int = -1,
        use_mmap: bool = True,
        cancel: CancelToken | None = None,
        progress: Callable[[float], None] | None = None,
        label: str | None = None,
        adapters: Sequence[AdapterSpec] = (),
        headers: Sequence[GGUFInfo] = (),
    ) -> Model:
        """Check the GGUF's structure, then load it; ``n_gpu_layers`` -1 offloads every layer.

        Raises IntegrityError (damaged or missing file: never a crash in
        llama.cpp), Cancelled (``cancel`` fired during the load) or LoadError
        (llama.cpp refused it, with llama.cpp's own reason). ``progress`` gets
        llama.cpp's load progress, 0.0 to 1.0, from the loading thread.
        ``adapters`` are LoRA GGUFs loaded onto the model (LoadError when one
        does not fit it: another architecture, other tensor names or shapes).
        ``headers`` are the parts' headers when the caller has read them with
        ``verify_structure`` (the loader did, to plan the load): they are not
        parsed again, only held against the files' sizes.
        """
        for spec in adapters:
            finite("adapter scale", spec.scale)
        path = Path(path)
        label = label or path.name
        _check_files(path, label, headers)
        if cancel is not None:
            cancel.check()
        init_backend()

        def on_progress(fraction: float, user_data: ctypes.c_void_p) -> bool:
            try:
                if progress is not None:
                    progress(float(fraction))
                return not (cancel is not None and cancel.cancelled)
            except Exception:  # noqa: BLE001 (never raise into C: stop the load instead)
                return False

        callback = llama_cpp.llama_progress_callback(on_progress)
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        params.load_mode = llama_cpp.LLAMA_LOAD_MODE_AUTO if use_mmap else llama_cpp.LLAMA_LOAD_MODE_NONE
        params.progress_callback = callback
        mark = error_mark()
        handle = llama_cpp.llama_model_load_from_file(os.fsencode(path), params)
        if not handle:
            if cancel is not None and cancel.cancelled:
                raise Cancelled(f"loading {label} was cancelled")
            reason = last_error_line(mark) or "no reason given (see the llama.cpp log)"
            raise LoadError(f"llama.cpp could not load {label}: {reason}")
        model = cls(handle, label=label, n_gpu_layers=n_gpu_layers)
        try:
            for spec in adapters:
                model._load_adapter(spec)
        except BaseException:
            model.free()
            raise
        return model

    def _load_adapter(self, spec: AdapterSpec) -> None:
        """Check the adapter's header (llama.cpp must never see another architecture's), then load it."""
        name = spec.label or Path(spec.path).name
        try:
            check_adapter(Path(spec.path), architecture=self.architecture, label=name)
        except (InvalidInput, IntegrityError) as error:
            raise LoadError(f"cannot load {self.label}: {error}") from error
        mark = error_mark()
        handle = llama_cpp.llama_adapter_lora_init(self._model, os.fsencode(spec.path))
        if not handle:
            reason = last_error_line(mark) or "no reason given (see the llama.cpp log)"
            raise LoadError(f"llama.cpp could not apply adapter {name} to {self.label}: {reason}")
        self.adapters.append((handle, float(spec.scale), name))

    def apply_adapters(self, ctx_handle: Any) -> None:
        """Set this model's adapters on a new context (``llama_set_adapters_lora``); LoadError if refused."""
        if not self.adapters:
            return
        n = len(self.adapters)
        handles = (llama_cpp.llama_adapter_lora_p_ctypes * n)(*(h for h, _, _ in self.adapters))
        scales = (ctypes.c_float * n)(*(scale for _, scale, _ in self.adapters))
        mark = error_mark()
        if llama_cpp.llama_set_adapters_lora(ctx_handle, handles, n, scales) != 0:
            reason = last_error_line(mark) or "no reason given (see the llama.cpp log)"
            raise LoadError(f"llama.cpp could not set the adapters of {self.label}: {reason}")

    @property
    def ptr(self) -> Any:
        """The raw ``llama_model *`` (for contexts and embedders)."""
        return self._model

    @property
    def vocab(self) -> Any:
        """The raw ``llama_vocab *`` (for grammar samplers)."""
        return self._vocab

    @property
    def offloaded(self) -> bool:
        """Whether layers live on a GPU (a GPU build asked for more than 0 layers)."""
        return self.n_gpu_layers != 0 and supports_gpu_offload()

    def free(self) -> None:
        """Free the adapters, then the weights (after every context on the model)."""
        for handle, _, _ in self.adapters:
            llama_cpp.llama_adapter_lora_free(handle)
        self.adapters = []
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    # -- metadata ---------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as llama.cpp prints it, or None."""
        size = 256
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buffer, size)
            if n < 0:
                return None
            if n < size:
                return buffer.value.decode("utf-8", "replace")
            size = n + 1

    @property
    def architecture(self) -> str:
        return self.meta("general.architecture") or ""

    @property
    def chat_template(self) -> str | None:
        """The GGUF's default chat template (``tokenizer.chat_template``), or None."""
        raw = llama_cpp.llama_model_chat_template(self._model, None)
        return raw.decode("utf-8", "replace") if raw else None

    def token_text(self, token: int) -> str:
        """A token's text in the vocabulary (``<s>``, ``▁the``), empty for -1."""
        if token < 0:
            return ""
        return (llama_cpp.llama_vocab_get_text(self._vocab, token) or b"").decode("utf-8", "replace")

    @property
    def bos_text(self) -> str:
        return self.token_text(self.bos)

    @property
    def eos_text(self) -> str:
        return self.token_text(self.eos)

    # -- text <-> tokens --------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Tokens of ``text``. ``add_special`` adds BOS where the model wants it; ``parse_special`` reads
        ``<|im_start|>`` and the like as the special tokens they name (a rendered chat template needs it)."""
        raw = text.encode("utf-8")
        size = len(raw) + 8
        buffer = (llama_cpp.llama_token * size)()  # per call: callers tokenize from their own threads
        n = llama_cpp.llama_tokenize(self._vocab, raw, len(raw), buffer, size, add_special, parse_special)
        if n < 0:  # more tokens than bytes (rare: added special tokens)
            size = -n
            buffer = (llama_cpp.llama_token * size)()
            n = llama_cpp.llama_tokenize(self._vocab, raw, len(raw), buffer, size, add_special, parse_special)
        return buffer[:n]

    def tokenize_within(
        self, text: str, limit: int, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int] | int:
        """``tokenize``, or only how many tokens ``text`` takes when that is more than ``limit``: a prompt
        far past the context never becomes a list of millions of tokens (nor is it sent anywhere)."""
        raw = text.encode("utf-8")
        size = max(min(len(raw) + 8, limit + 1), 1)
        buffer = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(self._vocab, raw, len(raw), buffer, size, add_special, parse_special)
        if n < 0:  # did not fit the buffer: llama.cpp says how many it would take
            return (
                self.tokenize(text, add_special=add_special, parse_special=parse_special)
                if -n <= limit
                else -n
            )
        return buffer[:n] if n <= limit else n

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token: part of a UTF-8 character for a byte token.

        llama-cpp-python's ``token_to_piece`` returns its whole padded buffer;
        this asks again with a bigger buffer when a piece does not fit.
        ``special`` renders control tokens (``<|im_end|>``); by default they are empty.
        """
        if not special:
            cached = self._pieces.get(token)
            if cached is not None:
                return cached
        buffer = ctypes.create_string_buffer(32)  # per call (thread-safe); pieces are cached anyway
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, 32, 0, special)
        if n < 0:  # a longer piece: ask again with room for it
            buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, -n, 0, special)
        piece = buffer.raw[:n]
        if not special:
            self._pieces[token] = piece
        return piece

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends a generation (EOS, EOT, ``<|im_end|>``...: ``llama_vocab_is_eog``)."""
        known = self._eog.get(token)
        if known is None:
            known = self._eog[token] = bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
        return known
