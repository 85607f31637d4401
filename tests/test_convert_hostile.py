"""Hostile Hugging Face folders given to ``create``: each is refused in one line and nothing is registered.

Found by the outside review of the conversion: tokenizer files of the wrong shapes reached the
``gguf`` library's reader and came out as tracebacks, and a config.json value that was present
but wrong (NaN epsilon, zero KV heads) was silently skipped or defaulted, so a model was
registered that llama.cpp then refused to load on every request.
"""

from __future__ import annotations

import json
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
    with pytest.raises(LlamadeckError, match=words) as caught:
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
