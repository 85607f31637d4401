"""LoRA adapters: the manifest field, the header check, llama.cpp applying them, GC keeping their blobs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from engine import Done, Engine, Machine, Token
from engine.errors import IntegrityError, InvalidInput, LoadError
from engine.runtime import loader
from engine.runtime.adapters import check_adapter, read_adapter
from engine.runtime.llama.compute import COMPUTE
from engine.runtime.llama.model import AdapterSpec, Model
from engine.store.manifest import Manifest, ManifestError, ModelConfig, ModelFile
from engine.store.migrations import SCHEMA, STEPS
from engine.store.model_store import Store
from tests.support.greedy import greedy_tokens
from tests.support.tiny_gguf import N_EMBD, write_tiny_gguf
from tests.support.tiny_lora import DEFAULT_TARGETS, write_tiny_lora

CPU_BOX = Machine(free_ram=16 << 30, gpu_free_vram=None)


def greedy(path: Path, adapters: list[AdapterSpec], n: int = 10) -> list[int]:
    """Greedy tokens (no penalties) from the model at ``path`` with ``adapters`` applied."""
    return greedy_tokens(path, "hello world", n, adapters=adapters)


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("loras")
    return {
        "lora": write_tiny_lora(d / "lora.gguf"),
        "zero": write_tiny_lora(d / "zero.gguf", zero=True),
        "gemma": write_tiny_lora(d / "gemma.gguf", architecture="gemma3"),
        "shape": write_tiny_lora(
            d / "shape.gguf", targets=("blk.0.attn_q.weight",), shapes={"blk.0.attn_q.weight": (96, 96)}
        ),
        "stranger": write_tiny_lora(d / "stranger.gguf", targets=("blk.7.attn_q.weight",)),
        "not-lora": write_tiny_lora(d / "not-lora.gguf", adapter_type="control_vector"),
    }


# -- generation ---------------------------------------------------------------------------------------


def test_an_adapter_changes_what_the_model_says(tiny_models: dict[str, Path], loras: dict[str, Path]) -> None:
    plain = greedy(tiny_models["Q8_0"], [])
    adapted = greedy(tiny_models["Q8_0"], [AdapterSpec(loras["lora"])])
    assert adapted != plain
    assert greedy(tiny_models["Q8_0"], [AdapterSpec(loras["lora"])]) == adapted  # and does so every time


def test_a_zero_adapter_or_a_zero_scale_changes_nothing(
    tiny_models: dict[str, Path], loras: dict[str, Path]
) -> None:
    plain = greedy(tiny_models["Q8_0"], [])
    assert greedy(tiny_models["Q8_0"], [AdapterSpec(loras["zero"])]) == plain
    assert greedy(tiny_models["Q8_0"], [AdapterSpec(loras["lora"], scale=0.0)]) == plain


def test_two_adapters_apply_together(tiny_models: dict[str, Path], loras: dict[str, Path]) -> None:
    one = greedy(tiny_models["Q8_0"], [AdapterSpec(loras["lora"])])
    assert greedy(tiny_models["Q8_0"], [AdapterSpec(loras["lora"]), AdapterSpec(loras["zero"])]) == one


def test_adapters_are_freed_with_the_model(tiny_models: dict[str, Path], loras: dict[str, Path]) -> None:
    model = COMPUTE.call(
        lambda: Model.load(tiny_models["Q8_0"], n_gpu_layers=0, adapters=[AdapterSpec(loras["lora"])])
    )
    assert [label for _, _, label in model.adapters] == ["lora.gguf"]
    COMPUTE.call(model.free)
    assert model.adapters == [] and model._model is None
    COMPUTE.call(model.free)  # twice is harmless


# -- refusals -----------------------------------------------------------------------------------------


def test_an_adapter_for_another_architecture_is_refused_before_llama_cpp(
    tiny_models: dict[str, Path], loras: dict[str, Path]
) -> None:
    with pytest.raises(InvalidInput, match="made for 'gemma3' models, and this model is 'llama'"):
        check_adapter(loras["gemma"], architecture="llama")
    with pytest.raises(LoadError, match="gemma3") as caught:
        Model.load(tiny_models["Q8_0"], n_gpu_layers=0, adapters=[AdapterSpec(loras["gemma"])])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("shape", "incorrect shape"), ("stranger", "does not exist in base model")],
)
def test_an_adapter_that_does_not_fit_the_weights_is_a_load_error(
    tiny_models: dict[str, Path], loras: dict[str, Path], name: str, reason: str
) -> None:
    """Same architecture, other tensors: llama.cpp itself refuses, and the process lives on."""
    check_adapter(loras[name], architecture="llama")  # the header alone cannot tell
    with pytest.raises(LoadError, match=reason) as caught:
        Model.load(tiny_models["Q8_0"], n_gpu_layers=0, label="tiny", adapters=[AdapterSpec(loras[name])])
    assert str(caught.value).startswith(f"llama.cpp could not apply adapter {name}.gguf to tiny: ")
    assert len(greedy(tiny_models["Q8_0"], [])) == 10  # llama.cpp still works


def test_a_model_file_is_not_an_adapter(tiny_models: dict[str, Path], loras: dict[str, Path]) -> None:
    with pytest.raises(InvalidInput, match="not a LoRA adapter: it has no general.type"):
        check_adapter(tiny_models["Q8_0"], architecture="llama")
    with pytest.raises(InvalidInput, match="adapter.type is 'control_vector', not 'lora'"):
        check_adapter(loras["not-lora"], architecture="llama")


def test_a_damaged_or_missing_adapter_is_an_integrity_error(loras: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(loras["lora"].read_bytes()[:-100])
    with pytest.raises(IntegrityError, match="adapter cut.gguf is truncated"):
        check_adapter(cut, architecture="llama")
    with pytest.raises(IntegrityError, match="missing"):
        check_adapter(tmp_path / "nothing.gguf", architecture="llama")


def test_an_adapter_describes_itself(loras: dict[str, Path]) -> None:
    info = read_adapter(loras["lora"])
    assert (info.architecture, info.alpha, info.rank) == ("llama", 8.0, 4)
    assert info.targets == tuple(sorted(DEFAULT_TARGETS))
    assert N_EMBD % info.rank == 0


# -- the manifest -------------------------------------------------------------------------------------

ADAPTER = ModelFile("my-lora.gguf", "b" * 64, 1234)


def manifest(
    files: tuple[ModelFile, ...], adapters: tuple[ModelFile, ...] = (), name: str = "tiny"
) -> Manifest:
    return Manifest(
        name=name,
        tag="latest",
        source="test",
        revision=None,
        files=files,
        quant="Q8_0",
        architecture="llama",
        parameters=1,
        context_length=2048,
        created="2026-01-01T00:00:00+00:00",
        config=ModelConfig(adapters=adapters),
    )


def test_adapters_round_trip_through_the_manifest() -> None:
    m = manifest((ModelFile("m.gguf", "a" * 64, 1),), (ADAPTER,))
    data = json.loads(m.to_json())
    assert data["config"]["adapters"] == [{"path": "my-lora.gguf", "sha256": "b" * 64, "size": 1234}]
    assert Manifest.from_json(m.to_json()) == m


@pytest.mark.parametrize(
    "adapters",
    [
        {"x": 1},
        [{"path": "a", "sha256": "nope", "size": 1}],
        [{"path": "a", "sha256": "b" * 64, "size": -1}],
        ["x"],
    ],
)
def test_bad_adapters_are_damage(adapters: object) -> None:
    data = json.loads(manifest((ModelFile("m.gguf", "a" * 64, 1),)).to_json())
    data["config"]["adapters"] = adapters
    with pytest.raises(ManifestError):
        Manifest.from_json(json.dumps(data).encode())


def test_a_v2_manifest_without_adapters_still_reads() -> None:
    data = json.loads(manifest((ModelFile("m.gguf", "a" * 64, 1),)).to_json())
    data["schema"] = 2
    del data["config"]["adapters"]
    assert Manifest.from_json(json.dumps(data).encode()).config.adapters == ()


def test_v2_to_v3_adds_an_empty_adapter_list() -> None:
    assert SCHEMA >= 3  # later steps add their own fields (v4: config.draft, v5: config.projector)
    v2 = {"schema": 2, "config": {"template": None, "parameters": {}}}
    assert STEPS[2](v2)["config"] == {"template": None, "parameters": {}, "adapters": []}
    assert STEPS[2]({"schema": 2}) == {"schema": 2}  # no config: the defaults apply when read
    assert v2["config"] == {"template": None, "parameters": {}}  # the input is not changed


# -- the store and the engine -------------------------------------------------------------------------


def add_blob(store: Store, path: Path) -> ModelFile:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    shutil.copyfile(path, store.blob_path(sha))
    return ModelFile(path.name, sha, path.stat().st_size)


def test_garbage_collection_keeps_adapter_blobs(tmp_path: Path, loras: dict[str, Path]) -> None:
    store = Store(tmp_path / "home")
    store.ensure()
    weights = ModelFile("m.gguf", "a" * 64, 1)
    store.blob_path(weights.sha256).write_bytes(b"w")
    adapter = add_blob(store, loras["lora"])
    stray = add_blob(store, loras["zero"])
    store.save(manifest((weights,), (adapter,)))
    in_use, blocked = store.blobs_in_use()
    assert adapter.sha256 in in_use and blocked is None
    with store.store_lock():
        removed = store.collect_garbage().removed
    assert removed == (stray.sha256,)
    assert store.has_blob(adapter.sha256) and store.has_blob(weights.sha256)


def test_removing_the_model_frees_its_adapter_unless_another_names_it(loras: dict[str, Path]) -> None:
    store = Store()
    store.ensure()
    weights = ModelFile("m.gguf", "a" * 64, 1)
    store.blob_path(weights.sha256).write_bytes(b"w")
    adapter = add_blob(store, loras["lora"])
    store.save(manifest((weights,), (adapter,), name="one"))
    store.save(manifest((weights,), (adapter,), name="two"))
    engine = Engine(machine=lambda: CPU_BOX)
    engine.remove("one")
    assert store.has_blob(adapter.sha256)
    engine.remove("two")
    assert not store.has_blob(adapter.sha256)


def test_the_engine_runs_a_model_with_its_adapters(
    tiny_models: dict[str, Path], loras: dict[str, Path]
) -> None:
    """The loader hands the manifest's adapter blobs to the model load: same weights, another reply."""
    store = Store()
    store.ensure()
    weights = add_blob(store, tiny_models["Q8_0"])
    adapter = add_blob(store, loras["lora"])
    store.save(manifest((weights,), name="plain"))
    store.save(manifest((weights,), (adapter,), name="tuned"))
    store.save(manifest((weights,), (add_blob(store, loras["zero"]),), name="zeroed"))

    def reply(name: str) -> str:
        engine = Engine(machine=lambda: CPU_BOX)  # one each: see the test below
        try:
            events = list(engine.generate(name, "hello world", max_tokens=8, temperature=0, raw=True))
        finally:
            engine.close()
        assert isinstance(events[-1], Done) and events[-1].reason != "error", events[-1]
        return "".join(e.text for e in events if isinstance(e, Token))

    plain = reply("plain")
    assert reply("tuned") != plain
    assert reply("zeroed") == plain


def test_the_memory_plan_counts_adapter_bytes(tiny_models: dict[str, Path], loras: dict[str, Path]) -> None:
    store = Store()
    store.ensure()
    weights = add_blob(store, tiny_models["Q8_0"])
    adapter = add_blob(store, loras["lora"])
    plain = loader.tensor_bytes(store, manifest((weights,)))
    tuned = loader.tensor_bytes(store, manifest((weights,), (adapter,)))
    assert tuned.total == plain.total + adapter.size and tuned.layers == plain.layers


def test_load_id_tells_apart_one_weights_with_other_adapters() -> None:
    weights = (ModelFile("m.gguf", "a" * 64, 1),)
    assert manifest(weights).load_id == manifest(weights).id == "a" * 12
    assert manifest(weights, (ADAPTER,)).load_id == "a" * 12 + "+" + "b" * 12


def test_two_names_of_one_weights_with_other_adapters_load_apart(
    tiny_models: dict[str, Path], loras: dict[str, Path]
) -> None:
    store = Store()
    store.ensure()
    weights = add_blob(store, tiny_models["Q8_0"])
    store.save(manifest((weights,), name="plain"))
    store.save(manifest((weights,), (add_blob(store, loras["lora"]),), name="tuned"))
    engine = Engine(machine=lambda: CPU_BOX)
    try:
        texts = [
            "".join(
                e.text
                for e in engine.generate(name, "hello world", max_tokens=8, temperature=0, raw=True)
                if isinstance(e, Token)
            )
            for name in ("plain", "tuned")
        ]
    finally:
        engine.close()
    assert texts[0] != texts[1]


def test_the_engine_refuses_a_stored_adapter_of_another_architecture(
    tiny_models: dict[str, Path], loras: dict[str, Path]
) -> None:
    store = Store()
    store.ensure()
    weights = add_blob(store, tiny_models["Q8_0"])
    bad = dataclasses.replace(add_blob(store, loras["gemma"]), path="gemma-lora.gguf")
    store.save(manifest((weights,), (bad,), name="mismatched"))
    engine = Engine(machine=lambda: CPU_BOX)
    try:
        events = list(engine.generate("mismatched", "hello", max_tokens=2, raw=True))
        done = events[-1]
        assert isinstance(done, Done) and done.reason == "error" and "gemma-lora.gguf" in (done.error or "")
    except LoadError as error:
        assert "gemma-lora.gguf" in str(error) and "gemma3" in str(error)
    finally:
        engine.close()


def test_the_tiny_fixture_model_round_trips_through_write_tiny_gguf(tmp_path: Path) -> None:
    """The adapter fixture is written against tiny_gguf's model: rebuilding that model still matches it."""
    model = write_tiny_gguf(tmp_path / "m.gguf", quant="F16")[0]
    lora = write_tiny_lora(tmp_path / "l.gguf", seed=1)
    assert len(greedy(model, [AdapterSpec(lora)])) == 10
