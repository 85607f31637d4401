"""Manifests an older llamadeck wrote past today's bounds (issue 18, minor finding): harmless, not fatal.

``create`` refuses more than 1,000 MESSAGE turns, but a store may hold a
manifest saved before it did, with 500,000: every chat with that model then
failed (its template ran out of time) and listing the store took a second a
call. Such a manifest is read keeping the last 1,000 turns (what a chat uses:
the oldest are dropped first, as Ollama drops them to fit the context), parsed
once per process, with one warning that says how to store it in bounds.
The manifests here are written straight to disk, past every check.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from engine import Engine, IntegrityError, Machine
from engine.store.manifest import MAX_TURNS, Manifest, ModelConfig
from engine.store.manifest_files import manifest_path
from engine.store.model_store import Store
from tests.support.hostile_gguf import smuggle
from tests.support.tiny_gguf import CHAT_TEMPLATE, write_tiny_gguf

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)
TURNS = 500_000


def write_past_the_checks(store: Store, manifest: Manifest, config: dict[str, object]) -> None:
    """Write ``manifest`` with ``config`` as raw JSON, as an older llamadeck could have (unchecked)."""
    data = json.loads(manifest.to_json())
    data["config"] = {**data["config"], **config}
    manifest_path(store, manifest.ref).write_text(json.dumps(data))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A store holding the tiny chat model as ``many:latest`` with 500,000 MESSAGE turns."""
    store = Store(tmp_path / "home")
    manifest = smuggle(store, "many", write_tiny_gguf(tmp_path / "tiny.gguf")[0])
    turns = [["user" if i % 2 == 0 else "assistant", f"turn {i}"] for i in range(TURNS)]
    write_past_the_checks(
        store, manifest, {"template": CHAT_TEMPLATE, "template_source": "gguf", "messages": turns}
    )
    return store


def test_a_manifest_with_500000_turns_keeps_the_last_1000_and_says_so_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(store.home, machine=lambda: CPU_BOX)
    with caplog.at_level(logging.WARNING, logger="llamadeck.engine"):
        first = engine.resolve("many")
        listed = engine.list_models()
    messages = first.config.messages
    assert len(messages) == MAX_TURNS == 1_000
    assert messages[0] == ("user", f"turn {TURNS - 1_000}") and messages[-1] == (
        "assistant",
        f"turn {TURNS - 1}",
    )
    assert listed == [first] and listed[0] is first  # parsed once: the second read is the first's result
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "many:latest" in warnings[0] and "500,000 MESSAGE turns" in warnings[0]
    assert "last 1,000" in warnings[0] and "re-create" in warnings[0]
    assert engine.store_problems() == []
    engine.close()


def test_every_chat_with_that_model_works_again(store: Store) -> None:
    engine = Engine(store.home, machine=lambda: CPU_BOX)
    try:
        events = list(engine.chat("many", [{"role": "user", "content": "hi"}], options={"num_predict": 2}))
    finally:
        engine.close()
    assert type(events[-1]).__name__ == "Done"


def test_copying_the_model_stores_it_in_bounds(store: Store) -> None:
    """The fix the warning names: a model made again from it is written with the 1,000 turns it uses."""
    engine = Engine(store.home, machine=lambda: CPU_BOX)
    try:
        copy = engine.copy("many", "few")
    finally:
        engine.close()
    raw = json.loads(manifest_path(store, copy.ref).read_bytes())
    assert len(raw["config"]["messages"]) == 1_000


def test_a_manifest_past_the_bound_is_never_written(store: Store) -> None:
    engine = Engine(store.home, machine=lambda: CPU_BOX)
    manifest = engine.resolve("many")
    engine.close()
    turns = tuple(("user", f"turn {i}") for i in range(MAX_TURNS + 1))
    bloated = dataclasses.replace(manifest, config=ModelConfig(messages=turns))
    with pytest.raises(IntegrityError, match="1,001 MESSAGE turns"):
        store.save(bloated)


def test_a_manifest_with_thousands_of_parameters_is_a_problem_that_says_how_to_fix_it(tmp_path: Path) -> None:
    """No Modelfile ever gave a model 5,000 options: such a manifest is damage, named with its fix."""
    store = Store(tmp_path / "home")
    manifest = smuggle(store, "params", write_tiny_gguf(tmp_path / "tiny.gguf")[0])
    write_past_the_checks(store, manifest, {"parameters": {f"option{i}": i for i in range(5_000)}})
    engine = Engine(store.home, machine=lambda: CPU_BOX)
    try:
        problems = engine.store_problems()
        with pytest.raises(IntegrityError, match="re-create"):
            engine.resolve("params")
    finally:
        engine.close()
    assert len(problems) == 1 and "5,000 options" in problems[0].problem
