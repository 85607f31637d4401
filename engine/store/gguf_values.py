"""Header values llama.cpp asserts on: refused before llama.cpp ever sees them.

llama.cpp checks some hyperparameters with ``GGML_ASSERT``, which aborts the
whole process (the API server, the app and every other model with it)
instead of failing the load: a layer norm epsilon that is NaN or negative,
more experts used than there are, a multi-token-prediction head count above
the layer count, a vocabulary it cannot tokenize with. Every scan of a model
header (pull, create, import, verify and each load) runs ``check_values``,
so such a file is refused with one line naming the key, whatever way it came
in. The rules follow llama.cpp's ``llama_model::load_hparams`` and its
vocabulary loader; each was seen to abort (``tests/test_cli_hostile_aborts.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from engine.errors import IntegrityError

MAX_LAYERS = 512  # LLAMA_MAX_LAYERS: a higher block_count aborts
MAX_EXPERTS = 1024  # LLAMA_MAX_EXPERTS of the llama.cpp we build against
# tokenizer.ggml.model values that load but leave no tokenizer: the first tokenize aborts
_NO_TOKENIZER = frozenset({"none", "no_vocab"})
_WORDPIECE = "bert"  # a WordPiece vocabulary aborts on byte tokens (<0xNN>) as it caches their pieces
_EPSILON_SUFFIXES = ("epsilon", "_eps")  # layer_norm_rms_epsilon, layer_norm_epsilon, group_norm_epsilon


class HeaderValues:
    """The kept numbers and strings of one model header, read by key with the architecture's prefix."""

    def __init__(self, label: str, arch: str, numbers: Mapping[str, Any], strings: Mapping[str, str]) -> None:
        self.label = label
        self.arch = arch
        self.numbers = numbers
        self.strings = strings

    def fail(self, why: str) -> IntegrityError:
        return IntegrityError(f"{self.label} has a header llama.cpp would abort on: {why}")

    def count(self, key: str) -> int:
        """``{arch}.key`` as a whole number (0 when missing); a negative or fractional one is refused."""
        name = f"{self.arch}.{key}"
        value = self.numbers.get(name, 0)
        if isinstance(value, float) and not value.is_integer() or value < 0:
            raise self.fail(f"{name} is {value}")
        return int(value)


def check_values(
    label: str, arch: str, numbers: Mapping[str, Any], strings: Mapping[str, str], *, byte_tokens: bool
) -> None:
    """Raise IntegrityError naming the key when llama.cpp would abort on this model header.

    ``numbers`` are the header's scalars (the largest element for per-layer
    arrays), ``strings`` the kept strings, ``byte_tokens`` whether the
    vocabulary has tokens of type BYTE. Call it for the first part of a
    model (later parts of a split model carry no hyperparameters).
    """
    header = HeaderValues(label, arch, numbers, strings)
    for key, value in numbers.items():
        if isinstance(value, float) and math.isnan(value):
            raise header.fail(f"{key} is NaN")
        if key.endswith(_EPSILON_SUFFIXES) and not (math.isfinite(value) and value >= 0):
            raise header.fail(f"{key} is {value} (an epsilon is a finite number >= 0)")
    layers = header.count("block_count")
    if layers > MAX_LAYERS:
        raise header.fail(f"{arch}.block_count is {layers} (llama.cpp loads at most {MAX_LAYERS} layers)")
    nextn = header.count("nextn_predict_layers")
    if nextn > layers:
        raise header.fail(f"{arch}.nextn_predict_layers is {nextn}, more than its {layers} layers")
    _check_experts(header)
    _check_tokenizer(header, byte_tokens)


def _check_experts(header: HeaderValues) -> None:
    """The mixture-of-experts counts: llama.cpp asserts each of these relations."""
    arch = header.arch
    experts = header.count("expert_count")
    used = header.count("expert_used_count")
    groups = header.count("expert_group_count")
    groups_used = header.count("expert_group_used_count")
    if experts > MAX_EXPERTS:
        raise header.fail(f"{arch}.expert_count is {experts} (llama.cpp takes at most {MAX_EXPERTS})")
    if used > experts:
        raise header.fail(f"{arch}.expert_used_count is {used}, more than its {experts} experts")
    if experts == 0:
        if groups:
            raise header.fail(f"{arch}.expert_group_count is {groups} in a model without experts")
        return
    if used == 0:
        raise header.fail(f"{arch}.expert_used_count is 0 or missing in a model of {experts} experts")
    if groups >= experts:
        raise header.fail(f"{arch}.expert_group_count is {groups}: not fewer than its {experts} experts")
    if groups > 1 and (experts % groups or groups_used == 0 or groups_used >= groups):
        raise header.fail(
            f"{arch}.expert_group_count {groups} and expert_group_used_count {groups_used} do not fit "
            f"{experts} experts (groups must divide them, and 0 < groups used < groups)"
        )


def _check_tokenizer(header: HeaderValues, byte_tokens: bool) -> None:
    model = header.strings.get("tokenizer.ggml.model")
    if model in _NO_TOKENIZER:
        raise header.fail(f"tokenizer.ggml.model is {model!r}: a model without a tokenizer cannot read text")
    if model == _WORDPIECE and byte_tokens:
        raise header.fail("tokenizer.ggml.model is 'bert' but tokenizer.ggml.token_type has byte tokens")
