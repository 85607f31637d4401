"""Hostile Hugging Face folders given to ``create``: each is refused in one line and nothing is registered.

Found by the outside review of the conversion: tokenizer files of the wrong shapes reached the
``gguf`` library's reader and came out as tracebacks, and a config.json value that was present
but wrong (NaN epsilon, zero KV heads) was silently skipped or defaulted, so a model was
registered that llama.cpp then refused to load on every request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, LlamadeckError, Machine
from tests.support.hf_tiny import write_tiny_hf

GIB = 1 << 30


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(machine=lambda: Machine(free_ram=16 * GIB, gpu_free_vram=None))
    yield engine
    engine.close()


def _edit_json(name: str, change: Callable[[Any], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        change(data)
        (folder / name).write_text(json.dumps(data))

    return edit


def _refused(engine: Engine, tmp_path: Path, edit: Callable[[Path], None], words: str) -> None:
    folder = write_tiny_hf(tmp_path / "m", "llama")
    edit(folder)
    with pytest.raises(LlamadeckError, match=re.escape(words)) as caught:
        engine.create("hostile", "FROM ./m\n", base_dir=tmp_path)
    assert "\n" not in str(caught.value)
    assert engine.list_models() == []
    assert not list((engine.home / "partial").glob("create-*"))


@pytest.mark.parametrize(
    "edit",
    [
        _edit_json("tokenizer.json", lambda t: t.__setitem__("added_tokens", [1, "x", None])),
        _edit_json("tokenizer.json", lambda t: t["model"].__setitem__("merges", [1, None, ["a"]])),
        lambda folder: (folder / "tokenizer_config.json").write_text("{"),
        lambda folder: (folder / "tokenizer_config.json").write_text(
            json.dumps({"chat_template": [{"name": 1}, "x", {"template": None}]})
        ),
    ],
    ids=["added-tokens-not-objects", "merges-not-pairs", "config-not-json", "templates-not-named"],
)
def test_tokenizer_files_of_the_wrong_shape_are_one_line(
    engine: Engine, tmp_path: Path, edit: Callable[[Path], None]
) -> None:
    _refused(engine, tmp_path, edit, "tokenizer")


def _config(**values: Any) -> Callable[[Path], None]:
    return _edit_json("config.json", lambda c: c.update(values))


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_config(rms_norm_eps=float("nan")), "'s rms_norm_eps is nan: not a finite number"),
        (_config(rope_theta=float("inf")), "'s rope_theta is inf: not a finite number"),
        (_config(num_key_value_heads=0), " lacks num_key_value_heads (a positive integer): it is 0"),
        (_config(num_key_value_heads="2"), " lacks num_key_value_heads (a positive integer): it is '2'"),
        (_config(head_dim=-16), " lacks head_dim (a positive integer): it is -16"),
        (
            _config(
                rope_scaling={"rope_type": "llama3", "factor": "x", "original_max_position_embeddings": 16}
            ),
            "'s factor is 'x': not a finite number",
        ),
    ],
    ids=[
        "nan-epsilon",
        "infinite-rope-base",
        "zero-kv-heads",
        "kv-heads-a-string",
        "negative-head-dim",
        "factor-x",
    ],
)
def test_config_values_that_are_given_but_wrong_are_refused_not_skipped(
    engine: Engine, tmp_path: Path, edit: Callable[[Path], None], words: str
) -> None:
    """Before: NaN epsilon was skipped (so the key llama.cpp requires was missing) and zero KV heads
    became the head count: both registered a model whose every request was a load failure."""
    _refused(engine, tmp_path, edit, "config.json" + words)
